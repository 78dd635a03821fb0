/* Derived group state (members, read cursors, open obligations) computed from ledger events;
 * the rules are in group_state.h, the decisions the header leaves open are noted below. */

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "group_state.h"
#include "macro.h"
#include "proto.h"

#define ACTOR_ID_MAX 64
#define EVENT_ID_MAX 26
#define ALL_MEMBERS "@all"
#define TABLE_SLOTS_MIN 16

/* Open addressing with linear probing and backward-shift deletion (no tombstones), kept at
 * most half full. Entries are pointers; the caller supplies the hash and the key match. */
struct slot {
        uint64_t hash;
        void *entry; /* NULL: empty */
};

struct table {
        struct slot *slots;
        size_t n_slots; /* 0 or a power of two */
        size_t n_entries;
};

typedef bool (*match_fn)(const void *entry, const void *key);

struct obligation_node;

struct member {
        char id[ACTOR_ID_MAX + 1];
        uint64_t hash;
        uint64_t cursor;
        uint64_t mark; /* recipient de-duplication within one message */
        struct obligation_node *first, *last; /* what this member owes, seq order */
};

struct obligation_node {
        struct obligation obligation;
        uint64_t hash;
        struct member *owner;
        struct obligation_node *prev, *next;             /* everybody's, seq order */
        struct obligation_node *owner_prev, *owner_next; /* owner's, seq order */
};

struct obligation_key {
        const char *actor_id;
        const char *event_id;
        enum obligation_kind kind;
};

struct group_state {
        uint64_t last_seq;
        struct member **members;  /* in the order added */
        const char **member_ids;  /* members[i]->id, for group_state_members() */
        size_t n_members, n_members_allocated;
        struct table member_table;
        uint64_t mark_generation;
        struct obligation_node *first, *last;
        size_t n_obligations;
        struct table obligation_table;
        struct schedule_entry *schedules; /* in the order added */
        size_t n_schedules;
};

/* FNV-1a with a final avalanche, since the table uses the low bits. Ids come from the
 * ledger writer and the operator's config, so no per-process seed against flooding. */
static uint64_t hash_bytes(uint64_t h, const char *s) {
        for (; *s; s++) {
                h ^= (unsigned char) *s;
                h *= UINT64_C(0x100000001b3);
        }
        return h;
}

static uint64_t hash_finish(uint64_t h) {
        h ^= h >> 33;
        h *= UINT64_C(0xff51afd7ed558ccd);
        h ^= h >> 33;
        h *= UINT64_C(0xc4ceb9fe1a85ec53);
        h ^= h >> 33;
        return h;
}

static uint64_t hash_member(const char *id) {
        return hash_finish(hash_bytes(UINT64_C(0xcbf29ce484222325), id));
}

static uint64_t hash_obligation(const char *actor_id, const char *event_id, enum obligation_kind kind) {
        uint64_t h = hash_bytes(UINT64_C(0xcbf29ce484222325), actor_id);

        h = (h ^ 0x1f) * UINT64_C(0x100000001b3);
        h = hash_bytes(h, event_id);
        h = (h ^ (uint64_t) (kind + 1)) * UINT64_C(0x100000001b3);
        return hash_finish(h);
}

static void *table_find(const struct table *t, uint64_t hash, const void *key, match_fn match) {
        size_t mask;

        if (t->n_slots == 0)
                return NULL;
        mask = t->n_slots - 1;
        /* Terminates: the table is never full. */
        for (size_t i = hash & mask; t->slots[i].entry; i = (i + 1) & mask)
                if (t->slots[i].hash == hash && match(t->slots[i].entry, key))
                        return t->slots[i].entry;
        return NULL;
}

static void table_put(struct slot *slots, size_t n_slots, uint64_t hash, void *entry) {
        size_t mask = n_slots - 1, i = hash & mask;

        while (slots[i].entry)
                i = (i + 1) & mask;
        slots[i] = (struct slot) { .hash = hash, .entry = entry };
}

static int table_resize(struct table *t, size_t n_slots) {
        struct slot *slots = calloc(n_slots, sizeof *slots);

        if (!slots)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_slots; i++)
                if (t->slots[i].entry)
                        table_put(slots, n_slots, t->slots[i].hash, t->slots[i].entry);
        free(t->slots);
        t->slots = slots;
        t->n_slots = n_slots;
        return 0;
}

/* Makes room for `extra` more entries, so that the inserts after it cannot fail. */
static int table_reserve(struct table *t, size_t extra) {
        size_t need, n = t->n_slots ? t->n_slots : TABLE_SLOTS_MIN;

        if (extra == 0)
                return 0;
        if (extra > SIZE_MAX / 2 - t->n_entries)
                return -ENOMEM;
        need = t->n_entries + extra;
        while (need > n / 2) {
                if (n > SIZE_MAX / 4 / sizeof(struct slot))
                        return -ENOMEM;
                n *= 2;
        }
        return n == t->n_slots ? 0 : table_resize(t, n);
}

static void table_insert_reserved(struct table *t, uint64_t hash, void *entry) {
        table_put(t->slots, t->n_slots, hash, entry);
        t->n_entries++;
}

static void table_remove(struct table *t, uint64_t hash, const void *entry) {
        size_t mask, i, j;

        if (t->n_slots == 0)
                return;
        mask = t->n_slots - 1;
        for (i = hash & mask; t->slots[i].entry != entry; i = (i + 1) & mask)
                if (!t->slots[i].entry)
                        return;
        /* Backward shift: pull later entries of the probe run into the hole unless their home
         * slot lies cyclically in (hole, their position]. */
        for (j = (i + 1) & mask; t->slots[j].entry; j = (j + 1) & mask) {
                size_t home = t->slots[j].hash & mask;
                bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);

                if (!stays) {
                        t->slots[i] = t->slots[j];
                        i = j;
                }
        }
        t->slots[i] = (struct slot) {};
        t->n_entries--;
}

