/* Control operations about chat channels: the ones conclave-channels calls (channel.inbound,
 * channel.outbox, channel.delivery, channel.store.*) and the CLI's (channel.list,
 * channel.doctor). See docs/control-protocol.md and channel_hub.h. */

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel_hub.h"
#include "control_server.h"
#include "fileio.h"
#include "formats.h"
#include "groups.h"
#include "log.h"
#include "macro.h"
#include "paths.h"
#include "proto.h"
#include "supervisor.h"
#include "workers.h"

#define STORE_FILE_MAX (256u * 1024u)
#define STORE_KEY_MAX 64
#define STORE_VALUE_MAX 4096
#define STORE_KEYS_MAX 32
#define DOCTOR_TIMEOUT_USEC (60 * USEC_PER_SEC)

static const char *arg_str(struct json_object *args, const char *key) {
        struct json_object *v;
        if (!json_object_object_get_ex(args, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static int op_inbound(struct supervisor *s, struct control_request *req, struct json_object *args) {
        return channel_hub_inbound(s, req, args);
}

static int op_outbox(struct supervisor *s, struct control_request *req, struct json_object *args) {
        return channel_hub_outbox_follow(s, req);
}

static int op_delivery(struct supervisor *s, struct control_request *req, struct json_object *args) {
        return channel_hub_delivery(s, req, args);
}

/* --- persisted driver state: $CONCLAVE_HOME/channels/NAME.json ------------------------------
 * On disk: {"format_version": CHANNEL_STORE_FORMAT_VERSION, KEY: "VALUE", ...}; the drivers see
 * only their keys. */

static bool valid_store_key(const char *k) {
        size_t n = k ? strlen(k) : 0;

        if (n == 0 || n > STORE_KEY_MAX || streq(k, "format_version"))
                return false;
        for (; *k; k++)
                if (!isalnum((unsigned char) *k) && !strchr("_.-", *k))
                        return false;
        return true;
}

static char *store_path(struct supervisor *s, const char *channel) {
        _cleanup_free_ char *dir = path_join(s->home, "channels"), *file = NULL;

        if (!dir || asprintf(&file, "%s.json", channel) < 0)
                return NULL;
        if (mkdir_parents(dir, 0700) < 0)
                return NULL;
        return path_join(dir, file);
}

static struct json_object *store_read(const char *path) {
        _cleanup_free_ char *text = NULL;
        struct json_object *o;

        if (read_file_bounded(path, STORE_FILE_MAX, &text, NULL) < 0)
                return json_object_new_object();
        o = json_tokener_parse(text);
        if (!o || !json_object_is_type(o, json_type_object)) {
                log_warning("%s is not a JSON object; the channel starts from empty state", path);
                json_object_put(o);
                return json_object_new_object();
        }
        /* A newer file stopped the daemon at start (upgrade.c); an older one was migrated. */
        json_object_object_del(o, "format_version");
        return o;
}

static const char *want_channel(struct supervisor *s, struct control_request *req, struct json_object *args) {
        const char *name = arg_str(args, "channel");

        for (size_t i = 0; name && i < s->config->n_channels; i++)
                if (streq(s->config->channels[i].name, name))
                        return name;
        control_request_error(req, "not_found", "no channel \"%s\" in the configuration", name ? name : "");
        return NULL;
}

static int op_store_get(struct supervisor *s, struct control_request *req, struct json_object *args) {
        const char *name = want_channel(s, req, args);
        _cleanup_free_ char *path = NULL;
        _cleanup_json_ struct json_object *o = NULL, *result = NULL;

        if (!name)
                return 0;
        path = store_path(s, name);
        if (!path)
                return -ENOMEM;
        o = store_read(path);
        result = json_object_new_object();
        if (!o || !result)
                return -ENOMEM;
        json_object_object_add(result, "channel", json_object_new_string(name));
        json_object_object_add(result, "values", json_object_get(o));
        control_request_reply(req, result);
        return 0;
}

static int op_store_set(struct supervisor *s, struct control_request *req, struct json_object *args) {
        const char *name = want_channel(s, req, args), *key = arg_str(args, "key"), *text;
        _cleanup_free_ char *path = NULL;
        _cleanup_json_ struct json_object *o = NULL;
        struct json_object *value = NULL;
        int r;

        if (!name)
                return 0;
        json_object_object_get_ex(args, "value", &value);
        if (!valid_store_key(key) || (value && !json_object_is_type(value, json_type_string) &&
                                      !json_object_is_type(value, json_type_null)) ||
            (value && json_object_get_string_len(value) > STORE_VALUE_MAX)) {
                control_request_error(req, "bad_request", "key: 1-%d of [A-Za-z0-9_.-]; value: a string up to %d bytes, or null",
                                      STORE_KEY_MAX, STORE_VALUE_MAX);
                return 0;
        }
        path = store_path(s, name);
        if (!path)
                return -ENOMEM;
        o = store_read(path);
        if (!o)
                return -ENOMEM;
        if (!value || json_object_is_type(value, json_type_null))
                json_object_object_del(o, key);
        else {
                if (!json_object_object_get_ex(o, key, NULL) && json_object_object_length(o) >= STORE_KEYS_MAX) {
                        control_request_error(req, "too_big", "channel %s already stores %d keys", name, STORE_KEYS_MAX);
                        return 0;
                }
                json_object_object_add(o, key, json_object_get(value));
        }
        json_object_object_add(o, "format_version", json_object_new_int(CHANNEL_STORE_FORMAT_VERSION));
        text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        r = write_file_atomic(path, text, strlen(text), 0600);
        if (r < 0) {
                log_error_errno(r, "cannot write %s", path);
                control_request_error(req, "internal", "cannot write %s: %s", path, strerror(-r));
                return 0;
        }
        control_request_reply(req, NULL);
        return 0;
}

/* --- the CLI's ----------------------------------------------------------------------------- */

static int op_list(struct supervisor *s, struct control_request *req, struct json_object *args) {
        _cleanup_json_ struct json_object *list = json_object_new_array();

        if (!list)
                return -ENOMEM;
        for (size_t i = 0; i < s->config->n_channels; i++) {
                const struct config_channel *ch = &s->config->channels[i];
                struct json_object *o = json_object_new_object();
                json_object_object_add(o, "name", json_object_new_string(ch->name));
                json_object_object_add(o, "kind", ch->kind ? json_object_new_string(ch->kind) : NULL);
                json_object_object_add(o, "group", ch->group ? json_object_new_string(ch->group) : NULL);
                channel_hub_annotate(s->channel_hub, ch->name, o);
                json_object_array_add(list, o);
        }
        control_request_reply(req, list);
        return 0;
}

static void on_doctor_reply(struct json_object *reply, int error, bool more, void *userdata) {
        struct control_request *req = userdata;
        struct json_object *ok, *result = NULL, *err = NULL;

        if (!reply) {
                control_request_error(req, "unavailable", "conclave-channels did not answer the live check: %s", strerror(-error));
                return;
        }
        if (json_object_object_get_ex(reply, "ok", &ok) && json_object_get_boolean(ok)) {
                json_object_object_get_ex(reply, "result", &result);
                control_request_reply(req, result);
                return;
        }
        json_object_object_get_ex(reply, "error", &err);
        control_request_error(req, arg_str(err, "code") ?: "internal", "%s", arg_str(err, "message") ?: "live check failed");
}

static int op_doctor(struct supervisor *s, struct control_request *req, struct json_object *args) {
        struct worker_proc *w = &s->workers[WORKER_CHANNELS];
        const char *name = arg_str(args, "channel");
        struct json_object *groups;
        int r;

        if (name && !want_channel(s, req, args))
                return 0;
        if (w->state != WORKER_RUNNING || !proto_link_is_open(w->link)) {
                control_request_error(req, "unavailable", "conclave-channels is %s; see `conclave status` and "
                                      "journalctl --user -u conclave.service -t conclave-channels",
                                      worker_state_to_string(w->state));
                return 0;
        }
        /* The worker cannot see which groups exist: tell it. */
        groups = json_object_new_array();
        if (!groups)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_groups; i++)
                json_object_array_add(groups, json_object_new_string(s->groups[i]->id));
        json_object_object_add(args, "groups", groups);
        r = proto_link_call(w->link, "channel.doctor", args, DOCTOR_TIMEOUT_USEC, false, on_doctor_reply, req, NULL);
        if (r < 0)
                control_request_error(req, "unavailable", "cannot ask conclave-channels: %s", strerror(-r));
        return 0;
}

const struct control_op control_ops_channels[] = {
        { "channel.inbound", op_inbound },
        { "channel.outbox", op_outbox },
        { "channel.delivery", op_delivery },
        { "channel.store.get", op_store_get },
        { "channel.store.set", op_store_set },
        { "channel.list", op_list },
        { "channel.doctor", op_doctor },
        { NULL, NULL },
};
