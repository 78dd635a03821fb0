/* `conclave actor VERB -g GROUP …`: list, add, inspect, run and remove a group's actors through
 * the daemon's actor.* operations. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fileio.h"
#include "macro.h"
#include "proto.h"

enum {
        OPT_JSON = 1 << 0,
        OPT_KIND = 1 << 1,
        OPT_TITLE = 1 << 2,
        OPT_COMMAND = 1 << 3, /* takes a command after "--" */
        NEEDS_ID = 1 << 4,
        OPT_LLM = 1 << 5, /* --provider, --model, … */
};

struct actor_verb {
        const char *name;
        const char *op;
        unsigned flags;
        const char *help;
};

static const struct actor_verb verbs[] = {
        { "list", "actor.list", OPT_JSON,
          "Usage: conclave actor list -g GROUP [--json]\n\n"
          "Lists a group's actors: kind, runtime state, pid, restarts, last exit and read cursor.\n\n"
          "  -g, --group GROUP  the group\n"
          "      --json         print the raw list of actor objects\n" },
        { "add", "actor.add", NEEDS_ID | OPT_KIND | OPT_TITLE | OPT_COMMAND | OPT_LLM,
          "Usage: conclave actor add -g GROUP ID --kind command|human|llm [--title TEXT] [-- COMMAND [ARG…]]\n"
          "       conclave actor add -g GROUP ID --kind llm --provider NAME|default [LLM OPTIONS]\n\n"
          "Adds an actor to a group. A command actor is a program Conclave runs and supervises while\n"
          "the group is active; it needs COMMAND and its arguments after \"--\". A human actor is\n"
          "reached through channels. An llm actor with --provider (or any LLM option) is answered\n"
          "for by Conclave through that [providers.NAME] (docs/providers.md); without them it is an\n"
          "agent that acts by itself (MCP, the REST API).\n\n"
          "  -g, --group GROUP  the group\n"
          "      --kind KIND    command, human or llm\n"
          "      --title TEXT   a human-readable title\n\n"
          "LLM options (--kind llm):\n"
          "      --provider NAME          a [providers.NAME], or \"default\" for [provider] default\n"
          "      --model MODEL            instead of the provider's model\n"
          "      --system-prompt TEXT     instead of the built-in one (up to 16 KiB)\n"
          "      --system-prompt-file F   the system prompt from a file\n"
          "      --context-messages N     earlier messages to or from it shown to the model (0-200, default 20)\n"
          "      --context-chars N        at most this many characters of them (500-100000, default 16000)\n"
          "      --concurrency N          turns at a time; the rest wait (1-16, default 1)\n"
          "      --daily-tokens N         input+output tokens per UTC day; then it refuses (default 0: no limit)\n"
          "      --max-tokens N           reply length limit instead of the provider's max_tokens\n" },
        { "show", "actor.show", NEEDS_ID | OPT_JSON,
          "Usage: conclave actor show -g GROUP ID [--json]\n\n"
          "Shows an actor, its unread message count and the replies and acks it owes.\n\n"
          "  -g, --group GROUP  the group\n"
          "      --json         print the raw actor object\n" },
        { "start", "actor.start", NEEDS_ID,
          "Usage: conclave actor start -g GROUP ID\n\n"
          "Starts a command actor (and keeps it running while the group is active).\n\n"
          "  -g, --group GROUP  the group\n" },
        { "stop", "actor.stop", NEEDS_ID,
          "Usage: conclave actor stop -g GROUP ID\n\n"
          "Stops a command actor until it is started again.\n\n"
          "  -g, --group GROUP  the group\n" },
        { "restart", "actor.restart", NEEDS_ID,
          "Usage: conclave actor restart -g GROUP ID\n\n"
          "Stops a command actor and starts it again.\n\n"
          "  -g, --group GROUP  the group\n" },
        { "remove", "actor.remove", NEEDS_ID,
          "Usage: conclave actor remove -g GROUP ID\n\n"
          "Removes an actor from a group, stopping it first if it runs. Its messages stay in the ledger.\n\n"
          "  -g, --group GROUP  the group\n" },
};

enum {
        LLM_PROVIDER = 0x100,
        LLM_MODEL,
        LLM_PROMPT,
        LLM_PROMPT_FILE,
        LLM_CONTEXT_MESSAGES,
        LLM_CONTEXT_CHARS,
        LLM_CONCURRENCY,
        LLM_DAILY_TOKENS,
        LLM_MAX_TOKENS,
};