/* Called at the end of an apply rather than on each removal, so a reservation made earlier in
 * the same apply holds. Best effort: on -ENOMEM the table simply stays larger. */
static void table_maybe_shrink(struct table *t) {
        size_t n = t->n_slots;

        if (n == 0)
                return;
        if (t->n_entries == 0) {
                free(t->slots);
                *t = (struct table) {};
                return;
        }
        while (n > TABLE_SLOTS_MIN && t->n_entries < n / 8)
                n /= 2;
        if (n != t->n_slots)
                (void) table_resize(t, n);
}

static bool match_member(const void *entry, const void *key) {
        return streq(((const struct member *) entry)->id, key);
}

static bool match_obligation(const void *entry, const void *key) {
        const struct obligation *o = &((const struct obligation_node *) entry)->obligation;
        const struct obligation_key *k = key;

        return o->kind == k->kind && streq(o->actor_id, k->actor_id) && streq(o->event_id, k->event_id);
}

/* A string of 1..max bytes without embedded NULs, or NULL. */
static const char *json_get_id(struct json_object *o, size_t max) {
        const char *s;
        size_t len;

        if (!json_object_is_type(o, json_type_string))
                return NULL;
        s = json_object_get_string(o);
        len = (size_t) json_object_get_string_len(o);
        if (!s || len == 0 || len > max || strlen(s) != len)
                return NULL;
        return s;
}

/* Actor ids: 1..64 bytes; "@all" is the broadcast address, so it cannot name an actor. */
static const char *json_get_actor_id(struct json_object *o) {
        const char *s = json_get_id(o, ACTOR_ID_MAX);

        return s && !streq(s, ALL_MEMBERS) ? s : NULL;
}

static const char *json_get_event_id(struct json_object *o) {
        return json_get_id(o, EVENT_ID_MAX);
}

/* A JSON integer in [0, INT64_MAX); json-c clamps larger ones to INT64_MAX, so that is out. */
static bool json_get_count(struct json_object *o, uint64_t *ret) {
        int64_t v;

        if (!json_object_is_type(o, json_type_int))
                return false;
        v = json_object_get_int64(o);
        if (v < 0 || v == INT64_MAX)
                return false;
        *ret = (uint64_t) v;
        return true;
}

static struct json_object *json_get(struct json_object *o, const char *key) {
        struct json_object *v = NULL;

        if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v))
                return NULL;
        return v;
}

static bool json_is_string_equal(struct json_object *o, const char *s) {
        return json_object_is_type(o, json_type_string) && streq(json_object_get_string(o), s);
}

static bool parse_digits(const char *s, size_t n, unsigned *ret) {
        unsigned v = 0;

        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return false;
                v = v * 10 + (unsigned) (s[i] - '0');
        }
        *ret = v;
        return true;
}

/* "2026-11-22T14:36:41.123Z" (fraction of 1-9 digits optional) to ms since the epoch. Anything
 * else is 0: the timestamp only feeds reminders, it must not stop the state. */
static uint64_t parse_timestamp_ms(const char *s) {
        static const unsigned days_in_month[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
        unsigned year, month, day, hour, minute, second, ms = 0, mdays;
        size_t len, frac = 0;
        int64_t y, era, yoe, doy, doe, days;

        if (!s)
                return 0;
        len = strnlen(s, 32);
        if (len < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
            s[len - 1] != 'Z')
                return 0;
        if (!parse_digits(s, 4, &year) || !parse_digits(s + 5, 2, &month) || !parse_digits(s + 8, 2, &day) ||
            !parse_digits(s + 11, 2, &hour) || !parse_digits(s + 14, 2, &minute) ||
            !parse_digits(s + 17, 2, &second))
                return 0;
        if (len != 20) {
                frac = len - 21;
                if (s[19] != '.' || frac < 1 || frac > 9)
                        return 0;
                for (size_t i = 0; i < 3; i++) {
                        unsigned d = 0;

                        if (i < frac && !parse_digits(s + 20 + i, 1, &d))
                                return 0;
                        ms = ms * 10 + d;
                }
                for (size_t i = 3; i < frac; i++)
                        if (s[20 + i] < '0' || s[20 + i] > '9')
                                return 0;
        }
        if (year < 1970 || month < 1 || month > 12 || hour > 23 || minute > 59 || second > 60)
                return 0;
        mdays = days_in_month[month - 1];
        if (month == 2 && (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)))
                mdays = 29;
        if (day < 1 || day > mdays)
                return 0;

        /* Days from the civil date (H. Hinnant's algorithm), year >= 1970 so no negative eras. */
        y = (int64_t) year - (month <= 2);
        era = y / 400;
        yoe = y - era * 400;
        doy = (153 * ((int64_t) month + (month > 2 ? -3 : 9)) + 2) / 5 + (int64_t) day - 1;
        doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        days = era * 146097 + doe - 719468;
        return (((uint64_t) days * 24 + hour) * 60 + minute) * 60000 + (uint64_t) second * 1000 + ms;
}

static struct member *member_find(const struct group_state *gs, const char *id) {
        if (!id)
                return NULL;
        return table_find(&gs->member_table, hash_member(id), id, match_member);
}

static struct obligation_node *obligation_find(const struct group_state *gs, const char *actor_id,
                                               const char *event_id, enum obligation_kind kind) {
        struct obligation_key key = { .actor_id = actor_id, .event_id = event_id, .kind = kind };

        if (!actor_id || !event_id)
                return NULL;
        return table_find(&gs->obligation_table, hash_obligation(actor_id, event_id, kind), &key,
                          match_obligation);
}

static void obligation_append_reserved(struct group_state *gs, struct obligation_node *n, struct member *owner) {
        n->owner = owner;
        n->prev = gs->last;
        n->next = NULL;
        if (gs->last)
                gs->last->next = n;
        else
                gs->first = n;
        gs->last = n;
        n->owner_prev = owner->last;
        n->owner_next = NULL;
        if (owner->last)
                owner->last->owner_next = n;
        else
                owner->first = n;
        owner->last = n;
        table_insert_reserved(&gs->obligation_table, n->hash, n);
        gs->n_obligations++;
}

