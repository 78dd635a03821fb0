/* `conclave groups` and `conclave group VERB ID`: list, create, inspect, run and delete groups
 * through the daemon's group.* operations. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "macro.h"
#include "proto.h"

enum {
        OPT_JSON = 1 << 0,
        OPT_TITLE = 1 << 1,
        OPT_YES = 1 << 2,
};

struct group_verb {
        const char *name;
        const char *op;
        unsigned options; /* OPT_* this verb accepts */
        const char *help;
};

static const struct group_verb verbs[] = {
        { "create", "group.create", OPT_TITLE,
          "Usage: conclave group create ID [--title TEXT]\n\n"
          "Creates an idle group. ID is 1-64 characters [A-Za-z0-9_-].\n\n"
          "      --title TEXT  a human-readable title\n" },
        { "show", "group.show", OPT_JSON,
          "Usage: conclave group show ID [--json]\n\n"
          "Shows a group's state, creation time, last event and its actors.\n\n"
          "      --json  print the raw group object\n" },
        { "start", "group.start", 0,
          "Usage: conclave group start ID\n\n"
          "Makes the group active: its command actors run and receive messages.\n" },
        { "stop", "group.stop", 0,
          "Usage: conclave group stop ID\n\n"
          "Stops the group's actors; sending to a stopped group is refused.\n" },
        { "pause", "group.pause", 0,
          "Usage: conclave group pause ID\n\n"
          "Keeps storing messages but delivers none to command actors until resumed.\n" },
        { "resume", "group.resume", 0,
          "Usage: conclave group resume ID\n\n"
          "Delivers the messages stored while paused, and new ones, to command actors again.\n" },
        { "delete", "group.delete", OPT_YES,
          "Usage: conclave group delete ID --yes\n\n"
          "Deletes a stopped group: its directory is moved to $CONCLAVE_HOME/trash/, not erased.\n\n"
          "      --yes  confirm; without it nothing is done\n" },
};

static void group_help(FILE *f) {
        fprintf(f, "Usage: conclave group VERB ID [OPTIONS]\n\n"
                   "Verbs:\n"
                   "  create ID [--title TEXT]  create an idle group\n"
                   "  show ID [--json]          the group and its actors\n"
                   "  start ID                  run its command actors and deliver messages\n"
                   "  stop ID                   stop its actors; sending is refused\n"
                   "  pause ID                  store messages without delivering them\n"
                   "  resume ID                 deliver again\n"
                   "  delete ID --yes           move a stopped group to $CONCLAVE_HOME/trash/\n\n"
                   "Run `conclave group VERB --help` for a verb's options; `conclave groups` lists groups.\n");
}

static void print_groups(struct json_object *list) {
        size_t n = json_object_array_length(list), width = 2;

        if (n == 0) {
                printf("No groups. Create one with `conclave group create ID`.\n");
                return;
        }
        for (size_t i = 0; i < n; i++) {
                size_t len = strlen(cli_str(json_object_array_get_idx(list, i), "id") ?: "?");
                if (len > width)
                        width = len;
        }
        printf("%-*s  %-8s %-7s  %-19s  %s\n", (int) width, "ID", "STATE", "ACTORS", "LAST EVENT", "TITLE");
        for (size_t i = 0; i < n; i++) {
                struct json_object *g = json_object_array_get_idx(list, i);
                char actors[48], t[CLI_TIME_MAX];

                snprintf(actors, sizeof actors, "%" PRId64 "/%" PRId64, cli_int(g, "running_actors"),
                         cli_int(g, "actor_count"));
                printf("%-*s  %-8s %-7s  %-19s", (int) width, cli_str(g, "id") ?: "?", cli_str(g, "state") ?: "?",
                       actors, cli_format_time(t, sizeof t, cli_str(g, "last_event_time")));
                if (!isempty(cli_str(g, "title"))) {
                        fputs("  ", stdout);
                        cli_print_text(cli_str(g, "title"), NULL);
                }
                putchar('\n');
        }
        for (size_t i = 0; i < n; i++) {
                struct json_object *g = json_object_array_get_idx(list, i);
                if (!cli_str(g, "error"))
                        continue;
                printf("Group %s is broken: ", cli_str(g, "id") ?: "?");
                cli_print_text(cli_str(g, "error"), NULL);
                printf(" (see `conclave doctor`)\n");
        }
}

int cmd_groups(int argc, char **argv) {
        static const struct option options[] = {
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_json_ struct json_object *result = NULL;
        bool json = false;
        int c, r;

        argv[0] = (char *) "conclave groups";
        optind = 1;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'j':
                        json = true;
                        break;
                case 'h':
                        printf("Usage: conclave groups [--json]\n\n"
                               "Lists the groups: ID, state, running/total actors, time of the last event\n"
                               "and title, then why any broken group cannot be used.\n\n"
                               "      --json  print the raw list of group objects\n");
                        return EXIT_SUCCESS;
                default:
                        return EXIT_USAGE;
                }
        if (optind < argc) {
                fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[optind]);
                return EXIT_USAGE;
        }
        r = cli_request("group.list", NULL, &result);
        if (r != EXIT_SUCCESS)
                return r;
        if (json)
                cli_print_json(result);
        else if (json_object_is_type(result, json_type_array))
                print_groups(result);
        else {
                fprintf(stderr, "%s: unexpected reply from the daemon\n", argv[0]);
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}