/* One LLM option into the "llm" settings object (llm_settings.h); the daemon checks them too. */
static int llm_option(const char *prog, int option, const char *arg, struct json_object **llm) {
        static const struct {
                int option;
                const char *key, *name;
                long min, max;
        } numbers[] = {
                { LLM_CONTEXT_MESSAGES, "context_messages", "--context-messages", 0, 200 },
                { LLM_CONTEXT_CHARS, "context_chars", "--context-chars", 500, 100000 },
                { LLM_CONCURRENCY, "concurrency", "--concurrency", 1, 16 },
                { LLM_DAILY_TOKENS, "daily_tokens", "--daily-tokens", 0, 1000000000000L },
                { LLM_MAX_TOKENS, "max_tokens", "--max-tokens", 0, 10000000 },
        };
        _cleanup_free_ char *text = NULL;

        if (!*llm && !(*llm = json_object_new_object()))
                return cli_oom();
        for (size_t i = 0; i < ELEMENTSOF(numbers); i++) {
                long v;
                if (numbers[i].option != option)
                        continue;
                if (cli_parse_range(arg, numbers[i].min, numbers[i].max, &v) < 0) {
                        fprintf(stderr, "%s: %s wants a whole number from %ld to %ld\n", prog, numbers[i].name,
                                numbers[i].min, numbers[i].max);
                        return EXIT_USAGE;
                }
                json_object_object_add(*llm, numbers[i].key, json_object_new_int64(v));
                return EXIT_SUCCESS;
        }
        switch (option) {
        case LLM_PROVIDER:
                /* "default": whatever [provider] default names when a turn starts. */
                if (!streq(arg, "default"))
                        json_object_object_add(*llm, "provider", json_object_new_string(arg));
                break;
        case LLM_MODEL:
                json_object_object_add(*llm, "model", json_object_new_string(arg));
                break;
        case LLM_PROMPT:
                json_object_object_add(*llm, "system_prompt", json_object_new_string(arg));
                break;
        case LLM_PROMPT_FILE: {
                int r = read_file_bounded(arg, 16 * 1024, &text, NULL);
                if (r < 0) {
                        fprintf(stderr, "%s: cannot read %s: %s\n", prog, arg,
                                r == -EFBIG ? "larger than 16 KiB" : strerror(-r));
                        return EXIT_FAILURE;
                }
                json_object_object_add(*llm, "system_prompt", json_object_new_string(text));
                break;
        }
        }
        return EXIT_SUCCESS;
}

static void actor_help(FILE *f) {
        fprintf(f, "Usage: conclave actor VERB -g GROUP [ID] [OPTIONS]\n\n"
                   "Verbs:\n"
                   "  list                          the group's actors\n"
                   "  add ID --kind KIND [-- COMMAND [ARG…]]\n"
                   "                                add a command, human or llm actor\n"
                   "  show ID [--json]              an actor, its unread count and obligations\n"
                   "  start|stop|restart ID         run or stop a command actor\n"
                   "  remove ID                     remove an actor (stopping it first)\n\n"
                   "Run `conclave actor VERB --help` for a verb's options.\n");
}

static size_t column_width(struct json_object *list, const char *key, size_t min) {
        size_t width = min;

        for (size_t i = 0; i < json_object_array_length(list); i++) {
                size_t len = strlen(cli_str(json_object_array_get_idx(list, i), key) ?: "-");
                if (len > width)
                        width = len;
        }
        return width;
}

