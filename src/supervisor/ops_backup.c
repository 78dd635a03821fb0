/* backup.begin: the consistent point a `conclave backup` copies up to. Ledgers are append-only,
 * so no write freeze is needed: every pending event is made durable and answered, and the
 * answer names, per group, the byte length and last seq of its ledger at that point. Whatever
 * is appended afterwards lies beyond those lengths and is simply not in the backup. Nothing is
 * held open, so there is no backup.end. */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "control_server.h"
#include "groups.h"
#include "ledger.h"
#include "log.h"
#include "proto.h"
#include "supervisor.h"
#include "timeutil.h"

static int op_backup_begin(struct supervisor *s, struct control_request *req, struct json_object *args) {
        _cleanup_json_ struct json_object *result = json_object_new_object(), *registry = json_object_new_object(),
                                          *ids = json_object_new_array(), *groups = json_object_new_array();
        char ts[40];

        if (!result || !registry || !ids || !groups)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_groups; i++)
                if (s->groups[i]->broken) {
                        /* A backup never holds a ledger `restore` would refuse. */
                        control_request_error(req, "broken", "no backup while group %s is broken: %s",
                                              s->groups[i]->id, s->groups[i]->broken);
                        return 0;
                }

        /* Answers every pending event: whoever got an answer before this one is in the backup. */
        groups_flush(s);
        for (size_t i = 0; i < s->n_groups; i++) {
                struct group *g = s->groups[i];
                struct json_object *o = json_object_new_object();
                /* ledger_sync = none leaves appends unsynced; a backup point is durable anyway. */
                int r = ledger_sync(g->ledger);

                if (r < 0) {
                        json_object_put(o);
                        log_error_errno(r, "backup: cannot sync the ledger of group %s", g->id);
                        control_request_error(req, "internal", "cannot sync the ledger of group %s: %s", g->id,
                                              strerror(-r));
                        return 0;
                }
                if (!o)
                        return -ENOMEM;
                json_object_object_add(o, "id", json_object_new_string(g->id));
                json_object_object_add(o, "ledger_bytes", json_object_new_uint64(ledger_size_bytes(g->ledger)));
                json_object_object_add(o, "last_seq", json_object_new_uint64(ledger_last_seq(g->ledger)));
                json_object_array_add(groups, o);
                json_object_array_add(ids, json_object_new_string(g->id));
        }
        json_object_object_add(registry, "format_version", json_object_new_int(REGISTRY_FORMAT_VERSION));
        json_object_object_add(registry, "groups", json_object_get(ids));

        json_object_object_add(result, "time", json_object_new_string(format_timestamp_iso(ts, sizeof ts, now_usec(CLOCK_REALTIME))));
        json_object_object_add(result, "version", json_object_new_string(PACKAGE_VERSION));
        json_object_object_add(result, "home", json_object_new_string(s->home));
        json_object_object_add(result, "config_path", json_object_new_string(s->config_path));
        json_object_object_add(result, "registry", json_object_get(registry));
        json_object_object_add(result, "groups", json_object_get(groups));
        log_info("backup point: %zu group(s) durable", s->n_groups);
        control_request_reply(req, result);
        return 0;
}

const struct control_op control_ops_backup[] = {
        { "backup.begin", op_backup_begin },
        { NULL, NULL },
};
