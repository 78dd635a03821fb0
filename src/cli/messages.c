/* `conclave send`, `reply`, `ack` and `inbox`: talking in a group and reading an actor's inbox
 * through message.send/reply/ack and inbox.list. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "control.h"
#include "macro.h"
#include "proto.h"

#define STDIN_TEXT_MAX (1024u * 1024u) /* the daemon has its own, smaller limit */

enum message_op {
        MESSAGE_SEND,
        MESSAGE_REPLY,
        MESSAGE_ACK,
};

static const char *const message_help[] = {
        [MESSAGE_SEND] =
                "Usage: conclave send -g GROUP [--to ACTOR[,ACTOR…]|@all] [--reply-required] [--attention]\n"
                "                     [--as ACTOR] [--json] TEXT…\n\n"
                "Sends a message to a group. The words of TEXT are joined by spaces; a single \"-\" reads\n"
                "the text from standard input. Prints the new event's id and seq.\n\n"
                "  -g, --group GROUP     the group\n"
                "      --to ACTORS       comma-separated recipients, or @all (the default: every member\n"
                "                        but the sender)\n"
                "      --reply-required  each recipient owes a reply\n"
                "      --attention       each recipient owes an ack\n"
                "      --as ACTOR        send as this member (default: operator)\n"
                "      --json            print the raw result\n",
        [MESSAGE_REPLY] =
                "Usage: conclave reply -g GROUP EVENT [--as ACTOR] [--reply-required] [--attention] [--json]\n"
                "                      TEXT…\n\n"
                "Replies to the message EVENT (its id or seq): the reply goes to the original sender and\n"
                "closes the replier's reply obligation for EVENT. TEXT as for `conclave send`.\n\n"
                "  -g, --group GROUP     the group\n"
                "      --as ACTOR        reply as this member (default: operator)\n"
                "      --reply-required  the original sender owes a reply in turn\n"
                "      --attention       the original sender owes an ack\n"
                "      --json            print the raw result\n",
        [MESSAGE_ACK] =
                "Usage: conclave ack -g GROUP EVENT --as ACTOR [--json]\n\n"
                "Acknowledges the message EVENT (its id or seq), closing ACTOR's ack obligation for it.\n\n"
                "  -g, --group GROUP     the group\n"
                "      --as ACTOR        the actor that acknowledges (required)\n"
                "      --json            print the raw result\n",
};

struct json_object *cli_recipients_new(const char *prog, const char *list, bool *ret_oom) {
        _cleanup_json_ struct json_object *a = json_object_new_array();
        const char *p = list;

        *ret_oom = !a;
        while (a) {
                size_t len = strcspn(p, ",");
                if (len == 0) {
                        fprintf(stderr, "%s: --to has an empty name: '%s'\n", prog, list);
                        return NULL;
                }
                if (json_object_array_add(a, json_object_new_string_len(p, (int) len)) < 0) {
                        *ret_oom = true;
                        return NULL;
                }
                if (!p[len])
                        break;
                p += len + 1;
        }
        return json_object_get(a);
}