void cli_print_actors(struct json_object *actors) {
        int id_width = (int) column_width(actors, "id", 2);
        int exit_width = (int) column_width(actors, "last_exit", 9);

        printf("%-*s  %-7s  %-10s  %-7s  %-8s  %-*s  %-8s  %s\n", id_width, "ID", "KIND", "RUNTIME", "PID", "RESTARTS",
               exit_width, "LAST-EXIT", "CURSOR", "DELIVERY");
        for (size_t i = 0; i < json_object_array_length(actors); i++) {
                struct json_object *a = json_object_array_get_idx(actors, i);

                char cursor[32], t[CLI_TIME_MAX];
                struct json_object *llm = NULL;

                snprintf(cursor, sizeof cursor, "#%" PRId64, cli_int(a, "cursor"));
                if (json_object_object_get_ex(a, "llm", &llm) && json_object_is_type(llm, json_type_object)) {
                        /* An llm actor's delivery is its provider and model. */
                        printf("%-*s  %-7s  %-10s  %-7s  %-8s  %-*s  %-8s  %s/%s\n", id_width, cli_str(a, "id") ?: "?", "llm",
                               cli_str(a, "runtime") ?: "?", "-", "-", exit_width, "-", cursor,
                               cli_str(llm, "provider") ?: "(none)", cli_str(llm, "model") ?: "?");
                        continue;
                }
                printf("%-*s  %-7s  %-10s  %-7s  %-8" PRId64 "  %-*s  %-8s  %s%s\n", id_width,
                       cli_str(a, "id") ?: "?", cli_str(a, "kind") ?: "?", cli_str(a, "runtime") ?: "?",
                       cli_str(a, "pid") ?: "-", cli_int(a, "restarts"), exit_width, cli_str(a, "last_exit") ?: "-",
                       cursor, cli_bool(a, "throttled") ? "throttled until " : cli_str(a, "throttled") ? "ready" : "-",
                       cli_bool(a, "throttled") ? cli_format_time(t, sizeof t, cli_str(a, "next_delivery")) : "");
        }
}

