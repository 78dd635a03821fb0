/* The supervisor's side of the chat channels (channel_hub.h). */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors.h"
#include "channel_hub.h"
#include "channel_policy.h"
#include "control_server.h"
#include "dedupe.h"
#include "fileio.h"
#include "groups.h"
#include "log.h"
#include "macro.h"
#include "messages.h"
#include "outbox.h"
#include "paths.h"
#include "proto.h"
#include "supervisor.h"

#define OUTBOX_FILE "state/outbox.json"
#define OUTBOX_FILE_MAX (64u * 1024u * 1024u)
#define OUTBOX_SAVE_EVERY 256

struct channel_hub {
        struct supervisor *supervisor;
        struct control_request *outbox_stream; /* the channels worker's subscription */
        struct json_object *reported;          /* name → {state, error, since, …} from the worker */
};

static const char *jstr(struct json_object *o, const char *key) {
        struct json_object *v;
        if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static char *channel_fields(const char *channel, const char *group, char *buf, size_t size) {
        snprintf(buf, size, "CONCLAVE_CHANNEL=%s\nCONCLAVE_GROUP=%s", channel, group ? group : "");
        return buf;
}
#define log_channel(channel, group, level, error, ...)                                                     \
        ({                                                                                                 \
                char _f[192];                                                                              \
                log_fields_errno(level, error, channel_fields(channel, group, _f, sizeof _f), __VA_ARGS__); \
        })

int channel_hub_new(struct supervisor *s, struct channel_hub **ret) {
        struct channel_hub *h = calloc(1, sizeof *h);

        if (!h)
                return -ENOMEM;
        h->supervisor = s;
        h->reported = json_object_new_object();
        if (!h->reported) {
                free(h);
                return -ENOMEM;
        }
        *ret = h;
        return 0;
}

struct channel_hub *channel_hub_free(struct channel_hub *h) {
        if (!h)
                return NULL;
        /* The stream itself is ended by the control server; it must not point here any more. */
        json_object_put(h->reported);
        free(h);
        return NULL;
}

static const struct config_channel *config_channel(struct supervisor *s, const char *name) {
        for (size_t i = 0; name && i < s->config->n_channels; i++)
                if (streq(s->config->channels[i].name, name))
                        return &s->config->channels[i];
        return NULL;
}

/* --- group hooks ---------------------------------------------------------------------------- */

int channel_hub_group_open(struct group *g, uint64_t *ret_last_seq) {
        _cleanup_free_ char *path = path_join(g->dir, OUTBOX_FILE), *text = NULL;
        struct outbox *o = NULL;

        if (!path)
                return -ENOMEM;
        if (read_file_bounded(path, OUTBOX_FILE_MAX, &text, NULL) >= 0) {
                _cleanup_json_ struct json_object *j = json_tokener_parse(text);
                if (outbox_from_json(j, &o) < 0 || o->last_seq > ledger_last_seq(g->ledger)) {
                        /* Unreadable, or ahead of a ledger cut back after a crash: rebuild. */
                        outbox_free(o);
                        o = NULL;
                }
        }
        if (!o && outbox_new(&o) < 0)
                return -ENOMEM;
        g->outbox = o;
        g->outbox_saved_seq = o->last_seq;
        *ret_last_seq = o->last_seq;
        return 0;
}

void channel_hub_group_apply(struct group *g, struct json_object *event) {
        struct json_object *v;
        uint64_t seq = json_object_object_get_ex(event, "seq", &v) ? json_object_get_uint64(v) : 0;
        size_t refused;
        int r;

        if (!g->outbox || seq <= g->outbox->last_seq)
                return;
        refused = g->outbox->refused;
        r = outbox_apply(g->outbox, event);
        if (r < 0)
                log_error_errno(r, "group %s: the channel outbox could not apply event %" PRIu64 "; it is rebuilt "
                                "on the next start", g->id, seq);
        if (g->outbox->refused > refused)
                log_error("group %s: %zu channel deliveries are owed already (the limit); event %" PRIu64
                          " will not be delivered through its channel", g->id, (size_t) OUTBOX_PENDING_MAX, seq);
}

void channel_hub_group_save(struct group *g, bool force) {
        _cleanup_json_ struct json_object *j = NULL;
        _cleanup_free_ char *path = NULL;
        const char *text;

        if (!g->outbox || g->outbox->last_seq == g->outbox_saved_seq ||
            (!force && g->outbox->last_seq < g->outbox_saved_seq + OUTBOX_SAVE_EVERY))
                return;
        j = outbox_to_json(g->outbox);
        path = path_join(g->dir, OUTBOX_FILE);
        if (!j || !path)
                return;
        text = json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN);
        if (write_file_atomic(path, text, strlen(text), 0600) >= 0)
                g->outbox_saved_seq = g->outbox->last_seq;
}

