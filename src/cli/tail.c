/* `conclave tail`: the last events of one group or of all, and with -f every new one as the
 * daemon streams it (events.tail, then events.follow on the same connection). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>

#include "cli.h"
#include "control.h"
#include "macro.h"
#include "proto.h"

static void print_one(struct json_object *event, bool json) {
        if (json)
                printf("%s\n", json_object_to_json_string_ext(event, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        else
                cli_print_event(event);
}

static int send_request(int fd, const char *op, struct json_object *args) {
        _cleanup_json_ struct json_object *req = cli_args("op", op, (char *) NULL);
        _cleanup_free_ char *line = NULL;
        size_t len, done = 0;

        if (!req || json_object_object_add(req, "args", json_object_get(args)) < 0)
                return -ENOMEM;
        if (asprintf(&line, "%s\n", json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN)) < 0)
                return -ENOMEM;
        len = strlen(line);
        while (done < len) {
                ssize_t n = send(fd, line + done, len - done, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return negative_errno();
                done += (size_t) n;
        }
        return 0;
}

/* Handles one streamed line: an event is printed; an error ends the stream. */
static int handle_line(const char *line, bool json) {
        _cleanup_json_ struct json_object *o = json_tokener_parse(line);
        struct json_object *event, *error;

        if (!o || !json_object_is_type(o, json_type_object)) {
                fprintf(stderr, "conclave tail: the daemon sent something that is not a JSON object\n");
                return -EPROTO;
        }
        if (json_object_object_get_ex(o, "event", &event)) {
                print_one(event, json);
                fflush(stdout);
        } else if (json_object_object_get_ex(o, "error", &error)) {
                fprintf(stderr, "conclave tail: %s\n", cli_str(error, "message") ?: "the daemon ended the stream");
                return -EREMOTEIO;
        }
        /* Anything else is a line kind this version does not know: skipped. */
        return 0;
}

/* Follows until SIGINT/SIGTERM (exit 0) or the daemon closes the connection (exit 1). */
static int follow(int fd, const char *group, int64_t after_seq, bool json) {
        _cleanup_json_ struct json_object *args = cli_args("group", group, (char *) NULL), *reply = NULL;
        _cleanup_free_ char *line = NULL;
        _cleanup_close_ int sfd = -EBADF;
        struct json_object *error;
        sigset_t mask;
        int r;

        if (!args || (after_seq >= 0 && json_object_object_add(args, "after_seq", json_object_new_int64(after_seq)) < 0))
                return cli_oom();
        /* Signals arrive through a signalfd polled with the socket, so Ctrl-C ends the loop
         * between events and leaves through the normal path. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 || (sfd = signalfd(-1, &mask, SFD_CLOEXEC)) < 0) {
                fprintf(stderr, "conclave tail: cannot set up signal handling: %s\n", strerror(errno));
                return EXIT_FAILURE;
        }

        r = send_request(fd, "events.follow", args);
        if (r < 0) {
                fprintf(stderr, "conclave tail: talking to the daemon failed: %s\n", strerror(-r));
                return EXIT_FAILURE;
        }
        for (bool following = false;;) {
                struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = sfd, .events = POLLIN } };

                if (poll(p, ELEMENTSOF(p), -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        fprintf(stderr, "conclave tail: poll: %s\n", strerror(errno));
                        return EXIT_FAILURE;
                }
                if (p[1].revents)
                        return EXIT_SUCCESS;
                if (!p[0].revents)
                        continue;
                free(line);
                line = NULL;
                r = control_read_line(fd, &line, CONTROL_LINE_MAX);
                if (r == -ECONNRESET) {
                        fprintf(stderr, "conclave tail: the daemon closed the connection\n");
                        return EXIT_FAILURE;
                }
                if (r < 0) {
                        fprintf(stderr, "conclave tail: reading from the daemon: %s\n", strerror(-r));
                        return EXIT_FAILURE;
                }
                if (following) {
                        if (handle_line(line, json) < 0)
                                return EXIT_FAILURE;
                        continue;
                }
                /* The reply to events.follow itself: {"ok":true,"result":"following"}. */
                reply = json_tokener_parse(line);
                if (!reply || !cli_bool(reply, "ok")) {
                        fprintf(stderr, "conclave tail: %s\n",
                                reply && json_object_object_get_ex(reply, "error", &error) && cli_str(error, "message")
                                        ? cli_str(error, "message") : "the daemon refused to follow");
                        return EXIT_FAILURE;
                }
                following = true;
        }
}

int cmd_tail(int argc, char **argv) {
        static const struct option options[] = {
                { "group", required_argument, NULL, 'g' },
                { "lines", required_argument, NULL, 'n' },
                { "follow", no_argument, NULL, 'f' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_json_ struct json_object *args = NULL, *result = NULL;
        _cleanup_close_ int fd = -EBADF;
        const char *group = NULL;
        bool follow_new = false, json = false;
        int64_t after_seq = -1; /* none: follow only what is new */
        long n = 20;
        int c;

        argv[0] = (char *) "conclave tail";
        optind = 1;
        while ((c = getopt_long(argc, argv, "hg:n:f", options, NULL)) >= 0)
                switch (c) {
                case 'g':
                        group = optarg;
                        break;
                case 'n':
                        if (cli_parse_range(optarg, 0, 10000, &n) < 0) {
                                fprintf(stderr, "%s: -n must be a number from 0 to 10000\n", argv[0]);
                                return EXIT_USAGE;
                        }
                        break;
                case 'f':
                        follow_new = true;
                        break;
                case 'j':
                        json = true;
                        break;
                case 'h':
                        printf("Usage: conclave tail [-g GROUP] [-n N] [-f] [--json]\n\n"
                               "Prints the last events of a group, or of all groups by time, one per line:\n"
                               "TIME GROUP #SEQ KIND BY: summary. With -f, keeps printing new events as they\n"
                               "become durable until interrupted.\n\n"
                               "  -g, --group GROUP  only this group\n"
                               "  -n, --lines N      how many recent events, 0-10000 (default 20)\n"
                               "  -f, --follow       then print new events as they come\n"
                               "      --json         print each event as one line of JSON\n");
                        return EXIT_SUCCESS;
                default:
                        return EXIT_USAGE;
                }
        if (optind < argc) {
                fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[optind]);
                return EXIT_USAGE;
        }

        fd = cli_connect();
        if (fd == -ENOTCONN)
                return EXIT_NOT_RUNNING;
        if (fd < 0)
                return EXIT_FAILURE;
        if (n > 0) {
                args = cli_args("group", group, (char *) NULL);
                if (!args || json_object_object_add(args, "n", json_object_new_int64(n)) < 0)
                        return cli_oom();
                if (cli_call(fd, "events.tail", args, &result) < 0)
                        return EXIT_FAILURE;
                if (!json_object_is_type(result, json_type_array)) {
                        fprintf(stderr, "%s: unexpected reply from the daemon\n", argv[0]);
                        return EXIT_FAILURE;
                }
                for (size_t i = 0; i < json_object_array_length(result); i++)
                        print_one(json_object_array_get_idx(result, i), json);
                fflush(stdout);
                /* Within one group, follow from the last event shown so none is missed. */
                if (group)
                        after_seq = json_object_array_length(result) > 0
                                            ? cli_int(json_object_array_get_idx(result, json_object_array_length(result) - 1), "seq")
                                            : 0;
        }
        return follow_new ? follow(fd, group, after_seq, json) : EXIT_SUCCESS;
}
