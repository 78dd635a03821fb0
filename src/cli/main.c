/* `conclave`: the operator's tool. Global options and command dispatch; each command group
 * lives in its own file. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "control.h"
#include "log.h"
#include "macro.h"
#include "paths.h"
#include "proto.h"

static const struct cli_command commands[] = {
        { "daemon", cmd_daemon, "run the whole suite in the foreground" },
        { "gateway", cmd_gateway, "run only the HTTP gateway in the foreground" },
        { "status", cmd_status, "show the running daemon's state" },
        { "doctor", cmd_doctor, "check configuration, permissions and installation" },
        { "service", cmd_service, "install|uninstall|start|stop|restart|reload|status the user unit" },
        { "groups", cmd_groups, "list the groups" },
        { "group", cmd_group, "create|show|start|stop|pause|resume|delete a group" },
        { "actor", cmd_actor, "list|add|show|start|stop|restart|remove a group's actors" },
        { "send", cmd_send, "send a message to a group" },
        { "reply", cmd_reply, "reply to a message" },
        { "ack", cmd_ack, "acknowledge a message that asks for attention" },
        { "inbox", cmd_inbox, "an actor's unread messages and open obligations" },
        { "tail", cmd_tail, "print recent events; -f follows new ones" },
        { "backup", cmd_backup, "write a consistent archive of CONCLAVE_HOME" },
        { "restore", cmd_restore, "restore CONCLAVE_HOME from a backup (daemon stopped)" },
        { "schedule", cmd_schedule, "add|list|remove scheduled messages" },
        { "mcp", cmd_mcp, "serve MCP on stdin/stdout for an agent acting as an actor" },
        { "channel", cmd_channel, "list|doctor the chat channels" },
};

static void help(void) {
        printf("Usage: conclave [--help] [--version] COMMAND [ARGS…]\n\n"
               "Conclave: groups of agents and humans working together, as a systemd user service.\n\n"
               "Commands:\n");
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                printf("  %-10s %s\n", commands[i].name, commands[i].summary);
        printf("  %-10s %s\n", "version", "show the version");
        printf("\nRun `conclave COMMAND --help` for a command's options. See conclave(1).\n"
               "Exit status: 0 success, 1 failure, 2 usage error, 3 daemon not running.\n");
}

bool cli_wants_help(int argc, char **argv) {
        for (int i = 1; i < argc; i++)
                if (streq(argv[i], "--help") || streq(argv[i], "-h"))
                        return true;
        return false;
}

static bool is_executable(const char *path) {
        struct stat st;
        return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

char *cli_find_program(const char *name) {
        const char *e = getenv("CONCLAVE_LIBEXECDIR");
        char exe[4096], *dir, *p;
        ssize_t n;

        if (e && *e)
                return path_join(e, name);
        n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n > 0) {
                exe[n] = 0;
                dir = dirname(exe);
                p = path_join(dir, name);
                if (p && is_executable(p))
                        return p;
                free(p);
                if (asprintf(&p, "%s/../libexec/conclave/%s", dir, name) >= 0) {
                        char *real = realpath(p, NULL);
                        free(p);
                        if (real && is_executable(real))
                                return real;
                        free(real);
                }
        }
        return path_join(PKGLIBEXECDIR, name);
}

int cli_connect(void) {
        _cleanup_free_ char *path = paths_control_socket();
        int fd;

        if (!path)
                return -ENOMEM;
        fd = control_connect(path);
        if (fd == -ENOENT || fd == -ECONNREFUSED) {
                fprintf(stderr,
                        "conclave: the daemon is not running (nothing answers on %s).\n"
                        "Start it with `conclave service start` (systemd) or `conclave daemon` (foreground).\n",
                        path);
                return -ENOTCONN;
        }
        if (fd < 0)
                fprintf(stderr, "conclave: cannot connect to %s: %s\n", path, strerror(-fd));
        return fd;
}

int cli_call(int fd, const char *op, struct json_object *args, struct json_object **result) {
        _cleanup_json_ struct json_object *error = NULL;
        struct json_object *v;
        int r;

        r = control_call(fd, op, args, result, &error);
        if (r == -EREMOTEIO) {
                fprintf(stderr, "conclave: %s\n",
                        error && json_object_object_get_ex(error, "message", &v)
                                ? json_object_get_string(v) : "the daemon refused the request");
                return r;
        }
        if (r < 0)
                fprintf(stderr, "conclave: talking to the daemon failed: %s\n", strerror(-r));
        return r;
}

int cli_request(const char *op, struct json_object *args, struct json_object **result) {
        _cleanup_close_ int fd = cli_connect();

        if (fd == -ENOTCONN)
                return EXIT_NOT_RUNNING;
        if (fd < 0 || cli_call(fd, op, args, result) < 0)
                return EXIT_FAILURE;
        return EXIT_SUCCESS;
}

int cli_parse_range(const char *arg, long min, long max, long *ret) {
        char *end;
        long v;

        errno = 0;
        v = strtol(arg, &end, 10);
        if (errno || end == arg || *end || v < min || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

int cli_oom(void) {
        fprintf(stderr, "conclave: out of memory\n");
        return EXIT_FAILURE;
}

struct json_object *cli_args(const char *key, ...) {
        struct json_object *o = json_object_new_object();
        va_list ap;

        if (!o)
                return NULL;
        va_start(ap, key);
        for (; key; key = va_arg(ap, const char *)) {
                const char *value = va_arg(ap, const char *);
                if (value && json_object_object_add(o, key, json_object_new_string(value)) < 0) {
                        json_object_put(o);
                        o = NULL;
                        break;
                }
        }
        va_end(ap);
        return o;
}

int cli_run(char *const argv[]) {
        int status;
        pid_t pid = fork();

        if (pid < 0)
                return negative_errno();
        if (pid == 0) {
                execv(argv[0], argv);
                fprintf(stderr, "conclave: cannot execute %s: %s\n", argv[0], strerror(errno));
                _exit(127);
        }
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return negative_errno();
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int main(int argc, char **argv) {
        const char *name;

        log_setup("conclave", LOG_TARGET_STDERR);
        if (argc < 2) {
                help();
                return EXIT_USAGE;
        }
        name = argv[1];
        if (streq(name, "--help") || streq(name, "-h") || streq(name, "help")) {
                help();
                return EXIT_SUCCESS;
        }
        if (streq(name, "--version") || streq(name, "version")) {
                printf("conclave %s\n", PACKAGE_VERSION);
                return EXIT_SUCCESS;
        }
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (streq(commands[i].name, name))
                        return commands[i].run(argc - 1, argv + 1);
        fprintf(stderr, "conclave: unknown command '%s'; see `conclave --help`\n", name);
        return EXIT_USAGE;
}