/* The delivery line for one owed entry: everything the channel needs to send it. */
static struct json_object *delivery_json(struct group *g, const struct outbox_entry *e) {
        _cleanup_json_ struct json_object *event = NULL, *original = NULL;
        const struct outbox_binding *b = outbox_binding_by_actor(g->outbox, e->actor);
        struct json_object *d, *data = NULL, *odata = NULL;
        const char *reply_to, *title = NULL;

        if (!b || ledger_read(g->ledger, e->seq, &event) < 0 || !json_object_object_get_ex(event, "data", &data))
                return NULL;
        for (size_t i = 0; i < g->n_actors; i++)
                if (streq(g->actors[i]->id, b->actor))
                        title = g->actors[i]->title;
        d = json_object_new_object();
        if (!d)
                return NULL;
        json_object_object_add(d, "group", json_object_new_string(g->id));
        json_object_object_add(d, "event_id", json_object_new_string(e->event_id));
        json_object_object_add(d, "seq", json_object_new_uint64(e->seq));
        json_object_object_add(d, "actor", json_object_new_string(b->actor));
        json_object_object_add(d, "channel", json_object_new_string(b->channel));
        json_object_object_add(d, "user", json_object_new_string(b->user));
        if (title && *title)
                json_object_object_add(d, "display_name", json_object_new_string(title));
        json_object_object_add(d, "from", json_object_new_string(jstr(event, "by") ?: "?"));
        json_object_object_add(d, "text", json_object_new_string(jstr(data, "text") ?: ""));
        json_object_object_add(d, "attempts", json_object_new_int64(e->attempts));
        json_object_object_add(d, "in_doubt", json_object_new_boolean(e->in_doubt));
        /* A reply to a message that came in through this channel answers it there. */
        reply_to = jstr(data, "reply_to");
        if (reply_to && group_find_event(g, reply_to, &original) >= 0 &&
            json_object_object_get_ex(original, "data", &odata) && streq(jstr(odata, "channel"), b->channel)) {
                if (jstr(odata, "external_id"))
                        json_object_object_add(d, "reply_to", json_object_new_string(jstr(odata, "external_id")));
                if (jstr(odata, "thread"))
                        json_object_object_add(d, "thread", json_object_new_string(jstr(odata, "thread")));
        }
        if (!json_object_object_get_ex(d, "thread", NULL) && jstr(data, "thread") && streq(jstr(data, "channel"), b->channel))
                json_object_object_add(d, "thread", json_object_new_string(jstr(data, "thread")));
        return d;
}

static int stream_entry(struct channel_hub *h, struct group *g, const struct outbox_entry *e) {
        _cleanup_json_ struct json_object *line = json_object_new_object();
        struct json_object *d;

        if (!line)
                return -ENOMEM;
        d = delivery_json(g, e);
        if (!d) {
                log_warning("group %s: cannot read event %" PRIu64 " owed to %s through its channel", g->id, e->seq,
                            e->actor);
                return 0;
        }
        json_object_object_add(line, "delivery", d);
        return control_request_stream_send(h->outbox_stream, line);
}

void channel_hub_group_durable(struct group *g, struct json_object *event) {
        struct channel_hub *h = g->supervisor->channel_hub;
        struct json_object *v;
        const char *id = jstr(event, "id");
        uint64_t seq;

        if (!h || !h->outbox_stream || !g->outbox || !streq(jstr(event, "kind"), "chat.message") || !id ||
            !json_object_object_get_ex(event, "seq", &v))
                return;
        seq = json_object_get_uint64(v);
        for (size_t i = g->outbox->n_pending; i > 0; i--) {
                const struct outbox_entry *e = &g->outbox->pending[i - 1];
                if (e->seq < seq)
                        break;
                if (e->seq == seq && stream_entry(h, g, e) < 0)
                        return;
        }
}

/* --- reported states -------------------------------------------------------------------------- */

void channel_hub_report(struct channel_hub *h, struct json_object *data) {
        struct json_object *list, *fresh;

        if (!h || !data || !json_object_object_get_ex(data, "channels", &list) || !json_object_is_type(list, json_type_array))
                return;
        fresh = json_object_new_object();
        if (!fresh)
                return;
        for (size_t i = 0; i < json_object_array_length(list) && i < 1024; i++) {
                struct json_object *c = json_object_array_get_idx(list, i);
                if (jstr(c, "name") && valid_id(jstr(c, "name")))
                        json_object_object_add(fresh, jstr(c, "name"), json_object_get(c));
        }
        json_object_put(h->reported);
        h->reported = fresh;
        supervisor_state_changed(h->supervisor);
}