static void print_command(struct json_object *command) {
        for (size_t i = 0; i < json_object_array_length(command); i++) {
                struct json_object *arg = json_object_array_get_idx(command, i);
                const char *s = json_object_get_string(arg);

                if (i > 0)
                        putchar(' ');
                /* Quote what would not read back as one word. */
                if (!*s || strpbrk(s, " \t\n\"'\\$"))
                        s = json_object_to_json_string_ext(arg, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
                cli_print_text(s, NULL);
        }
}

static void print_actor(struct json_object *a) {
        struct json_object *llm = NULL;
        char t[CLI_TIME_MAX];

        printf("Actor %s in group %s", cli_str(a, "id") ?: "?", cli_str(a, "group") ?: "?");
        if (!isempty(cli_str(a, "title"))) {
                fputs(": ", stdout);
                cli_print_text(cli_str(a, "title"), NULL);
        }
        printf("\n  kind:      %s\n", cli_str(a, "kind") ?: "?");
        if (cli_array(a, "command")) {
                printf("  command:   ");
                print_command(cli_array(a, "command"));
                printf("\n  enabled:   %s\n", cli_bool(a, "enabled") ? "yes" : "no");
                printf("  runtime:   %s", cli_str(a, "runtime") ?: "?");
                if (cli_str(a, "pid"))
                        printf(", pid %s", cli_str(a, "pid"));
                printf("\n  restarts:  %" PRId64 "\n", cli_int(a, "restarts"));
                if (cli_str(a, "last_exit"))
                        printf("  last exit: %s at %s\n", cli_str(a, "last_exit"),
                               cli_format_time(t, sizeof t, cli_str(a, "last_exit_time")));
                printf("  delivery:  %" PRId64 " write(s), %" PRId64 " batch(es)", cli_int(a, "deliveries"),
                       cli_int(a, "batches"));
                if (cli_bool(a, "throttled"))
                        printf("; throttled, next delivery at %s", cli_format_time(t, sizeof t, cli_str(a, "next_delivery")));
                putchar('\n');
        }
        if (json_object_object_get_ex(a, "llm", &llm) && json_object_is_type(llm, json_type_object)) {
                printf("  provider:  %s (%s), model %s\n", cli_str(llm, "provider") ?: "(none configured)",
                       cli_str(llm, "provider_kind") ?: "?", cli_str(llm, "model") ?: "?");
                printf("  state:     %s, %" PRId64 " turn(s) running of %" PRId64 " at a time\n", cli_str(a, "runtime") ?: "?",
                       cli_int(llm, "in_flight"), cli_int(llm, "concurrency"));
                printf("  turns:     %" PRId64 " answered, %" PRId64 " failed, %" PRId64 " refused (budget)\n",
                       cli_int(llm, "turns_ok"), cli_int(llm, "turns_failed"), cli_int(llm, "turns_refused"));
                printf("  tokens:    %s today (UTC)", cli_str(llm, "tokens_today") ?: "?");
                if (cli_int(llm, "daily_tokens") > 0)
                        printf(" of %" PRId64 " a day", cli_int(llm, "daily_tokens"));
                printf("\n  context:   %" PRId64 " message(s), %" PRId64 " characters\n", cli_int(llm, "context_messages"),
                       cli_int(llm, "context_chars"));
                if (cli_str(llm, "last_error"))
                        printf("  last error: %s (%s) at %s\n", cli_str(llm, "last_error"), cli_str(llm, "last_error_code") ?: "?",
                               cli_format_time(t, sizeof t, cli_str(llm, "last_error_time")));
        }
        printf("  cursor:    read up to #%" PRId64 "\n", cli_int(a, "cursor"));
        if (cli_str(a, "unread"))
                printf("  unread:    %" PRId64 "\n", cli_int(a, "unread"));
        if (cli_array(a, "obligations") && json_object_array_length(cli_array(a, "obligations")) > 0) {
                putchar('\n');
                cli_print_obligations(cli_array(a, "obligations"));
        }
}

static void print_result(const struct actor_verb *verb, const char *group, const char *id, struct json_object *r) {
        if (streq(verb->name, "list")) {
                if (json_object_array_length(r) == 0)
                        printf("No actors in group %s. Add one with `conclave actor add -g %s ID --kind KIND`.\n",
                               group, group);
                else
                        cli_print_actors(r);
        } else if (streq(verb->name, "show"))
                print_actor(r);
        else if (streq(verb->name, "add"))
                printf("Added %s actor %s to group %s.\n", cli_str(r, "kind") ?: "?", id, group);
        else if (streq(verb->name, "remove"))
                printf("Removed actor %s from group %s.\n", id, group);
        else {
                printf("Actor %s is %s", id, cli_str(r, "runtime") ?: "?");
                if (cli_str(r, "pid"))
                        printf(" (pid %s)", cli_str(r, "pid"));
                printf(".\n");
        }
}

/* A JSON array of the words after "--". */
static struct json_object *command_new(char **words, int n) {
        struct json_object *a = json_object_new_array();

        for (int i = 0; a && i < n; i++)
                if (json_object_array_add(a, json_object_new_string(words[i])) < 0) {
                        json_object_put(a);
                        a = NULL;
                }
        return a;
}

static int run_verb(const struct actor_verb *verb, int argc, char **argv) {
        static const struct option options[] = {
                { "group", required_argument, NULL, 'g' },
                { "json", no_argument, NULL, 'j' },
                { "kind", required_argument, NULL, 'k' },
                { "title", required_argument, NULL, 't' },
                { "help", no_argument, NULL, 'h' },
                { "provider", required_argument, NULL, LLM_PROVIDER },
                { "model", required_argument, NULL, LLM_MODEL },
                { "system-prompt", required_argument, NULL, LLM_PROMPT },
                { "system-prompt-file", required_argument, NULL, LLM_PROMPT_FILE },
                { "context-messages", required_argument, NULL, LLM_CONTEXT_MESSAGES },
                { "context-chars", required_argument, NULL, LLM_CONTEXT_CHARS },
                { "concurrency", required_argument, NULL, LLM_CONCURRENCY },
                { "daily-tokens", required_argument, NULL, LLM_DAILY_TOKENS },
                { "max-tokens", required_argument, NULL, LLM_MAX_TOKENS },
                {},
        };
        _cleanup_json_ struct json_object *llm = NULL;
        _cleanup_json_ struct json_object *args = NULL, *result = NULL;
        const char *group = NULL, *kind = NULL, *title = NULL, *pos[2] = {};
        char **command = NULL;
        int c, r, n_pos = 0, n_command = 0;
        bool json = false;

        /* "+": stop at "--" so the words after it stay the actor's command, while options may
         * still follow the ID (each non-option is taken by hand and the scan resumed). */
        optind = 1;
        for (;;) {
                int before = optind;
                unsigned flag = 0;

                c = getopt_long(argc, argv, "+hg:", options, NULL);
                if (c < 0) {
                        if (optind > before && streq(argv[before], "--")) {
                                command = argv + optind;
                                n_command = argc - optind;
                                break;
                        }
                        if (optind >= argc)
                                break;
                        if (n_pos == (int) ELEMENTSOF(pos)) {
                                fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[optind]);
                                return EXIT_USAGE;
                        }
                        pos[n_pos++] = argv[optind++];
                        continue;
                }
                switch (c) {
                case 'g':
                        group = optarg;
                        break;
                case 'j':
                        flag = OPT_JSON;
                        json = true;
                        break;
                case 'k':
                        flag = OPT_KIND;
                        kind = optarg;
                        break;
                case 't':
                        flag = OPT_TITLE;
                        title = optarg;
                        break;
                case 'h':
                        fputs(verb->help, stdout);
                        return EXIT_SUCCESS;
                case LLM_PROVIDER ... LLM_MAX_TOKENS:
                        if (!(verb->flags & OPT_LLM)) {
                                fprintf(stderr, "%s: LLM options apply to `conclave actor add --kind llm`\n", argv[0]);
                                return EXIT_USAGE;
                        }
                        r = llm_option(argv[0], c, optarg, &llm);
                        if (r != EXIT_SUCCESS)
                                return r;
                        break;
                default:
                        return EXIT_USAGE;
                }
                if (flag && !(verb->flags & flag)) {
                        fprintf(stderr, "%s: option '--%s' does not apply here; see --help\n", argv[0],
                                flag == OPT_JSON ? "json" : flag == OPT_KIND ? "kind" : "title");
                        return EXIT_USAGE;
                }
        }
        /* Elsewhere "--" only ends the options (an ID may begin with '-'). */
        for (int i = 0; !(verb->flags & OPT_COMMAND) && i < n_command; i++) {
                if (n_pos == (int) ELEMENTSOF(pos)) {
                        fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], command[i]);
                        return EXIT_USAGE;
                }
                pos[n_pos++] = command[i];
        }
        if (!group) {
                fprintf(stderr, "%s: missing -g GROUP; see --help\n", argv[0]);
                return EXIT_USAGE;
        }
        if ((verb->flags & NEEDS_ID) ? n_pos != 1 : n_pos != 0) {
                if (n_pos == 0)
                        fprintf(stderr, "%s: missing actor ID; see --help\n", argv[0]);
                else
                        fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], pos[n_pos - 1]);
                return EXIT_USAGE;
        }
        if (verb->flags & OPT_KIND) {
                if (!kind) {
                        fprintf(stderr, "%s: missing --kind command|human|llm\n", argv[0]);
                        return EXIT_USAGE;
                }
                if (!streq(kind, "command") && !streq(kind, "human") && !streq(kind, "llm")) {
                        fprintf(stderr, "%s: unknown kind '%s' (command, human or llm)\n", argv[0], kind);
                        return EXIT_USAGE;
                }
                if (streq(kind, "command") && n_command == 0) {
                        fprintf(stderr, "%s: a command actor needs its command after \"--\", e.g. "
                                        "`conclave actor add -g %s %s --kind command -- /usr/bin/my-agent --flag`\n",
                                argv[0], group, pos[0]);
                        return EXIT_USAGE;
                }
                if (!streq(kind, "command") && command) {
                        fprintf(stderr, "%s: a %s actor takes no command (only --kind command does)\n", argv[0], kind);
                        return EXIT_USAGE;
                }
                if (llm && !streq(kind, "llm")) {
                        fprintf(stderr, "%s: LLM options (--provider, --model, …) need --kind llm\n", argv[0]);
                        return EXIT_USAGE;
                }
        }

        args = cli_args("group", group, "actor", pos[0], "kind", kind, "title", title, (char *) NULL);
        if (!args)
                return cli_oom();
        if (n_command > 0 && (verb->flags & OPT_COMMAND)) {
                struct json_object *argv_array = command_new(command, n_command);
                if (!argv_array || json_object_object_add(args, "command", argv_array) < 0) {
                        json_object_put(argv_array);
                        return cli_oom();
                }
        }
        if (llm && json_object_object_add(args, "llm", json_object_get(llm)) < 0)
                return cli_oom();
        r = cli_request(verb->op, args, &result);
        if (r != EXIT_SUCCESS)
                return r;
        if (json)
                cli_print_json(result);
        else if (streq(verb->name, "list") && !json_object_is_type(result, json_type_array)) {
                fprintf(stderr, "%s: unexpected reply from the daemon\n", argv[0]);
                return EXIT_FAILURE;
        } else
                print_result(verb, group, pos[0], result);
        return EXIT_SUCCESS;
}

int cmd_actor(int argc, char **argv) {
        char name[64];

        if (argc < 2) {
                actor_help(stderr);
                return EXIT_USAGE;
        }
        if (streq(argv[1], "--help") || streq(argv[1], "-h") || streq(argv[1], "help")) {
                actor_help(stdout);
                return EXIT_SUCCESS;
        }
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(argv[1], verbs[i].name)) {
                        snprintf(name, sizeof name, "conclave actor %s", verbs[i].name);
                        argv[1] = name;
                        return run_verb(&verbs[i], argc - 1, argv + 1);
                }
        fprintf(stderr, "conclave actor: unknown verb '%s'; see `conclave actor --help`\n", argv[1]);
        return EXIT_USAGE;
}
