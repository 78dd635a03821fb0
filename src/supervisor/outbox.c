/* A group's channel outbox, derived from its ledger (outbox.h). */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "macro.h"
#include "outbox.h"

static const char *jstr(struct json_object *o, const char *key) {
        struct json_object *v;
        if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static uint64_t juint(struct json_object *o, const char *key) {
        struct json_object *v;
        if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return 0;
        return json_object_get_uint64(v);
}

int outbox_new(struct outbox **ret) {
        *ret = calloc(1, sizeof **ret);
        return *ret ? 0 : -ENOMEM;
}

static void binding_clear(struct outbox_binding *b) {
        free(b->actor);
        free(b->channel);
        free(b->user);
}

void outbox_free(struct outbox *o) {
        if (!o)
                return;
        for (size_t i = 0; i < o->n_bindings; i++)
                binding_clear(&o->bindings[i]);
        for (size_t i = 0; i < o->n_pending; i++)
                free(o->pending[i].actor);
        free(o->bindings);
        free(o->pending);
        free(o);
}

const struct outbox_binding *outbox_binding_by_actor(const struct outbox *o, const char *actor) {
        for (size_t i = 0; actor && i < o->n_bindings; i++)
                if (streq(o->bindings[i].actor, actor))
                        return &o->bindings[i];
        return NULL;
}

const struct outbox_binding *outbox_binding_by_user(const struct outbox *o, const char *channel, const char *user) {
        for (size_t i = 0; channel && user && i < o->n_bindings; i++)
                if (streq(o->bindings[i].channel, channel) && strcasecmp(o->bindings[i].user, user) == 0)
                        return &o->bindings[i];
        return NULL;
}

struct outbox_entry *outbox_find(const struct outbox *o, const char *event_id, const char *actor) {
        /* Recent entries are the likely ones: search from the end. */
        for (size_t i = o->n_pending; event_id && actor && i > 0; i--)
                if (streq(o->pending[i - 1].event_id, event_id) && streq(o->pending[i - 1].actor, actor))
                        return &o->pending[i - 1];
        return NULL;
}

static int binding_add(struct outbox *o, const char *actor, const char *channel, const char *user, uint64_t seq) {
        struct outbox_binding *n, b;

        if (outbox_binding_by_actor(o, actor) || o->n_bindings >= OUTBOX_BINDINGS_MAX)
                return 0;
        b = (struct outbox_binding){ .actor = strdup(actor), .channel = strdup(channel), .user = strdup(user), .seq = seq };
        n = reallocarray(o->bindings, o->n_bindings + 1, sizeof *n);
        if (!n || !b.actor || !b.channel || !b.user) {
                binding_clear(&b);
                if (n)
                        o->bindings = n;
                return -ENOMEM;
        }
        o->bindings = n;
        o->bindings[o->n_bindings++] = b;
        return 0;
}

static void entry_remove(struct outbox *o, size_t i) {
        free(o->pending[i].actor);
        memmove(o->pending + i, o->pending + i + 1, (o->n_pending - i - 1) * sizeof *o->pending);
        o->n_pending--;
}

static void binding_remove(struct outbox *o, const char *actor) {
        for (size_t i = 0; i < o->n_bindings; i++)
                if (streq(o->bindings[i].actor, actor)) {
                        binding_clear(&o->bindings[i]);
                        memmove(o->bindings + i, o->bindings + i + 1, (o->n_bindings - i - 1) * sizeof *o->bindings);
                        o->n_bindings--;
                        break;
                }
        for (size_t i = o->n_pending; i > 0; i--)
                if (streq(o->pending[i - 1].actor, actor))
                        entry_remove(o, i - 1);
}

static int entry_add(struct outbox *o, uint64_t seq, const char *event_id, const char *actor, unsigned attempts,
                     bool in_doubt) {
        struct outbox_entry *n;
        char *a;

        if (strlen(event_id) >= sizeof n->event_id)
                return -EINVAL;
        if (o->n_pending >= OUTBOX_PENDING_MAX) {
                o->refused++;
                return 0;
        }
        a = strdup(actor);
        if (!a)
                return -ENOMEM;
        n = reallocarray(o->pending, o->n_pending + 1, sizeof *n);
        if (!n) {
                free(a);
                return -ENOMEM;
        }
        o->pending = n;
        n = &o->pending[o->n_pending++];
        *n = (struct outbox_entry){ .seq = seq, .actor = a, .attempts = attempts, .in_doubt = in_doubt };
        strcpy(n->event_id, event_id);
        return 1;
}

static bool listed(struct json_object *to, const char *actor) {
        for (size_t i = 0; i < json_object_array_length(to); i++)
                if (streq(json_object_get_string(json_object_array_get_idx(to, i)), actor))
                        return true;
        return false;
}

static int apply_message(struct outbox *o, struct json_object *event, uint64_t seq) {
        struct json_object *data = NULL, *to = NULL;
        const char *by = jstr(event, "by"), *id = jstr(event, "id");
        const struct outbox_binding *author;
        bool all;
        int added = 0;

        if (o->n_bindings == 0)
                return 0;
        if (!by || !id || !json_object_object_get_ex(event, "data", &data) || !json_object_object_get_ex(data, "to", &to) ||
            !json_object_is_type(to, json_type_array))
                return 0;
        all = json_object_array_length(to) == 1 && streq(json_object_get_string(json_object_array_get_idx(to, 0)), "@all");
        author = outbox_binding_by_actor(o, by);
        for (size_t i = 0; i < o->n_bindings; i++) {
                const struct outbox_binding *b = &o->bindings[i];
                int r;
                if (b->seq >= seq || streq(b->actor, by) || (author && streq(author->channel, b->channel)))
                        continue;
                if (!(all || listed(to, b->actor)))
                        continue;
                r = entry_add(o, seq, id, b->actor, 0, false);
                if (r < 0)
                        return r;
                added += r;
        }
        return added;
}

static void apply_delivery(struct outbox *o, struct json_object *event) {
        struct json_object *data = NULL;
        const char *status;
        struct outbox_entry *e;

        if (!json_object_object_get_ex(event, "data", &data))
                return;
        e = outbox_find(o, jstr(data, "event_id"), jstr(data, "actor"));
        status = jstr(data, "status");
        if (!e || !status)
                return;
        if (streq(status, "attempted")) {
                e->attempts++;
                e->in_doubt = true;
        } else if (streq(status, "deferred"))
                e->in_doubt = false;
        else if (streq(status, "succeeded") || streq(status, "failed") || streq(status, "unconfirmed"))
                entry_remove(o, (size_t) (e - o->pending));
}

int outbox_apply(struct outbox *o, struct json_object *event) {
        struct json_object *data = NULL;
        uint64_t seq = juint(event, "seq");
        const char *kind = jstr(event, "kind");
        int r = 0;

        if (seq != o->last_seq + 1 || !kind)
                return -EINVAL;
        json_object_object_get_ex(event, "data", &data);
        if (streq(kind, "actor.added") && jstr(data, "channel") && jstr(data, "external_user") && jstr(data, "actor_id"))
                r = binding_add(o, jstr(data, "actor_id"), jstr(data, "channel"), jstr(data, "external_user"), seq);
        else if (streq(kind, "actor.removed") && jstr(data, "actor_id"))
                binding_remove(o, jstr(data, "actor_id"));
        else if (streq(kind, "chat.message"))
                r = apply_message(o, event, seq);
        else if (streq(kind, "chat.delivery"))
                apply_delivery(o, event);
        if (r < 0)
                return r;
        o->last_seq = seq;
        return r;
}

struct json_object *outbox_to_json(const struct outbox *o) {
        struct json_object *j = json_object_new_object(), *bindings = json_object_new_array(),
                           *pending = json_object_new_array();

        if (!j || !bindings || !pending) {
                json_object_put(j);
                json_object_put(bindings);
                json_object_put(pending);
                return NULL;
        }
        json_object_object_add(j, "format_version", json_object_new_int(OUTBOX_FORMAT_VERSION));
        json_object_object_add(j, "last_seq", json_object_new_uint64(o->last_seq));
        for (size_t i = 0; i < o->n_bindings; i++) {
                struct json_object *b = json_object_new_object();
                json_object_object_add(b, "actor", json_object_new_string(o->bindings[i].actor));
                json_object_object_add(b, "channel", json_object_new_string(o->bindings[i].channel));
                json_object_object_add(b, "user", json_object_new_string(o->bindings[i].user));
                json_object_object_add(b, "seq", json_object_new_uint64(o->bindings[i].seq));
                json_object_array_add(bindings, b);
        }
        for (size_t i = 0; i < o->n_pending; i++) {
                struct json_object *e = json_object_new_object();
                json_object_object_add(e, "seq", json_object_new_uint64(o->pending[i].seq));
                json_object_object_add(e, "event_id", json_object_new_string(o->pending[i].event_id));
                json_object_object_add(e, "actor", json_object_new_string(o->pending[i].actor));
                json_object_object_add(e, "attempts", json_object_new_int64(o->pending[i].attempts));
                json_object_object_add(e, "in_doubt", json_object_new_boolean(o->pending[i].in_doubt));
                json_object_array_add(pending, e);
        }
        json_object_object_add(j, "bindings", bindings);
        json_object_object_add(j, "pending", pending);
        json_object_object_add(j, "refused", json_object_new_uint64(o->refused));
        return j;
}

int outbox_from_json(struct json_object *j, struct outbox **ret) {
        struct json_object *bindings, *pending, *v;
        struct outbox *o;
        int r = 0;

        if (!j || !json_object_is_type(j, json_type_object) || juint(j, "format_version") != OUTBOX_FORMAT_VERSION ||
            !json_object_object_get_ex(j, "bindings", &bindings) || !json_object_is_type(bindings, json_type_array) ||
            !json_object_object_get_ex(j, "pending", &pending) || !json_object_is_type(pending, json_type_array))
                return -EINVAL;
        if (outbox_new(&o) < 0)
                return -ENOMEM;
        o->last_seq = juint(j, "last_seq");
        o->refused = juint(j, "refused");
        for (size_t i = 0; r >= 0 && i < json_object_array_length(bindings); i++) {
                struct json_object *b = json_object_array_get_idx(bindings, i);
                if (!jstr(b, "actor") || !jstr(b, "channel") || !jstr(b, "user"))
                        r = -EINVAL;
                else
                        r = binding_add(o, jstr(b, "actor"), jstr(b, "channel"), jstr(b, "user"), juint(b, "seq"));
        }
        for (size_t i = 0; r >= 0 && i < json_object_array_length(pending); i++) {
                struct json_object *e = json_object_array_get_idx(pending, i);
                bool doubt = json_object_object_get_ex(e, "in_doubt", &v) && json_object_get_boolean(v);
                if (!jstr(e, "event_id") || !jstr(e, "actor"))
                        r = -EINVAL;
                else
                        r = entry_add(o, juint(e, "seq"), jstr(e, "event_id"), jstr(e, "actor"),
                                      (unsigned) juint(e, "attempts"), doubt);
        }
        if (r < 0) {
                outbox_free(o);
                return r;
        }
        *ret = o;
        return 0;
}