void channel_hub_worker_gone(struct channel_hub *h) {
        if (!h)
                return;
        json_object_put(h->reported);
        h->reported = json_object_new_object();
}

void channel_hub_annotate(struct channel_hub *h, const char *name, struct json_object *o) {
        struct supervisor *s = h ? h->supervisor : NULL;
        const struct config_channel *cc = s ? config_channel(s, name) : NULL;
        struct json_object *r = NULL;
        size_t humans = 0, pending = 0;
        struct group *g;

        if (!h)
                return;
        if (json_object_object_get_ex(h->reported, name, &r)) {
                json_object_object_add(o, "state", json_object_new_string(jstr(r, "state") ?: "unknown"));
                json_object_object_add(o, "error", jstr(r, "error") ? json_object_new_string(jstr(r, "error")) : NULL);
                json_object_object_add(o, "since", jstr(r, "since") ? json_object_new_string(jstr(r, "since")) : NULL);
                json_object_object_add(o, "stats", json_object_object_get_ex(r, "stats", &r) ? json_object_get(r) : NULL);
        } else {
                json_object_object_add(o, "state", json_object_new_string("unknown"));
                json_object_object_add(o, "error", json_object_new_string("conclave-channels has not reported it"));
        }
        g = cc && cc->group ? group_find(s, cc->group) : NULL;
        if (g && g->outbox) {
                for (size_t i = 0; i < g->outbox->n_bindings; i++)
                        humans += streq(g->outbox->bindings[i].channel, name);
                for (size_t i = 0; i < g->outbox->n_pending; i++) {
                        const struct outbox_binding *b = outbox_binding_by_actor(g->outbox, g->outbox->pending[i].actor);
                        pending += b && streq(b->channel, name);
                }
        }
        json_object_object_add(o, "allowed_users", json_object_new_int64(cc ? (int64_t) cc->n_allowed_users : 0));
        json_object_object_add(o, "humans", json_object_new_uint64(humans));
        json_object_object_add(o, "pending", json_object_new_uint64(pending));
        json_object_object_add(o, "group_exists", json_object_new_boolean(g != NULL));
}

/* --- operations ------------------------------------------------------------------------------- */

/* The human actor bound to user on channel in g, created on first contact. */
static int bound_actor(struct group *g, const char *channel, const char *user, const char *display, const char **ret) {
        const struct outbox_binding *b = outbox_binding_by_user(g->outbox, channel, user);
        _cleanup_json_ struct json_object *data = NULL;
        char id[CHANNEL_ACTOR_ID_MAX + 1];
        int r;

        if (b) {
                *ret = b->actor;
                return 0;
        }
        for (unsigned salt = 0;; salt++) {
                bool taken = false;
                channel_policy_actor_id(channel, user, salt, id, sizeof id);
                for (size_t i = 0; i < g->n_actors && !taken; i++)
                        taken = streq(g->actors[i]->id, id);
                if (!taken && !streq(id, "operator") && !streq(id, "conclave"))
                        break;
                if (salt > 100)
                        return -EEXIST;
        }
        data = json_object_new_object();
        if (!data)
                return -ENOMEM;
        json_object_object_add(data, "actor_id", json_object_new_string(id));
        json_object_object_add(data, "kind", json_object_new_string("human"));
        json_object_object_add(data, "title", json_object_new_string(display && *display ? display : user));
        json_object_object_add(data, "channel", json_object_new_string(channel));
        json_object_object_add(data, "external_user", json_object_new_string(user));
        r = group_append(g, "actor.added", "conclave", data, NULL, NULL);
        if (r < 0)
                return r;
        log_channel(channel, g->id, LOG_NOTICE, 0, "channel %s: first message from user \"%s\"; added human actor %s to group %s",
                    channel, user, id, g->id);
        b = outbox_binding_by_actor(g->outbox, id);
        if (!b)
                return -EIO;
        *ret = b->actor;
        return 0;
}

/* The actor of g (not the sender) that text starts by addressing (channel_policy_addresses), or
 * NULL. Ids differ only in case rarely; then the one written exactly wins. */