static void print_group(struct json_object *g) {
        char t[CLI_TIME_MAX];

        printf("Group %s", cli_str(g, "id") ?: "?");
        if (!isempty(cli_str(g, "title"))) {
                fputs(": ", stdout);
                cli_print_text(cli_str(g, "title"), NULL);
        }
        printf("\n  state:      %s\n", cli_str(g, "state") ?: "?");
        printf("  created:    %s\n", cli_format_time(t, sizeof t, cli_str(g, "created")));
        printf("  actors:     %" PRId64 " running of %" PRId64 "\n", cli_int(g, "running_actors"),
               cli_int(g, "actor_count"));
        if (cli_int(g, "last_seq") > 0)
                printf("  last event: #%" PRId64 " at %s\n", cli_int(g, "last_seq"),
                       cli_format_time(t, sizeof t, cli_str(g, "last_event_time")));
        else
                printf("  last event: none\n");
        if (cli_str(g, "error")) {
                printf("  broken:     ");
                cli_print_text(cli_str(g, "error"), NULL);
                printf(" (see `conclave doctor`)\n");
        }
        if (!cli_array(g, "actors"))
                return;
        putchar('\n');
        if (json_object_array_length(cli_array(g, "actors")) == 0)
                printf("No actors. Add one with `conclave actor add -g %s ID --kind KIND`.\n", cli_str(g, "id") ?: "?");
        else
                cli_print_actors(cli_array(g, "actors"));
}

static int run_verb(const struct group_verb *verb, int argc, char **argv) {
        static const struct option options[] = {
                { "json", no_argument, NULL, 'j' },
                { "title", required_argument, NULL, 't' },
                { "yes", no_argument, NULL, 'y' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_json_ struct json_object *args = NULL, *result = NULL;
        const char *title = NULL, *id;
        unsigned given = 0;
        int c, r;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                unsigned flag;
                switch (c) {
                case 'j':
                        flag = OPT_JSON;
                        break;
                case 't':
                        flag = OPT_TITLE;
                        title = optarg;
                        break;
                case 'y':
                        flag = OPT_YES;
                        break;
                case 'h':
                        fputs(verb->help, stdout);
                        return EXIT_SUCCESS;
                default:
                        return EXIT_USAGE;
                }
                if (!(verb->options & flag)) {
                        fprintf(stderr, "%s: option '--%s' does not apply here; see --help\n", argv[0],
                                flag == OPT_JSON ? "json" : flag == OPT_TITLE ? "title" : "yes");
                        return EXIT_USAGE;
                }
                given |= flag;
        }
        if (optind >= argc) {
                fprintf(stderr, "%s: missing group ID; see --help\n", argv[0]);
                return EXIT_USAGE;
        }
        if (optind + 1 < argc) {
                fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[optind + 1]);
                return EXIT_USAGE;
        }
        id = argv[optind];
        if ((verb->options & OPT_YES) && !(given & OPT_YES)) {
                fprintf(stderr, "%s: this deletes group %s (its directory is moved to $CONCLAVE_HOME/trash/); "
                                "add --yes to confirm\n", argv[0], id);
                return EXIT_USAGE;
        }

        args = cli_args("group", id, "title", title, (char *) NULL);
        if (!args)
                return cli_oom();
        r = cli_request(verb->op, args, &result);
        if (r != EXIT_SUCCESS)
                return r;
        if (given & OPT_JSON)
                cli_print_json(result);
        else if (streq(verb->name, "show"))
                print_group(result);
        else if (streq(verb->name, "create"))
                printf("Created group %s. Add actors with `conclave actor add -g %s …` (start command actors with "
                       "`conclave actor start`), then `conclave group start %s`.\n",
                       id, id, id);
        else if (streq(verb->name, "delete"))
                printf("Deleted group %s; its data was moved to %s\n", id, cli_str(result, "moved_to") ?: "?");
        else
                printf("Group %s is %s.\n", id, cli_str(result, "state") ?: "?");
        return EXIT_SUCCESS;
}

int cmd_group(int argc, char **argv) {
        char name[64];

        if (argc < 2) {
                group_help(stderr);
                return EXIT_USAGE;
        }
        if (streq(argv[1], "--help") || streq(argv[1], "-h") || streq(argv[1], "help")) {
                group_help(stdout);
                return EXIT_SUCCESS;
        }
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(argv[1], verbs[i].name)) {
                        snprintf(name, sizeof name, "conclave group %s", verbs[i].name);
                        argv[1] = name;
                        return run_verb(&verbs[i], argc - 1, argv + 1);
                }
        fprintf(stderr, "conclave group: unknown verb '%s'; see `conclave group --help`\n", argv[1]);
        return EXIT_USAGE;
}