static void obligation_drop(struct group_state *gs, struct obligation_node *n) {
        struct member *owner = n->owner;

        if (n->prev)
                n->prev->next = n->next;
        else
                gs->first = n->next;
        if (n->next)
                n->next->prev = n->prev;
        else
                gs->last = n->prev;
        if (n->owner_prev)
                n->owner_prev->owner_next = n->owner_next;
        else
                owner->first = n->owner_next;
        if (n->owner_next)
                n->owner_next->owner_prev = n->owner_prev;
        else
                owner->last = n->owner_prev;
        table_remove(&gs->obligation_table, n->hash, n);
        gs->n_obligations--;
        free(n);
}

static int members_reserve(struct group_state *gs) {
        if (gs->n_members == gs->n_members_allocated) {
                size_t n = gs->n_members_allocated ? gs->n_members_allocated * 2 : 8;
                struct member **m;
                const char **ids;

                if (n > SIZE_MAX / 2 / sizeof(void *))
                        return -ENOMEM;
                m = realloc(gs->members, n * sizeof *m);
                if (!m)
                        return -ENOMEM;
                gs->members = m;
                ids = realloc(gs->member_ids, n * sizeof *ids);
                if (!ids)
                        return -ENOMEM; /* members[] merely has spare room now */
                gs->member_ids = ids;
                gs->n_members_allocated = n;
        }
        return table_reserve(&gs->member_table, 1);
}

/* Adds id (valid, not yet a member) at the end. */
static int member_add(struct group_state *gs, const char *id, struct member **ret) {
        struct member *m;
        int r;

        r = members_reserve(gs);
        if (r < 0)
                return r;
        m = calloc(1, sizeof *m);
        if (!m)
                return -ENOMEM;
        memcpy(m->id, id, strlen(id) + 1);
        m->hash = hash_member(id);
        gs->members[gs->n_members] = m;
        gs->member_ids[gs->n_members] = m->id;
        gs->n_members++;
        table_insert_reserved(&gs->member_table, m->hash, m);
        if (ret)
                *ret = m;
        return 0;
}

/* A removed actor can no longer answer, so what it owes is dropped with it, and so is its read
 * cursor: if it is added again it starts afresh, like any new member. What others owe to
 * messages it sent stays open: the messages are still in the group. */
static void member_remove(struct group_state *gs, struct member *m) {
        struct obligation_node *n, *next;
        size_t i;

        for (n = m->first; n; n = next) {
                next = n->owner_next;
                obligation_drop(gs, n);
        }
        for (i = 0; i < gs->n_members && gs->members[i] != m; i++)
                ;
        if (i == gs->n_members)
                return;
        memmove(gs->members + i, gs->members + i + 1, (gs->n_members - i - 1) * sizeof *gs->members);
        memmove(gs->member_ids + i, gs->member_ids + i + 1, (gs->n_members - i - 1) * sizeof *gs->member_ids);
        gs->n_members--;
        table_remove(&gs->member_table, m->hash, m);
        free(m);
}

int group_state_new(struct group_state **ret) {
        struct group_state *gs;

        if (!ret)
                return -EINVAL;
        gs = calloc(1, sizeof *gs);
        if (!gs)
                return -ENOMEM;
        *ret = gs;
        return 0;
}

void group_state_free(struct group_state *gs) {
        if (!gs)
                return;
        for (struct obligation_node *n = gs->first, *next; n; n = next) {
                next = n->next;
                free(n);
        }
        for (size_t i = 0; i < gs->n_members; i++)
                free(gs->members[i]);
        free(gs->members);
        free(gs->member_ids);
        free(gs->member_table.slots);
        free(gs->obligation_table.slots);
        free(gs->schedules);
        free(gs);
}

static void state_free(struct group_state **gs) {
        group_state_free(*gs);
}
#define _cleanup_group_state_ _cleanup_(state_free)

/* The recipients of a chat.message "to" (array, or a single string), which must be current
 * members: a missing/null "to" or an empty array, or "@all" anywhere in it, means every member;
 * other ids are taken in the order listed, once each. The sender is never a recipient. Any
 * other type of "to", or entries that are not valid ids, address nobody. */
static int message_recipients(struct group_state *gs, struct json_object *data, const char *sender,
                              struct member ***ret, size_t *ret_n) {
        struct json_object *to = json_get(data, "to");
        bool everyone = false;
        size_t n_to = 0, n = 0;
        struct member **r;

        *ret = NULL;
        *ret_n = 0;
        if (!to)
                everyone = true;
        else if (json_object_is_type(to, json_type_string)) {
                everyone = streq(json_object_get_string(to), ALL_MEMBERS);
                n_to = 1;
        } else if (json_object_is_type(to, json_type_array)) {
                n_to = json_object_array_length(to);
                everyone = n_to == 0;
                for (size_t i = 0; i < n_to && !everyone; i++)
                        everyone = json_is_string_equal(json_object_array_get_idx(to, i), ALL_MEMBERS);
        } else
                return 0;

        if (everyone) {
                if (gs->n_members == 0)
                        return 0;
                r = calloc(gs->n_members, sizeof *r);
                if (!r)
                        return -ENOMEM;
                for (size_t i = 0; i < gs->n_members; i++)
                        if (!streq(gs->members[i]->id, sender))
                                r[n++] = gs->members[i];
        } else {
                r = calloc(n_to, sizeof *r);
                if (!r)
                        return -ENOMEM;
                gs->mark_generation++;
                for (size_t i = 0; i < n_to; i++) {
                        struct json_object *e = json_object_is_type(to, json_type_array) ?
                                                        json_object_array_get_idx(to, i) :
                                                        to;
                        struct member *m = member_find(gs, json_get_actor_id(e));

                        if (!m || streq(m->id, sender) || m->mark == gs->mark_generation)
                                continue;
                        m->mark = gs->mark_generation;
                        r[n++] = m;
                }
        }
        *ret = r;
        *ret_n = n;
        return 0;
}