static const char *addressed_actor(struct group *g, const char *sender, const char *text) {
        const char *found = NULL, *start = text + strspn(text, " \t@");

        for (size_t i = 0; i < g->n_actors; i++) {
                const char *id = g->actors[i]->id;
                if (streq(id, sender) || !group_state_is_member(g->gs, id) || !channel_policy_addresses(text, id))
                        continue;
                if (strncmp(start, id, strlen(id)) == 0)
                        return id;
                if (!found)
                        found = id;
        }
        return found;
}

int channel_hub_inbound(struct supervisor *s, struct control_request *req, struct json_object *args) {
        const char *channel = jstr(args, "channel"), *user = jstr(args, "user"), *text = jstr(args, "text");
        const char *reply_to = jstr(args, "reply_to"), *message_id = jstr(args, "message_id");
        const struct config_channel *cc = config_channel(s, channel);
        _cleanup_json_ struct json_object *addressed_to = NULL;
        struct message_error err = {};
        struct message_args m;
        const char *actor = NULL, *event_id = NULL;
        struct group *g;
        uint64_t seq;
        int r;

        if (!cc) {
                control_request_error(req, "not_found", "no channel \"%s\" in the configuration", channel ? channel : "");
                return 0;
        }
        if (!user || !*user || strlen(user) > 256 || !text || !message_id) {
                control_request_error(req, "bad_request", "channel.inbound needs \"user\" (1-256 bytes), \"text\" and \"message_id\"");
                return 0;
        }
        if (!channel_policy_allowed(cc, user)) {
                /* Who and where, never what. */
                log_channel(channel, cc->group, LOG_WARNING, 0, "channel %s: sender \"%s\" is not in allowed_users; message dropped",
                            channel, user);
                control_request_error(req, "forbidden", "sender \"%s\" is not in allowed_users of channel %s", user, channel);
                return 0;
        }
        if (!cc->group || !(g = group_find(s, cc->group))) {
                control_request_error(req, "not_found", "channel %s: group \"%s\" does not exist; create it with `conclave group "
                                      "create %s` or set group = in [channels.%s]", channel, cc->group ? cc->group : "",
                                      cc->group ? cc->group : "GROUP", channel);
                return 0;
        }
        if (g->broken || !g->outbox) {
                control_request_error(req, "broken", "group %s is broken: %s", g->id, g->broken ? g->broken : "no outbox");
                return 0;
        }
        r = bound_actor(g, channel, user, jstr(args, "display_name"), &actor);
        if (r < 0) {
                control_request_error(req, "internal", "cannot add a human actor for %s on channel %s: %s", user, channel,
                                      strerror(-r));
                return 0;
        }
        /* A reply on the platform to a message we know (came in, or went out, here) is a reply in
         * the ledger too. */
        if (reply_to && g->dedupe) {
                char key[DEDUPE_KEY_MAX + 1];
                snprintf(key, sizeof key, "%s:%s", channel, reply_to);
                if (!dedupe_find(g->dedupe, key, &event_id, &seq)) {
                        snprintf(key, sizeof key, "%s>%s", channel, reply_to);
                        if (!dedupe_find(g->dedupe, key, &event_id, &seq))
                                event_id = NULL;
                }
        }
        m = (struct message_args){
                .by = actor, .text = text, .reply_to = event_id, .channel = channel, .external_id = message_id,
                .thread = jstr(args, "thread"),
        };
        {
                /* A webhook may address actors and ask for a reply or an ack. */
                struct json_object *v;
                if (json_object_object_get_ex(args, "to", &v) && !json_object_is_type(v, json_type_null))
                        m.to = v;
                m.reply_required = json_object_object_get_ex(args, "reply_required", &v) && json_object_get_boolean(v);
                m.attention = json_object_object_get_ex(args, "attention", &v) && json_object_get_boolean(v);
        }
        if (!m.to) {
                /* "gpt: …" asks gpt: it is to gpt, and (by default) gpt owes the reply. */
                const char *addressee = addressed_actor(g, actor, text);
                if (addressee) {
                        addressed_to = json_object_new_array();
                        if (!addressed_to)
                                return -ENOMEM;
                        json_object_array_add(addressed_to, json_object_new_string(addressee));
                        m.to = addressed_to;
                        if (!json_object_object_get_ex(args, "reply_required", NULL))
                                m.reply_required = cc->mention_reply_required;
                }
        }
        r = message_post(g, &m, req, &err);
        if (r < 0) {
                if (err.code)
                        control_request_error(req, err.code, "%s", err.message);
                else
                        control_request_error(req, "internal", "%s", strerror(-r));
        }
        return 0;
}

