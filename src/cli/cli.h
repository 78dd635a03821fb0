/* The `conclave` command: one file per command group, dispatched from main.c. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
int cmd_groups(int argc, char **argv);
int cmd_group(int argc, char **argv);
int cmd_actor(int argc, char **argv);
int cmd_send(int argc, char **argv);
int cmd_reply(int argc, char **argv);
int cmd_ack(int argc, char **argv);
int cmd_inbox(int argc, char **argv);
int cmd_tail(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_schedule(int argc, char **argv);
int cmd_mcp(int argc, char **argv);
int cmd_channel(int argc, char **argv);

/* Path of a Conclave program (conclave-supervisor, …): $CONCLAVE_LIBEXECDIR, next to this
 * binary (build tree), ../libexec/conclave relative to it, then the configured libexecdir. */
char *cli_find_program(const char *name);

/* Connects to the daemon; prints the "not running" message and returns -ENOTCONN if it does
 * not answer. */
int cli_connect(void);
/* Calls `op`; prints the daemon's error and returns a negative value on failure. */
int cli_call(int fd, const char *op, struct json_object *args, struct json_object **result);

/* Connects, calls `op` (args borrowed, may be NULL) and returns an exit status: EXIT_SUCCESS
 * with *result set (new reference, may be NULL), EXIT_NOT_RUNNING, or EXIT_FAILURE after
 * printing why. */
int cli_request(const char *op, struct json_object *args, struct json_object **result);
/* {"k1":"v1","k2":"v2",…} from NULL-terminated key/value pairs; a NULL value is left out. */
struct json_object *cli_args(const char *key, ...) __attribute__((sentinel));

/* Prints "out of memory", returns EXIT_FAILURE. */
int cli_oom(void);

/* Runs argv (argv[0] is a path), waits, returns its exit status or -errno. */
int cli_run(char *const argv[]);

/* A decimal number from min to max (an option's argument); -EINVAL otherwise. */
int cli_parse_range(const char *arg, long min, long max, long *ret);

/* messages.c, shared with schedule.c: ["a","b"] from "a,b" (NULL after a message naming prog
 * for an empty name, or with *ret_oom set); the words joined by spaces. */
struct json_object *cli_recipients_new(const char *prog, const char *list, bool *ret_oom);
char *cli_text_from_words(char **words, int n);

/* True when the first argument asks for help. */
bool cli_wants_help(int argc, char **argv);

/* format.c: reading result objects and printing them the same way in every command. */
/* String value of key; NULL when missing or null. Numbers and booleans as their JSON text. */
const char *cli_str(struct json_object *o, const char *key);
int64_t cli_int(struct json_object *o, const char *key);
bool cli_bool(struct json_object *o, const char *key);
/* The array at key, or NULL. */
struct json_object *cli_array(struct json_object *o, const char *key);
/* The daemon sends "" for an unset title. */
static inline bool isempty(const char *s) {
        return !s || !*s;
}
/* Pretty-printed, for --json. */
void cli_print_json(struct json_object *o);
/* ISO-8601 UTC ("2026-11-22T14:36:41.123Z") as local "2026-11-22 15:36:41"; "-" for NULL; the
 * input as it is when it does not parse. */
const char *cli_format_time(char *buf, size_t size, const char *iso);
#define CLI_TIME_MAX 64
/* Writes text from the daemon with control characters escaped (a message must not drive the
 * terminal). Newlines become "\n", or a newline plus `indent` when indent is not NULL. */
void cli_print_text(const char *s, const char *indent);
/* One event per line: TIME GROUP #SEQ KIND BY: summary. */
void cli_print_event(struct json_object *event);
/* A chat.message as an inbox entry: #SEQ TIME FROM → TO: TEXT [markers] ↩ reply to EVENT. */
void cli_print_message(struct json_object *event);
/* "Open obligations:" and one line each; nothing for an empty or missing list. */
void cli_print_obligations(struct json_object *obligations);

/* actors.c: the actor table shared by `actor list` and `group show`. */
void cli_print_actors(struct json_object *actors);