static bool json_is_true(struct json_object *o) {
        return json_object_is_type(o, json_type_boolean) && json_object_get_boolean(o);
}

/* All-or-nothing: every allocation is made before the first change. */
static int apply_message(struct group_state *gs, struct json_object *event, uint64_t seq, const char *by) {
        struct json_object *data = json_get(event, "data");
        const char *id = json_get_event_id(json_get(event, "id"));
        const char *reply_to = json_get_event_id(json_get(data, "reply_to"));
        bool want_reply = json_is_true(json_get(data, "reply_required"));
        bool want_ack = json_is_string_equal(json_get(data, "priority"), "attention");
        _cleanup_free_ struct obligation_node **nodes = NULL;
        _cleanup_free_ struct member **recipients = NULL;
        struct obligation_node *closed;
        size_t n_recipients = 0, n_nodes = 0;
        uint64_t created_ms;
        int r;

        if (!id)
                return -EINVAL;

        if (want_reply || want_ack) {
                r = message_recipients(gs, data, by, &recipients, &n_recipients);
                if (r < 0)
                        return r;
        }
        if (n_recipients > 0) {
                created_ms = parse_timestamp_ms(json_object_get_string(json_get(event, "ts")));
                nodes = calloc(n_recipients * 2, sizeof *nodes);
                if (!nodes)
                        return -ENOMEM;
                for (size_t i = 0; i < n_recipients; i++)
                        for (int k = 0; k < 2; k++) {
                                enum obligation_kind kind = k == 0 ? OBLIGATION_REPLY : OBLIGATION_ACK;
                                struct obligation_node *n;

                                if (!(kind == OBLIGATION_REPLY ? want_reply : want_ack))
                                        continue;
                                /* Only a ledger reusing an event id gets here twice. */
                                if (obligation_find(gs, recipients[i]->id, id, kind))
                                        continue;
                                n = calloc(1, sizeof *n);
                                if (!n) {
                                        r = -ENOMEM;
                                        goto fail;
                                }
                                n->obligation.kind = kind;
                                memcpy(n->obligation.actor_id, recipients[i]->id, strlen(recipients[i]->id) + 1);
                                memcpy(n->obligation.event_id, id, strlen(id) + 1);
                                n->obligation.seq = seq;
                                memcpy(n->obligation.from, by, strlen(by) + 1);
                                n->obligation.created_ms = created_ms;
                                n->hash = hash_obligation(n->obligation.actor_id, id, kind);
                                n->owner = recipients[i];
                                nodes[n_nodes++] = n;
                        }
                r = table_reserve(&gs->obligation_table, n_nodes);
                if (r < 0)
                        goto fail;
        }

        /* Commit. The sender is never among the recipients, so closing its reply obligation
         * and opening the new ones do not interact. */
        closed = reply_to ? obligation_find(gs, by, reply_to, OBLIGATION_REPLY) : NULL;
        if (closed)
                obligation_drop(gs, closed);
        for (size_t i = 0; i < n_nodes; i++)
                obligation_append_reserved(gs, nodes[i], nodes[i]->owner);
        return 0;

fail:
        for (size_t i = 0; i < n_nodes; i++)
                free(nodes[i]);
        return r;
}

static void apply_ack(struct group_state *gs, struct json_object *event, const char *by) {
        const char *event_id = json_get_event_id(json_get(json_get(event, "data"), "event_id"));
        struct obligation_node *n = event_id ? obligation_find(gs, by, event_id, OBLIGATION_ACK) : NULL;

        if (n)
                obligation_drop(gs, n);
}

/* Only members have cursors. A cursor never moves back, nor past the chat.read event itself:
 * nobody can have read what was not yet written. */
static void apply_read(struct group_state *gs, struct json_object *event, uint64_t seq, const char *by) {
        struct member *m = member_find(gs, by);
        uint64_t up_to;

        if (!m || !json_get_count(json_get(json_get(event, "data"), "up_to_seq"), &up_to))
                return;
        if (up_to > seq)
                up_to = seq;
        if (up_to > m->cursor)
                m->cursor = up_to;
}

static int obligation_kind_from_string(const char *s, enum obligation_kind *ret);

/* A reminder for an obligation that is still open: it counts as sent. Reminder numbers only
 * grow, so a reminder seen twice (it cannot be, but the ledger is outside input) counts once. */
static void apply_reminder(struct group_state *gs, struct json_object *event) {
        struct json_object *data = json_get(event, "data"), *ob = json_get(data, "obligation");
        struct obligation_node *n;
        enum obligation_kind kind;
        uint64_t number;

        if (!json_is_string_equal(json_get(data, "reason"), "reminder") ||
            !json_object_is_type(json_get(ob, "kind"), json_type_string) ||
            obligation_kind_from_string(json_object_get_string(json_get(ob, "kind")), &kind) < 0 ||
            !json_get_count(json_get(data, "reminder"), &number) || number == 0 || number > UINT_MAX)
                return;
        n = obligation_find(gs, json_get_actor_id(json_get(ob, "actor")), json_get_event_id(json_get(ob, "event_id")), kind);
        if (!n || number <= n->obligation.reminders)
                return;
        n->obligation.reminders = (unsigned) number;
        n->obligation.reminded_ms = parse_timestamp_ms(json_object_get_string(json_get(event, "ts")));
}

static struct schedule_entry *schedule_find(const struct group_state *gs, const char *id) {
        for (size_t i = 0; id && i < gs->n_schedules; i++)
                if (streq(gs->schedules[i].id, id))
                        return &gs->schedules[i];
        return NULL;
}

static void schedule_drop(struct group_state *gs, struct schedule_entry *e) {
        size_t i;

        if (!e)
                return;
        i = (size_t) (e - gs->schedules);
        memmove(gs->schedules + i, gs->schedules + i + 1, (gs->n_schedules - i - 1) * sizeof *gs->schedules);
        if (--gs->n_schedules == 0) {
                free(gs->schedules);
                gs->schedules = NULL;
        }
}