static void outbox_stream_closed(struct control_request *req, void *userdata) {
        struct channel_hub *h = userdata;

        if (h->outbox_stream == req)
                h->outbox_stream = NULL;
}

int channel_hub_outbox_follow(struct supervisor *s, struct control_request *req) {
        struct channel_hub *h = s->channel_hub;
        _cleanup_json_ struct json_object *first = json_object_new_object();
        int r;

        if (!first)
                return -ENOMEM;
        if (h->outbox_stream) {
                /* One subscriber: the newest (a restarted worker) replaces the old one. */
                control_request_error(h->outbox_stream, "replaced", "another channel.outbox subscription started");
                h->outbox_stream = NULL;
        }
        r = control_request_stream_begin(req, outbox_stream_closed, h);
        if (r < 0)
                return r;
        h->outbox_stream = req;
        json_object_object_add(first, "ok", json_object_new_boolean(1));
        json_object_object_add(first, "result", json_object_new_string("following"));
        (void) control_request_stream_send(req, first);
        /* Everything owed and durable; later ones follow as they become durable. */
        for (size_t i = 0; i < s->n_groups && h->outbox_stream; i++) {
                struct group *g = s->groups[i];
                uint64_t durable;
                if (g->broken || !g->outbox)
                        continue;
                durable = group_durable_seq(g);
                for (size_t j = 0; j < g->outbox->n_pending && h->outbox_stream; j++)
                        if (g->outbox->pending[j].seq <= durable && stream_entry(h, g, &g->outbox->pending[j]) < 0)
                                break;
        }
        return 0;
}

int channel_hub_delivery(struct supervisor *s, struct control_request *req, struct json_object *args) {
        static const char *const statuses[] = { "attempted", "succeeded", "deferred", "failed", "unconfirmed", NULL };
        const char *gid = jstr(args, "group"), *event_id = jstr(args, "event_id"), *actor = jstr(args, "actor");
        const char *status = jstr(args, "status"), *platform_id = jstr(args, "platform_id"), *error = jstr(args, "error");
        _cleanup_json_ struct json_object *data = json_object_new_object();
        const struct outbox_binding *b;
        struct outbox_entry *e;
        struct json_object *v, *event = NULL;
        bool known = false;
        struct group *g;
        int r;

        if (!data)
                return -ENOMEM;
        for (size_t i = 0; statuses[i]; i++)
                known = known || streq(status, statuses[i]);
        if (!gid || !event_id || !actor || !known || (platform_id && strlen(platform_id) > 256) ||
            (error && strlen(error) > 512)) {
                control_request_error(req, "bad_request", "channel.delivery needs group, event_id, actor and status "
                                      "(attempted, succeeded, deferred, failed, unconfirmed)");
                return 0;
        }
        g = group_find(s, gid);
        if (!g || g->broken || !g->outbox) {
                control_request_error(req, "not_found", "no usable group \"%s\"", gid);
                return 0;
        }
        e = outbox_find(g->outbox, event_id, actor);
        b = outbox_binding_by_actor(g->outbox, actor);
        if (!e || !b) {
                /* Settled already (or the actor was removed): nothing to record, nothing to send. */
                control_request_error(req, "not_owed", "no delivery of %s to %s is owed in group %s", event_id, actor, gid);
                return 0;
        }
        json_object_object_add(data, "event_id", json_object_new_string(event_id));
        json_object_object_add(data, "actor", json_object_new_string(actor));
        json_object_object_add(data, "channel", json_object_new_string(b->channel));
        json_object_object_add(data, "status", json_object_new_string(status));
        json_object_object_add(data, "attempt", json_object_new_int64(streq(status, "attempted") ? (int64_t) e->attempts + 1
                                                                                               : (int64_t) e->attempts));
        if (platform_id)
                json_object_object_add(data, "platform_id", json_object_new_string(platform_id));
        if (error)
                json_object_object_add(data, "error", json_object_new_string(error));
        if (json_object_object_get_ex(args, "retry_in_usec", &v) && json_object_is_type(v, json_type_int))
                json_object_object_add(data, "retry_in_usec", json_object_get(v));
        if (streq(status, "failed"))
                log_channel(b->channel, g->id, LOG_WARNING, 0, "channel %s: gave up delivering %s to %s: %s", b->channel,
                            event_id, actor, error ? error : "no reason given");
        r = group_append(g, "chat.delivery", "conclave", data, req, &event);
        if (r < 0) {
                control_request_error(req, "internal", "cannot append to the ledger: %s", strerror(-r));
                return 0;
        }
        if (platform_id && event)
                group_dedupe_remember(g, event);
        return 0;
}
