/* `conclave schedule add|list|remove -g GROUP …`: scheduled messages through the daemon's
 * schedule.* operations. `--at` is turned into a UTC time here, in the operator's time zone. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "macro.h"
#include "proto.h"
#include "schedule.h"
#include "timeutil.h"

static const char add_help[] =
        "Usage: conclave schedule add -g GROUP (--every DURATION | --at TIME | --cron \"m h dom mon dow\")\n"
        "                             [--to ACTOR[,ACTOR…]] [--reply-required] [--attention] [--json] TEXT…\n\n"
        "Adds a scheduled message: the operator sends TEXT to the group at the given times while the\n"
        "group is active. A run whose time passed while the daemon was down or the group was not\n"
        "active is made once, late, with the number of skipped runs recorded as \"missed\".\n\n"
        "  -g, --group GROUP     the group\n"
        "      --every DURATION  every DURATION from now (\"90s\", \"15m\", \"1h\", \"1d\"; at least 1s)\n"
        "      --at TIME         once: \"+10m\", \"15:30\" (today or tomorrow), \"2026-11-22 15:30\" (local\n"
        "                        time) or \"2026-11-22T14:30:00Z\" (UTC)\n"
        "      --cron EXPR       on a cron expression in the daemon's local time, e.g. \"0 9 * * mon-fri\"\n"
        "      --to ACTORS       comma-separated recipients, or @all (the default)\n"
        "      --reply-required  each recipient owes a reply to each run\n"
        "      --attention       each recipient owes an ack to each run\n"
        "      --json            print the raw schedule object\n";
static const char list_help[] =
        "Usage: conclave schedule list -g GROUP [--json]\n\n"
        "Lists a group's schedules: id, timing, next run, runs so far, recipients and text.\n\n"
        "  -g, --group GROUP  the group\n"
        "      --json         print the raw list\n";
static const char remove_help[] =
        "Usage: conclave schedule remove -g GROUP ID [--json]\n\n"
        "Removes a schedule (named by its id, or the seq of the event that added it). Runs already\n"
        "made stay in the ledger.\n\n"
        "  -g, --group GROUP  the group\n"
        "      --json         print the raw result\n";

static void schedule_help(void) {
        printf("Usage: conclave schedule VERB -g GROUP [OPTIONS]\n\n"
               "Verbs:\n"
               "  add (--every D | --at T | --cron E) [--to A,B] TEXT…   add a scheduled message\n"
               "  list                                                   the group's schedules\n"
               "  remove ID                                              remove one\n\n"
               "Run `conclave schedule VERB --help` for a verb's options.\n");
}

static void print_when(struct json_object *o) {
        const char *kind = cli_str(o, "kind");
        char t[CLI_TIME_MAX];

        if (streq(kind, "every"))
                printf("every %s", cli_str(o, "every") ?: "?");
        else if (streq(kind, "at"))
                printf("at %s", cli_format_time(t, sizeof t, cli_str(o, "at")));
        else {
                fputs("cron ", stdout);
                cli_print_text(cli_str(o, "cron") ?: "?", NULL);
        }
}

static void print_schedule(struct json_object *o) {
        struct json_object *to = cli_array(o, "to");
        char t[CLI_TIME_MAX];

        printf("%s  ", cli_str(o, "id") ?: "?");
        print_when(o);
        printf("\n    next run: %s%s, runs: %" PRId64 "%s%s\n    to: ",
               cli_format_time(t, sizeof t, cli_str(o, "next_run")),
               cli_bool(o, "overdue") ? " (overdue: runs when the group is active)" : "", cli_int(o, "runs"),
               cli_bool(o, "reply_required") ? ", reply required" : "", cli_bool(o, "attention") ? ", attention" : "");
        for (size_t i = 0; to && i < json_object_array_length(to); i++) {
                if (i > 0)
                        fputs(", ", stdout);
                cli_print_text(json_object_get_string(json_object_array_get_idx(to, i)), NULL);
        }
        fputs("\n    text: ", stdout);
        cli_print_text(cli_str(o, "text") ?: "", "          ");
        putchar('\n');
}

static int schedule_add(int argc, char **argv) {
        static const struct option options[] = {
                { "group", required_argument, NULL, 'g' },   { "every", required_argument, NULL, 'e' },
                { "at", required_argument, NULL, 'A' },      { "cron", required_argument, NULL, 'c' },
                { "to", required_argument, NULL, 't' },      { "reply-required", no_argument, NULL, 'r' },
                { "attention", no_argument, NULL, 'a' },     { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },          {},
        };
        _cleanup_json_ struct json_object *args = NULL, *result = NULL, *to = NULL;
        _cleanup_free_ char *text = NULL;
        const char *group = NULL, *every = NULL, *at = NULL, *cron = NULL, *to_arg = NULL;
        bool reply_required = false, attention = false, json = false, oom;
        char at_iso[40];
        int c, r;

        optind = 1;
        while ((c = getopt_long(argc, argv, "hg:", options, NULL)) >= 0)
                switch (c) {
                case 'g': group = optarg; break;
                case 'e': every = optarg; break;
                case 'A': at = optarg; break;
                case 'c': cron = optarg; break;
                case 't': to_arg = optarg; break;
                case 'r': reply_required = true; break;
                case 'a': attention = true; break;
                case 'j': json = true; break;
                case 'h': fputs(add_help, stdout); return EXIT_SUCCESS;
                default: return EXIT_USAGE;
                }
        if (!group) {
                fprintf(stderr, "%s: missing -g GROUP; see --help\n", argv[0]);
                return EXIT_USAGE;
        }
        if (!!every + !!at + !!cron != 1) {
                fprintf(stderr, "%s: give exactly one of --every, --at, --cron; see --help\n", argv[0]);
                return EXIT_USAGE;
        }
        if (optind >= argc) {
                fprintf(stderr, "%s: missing TEXT\n", argv[0]);
                return EXIT_USAGE;
        }
        if (!(text = cli_text_from_words(argv + optind, argc - optind)))
                return cli_oom();
        if (!*text) {
                fprintf(stderr, "%s: the message text is empty\n", argv[0]);
                return EXIT_USAGE;
        }
        if (at) {
                /* Local times mean the operator's zone: resolve them here, send UTC. */
                uint64_t usec;
                if (schedule_parse_time(at, now_usec(CLOCK_REALTIME), &usec) < 0) {
                        fprintf(stderr, "%s: invalid --at '%s': expected \"+10m\", \"15:30\", \"2026-11-22 15:30\" or "
                                "\"2026-11-22T14:30:00Z\"\n", argv[0], at);
                        return EXIT_USAGE;
                }
                at = format_timestamp_iso(at_iso, sizeof at_iso, usec);
        }
        if (to_arg) {
                to = cli_recipients_new(argv[0], to_arg, &oom);
                if (!to)
                        return oom ? cli_oom() : EXIT_USAGE;
        }
        args = cli_args("group", group, "text", text, "every", every, "at", at, "cron", cron, (char *) NULL);
        if (!args || (to && json_object_object_add(args, "to", json_object_get(to)) < 0) ||
            (reply_required && json_object_object_add(args, "reply_required", json_object_new_boolean(1)) < 0) ||
            (attention && json_object_object_add(args, "attention", json_object_new_boolean(1)) < 0))
                return cli_oom();
        r = cli_request("schedule.add", args, &result);
        if (r != EXIT_SUCCESS)
                return r;
        if (json)
                cli_print_json(result);
        else {
                char t[CLI_TIME_MAX];
                printf("added schedule %s (", cli_str(result, "id") ?: "?");
                print_when(result);
                printf("); next run %s\n", cli_format_time(t, sizeof t, cli_str(result, "next_run")));
        }
        return EXIT_SUCCESS;
}