static int schedule_kind_from_string(const char *s, enum schedule_kind *ret) {
        if (streq(s, "every"))
                *ret = SCHEDULE_EVERY;
        else if (streq(s, "at"))
                *ret = SCHEDULE_AT;
        else if (streq(s, "cron"))
                *ret = SCHEDULE_CRON;
        else
                return -EBADMSG;
        return 0;
}

static const char *schedule_kind_to_string(enum schedule_kind kind) {
        return kind == SCHEDULE_EVERY ? "every" : kind == SCHEDULE_AT ? "at" : "cron";
}

/* Fills the timing fields of e from a schedule.added's data or a snapshot entry; false when
 * they are missing or inconsistent with the kind. */
static bool schedule_timing_from_json(struct schedule_entry *e, struct json_object *o, bool snapshot) {
        struct json_object *kind = json_get(o, "kind");

        if (!json_object_is_type(kind, json_type_string) ||
            schedule_kind_from_string(json_object_get_string(kind), &e->kind) < 0)
                return false;
        if (e->kind == SCHEDULE_EVERY)
                return json_get_count(json_get(o, "every_usec"), &e->every_usec) && e->every_usec > 0;
        if (e->kind == SCHEDULE_AT) {
                if (snapshot)
                        return json_get_count(json_get(o, "at_ms"), &e->at_ms) && e->at_ms > 0;
                e->at_ms = json_object_is_type(json_get(o, "at"), json_type_string)
                                   ? parse_timestamp_ms(json_object_get_string(json_get(o, "at")))
                                   : 0;
                return e->at_ms > 0;
        }
        {
                const char *cron = json_get_id(json_get(o, "cron"), CRON_EXPR_MAX);

                if (!cron)
                        return false;
                memcpy(e->cron, cron, strlen(cron) + 1);
                return true;
        }
}

static int schedule_append(struct group_state *gs, const struct schedule_entry *e) {
        struct schedule_entry *n = reallocarray(gs->schedules, gs->n_schedules + 1, sizeof *n);

        if (!n)
                return -ENOMEM;
        gs->schedules = n;
        gs->schedules[gs->n_schedules++] = *e;
        return 0;
}

static int apply_schedule_added(struct group_state *gs, struct json_object *event, uint64_t seq) {
        const char *id = json_get_event_id(json_get(event, "id"));
        struct schedule_entry e = { .seq = seq };

        if (!id || schedule_find(gs, id) || !schedule_timing_from_json(&e, json_get(event, "data"), false))
                return 0; /* bad data is ignored, like everywhere in "data" */
        memcpy(e.id, id, strlen(id) + 1);
        e.created_ms = parse_timestamp_ms(json_object_get_string(json_get(event, "ts")));
        return schedule_append(gs, &e);
}

static void apply_schedule_run(struct group_state *gs, struct json_object *event) {
        struct json_object *data = json_get(event, "data"), *due = json_get(data, "due");
        struct schedule_entry *e = schedule_find(gs, json_get_event_id(json_get(data, "schedule_id")));
        uint64_t due_ms;

        if (!e)
                return;
        due_ms = json_object_is_type(due, json_type_string) ? parse_timestamp_ms(json_object_get_string(due)) : 0;
        if (due_ms == 0)
                due_ms = parse_timestamp_ms(json_object_get_string(json_get(event, "ts")));
        if (due_ms > e->last_due_ms)
                e->last_due_ms = due_ms;
        e->runs++;
        if (e->kind == SCHEDULE_AT)
                schedule_drop(gs, e);
}

/* Events are validated before anything changes: a bad envelope (no seq, no kind, a chat event
 * without a valid "by", a chat.message without a valid "id") is -EINVAL. Bad fields inside
 * "data" are ignored instead: the ledger is append-only, and refusing an event would stop the
 * group's state for good. */
int group_state_apply(struct group_state *gs, struct json_object *event) {
        const char *kind, *by = NULL;
        uint64_t seq;
        int r = 0;

        if (!gs || !json_object_is_type(event, json_type_object))
                return -EINVAL;
        if (!json_get_count(json_get(event, "seq"), &seq) || seq != gs->last_seq + 1)
                return -EINVAL;
        if (!json_object_is_type(json_get(event, "kind"), json_type_string))
                return -EINVAL;
        kind = json_object_get_string(json_get(event, "kind"));

        if (streq(kind, "chat.message") || streq(kind, "chat.ack") || streq(kind, "chat.read")) {
                by = json_get_actor_id(json_get(event, "by"));
                if (!by)
                        return -EINVAL;
        }

        if (streq(kind, "actor.added")) {
                const char *id = json_get_actor_id(json_get(json_get(event, "data"), "actor_id"));

                if (id && !member_find(gs, id))
                        r = member_add(gs, id, NULL);
        } else if (streq(kind, "actor.removed")) {
                struct member *m = member_find(gs, json_get_actor_id(json_get(json_get(event, "data"), "actor_id")));

                if (m)
                        member_remove(gs, m);
        } else if (streq(kind, "chat.message")) {
                r = apply_message(gs, event, seq, by);
                if (r >= 0)
                        apply_schedule_run(gs, event);
        } else if (streq(kind, "chat.ack"))
                apply_ack(gs, event, by);
        else if (streq(kind, "chat.read"))
                apply_read(gs, event, seq, by);
        else if (streq(kind, "system.notify"))
                apply_reminder(gs, event);
        else if (streq(kind, "schedule.added"))
                r = apply_schedule_added(gs, event, seq);
        else if (streq(kind, "schedule.removed"))
                schedule_drop(gs, schedule_find(gs, json_get_event_id(json_get(json_get(event, "data"), "schedule_id"))));
        if (r < 0)
                return r;

        gs->last_seq = seq;
        table_maybe_shrink(&gs->obligation_table);
        table_maybe_shrink(&gs->member_table);
        return 0;
}

uint64_t group_state_last_seq(const struct group_state *gs) {
        return gs ? gs->last_seq : 0;
}

