/* The `conclave` command: one file per command group, dispatched from main.c. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>

enum {
        EXIT_USAGE = 2,       /* bad command line */
        EXIT_NOT_RUNNING = 3, /* the daemon does not answer */
};

struct cli_command {
        const char *name;
        int (*run)(int argc, char **argv);
        const char *summary;
};

int cmd_daemon(int argc, char **argv);
int cmd_gateway(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_service(int argc, char **argv);

/* Path of a Conclave program (conclave-supervisor, …): $CONCLAVE_LIBEXECDIR, next to this
 * binary (build tree), ../libexec/conclave relative to it, then the configured libexecdir. */
char *cli_find_program(const char *name);

/* Connects to the daemon; prints the "not running" message and returns -ENOTCONN if it does
 * not answer. */
int cli_connect(void);
/* Calls `op`; prints the daemon's error and returns a negative value on failure. */
int cli_call(int fd, const char *op, struct json_object *args, struct json_object **result);

/* Runs argv (argv[0] is a path), waits, returns its exit status or -errno. */
int cli_run(char *const argv[]);

/* True when the first argument asks for help. */
bool cli_wants_help(int argc, char **argv);