/* list and remove: -g GROUP, [--json], and for remove one ID. */
static int schedule_simple(int argc, char **argv, bool remove) {
        static const struct option options[] = {
                { "group", required_argument, NULL, 'g' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_json_ struct json_object *args = NULL, *result = NULL;
        const char *group = NULL, *id = NULL;
        bool json = false;
        int c, r;

        optind = 1;
        while ((c = getopt_long(argc, argv, "hg:", options, NULL)) >= 0)
                switch (c) {
                case 'g': group = optarg; break;
                case 'j': json = true; break;
                case 'h': fputs(remove ? remove_help : list_help, stdout); return EXIT_SUCCESS;
                default: return EXIT_USAGE;
                }
        if (!group) {
                fprintf(stderr, "%s: missing -g GROUP; see --help\n", argv[0]);
                return EXIT_USAGE;
        }
        if (remove) {
                if (optind >= argc) {
                        fprintf(stderr, "%s: missing ID (see `conclave schedule list -g %s`)\n", argv[0], group);
                        return EXIT_USAGE;
                }
                id = argv[optind++];
        }
        if (optind < argc) {
                fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[optind]);
                return EXIT_USAGE;
        }
        args = cli_args("group", group, "schedule", id, (char *) NULL);
        if (!args)
                return cli_oom();
        r = cli_request(remove ? "schedule.remove" : "schedule.list", args, &result);
        if (r != EXIT_SUCCESS)
                return r;
        if (json)
                cli_print_json(result);
        else if (remove)
                printf("removed schedule %s from group %s\n", cli_str(result, "schedule") ?: id, group);
        else if (json_object_array_length(result) == 0)
                printf("No schedules in group %s. Add one with `conclave schedule add -g %s --every 1h TEXT`.\n", group,
                       group);
        else
                for (size_t i = 0; i < json_object_array_length(result); i++)
                        print_schedule(json_object_array_get_idx(result, i));
        return EXIT_SUCCESS;
}

int cmd_schedule(int argc, char **argv) {
        const char *verb = argc > 1 ? argv[1] : NULL;

        if (!verb || streq(verb, "--help") || streq(verb, "-h") || streq(verb, "help")) {
                schedule_help();
                return verb ? EXIT_SUCCESS : EXIT_USAGE;
        }
        if (streq(verb, "add")) {
                argv[1] = (char *) "conclave schedule add";
                return schedule_add(argc - 1, argv + 1);
        }
        if (streq(verb, "list") || streq(verb, "remove")) {
                bool remove = streq(verb, "remove");
                argv[1] = (char *) (remove ? "conclave schedule remove" : "conclave schedule list");
                return schedule_simple(argc - 1, argv + 1, remove);
        }
        fprintf(stderr, "conclave schedule: unknown verb '%s'; see `conclave schedule --help`\n", verb);
        return EXIT_USAGE;
}