bool group_state_is_member(const struct group_state *gs, const char *actor_id) {
        return gs && member_find(gs, actor_id);
}

size_t group_state_members(const struct group_state *gs, const char *const **ret) {
        if (!gs) {
                if (ret)
                        *ret = NULL;
                return 0;
        }
        if (ret)
                *ret = gs->member_ids;
        return gs->n_members;
}

uint64_t group_state_cursor(const struct group_state *gs, const char *actor_id) {
        struct member *m = gs ? member_find(gs, actor_id) : NULL;

        return m ? m->cursor : 0;
}

/* With no open obligations *ret is NULL. */
int group_state_obligations(const struct group_state *gs, const char *actor_id, struct obligation **ret) {
        struct obligation *a;
        size_t n = 0;

        if (!gs || !ret)
                return -EINVAL;
        *ret = NULL;
        if (actor_id) {
                struct member *m = member_find(gs, actor_id);

                for (struct obligation_node *o = m ? m->first : NULL; o; o = o->owner_next)
                        n++;
                if (n == 0)
                        return 0;
                if (n > INT_MAX)
                        return -EOVERFLOW;
                a = calloc(n, sizeof *a);
                if (!a)
                        return -ENOMEM;
                n = 0;
                for (struct obligation_node *o = m->first; o; o = o->owner_next)
                        a[n++] = o->obligation;
        } else {
                n = gs->n_obligations;
                if (n == 0)
                        return 0;
                if (n > INT_MAX)
                        return -EOVERFLOW;
                a = calloc(n, sizeof *a);
                if (!a)
                        return -ENOMEM;
                n = 0;
                for (struct obligation_node *o = gs->first; o; o = o->next)
                        a[n++] = o->obligation;
        }
        *ret = a;
        return (int) n;
}

bool group_state_owes(const struct group_state *gs, const char *actor_id, const char *event_id,
                      enum obligation_kind kind) {
        return gs && obligation_find(gs, actor_id, event_id, kind);
}

int group_state_schedules(const struct group_state *gs, struct schedule_entry **ret) {
        if (!gs || !ret)
                return -EINVAL;
        *ret = NULL;
        if (gs->n_schedules == 0)
                return 0;
        if (gs->n_schedules > INT_MAX)
                return -EOVERFLOW;
        *ret = calloc(gs->n_schedules, sizeof **ret);
        if (!*ret)
                return -ENOMEM;
        memcpy(*ret, gs->schedules, gs->n_schedules * sizeof **ret);
        return (int) gs->n_schedules;
}

const struct schedule_entry *group_state_schedule(const struct group_state *gs, const char *id) {
        return gs ? schedule_find(gs, id) : NULL;
}

/* The rule of message_recipients() against the members as they are now: a non-member is
 * addressed by nothing, whether listed by name or not. */
bool group_state_addressed_to(const struct group_state *gs, struct json_object *event, const char *actor_id) {
        struct json_object *data, *to;
        const char *by;

        if (!gs || !json_object_is_type(event, json_type_object) || !member_find(gs, actor_id))
                return false;
        if (!json_is_string_equal(json_get(event, "kind"), "chat.message") &&
            !json_is_string_equal(json_get(event, "kind"), "system.notify"))
                return false;
        by = json_get_actor_id(json_get(event, "by"));
        if (!by || streq(by, actor_id))
                return false;

        data = json_get(event, "data");
        to = json_get(data, "to");
        if (!to)
                return true;
        if (json_object_is_type(to, json_type_string)) {
                const char *s = json_get_id(to, ACTOR_ID_MAX);

                return streq(s, ALL_MEMBERS) || streq(s, actor_id);
        }
        if (!json_object_is_type(to, json_type_array))
                return false;
        if (json_object_array_length(to) == 0)
                return true;
        for (size_t i = 0; i < json_object_array_length(to); i++) {
                const char *s = json_get_id(json_object_array_get_idx(to, i), ACTOR_ID_MAX);

                if (streq(s, ALL_MEMBERS) || streq(s, actor_id))
                        return true;
        }
        return false;
}

static const char *obligation_kind_to_string(enum obligation_kind kind) {
        return kind == OBLIGATION_REPLY ? "reply" : "ack";
}

static int obligation_kind_from_string(const char *s, enum obligation_kind *ret) {
        if (streq(s, "reply"))
                *ret = OBLIGATION_REPLY;
        else if (streq(s, "ack"))
                *ret = OBLIGATION_ACK;
        else
                return -EBADMSG;
        return 0;
}

