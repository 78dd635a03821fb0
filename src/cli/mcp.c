/* `conclave mcp`: an MCP server on standard input and output for an agent acting as one actor
 * of one group. The protocol lives in mcp_server.c, the tools in mcp_tools.c; this file reads
 * the command line and gives the tools their way to the daemon: one control socket
 * connection per call, so a daemon restarted meanwhile is simply found again. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "cli.h"
#include "control.h"
#include "log.h"
#include "macro.h"
#include "mcp_server.h"
#include "mcp_tools.h"
#include "paths.h"
#include "proto.h"

#define DAEMON_TIMEOUT_SEC 30
#define ID_MAX 64

static const char mcp_help[] =
        "Usage: conclave mcp -g GROUP --actor-id ACTOR\n\n"
        "Serves the Model Context Protocol (MCP) on standard input and output, for an agent that acts\n"
        "as ACTOR in GROUP: every message, reply and ack it makes is by ACTOR. Messages are JSON-RPC 2.0,\n"
        "one per line; logs go to standard error. It ends at end of input. The daemon must be running\n"
        "for the tools to work; they report it when it is not.\n\n"
        "Tools: read_inbox, send_message, reply_to_message, ack_message, recent_events, list_actors.\n"
        "See docs/mcp.md for configuring an MCP client such as Claude Desktop or Claude Code.\n\n"
        "  -g, --group GROUP     the group\n"
        "      --actor-id ACTOR  the member the agent acts as (operator, or an actor of the group)\n";

/* MCP clients start servers with a scrubbed environment (the official SDK passes on only
 * HOME, LOGNAME, PATH, SHELL, TERM and USER), so XDG_RUNTIME_DIR is often missing; the service
 * then still has its socket in the systemd user runtime directory, /run/user/UID. */
static char *control_socket_path(void) {
        char dir[64], *p;
        struct stat st;

        if (getenv("CONCLAVE_RUNTIME_DIR") || getenv("XDG_RUNTIME_DIR"))
                return paths_control_socket();
        snprintf(dir, sizeof dir, "/run/user/%u", (unsigned) getuid());
        if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid())
                return paths_control_socket(); /* no user session: the /tmp fallback */
        return asprintf(&p, "%s/conclave/control.sock", dir) < 0 ? NULL : p;
}

static struct json_object *error_new(const char *code, const char *fmt, ...) _printf_(2, 3);
static struct json_object *error_new(const char *code, const char *fmt, ...) {
        struct json_object *e = json_object_new_object();
        char message[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(message, sizeof message, fmt, ap);
        va_end(ap);
        if (e && (json_object_object_add(e, "code", json_object_new_string(code)) < 0 ||
                  json_object_object_add(e, "message", json_object_new_string(message)) < 0)) {
                json_object_put(e);
                return NULL;
        }
        return e;
}

static int backend_call(_unused_ void *userdata, const char *op, struct json_object *args, struct json_object **ret_result,
                        struct json_object **ret_error) {
        struct timeval timeout = { .tv_sec = DAEMON_TIMEOUT_SEC };
        _cleanup_free_ char *path = control_socket_path();
        _cleanup_close_ int fd = path ? control_connect(path) : -ENOMEM;
        int r;

        if (fd == -ENOENT || fd == -ECONNREFUSED) {
                *ret_error = error_new("not_running",
                                       "the Conclave daemon is not running (nothing answers on %s); the operator can "
                                       "start it with `conclave service start`",
                                       path);
                return -ENOTCONN;
        }
        if (fd < 0) {
                *ret_error = error_new("unreachable", "cannot connect to the Conclave daemon at %s: %s", path ?: "?",
                                       strerror(-fd));
                return fd;
        }
        /* A daemon that hangs must not hang the agent with it. */
        if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) < 0 ||
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout) < 0)
                log_warning_errno(errno, "mcp: cannot set a timeout on the control socket");

        r = control_call(fd, op, args, ret_result, ret_error);
        if (r == -EREMOTEIO && *ret_error)
                return r;
        if (r == -EAGAIN || r == -EWOULDBLOCK)
                *ret_error = error_new("timeout", "the Conclave daemon did not answer %s within %d s", op, DAEMON_TIMEOUT_SEC);
        else if (r == -EMSGSIZE)
                *ret_error = error_new("too_large", "the daemon's answer to %s is larger than %u bytes; ask for less", op,
                                       CONTROL_LINE_MAX);
        else if (r < 0)
                *ret_error = error_new("unreachable", "talking to the Conclave daemon failed: %s", strerror(-r));
        return r;
}

static bool id_valid(const char *s) {
        size_t n = strlen(s);
        return n > 0 && n <= ID_MAX && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

/* Says on stderr (where an MCP client shows a server's log) when the daemon is not there or
 * does not know the actor; the tools say it again to the agent, so serving goes on. */
static void check_identity(const struct mcp_backend *backend, const struct mcp_identity *id) {
        _cleanup_json_ struct json_object *args = cli_args("group", id->group, "actor", id->actor, (char *) NULL),
                                          *result = NULL, *error = NULL;
        struct json_object *message;

        if (!args)
                return;
        if (backend->call(backend->userdata, "actor.show", args, &result, &error) >= 0) {
                log_debug("mcp: serving as %s in group %s", id->actor, id->group);
                return;
        }
        if (error && json_object_object_get_ex(error, "message", &message))
                log_warning("mcp: %s; the tools will report errors until this is fixed", json_object_get_string(message));
}

int cmd_mcp(int argc, char **argv) {
        static const struct option options[] = {
                { "group", required_argument, NULL, 'g' },
                { "actor-id", required_argument, NULL, 'a' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        struct mcp_backend backend = { .call = backend_call };
        struct mcp_identity id = {};
        struct mcp_server *server = NULL;
        int c, r;

        argv[0] = (char *) "conclave mcp";
        optind = 1;
        while ((c = getopt_long(argc, argv, "hg:", options, NULL)) >= 0)
                switch (c) {
                case 'g':
                        id.group = optarg;
                        break;
                case 'a':
                        id.actor = optarg;
                        break;
                case 'h':
                        fputs(mcp_help, stdout);
                        return EXIT_SUCCESS;
                default:
                        return EXIT_USAGE;
                }
        if (optind < argc) {
                fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[optind]);
                return EXIT_USAGE;
        }
        if (!id.group || !id.actor) {
                fprintf(stderr, "%s: missing %s; see --help\n", argv[0], !id.group ? "-g GROUP" : "--actor-id ACTOR");
                return EXIT_USAGE;
        }
        if (!id_valid(id.group) || !id_valid(id.actor)) {
                fprintf(stderr, "%s: invalid %s id '%s': 1-64 characters A-Z a-z 0-9 _ -\n", argv[0],
                        id_valid(id.group) ? "actor" : "group", id_valid(id.group) ? id.actor : id.group);
                return EXIT_USAGE;
        }
        /* A client that closes our stdout must give an error to handle, not a signal. */
        signal(SIGPIPE, SIG_IGN);

        check_identity(&backend, &id);
        r = mcp_server_new(&id, &backend, &server);
        if (r >= 0)
                r = mcp_server_run(server, STDIN_FILENO, STDOUT_FILENO);
        mcp_server_free(server);
        if (r == -EPIPE) {
                log_info("mcp: the client closed its end");
                return EXIT_SUCCESS;
        }
        if (r < 0) {
                log_error_errno(r, "mcp: serving standard input/output failed");
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}