static char *text_from_stdin(const char *prog) {
        _cleanup_free_ char *buf = malloc(STDIN_TEXT_MAX + 1);
        char *text;
        size_t len = 0;

        if (!buf) {
                cli_oom();
                return NULL;
        }
        while (len <= STDIN_TEXT_MAX) {
                ssize_t n = read(STDIN_FILENO, buf + len, STDIN_TEXT_MAX + 1 - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        fprintf(stderr, "%s: reading standard input: %s\n", prog, strerror(errno));
                        return NULL;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
        }
        if (len > STDIN_TEXT_MAX) {
                fprintf(stderr, "%s: the text on standard input is larger than %u bytes\n", prog, STDIN_TEXT_MAX);
                return NULL;
        }
        while (len > 0 && buf[len - 1] == '\n')
                len--;
        buf[len] = 0;
        if (len == 0) {
                fprintf(stderr, "%s: no text on standard input\n", prog);
                return NULL;
        }
        text = strdup(buf); /* the 1 MiB buffer, cut to size */
        if (!text)
                cli_oom();
        return text;
}

char *cli_text_from_words(char **words, int n) {
        size_t size = 1;
        char *text, *p;

        for (int i = 0; i < n; i++)
                size += strlen(words[i]) + 1;
        p = text = malloc(size);
        if (!text)
                return NULL;
        for (int i = 0; i < n; i++) {
                size_t len = strlen(words[i]);
                if (i > 0)
                        *p++ = ' ';
                memcpy(p, words[i], len);
                p += len;
        }
        *p = 0;
        return text;
}

static int run_message(enum message_op mop, int argc, char **argv) {
        static const struct option options[] = {
                { "group", required_argument, NULL, 'g' },
                { "to", required_argument, NULL, 't' },
                { "reply-required", no_argument, NULL, 'r' },
                { "attention", no_argument, NULL, 'a' },
                { "as", required_argument, NULL, 'b' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        static const char *const ops[] = {
                [MESSAGE_SEND] = "message.send", [MESSAGE_REPLY] = "message.reply", [MESSAGE_ACK] = "message.ack"
        };
        _cleanup_json_ struct json_object *args = NULL, *result = NULL, *to = NULL;
        _cleanup_free_ char *text = NULL;
        const char *group = NULL, *by = NULL, *event = NULL, *to_arg = NULL;
        bool reply_required = false, attention = false, json = false, oom;
        int c, r;

        optind = 1;
        while ((c = getopt_long(argc, argv, "hg:", options, NULL)) >= 0)
                switch (c) {
                case 'g':
                        group = optarg;
                        break;
                case 't':
                        to_arg = optarg;
                        break;
                case 'r':
                        reply_required = true;
                        break;
                case 'a':
                        attention = true;
                        break;
                case 'b':
                        by = optarg;
                        break;
                case 'j':
                        json = true;
                        break;
                case 'h':
                        fputs(message_help[mop], stdout);
                        return EXIT_SUCCESS;
                default:
                        return EXIT_USAGE;
                }
        if (!group) {
                fprintf(stderr, "%s: missing -g GROUP; see --help\n", argv[0]);
                return EXIT_USAGE;
        }
        if ((to_arg && mop != MESSAGE_SEND) || ((reply_required || attention) && mop == MESSAGE_ACK)) {
                fprintf(stderr, "%s: option '--%s' does not apply here; see --help\n", argv[0],
                        to_arg && mop != MESSAGE_SEND ? "to" : reply_required ? "reply-required" : "attention");
                return EXIT_USAGE;
        }
        if (mop != MESSAGE_SEND) {
                if (optind >= argc) {
                        fprintf(stderr, "%s: missing EVENT (an event id or seq); see --help\n", argv[0]);
                        return EXIT_USAGE;
                }
                event = argv[optind++];
        }
        if (mop == MESSAGE_ACK) {
                if (optind < argc) {
                        fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[optind]);
                        return EXIT_USAGE;
                }
                if (!by) {
                        fprintf(stderr, "%s: missing --as ACTOR (who acknowledges)\n", argv[0]);
                        return EXIT_USAGE;
                }
        } else {
                if (optind >= argc) {
                        fprintf(stderr, "%s: missing TEXT (or \"-\" to read it from standard input)\n", argv[0]);
                        return EXIT_USAGE;
                }
                if (optind + 1 == argc && streq(argv[optind], "-")) {
                        text = text_from_stdin(argv[0]);
                        if (!text)
                                return EXIT_FAILURE;
                } else if (!(text = cli_text_from_words(argv + optind, argc - optind)))
                        return cli_oom();
                if (!*text) {
                        fprintf(stderr, "%s: the message text is empty\n", argv[0]);
                        return EXIT_USAGE;
                }
        }
        if (to_arg) {
                to = cli_recipients_new(argv[0], to_arg, &oom);
                if (!to)
                        return oom ? cli_oom() : EXIT_USAGE;
        }

        args = cli_args("group", group, "event", event, "text", text, "by", by, (char *) NULL);
        if (!args || (to && json_object_object_add(args, "to", json_object_get(to)) < 0) ||
            (reply_required && json_object_object_add(args, "reply_required", json_object_new_boolean(1)) < 0) ||
            (attention && json_object_object_add(args, "attention", json_object_new_boolean(1)) < 0))
                return cli_oom();
        r = cli_request(ops[mop], args, &result);
        if (r != EXIT_SUCCESS)
                return r;
        if (json)
                cli_print_json(result);
        else if (mop == MESSAGE_ACK)
                printf("acked %s as %s (event %s, seq %" PRId64 ")\n", event, by, cli_str(result, "event_id") ?: "?",
                       cli_int(result, "seq"));
        else
                printf("sent %s (seq %" PRId64 ")\n", cli_str(result, "event_id") ?: "?", cli_int(result, "seq"));
        return EXIT_SUCCESS;
}

int cmd_send(int argc, char **argv) {
        argv[0] = (char *) "conclave send";
        return run_message(MESSAGE_SEND, argc, argv);
}

int cmd_reply(int argc, char **argv) {
        argv[0] = (char *) "conclave reply";
        return run_message(MESSAGE_REPLY, argc, argv);
}

int cmd_ack(int argc, char **argv) {
        argv[0] = (char *) "conclave ack";
        return run_message(MESSAGE_ACK, argc, argv);
}

/* inbox.list says only that more are unread; actor.show's count says how many. */
static void print_more_unread(int fd, const char *group, const char *actor, struct json_object *inbox) {
        _cleanup_json_ struct json_object *args = cli_args("group", group, "actor", actor, (char *) NULL), *a = NULL;
        int64_t listed = (int64_t) json_object_array_length(cli_array(inbox, "unread"));
        int64_t more = 0;

        if (args && cli_call(fd, "actor.show", args, &a) == 0 && cli_str(a, "unread"))
                /* With --mark-read the listed ones are read now; what is left is the rest. */
                more = cli_str(inbox, "marked_read_up_to") ? cli_int(a, "unread") : cli_int(a, "unread") - listed;
        if (more > 0)
                printf("%" PRId64 " more unread.\n", more);
        else
                printf("More unread.\n");
}

static void print_inbox(int fd, const char *group, const char *actor, struct json_object *inbox) {
        struct json_object *unread = cli_array(inbox, "unread");
        size_t n = unread ? json_object_array_length(unread) : 0;

        if (n == 0)
                printf("No unread messages for %s in group %s.\n", actor, group);
        for (size_t i = 0; i < n; i++)
                cli_print_message(json_object_array_get_idx(unread, i));
        if (cli_bool(inbox, "unread_more"))
                print_more_unread(fd, group, actor, inbox);
        if (cli_str(inbox, "marked_read_up_to"))
                printf("Marked read up to #%" PRId64 ".\n", cli_int(inbox, "marked_read_up_to"));
        if (cli_bool(inbox, "throttled")) {
                char t[CLI_TIME_MAX];
                printf("Delivery to %s is throttled; the messages waiting go in one batch at %s.\n", actor,
                       cli_format_time(t, sizeof t, cli_str(inbox, "next_delivery")));
        }
        if (cli_array(inbox, "obligations") && json_object_array_length(cli_array(inbox, "obligations")) > 0) {
                putchar('\n');
                cli_print_obligations(cli_array(inbox, "obligations"));
        }
}

int cmd_inbox(int argc, char **argv) {
        static const struct option options[] = {
                { "group", required_argument, NULL, 'g' },
                { "actor-id", required_argument, NULL, 'a' },
                { "limit", required_argument, NULL, 'l' },
                { "mark-read", no_argument, NULL, 'm' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_json_ struct json_object *args = NULL, *result = NULL;
        _cleanup_close_ int fd = -EBADF;
        const char *group = NULL, *actor = NULL;
        bool mark_read = false, json = false;
        long limit = 0;
        int c;

        argv[0] = (char *) "conclave inbox";
        optind = 1;
        while ((c = getopt_long(argc, argv, "hg:", options, NULL)) >= 0)
                switch (c) {
                case 'g':
                        group = optarg;
                        break;
                case 'a':
                        actor = optarg;
                        break;
                case 'l':
                        if (cli_parse_range(optarg, 1, 1000, &limit) < 0) {
                                fprintf(stderr, "%s: --limit must be a number from 1 to 1000\n", argv[0]);
                                return EXIT_USAGE;
                        }
                        break;
                case 'm':
                        mark_read = true;
                        break;
                case 'j':
                        json = true;
                        break;
                case 'h':
                        printf("Usage: conclave inbox -g GROUP --actor-id ACTOR [--limit N] [--mark-read] [--json]\n\n"
                               "Shows ACTOR's unread messages and notifications (reminders), oldest first, whether\n"
                               "delivery to it (a command actor) is throttled, then the replies and acks it owes.\n\n"
                               "  -g, --group GROUP       the group\n"
                               "      --actor-id ACTOR    whose inbox\n"
                               "      --limit N           at most N messages, 1-1000 (default 100)\n"
                               "      --mark-read         move ACTOR's read cursor past the messages shown\n"
                               "      --json              print the raw inbox object\n");
                        return EXIT_SUCCESS;
                default:
                        return EXIT_USAGE;
                }
        if (optind < argc) {
                fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[optind]);
                return EXIT_USAGE;
        }
        if (!group || !actor) {
                fprintf(stderr, "%s: missing %s; see --help\n", argv[0], !group ? "-g GROUP" : "--actor-id ACTOR");
                return EXIT_USAGE;
        }
        args = cli_args("group", group, "actor", actor, (char *) NULL);
        if (!args || (limit > 0 && json_object_object_add(args, "limit", json_object_new_int64(limit)) < 0) ||
            (mark_read && json_object_object_add(args, "mark_read", json_object_new_boolean(1)) < 0))
                return cli_oom();

        fd = cli_connect();
        if (fd == -ENOTCONN)
                return EXIT_NOT_RUNNING;
        if (fd < 0 || cli_call(fd, "inbox.list", args, &result) < 0)
                return EXIT_FAILURE;
        if (json)
                cli_print_json(result);
        else
                print_inbox(fd, group, actor, result);
        return EXIT_SUCCESS;
}