/* json_object_object_add() takes the value even on failure; a NULL value means -ENOMEM. */
static int json_add(struct json_object *o, const char *key, struct json_object *v) {
        if (!v)
                return -ENOMEM;
        if (json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static int json_append(struct json_object *a, struct json_object *v) {
        if (!v)
                return -ENOMEM;
        if (json_object_array_add(a, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static int obligation_to_json(const struct obligation *o, struct json_object **ret) {
        _cleanup_json_ struct json_object *j = json_object_new_object();

        if (!j)
                return -ENOMEM;
        if (json_add(j, "kind", json_object_new_string(obligation_kind_to_string(o->kind))) < 0 ||
            json_add(j, "actor_id", json_object_new_string(o->actor_id)) < 0 ||
            json_add(j, "event_id", json_object_new_string(o->event_id)) < 0 ||
            json_add(j, "seq", json_object_new_int64((int64_t) o->seq)) < 0 ||
            json_add(j, "from", json_object_new_string(o->from)) < 0 ||
            json_add(j, "created_ms", json_object_new_int64((int64_t) o->created_ms)) < 0)
                return -ENOMEM;
        /* Only when set, so snapshots without reminders read the same as before they existed. */
        if (o->reminders > 0 &&
            (json_add(j, "reminders", json_object_new_int64(o->reminders)) < 0 ||
             json_add(j, "reminded_ms", json_object_new_int64((int64_t) o->reminded_ms)) < 0))
                return -ENOMEM;
        *ret = j;
        j = NULL;
        return 0;
}

struct json_object *group_state_to_json(const struct group_state *gs) {
        _cleanup_json_ struct json_object *o = NULL, *members = NULL, *cursors = NULL, *obligations = NULL;

        if (!gs)
                return NULL;
        o = json_object_new_object();
        members = json_object_new_array();
        cursors = json_object_new_object();
        obligations = json_object_new_array();
        if (!o || !members || !cursors || !obligations)
                return NULL;

        for (size_t i = 0; i < gs->n_members; i++)
                if (json_append(members, json_object_new_string(gs->members[i]->id)) < 0 ||
                    json_add(cursors, gs->members[i]->id, json_object_new_int64((int64_t) gs->members[i]->cursor)) < 0)
                        return NULL;
        for (struct obligation_node *n = gs->first; n; n = n->next) {
                struct json_object *j;

                if (obligation_to_json(&n->obligation, &j) < 0 || json_append(obligations, j) < 0)
                        return NULL;
        }

        if (gs->n_schedules > 0) {
                _cleanup_json_ struct json_object *schedules = json_object_new_array();

                if (!schedules)
                        return NULL;
                for (size_t i = 0; i < gs->n_schedules; i++) {
                        const struct schedule_entry *e = &gs->schedules[i];
                        struct json_object *j = json_object_new_object();

                        if (json_append(schedules, j) < 0 ||
                            json_add(j, "id", json_object_new_string(e->id)) < 0 ||
                            json_add(j, "seq", json_object_new_int64((int64_t) e->seq)) < 0 ||
                            json_add(j, "kind", json_object_new_string(schedule_kind_to_string(e->kind))) < 0 ||
                            (e->kind == SCHEDULE_EVERY &&
                             json_add(j, "every_usec", json_object_new_int64((int64_t) e->every_usec)) < 0) ||
                            (e->kind == SCHEDULE_AT && json_add(j, "at_ms", json_object_new_int64((int64_t) e->at_ms)) < 0) ||
                            (e->kind == SCHEDULE_CRON && json_add(j, "cron", json_object_new_string(e->cron)) < 0) ||
                            json_add(j, "created_ms", json_object_new_int64((int64_t) e->created_ms)) < 0 ||
                            json_add(j, "last_due_ms", json_object_new_int64((int64_t) e->last_due_ms)) < 0 ||
                            json_add(j, "runs", json_object_new_int64((int64_t) e->runs)) < 0)
                                return NULL;
                }
                if (json_add(o, "schedules", json_object_get(schedules)) < 0)
                        return NULL;
        }
        if (json_add(o, "format_version", json_object_new_int(GROUP_STATE_FORMAT_VERSION)) < 0 ||
            json_add(o, "last_seq", json_object_new_int64((int64_t) gs->last_seq)) < 0 ||
            json_add(o, "members", json_object_get(members)) < 0 ||
            json_add(o, "cursors", json_object_get(cursors)) < 0 ||
            json_add(o, "obligations", json_object_get(obligations)) < 0)
                return NULL;
        return json_object_get(o);
}

/* Every key of o is one of keys[]. */
static bool json_only_keys(struct json_object *o, const char *const *keys, size_t n_keys) {
        json_object_object_foreach(o, key, value) {
                bool known = false;

                (void) value;
                for (size_t i = 0; i < n_keys && !known; i++)
                        known = streq(key, keys[i]);
                if (!known)
                        return false;
        }
        return true;
}

static int obligation_from_json(struct group_state *gs, struct json_object *j, const struct obligation *prev) {
        static const char *const keys[] = { "kind", "actor_id", "event_id", "seq", "from", "created_ms",
                                            "reminders", "reminded_ms" };
        const char *actor_id, *event_id, *from;
        struct obligation_node *n;
        enum obligation_kind kind;
        struct member *owner;
        uint64_t seq, created_ms, reminders = 0, reminded_ms = 0;
        int r;

        if (!json_object_is_type(j, json_type_object) || !json_only_keys(j, keys, ELEMENTSOF(keys)))
                return -EBADMSG;
        if (!json_object_is_type(json_get(j, "kind"), json_type_string) ||
            obligation_kind_from_string(json_object_get_string(json_get(j, "kind")), &kind) < 0)
                return -EBADMSG;
        actor_id = json_get_actor_id(json_get(j, "actor_id"));
        event_id = json_get_event_id(json_get(j, "event_id"));
        from = json_get_actor_id(json_get(j, "from"));
        if (!actor_id || !event_id || !from || streq(actor_id, from))
                return -EBADMSG;
        if (!json_get_count(json_get(j, "seq"), &seq) || seq == 0 || seq > gs->last_seq ||
            !json_get_count(json_get(j, "created_ms"), &created_ms))
                return -EBADMSG;
        if (json_get(j, "reminders") &&
            (!json_get_count(json_get(j, "reminders"), &reminders) || reminders == 0 || reminders > UINT_MAX ||
             !json_get_count(json_get(j, "reminded_ms"), &reminded_ms)))
                return -EBADMSG;
        if (!json_get(j, "reminders") && json_get(j, "reminded_ms"))
                return -EBADMSG;
        /* Oldest first, and one seq is one message. */
        if (prev && (seq < prev->seq || (seq == prev->seq && (!streq(event_id, prev->event_id) ||
                                                              !streq(from, prev->from) ||
                                                              created_ms != prev->created_ms))))
                return -EBADMSG;
        owner = member_find(gs, actor_id);
        if (!owner || obligation_find(gs, actor_id, event_id, kind))
                return -EBADMSG;

        r = table_reserve(&gs->obligation_table, 1);
        if (r < 0)
                return r;
        n = calloc(1, sizeof *n);
        if (!n)
                return -ENOMEM;
        n->obligation.kind = kind;
        memcpy(n->obligation.actor_id, actor_id, strlen(actor_id) + 1);
        memcpy(n->obligation.event_id, event_id, strlen(event_id) + 1);
        n->obligation.seq = seq;
        memcpy(n->obligation.from, from, strlen(from) + 1);
        n->obligation.created_ms = created_ms;
        n->obligation.reminders = (unsigned) reminders;
        n->obligation.reminded_ms = reminded_ms;
        n->hash = hash_obligation(actor_id, event_id, kind);
        obligation_append_reserved(gs, n, owner);
        return 0;
}

/* Schedules: optional; ids unique, seq increasing and within last_seq, timing as for the kind. */
static int schedules_from_json(struct group_state *gs, struct json_object *list) {
        static const char *const keys[] = { "id", "seq", "kind", "every_usec", "at_ms", "cron",
                                            "created_ms", "last_due_ms", "runs" };
        uint64_t prev_seq = 0;

        if (!list)
                return 0;
        if (!json_object_is_type(list, json_type_array))
                return -EBADMSG;
        for (size_t i = 0; i < json_object_array_length(list); i++) {
                struct json_object *j = json_object_array_get_idx(list, i);
                struct schedule_entry e = {};
                const char *id = json_get_event_id(json_get(j, "id"));
                int r;

                if (!json_object_is_type(j, json_type_object) || !json_only_keys(j, keys, ELEMENTSOF(keys)) || !id ||
                    schedule_find(gs, id) || !json_get_count(json_get(j, "seq"), &e.seq) || e.seq <= prev_seq ||
                    e.seq > gs->last_seq || !schedule_timing_from_json(&e, j, true) ||
                    !json_get_count(json_get(j, "created_ms"), &e.created_ms) ||
                    !json_get_count(json_get(j, "last_due_ms"), &e.last_due_ms) ||
                    !json_get_count(json_get(j, "runs"), &e.runs))
                        return -EBADMSG;
                memcpy(e.id, id, strlen(id) + 1);
                prev_seq = e.seq;
                r = schedule_append(gs, &e);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Trusts nothing: types, id lengths, members unique, cursors and obligations only for members
 * and within last_seq, obligations oldest first without duplicates. */
int group_state_from_json(struct json_object *o, struct group_state **ret) {
        static const char *const keys[] = { "format_version", "last_seq", "members", "cursors", "obligations",
                                            "schedules" };
        _cleanup_group_state_ struct group_state *gs = NULL;
        struct json_object *version, *members, *cursors, *obligations;
        const struct obligation *prev = NULL;
        int64_t v;
        int r;

        if (!ret)
                return -EINVAL;
        if (!json_object_is_type(o, json_type_object))
                return -EBADMSG;
        version = json_get(o, "format_version");
        if (!json_object_is_type(version, json_type_int))
                return -EBADMSG;
        v = json_object_get_int64(version);
        if (v > GROUP_STATE_FORMAT_VERSION)
                return -EPROTONOSUPPORT;
        if (v < 1 || !json_only_keys(o, keys, ELEMENTSOF(keys)))
                return -EBADMSG;

        r = group_state_new(&gs);
        if (r < 0)
                return r;
        if (!json_get_count(json_get(o, "last_seq"), &gs->last_seq))
                return -EBADMSG;

        members = json_get(o, "members");
        if (!json_object_is_type(members, json_type_array))
                return -EBADMSG;
        for (size_t i = 0; i < json_object_array_length(members); i++) {
                const char *id = json_get_actor_id(json_object_array_get_idx(members, i));

                if (!id || member_find(gs, id))
                        return -EBADMSG;
                r = member_add(gs, id, NULL);
                if (r < 0)
                        return r;
        }

        cursors = json_get(o, "cursors");
        if (!json_object_is_type(cursors, json_type_object))
                return -EBADMSG;
        json_object_object_foreach(cursors, key, value) {
                struct member *m = member_find(gs, key);
                uint64_t c;

                if (!m || !json_get_count(value, &c) || c > gs->last_seq)
                        return -EBADMSG;
                m->cursor = c;
        }

        obligations = json_get(o, "obligations");
        if (!json_object_is_type(obligations, json_type_array))
                return -EBADMSG;
        for (size_t i = 0; i < json_object_array_length(obligations); i++) {
                r = obligation_from_json(gs, json_object_array_get_idx(obligations, i), prev);
                if (r < 0)
                        return r;
                prev = &gs->last->obligation;
        }

        r = schedules_from_json(gs, json_get(o, "schedules"));
        if (r < 0)
                return r;

        *ret = gs;
        gs = NULL;
        return 0;
}

static bool obligation_equal(const struct obligation *a, const struct obligation *b) {
        return a->kind == b->kind && a->seq == b->seq && a->created_ms == b->created_ms &&
               a->reminders == b->reminders && a->reminded_ms == b->reminded_ms &&
               streq(a->actor_id, b->actor_id) && streq(a->event_id, b->event_id) && streq(a->from, b->from);
}

bool group_state_equal(const struct group_state *a, const struct group_state *b) {
        const struct obligation_node *x, *y;

        if (!a || !b)
                return a == b;
        if (a->last_seq != b->last_seq || a->n_members != b->n_members || a->n_obligations != b->n_obligations)
                return false;
        for (size_t i = 0; i < a->n_members; i++)
                if (!streq(a->members[i]->id, b->members[i]->id) || a->members[i]->cursor != b->members[i]->cursor)
                        return false;
        for (x = a->first, y = b->first; x && y; x = x->next, y = y->next)
                if (!obligation_equal(&x->obligation, &y->obligation))
                        return false;
        if (x || y || a->n_schedules != b->n_schedules)
                return false;
        for (size_t i = 0; i < a->n_schedules; i++) {
                const struct schedule_entry *p = &a->schedules[i], *q = &b->schedules[i];

                if (!streq(p->id, q->id) || p->seq != q->seq || p->kind != q->kind || p->every_usec != q->every_usec ||
                    p->at_ms != q->at_ms || !streq(p->cron, q->cron) || p->created_ms != q->created_ms ||
                    p->last_due_ms != q->last_due_ms || p->runs != q->runs)
                        return false;
        }
        return true;
}
