/* `conclave status`: what the running daemon reports over the control socket. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fileio.h"
#include "formats.h"
#include "macro.h"
#include "paths.h"
#include "proto.h"
#include "timeutil.h"

static const char *str(struct json_object *o, const char *key) {
        struct json_object *v;
        if (!o || !json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
                return NULL;
        return json_object_get_string(v);
}

static int64_t num(struct json_object *o, const char *key) {
        struct json_object *v;
        return o && json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static void print_last_heartbeat(void) {
        _cleanup_free_ char *path = paths_state_file(), *text = NULL;
        _cleanup_json_ struct json_object *o = NULL;
        unsigned version;

        if (!path || read_file_bounded(path, 1024 * 1024, &text, NULL) < 0)
                return;
        o = json_tokener_parse(text);
        if (!o)
                return;
        if (format_json_version(o, &version) == 0 && version > DAEMON_STATE_VERSION) {
                fprintf(stderr, "%s was written by a newer Conclave (format %u; this conclave reads up to %d).\n", path,
                        version, DAEMON_STATE_VERSION);
                return;
        }
        fprintf(stderr, "Last heartbeat in %s: %s (pid %" PRId64 ", state %s).\n", path,
                str(o, "heartbeat") ?: "?", num(o, "pid"), str(o, "state") ?: "?");
}

static void print_status(struct json_object *r) {
        struct json_object *workers, *list, *gw;
        char span[32];

        printf("Conclave %s — %s\n", str(r, "version") ?: "?", str(r, "state") ?: "?");
        printf("  pid:     %" PRId64 ", up %s (since %s)\n", num(r, "pid"),
               format_timespan(span, sizeof span, (uint64_t) num(r, "uptime_usec")), str(r, "start_time") ?: "?");
        printf("  status:  %s\n", str(r, "status") ?: "");
        if (str(r, "version") && !streq(str(r, "version"), PACKAGE_VERSION))
                printf("  note:    this conclave is %s, the daemon runs %s: restart the service to run the installed "
                       "version (systemctl --user restart conclave.service)\n", PACKAGE_VERSION, str(r, "version"));
        else if (json_object_object_get_ex(r, "executable_replaced", &gw) && json_object_get_boolean(gw))
                printf("  note:    conclave-supervisor was replaced on disk since the daemon started (an upgrade?): "
                       "restart the service to run the new one (systemctl --user restart conclave.service)\n");
        printf("  home:    %s\n", str(r, "home") ?: "?");
        printf("  config:  %s%s\n", str(r, "config_path") ?: "?",
               json_object_object_get_ex(r, "config_file_present", &gw) && !json_object_get_boolean(gw)
                       ? " (not present: defaults)" : "");
        if (json_object_object_get_ex(r, "gateway", &gw))
                printf("  gateway: %s %s:%" PRId64 "\n",
                       json_object_get_boolean(json_object_object_get(gw, "enabled")) ? "http://" : "disabled,",
                       str(gw, "bind") ?: "?", num(gw, "port"));

        printf("\nWorkers:\n");
        if (json_object_object_get_ex(r, "workers", &workers))
                for (size_t i = 0; i < json_object_array_length(workers); i++) {
                        struct json_object *w = json_object_array_get_idx(workers, i);
                        char pid[32] = "-";
                        if (str(w, "pid"))
                                snprintf(pid, sizeof pid, "%s", str(w, "pid"));
                        printf("  %-9s %-10s pid %-7s restarts %-3" PRId64 " %s\n", str(w, "name") ?: "?",
                               str(w, "state") ?: "?", pid, num(w, "restarts"), str(w, "status") ?: "");
                        if (str(w, "last_exit"))
                                printf("            last exit: %s at %s\n", str(w, "last_exit"),
                                       str(w, "last_exit_time") ?: "?");
                }

        printf("\nProviders:%s\n", str(r, "provider_default") ? "" : " (no default)");
        if (str(r, "provider_default"))
                printf("  default: %s\n", str(r, "provider_default"));
        if (json_object_object_get_ex(r, "providers", &list)) {
                if (json_object_array_length(list) == 0)
                        printf("  none configured\n");
                for (size_t i = 0; i < json_object_array_length(list); i++) {
                        struct json_object *p = json_object_array_get_idx(list, i);
                        printf("  %-12s %-9s model %s%s%s\n", str(p, "name") ?: "?", str(p, "kind") ?: "?",
                               str(p, "model") ?: "?", str(p, "base_url") ? " at " : "", str(p, "base_url") ?: "");
                }
        }
        printf("\nGroups:\n");
        if (json_object_object_get_ex(r, "groups", &list)) {
                if (json_object_array_length(list) == 0)
                        printf("  none (create one with `conclave group create ID`)\n");
                for (size_t i = 0; i < json_object_array_length(list); i++) {
                        struct json_object *g = json_object_array_get_idx(list, i), *actors, *v;
                        char t[CLI_TIME_MAX];
                        printf("  %-12s %-8s %" PRId64 "/%" PRId64 " actors running, %" PRId64 " events%s%s\n",
                               str(g, "id") ?: "?", str(g, "state") ?: "?", num(g, "running_actors"),
                               num(g, "actor_count"), num(g, "last_seq"), str(g, "error") ? ": " : "",
                               str(g, "error") ?: "");
                        if (!json_object_object_get_ex(g, "actors", &actors))
                                continue;
                        for (size_t j = 0; j < json_object_array_length(actors); j++) {
                                struct json_object *a = json_object_array_get_idx(actors, j);
                                char pid[32] = "";
                                if (str(a, "pid"))
                                        snprintf(pid, sizeof pid, " pid %s", str(a, "pid"));
                                if (json_object_object_get_ex(a, "llm", &v) && json_object_is_type(v, json_type_object)) {
                                        printf("    %-12s %-10s llm %s/%s%s%s\n", str(a, "id") ?: "?", str(a, "runtime") ?: "?",
                                               str(v, "provider") ?: "(no provider)", str(v, "model") ?: "?",
                                               str(v, "last_error") && streq(str(a, "runtime"), "degraded") ? ", last error: " : "",
                                               str(v, "last_error") && streq(str(a, "runtime"), "degraded") ? str(v, "last_error") : "");
                                        continue;
                                }
                                if (!streq(str(a, "kind"), "command"))
                                        continue;
                                printf("    %-12s %-10s%s restarts %" PRId64 "%s%s", str(a, "id") ?: "?",
                                       str(a, "runtime") ?: "?", pid, num(a, "restarts"),
                                       str(a, "last_exit") ? ", last exit: " : "", str(a, "last_exit") ?: "");
                                if (json_object_object_get_ex(a, "throttled", &v) && json_object_get_boolean(v))
                                        printf(", throttled until %s", cli_format_time(t, sizeof t, str(a, "next_delivery")));
                                putchar('\n');
                        }
                }
        }

        if (json_object_object_get_ex(r, "automation", &gw)) {
                char t[CLI_TIME_MAX];
                printf("\nAutomation: %" PRId64 " schedule(s); %" PRId64 " reminder(s) sent and %" PRId64
                       " scheduled run(s) since start; next wake-up %s\n", num(gw, "schedules"), num(gw, "reminders_sent"),
                       num(gw, "scheduled_runs"),
                       str(gw, "next_wakeup") ? cli_format_time(t, sizeof t, str(gw, "next_wakeup")) : "none");
        }

        printf("\nChannels:\n");
        if (json_object_object_get_ex(r, "channels", &list)) {
                if (json_object_array_length(list) == 0)
                        printf("  none configured\n");
                for (size_t i = 0; i < json_object_array_length(list); i++) {
                        struct json_object *c = json_object_array_get_idx(list, i);
                        printf("  %-12s %-9s group %-12s %-10s%s%s\n", str(c, "name") ?: "?", str(c, "kind") ?: "?",
                               str(c, "group") ?: "(none)", str(c, "state") ?: "?", str(c, "error") ? " " : "",
                               str(c, "error") ?: "");
                }
        }
}

int cmd_status(int argc, char **argv) {
        static const struct option options[] = {
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_json_ struct json_object *result = NULL;
        _cleanup_close_ int fd = -EBADF;
        bool json = false;
        int c;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'j':
                        json = true;
                        break;
                case 'h':
                        printf("Usage: conclave status [--json]\n\n"
                               "Shows the running daemon: version, pid, uptime, each worker's state,\n"
                               "restarts and last exit, configured providers and channels.\n"
                               "Exit status 3 when the daemon is not running.\n\n"
                               "      --json  print the raw status object\n");
                        return EXIT_SUCCESS;
                default:
                        return EXIT_USAGE;
                }
        if (optind < argc) {
                fprintf(stderr, "conclave status: unexpected argument '%s'\n", argv[optind]);
                return EXIT_USAGE;
        }
        fd = cli_connect();
        if (fd == -ENOTCONN) {
                print_last_heartbeat();
                return EXIT_NOT_RUNNING;
        }
        if (fd < 0 || cli_call(fd, "status", NULL, &result) < 0)
                return EXIT_FAILURE;
        if (json)
                printf("%s\n", json_object_to_json_string_ext(result, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED));
        else
                print_status(result);
        return EXIT_SUCCESS;
}
