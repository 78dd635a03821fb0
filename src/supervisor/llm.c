/* llm actors: turns, replies, usage, failures and budgets (see llm.h). */

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "actors.h"
#include "channel_policy.h"
#include "config.h"
#include "group_state.h"
#include "groups.h"
#include "llm.h"
#include "llm_context.h"
#include "llm_settings.h"
#include "log.h"
#include "macro.h"
#include "messages.h"
#include "proto.h"
#include "supervisor.h"
#include "timeutil.h"

#define LLM_HISTORY_SCAN_MAX 2000u /* events looked at, newest first, for one turn's context */
#define LLM_PAGE 64u
/* The request must fit one packet of the worker channel, with room for the envelope. */
#define LLM_REQUEST_MAX (PROTO_PACKET_MAX - 8192u)
/* How long conclave-channels may take beyond the provider's own bounds before we give up. */
#define LLM_CALL_SLACK_USEC (30 * USEC_PER_SEC)
#define LLM_RETRY_AFTER_MAX_USEC (120 * USEC_PER_SEC) /* llm_call.h, the channels side */

struct llm_turn {
        struct llm_actor *owner;
        struct llm_turn *next;
        uint64_t seq;
        char event_id[27];
        char from[65];
        char excerpt[80];
        char provider[65];
        char model[257];
        struct proto_call *call;
        uint64_t started_usec; /* CLOCK_MONOTONIC, when the message was picked up */
        size_t prompt_chars;
        struct json_object *reply; /* from conclave-channels, handled at the call's end */
};

struct llm_actor {
        struct actor *actor;
        struct llm_settings settings;
        uint64_t delivered_seq; /* highest seq considered for answering */
        bool started;           /* delivered_seq set from the cursor */
        struct llm_turn *turns;
        unsigned in_flight;
        bool pumping;

        bool degraded;
        bool exhausted;
        char last_error[512];
        char last_error_code[32];
        uint64_t last_error_realtime_usec;
        uint64_t turns_ok, turns_failed, turns_refused;

        uint64_t day; /* UTC day of tokens_today; 0: not loaded */
        uint64_t tokens_today;
};

static char *llm_fields(const struct llm_actor *l, const char *provider, char *buf, size_t size) {
        snprintf(buf, size, "CONCLAVE_GROUP=%s\nCONCLAVE_ACTOR=%s%s%s", l->actor->group->id, l->actor->id,
                 provider ? "\nCONCLAVE_PROVIDER=" : "", provider ? provider : "");
        return buf;
}
#define log_llm(l, provider, level, error, ...)                                                      \
        ({                                                                                           \
                char _f[256];                                                                        \
                log_fields_errno(level, error, llm_fields(l, provider, _f, sizeof _f), __VA_ARGS__); \
        })

static const char *jstr(struct json_object *o, const char *key) {
        struct json_object *v;
        if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static uint64_t jseq(struct json_object *event) {
        struct json_object *v;
        return json_object_object_get_ex(event, "seq", &v) ? json_object_get_uint64(v) : 0;
}

static struct supervisor *llm_supervisor(const struct llm_actor *l) {
        return l->actor->group->supervisor;
}

static bool is_llm_actor(struct group *g, const char *id) {
        for (size_t i = 0; i < g->n_actors; i++)
                if (streq(g->actors[i]->id, id))
                        return g->actors[i]->llm != NULL;
        return false;
}

int llm_actor_new(struct actor *a, struct json_object *settings, struct llm_actor **ret) {
        struct llm_actor *l = calloc(1, sizeof *l);
        char err[256] = "";
        int r;

        if (!l)
                return -ENOMEM;
        l->actor = a;
        r = llm_settings_from_json(settings, &l->settings, err, sizeof err);
        if (r == -EINVAL) {
                log_llm(l, NULL, LOG_WARNING, 0, "llm actor %s in group %s: stored settings are invalid (%s); using defaults",
                        a->id, a->group->id, err);
                r = llm_settings_from_json(NULL, &l->settings, err, sizeof err);
        }
        if (r < 0) {
                free(l);
                return r;
        }
        *ret = l;
        return 0;
}

static void turn_free(struct llm_turn *t) {
        struct llm_actor *l = t->owner;

        for (struct llm_turn **p = &l->turns; *p; p = &(*p)->next)
                if (*p == t) {
                        *p = t->next;
                        l->in_flight--;
                        break;
                }
        json_object_put(t->reply);
        free(t);
}

static void cancel_turns(struct llm_actor *l) {
        while (l->turns) {
                struct llm_turn *t = l->turns;
                if (t->call)
                        (void) proto_call_cancel(t->call);
                t->call = NULL;
                turn_free(t);
        }
}

void llm_actor_free(struct llm_actor *l) {
        if (!l)
                return;
        cancel_turns(l);
        llm_settings_done(&l->settings);
        free(l);
}

static bool llm_should_run(const struct llm_actor *l) {
        const struct group *g = l->actor->group;
        return l->actor->enabled && !g->broken && g->state == GROUP_ACTIVE;
}

static struct worker_proc *channels_ready(struct llm_actor *l) {
        struct worker_proc *w = &llm_supervisor(l)->workers[WORKER_CHANNELS];
        return w->state == WORKER_RUNNING && proto_link_is_open(w->link) ? w : NULL;
}

/* The provider a turn uses now: the actor's, or the default. */
static const struct config_provider *llm_provider(const struct llm_actor *l) {
        const struct config *c = llm_supervisor(l)->config;
        return l->settings.provider ? config_find_provider(c, l->settings.provider) : config_default_provider(c);
}

/* --- which messages, and the read cursor ------------------------------------------------- */

static bool names_actor(struct json_object *to, const char *id) {
        if (json_object_is_type(to, json_type_string))
                return streq(json_object_get_string(to), id);
        if (!json_object_is_type(to, json_type_array))
                return false;
        for (size_t i = 0; i < json_object_array_length(to); i++)
                if (streq(json_object_get_string(json_object_array_get_idx(to, i)), id))
                        return true;
        return false;
}

static bool should_answer(struct llm_actor *l, struct json_object *event) {
        struct group *g = l->actor->group;
        struct json_object *data = NULL, *to = NULL, *rr = NULL;
        const char *by = jstr(event, "by");
        bool reply_required;

        if (!streq(jstr(event, "kind"), "chat.message") || !by || streq(by, l->actor->id) ||
            !group_state_addressed_to(g->gs, event, l->actor->id))
                return false;
        json_object_object_get_ex(event, "data", &data);
        json_object_object_get_ex(data, "to", &to);
        reply_required = json_object_object_get_ex(data, "reply_required", &rr) && json_object_get_boolean(rr);
        if (is_llm_actor(g, by) && !reply_required)
                return false; /* two llm actors must not answer each other forever */
        /* Chat users address someone in the text ("gpt: …", "@gpt"); the channels turn a leading
         * address into `to` by the same rule (channel_hub.c). */
        return names_actor(to, l->actor->id) || reply_required || channel_policy_mentions(jstr(data, "text"), l->actor->id);
}

/* Everything before the oldest turn still running is handled: the cursor may move there. */
static void advance_cursor(struct llm_actor *l) {
        struct group *g = l->actor->group;
        uint64_t upto = l->delivered_seq;
        struct message_error err = {};

        for (struct llm_turn *t = l->turns; t; t = t->next)
                if (t->seq - 1 < upto)
                        upto = t->seq - 1;
        if (upto > group_state_cursor(g->gs, l->actor->id) && g->state != GROUP_STOPPED && !g->broken)
                (void) message_mark_read(g, l->actor->id, upto, NULL, &err);
}

/* --- failures ------------------------------------------------------------------------------- */

static void add_recipient(struct group *g, struct json_object *to, const char *id) {
        if (!id || !group_state_is_member(g->gs, id))
                return;
        for (size_t i = 0; i < json_object_array_length(to); i++)
                if (streq(json_object_get_string(json_object_array_get_idx(to, i)), id))
                        return;
        json_object_array_add(to, json_object_new_string(id));
}

/* A system.notify to whoever asked and to the operator, and one journal line. */
static void notify_failure(struct llm_actor *l, struct llm_turn *t, const char *reason, const char *code,
                           const char *message, struct json_object *error) {
        struct group *g = l->actor->group;
        _cleanup_json_ struct json_object *data = json_object_new_object(), *to = json_object_new_array();
        _cleanup_free_ char *text = NULL;
        int level = streq(reason, "llm_budget") ? LOG_NOTICE : LOG_WARNING;

        if (!data || !to)
                return;
        if (asprintf(&text, "%s could not answer #%" PRIu64 " from %s (\"%s\"): %s", l->actor->id, t->seq, t->from,
                     t->excerpt, message) < 0)
                return;
        log_llm(l, *t->provider ? t->provider : NULL, level, 0, "group %s: %s [%s]", g->id, text, code);
        if (llm_supervisor(l)->state == SUPERVISOR_STOPPING || g->broken || g->state == GROUP_STOPPED)
                return;
        add_recipient(g, to, t->from);
        add_recipient(g, to, "operator");
        json_object_object_add(data, "text", json_object_new_string(text));
        json_object_object_add(data, "to", json_object_get(to));
        json_object_object_add(data, "reason", json_object_new_string(reason));
        json_object_object_add(data, "actor_id", json_object_new_string(l->actor->id));
        json_object_object_add(data, "event_id", json_object_new_string(t->event_id));
        json_object_object_add(data, "seq", json_object_new_uint64(t->seq));
        if (*t->provider)
                json_object_object_add(data, "provider", json_object_new_string(t->provider));
        if (*t->model)
                json_object_object_add(data, "model", json_object_new_string(t->model));
        json_object_object_add(data, "error", error ? json_object_get(error) : NULL);
        (void) group_append(g, "system.notify", "conclave", data, NULL, NULL);
}

static void turn_failed(struct llm_actor *l, struct llm_turn *t, const char *code, struct json_object *error,
                        const char *fmt, ...) _printf_(5, 6);
static void turn_failed(struct llm_actor *l, struct llm_turn *t, const char *code, struct json_object *error,
                        const char *fmt, ...) {
        _cleanup_json_ struct json_object *err = error ? json_object_get(error) : json_object_new_object();
        char message[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(message, sizeof message, fmt, ap);
        va_end(ap);
        if (err && !error) {
                json_object_object_add(err, "code", json_object_new_string(code));
                json_object_object_add(err, "message", json_object_new_string(message));
        }
        l->turns_failed++;
        l->degraded = true;
        snprintf(l->last_error, sizeof l->last_error, "%s", message);
        snprintf(l->last_error_code, sizeof l->last_error_code, "%s", code);
        l->last_error_realtime_usec = now_usec(CLOCK_REALTIME);
        notify_failure(l, t, "llm_error", code, message, err);
}

/* --- the daily budget ------------------------------------------------------------------------ */

static uint64_t utc_day(uint64_t realtime_usec) {
        return realtime_usec / (86400 * USEC_PER_SEC) + 1; /* + 1: 0 means "not loaded" */
}

struct usage_sum {
        const char *actor;
        uint64_t tokens;
};

static int sum_usage(struct json_object *event, void *userdata) {
        struct usage_sum *u = userdata;
        struct json_object *data = NULL, *v;

        if (!streq(jstr(event, "kind"), "llm.usage") || !json_object_object_get_ex(event, "data", &data) ||
            !streq(jstr(data, "actor_id"), u->actor))
                return 0;
        if (json_object_object_get_ex(data, "input_tokens", &v))
                u->tokens += json_object_get_uint64(v);
        if (json_object_object_get_ex(data, "output_tokens", &v))
                u->tokens += json_object_get_uint64(v);
        return 0;
}

/* Today's usage from the ledger (so it survives restarts): binary search for the first event
 * of the UTC day (ids, and so timestamps, grow with seq), then one pass over today. */
static int load_tokens_today(struct llm_actor *l, uint64_t day) {
        struct ledger *ledger = l->actor->group->ledger;
        struct usage_sum u = { .actor = l->actor->id };
        char midnight[40];
        time_t t = (time_t) ((day - 1) * 86400);
        struct tm tm;
        uint64_t lo = 1, hi = ledger_last_seq(ledger);
        int r;

        gmtime_r(&t, &tm);
        strftime(midnight, sizeof midnight, "%Y-%m-%dT00:00:00.000Z", &tm);
        while (lo <= hi) {
                uint64_t mid = lo + (hi - lo) / 2;
                _cleanup_json_ struct json_object *e = NULL;
                r = ledger_read(ledger, mid, &e);
                if (r < 0)
                        return r;
                if (strcmp(jstr(e, "ts") ?: "", midnight) < 0)
                        lo = mid + 1;
                else
                        hi = mid - 1;
        }
        r = ledger_read_range(ledger, lo - 1, SIZE_MAX, sum_usage, &u);
        if (r < 0)
                return r;
        l->day = day;
        l->tokens_today = u.tokens;
        return 0;
}

/* 0: within budget; 1: exhausted. */
static int budget_check(struct llm_actor *l) {
        uint64_t day = utc_day(now_usec(CLOCK_REALTIME));

        if (l->settings.daily_tokens == 0)
                return 0;
        if (l->day != day) {
                int r = load_tokens_today(l, day);
                if (r < 0) {
                        log_llm(l, NULL, LOG_ERR, r, "llm actor %s: cannot read today's usage from the ledger", l->actor->id);
                        return 0; /* an unreadable ledger stops the group soon enough */
                }
        }
        l->exhausted = l->tokens_today >= l->settings.daily_tokens;
        return l->exhausted;
}

/* --- one turn --------------------------------------------------------------------------------- */

static uint64_t jtime(struct json_object *timing, const char *key) {
        struct json_object *v;
        return timing && json_object_object_get_ex(timing, key, &v) ? json_object_get_uint64(v) : 0;
}

static void turn_succeeded(struct llm_actor *l, struct llm_turn *t, struct json_object *result) {
        struct group *g = l->actor->group;
        _cleanup_json_ struct json_object *usage_event = json_object_new_object();
        struct json_object *usage = NULL, *timing = NULL, *reply_event = NULL, *v;
        struct message_error err = {};
        const char *text = jstr(result, "text");
        uint64_t in = 0, out = 0, sent, first, last, started;
        bool reported;
        int r;

        if (!text || !*text) {
                turn_failed(l, t, "bad_response", NULL, "conclave-channels returned no text");
                return;
        }
        {
                struct message_args m = { .by = l->actor->id, .text = text, .reply_to = t->event_id, .keep_cursor = true };
                r = message_post(g, &m, NULL, &err);
        }
        if (r < 0) {
                turn_failed(l, t, "internal", NULL, "the reply could not be posted: %s", err.message);
                return;
        }
        /* message_post appended the reply last: it is the ledger's last event now. */
        if (ledger_read(g->ledger, ledger_last_seq(g->ledger), &reply_event) < 0)
                reply_event = NULL;

        json_object_object_get_ex(result, "usage", &usage);
        json_object_object_get_ex(result, "timing", &timing);
        reported = usage && json_object_is_type(usage, json_type_object);
        if (reported) {
                if (json_object_object_get_ex(usage, "input_tokens", &v))
                        in = json_object_get_uint64(v);
                if (json_object_object_get_ex(usage, "output_tokens", &v))
                        out = json_object_get_uint64(v);
        } else {
                /* No usage from the server: about four characters a token, so the budget holds. */
                in = (t->prompt_chars + 3) / 4;
                out = (strlen(text) + 3) / 4;
        }
        started = jtime(timing, "started_usec");
        sent = jtime(timing, "sent_usec");
        first = jtime(timing, "first_byte_usec");
        last = jtime(timing, "last_byte_usec");

        json_object_object_add(usage_event, "actor_id", json_object_new_string(l->actor->id));
        json_object_object_add(usage_event, "event_id", json_object_new_string(t->event_id));
        json_object_object_add(usage_event, "reply_id", reply_event && jstr(reply_event, "id")
                                                                ? json_object_new_string(jstr(reply_event, "id")) : NULL);
        json_object_object_add(usage_event, "provider", json_object_new_string(jstr(result, "provider") ?: t->provider));
        json_object_object_add(usage_event, "model", json_object_new_string(jstr(result, "model") ?: t->model));
        json_object_object_add(usage_event, "input_tokens", json_object_new_uint64(in));
        json_object_object_add(usage_event, "output_tokens", json_object_new_uint64(out));
        json_object_object_add(usage_event, "usage_reported", json_object_new_boolean(reported));
        json_object_object_add(usage_event, "latency_ms", json_object_new_uint64(last > started ? (last - started) / 1000 : 0));
        json_object_object_add(usage_event, "first_token_ms", json_object_new_uint64(first > sent ? (first - sent) / 1000 : 0));
        /* Conclave's own share before the provider: from picking up the durable message to
         * handing the request to curl (both CLOCK_MONOTONIC, one machine). */
        json_object_object_add(usage_event, "overhead_to_provider_us",
                               json_object_new_uint64(started > t->started_usec ? started - t->started_usec : 0));
        if (json_object_object_get_ex(result, "attempts", &v))
                json_object_object_add(usage_event, "attempts", json_object_get(v));
        if (jstr(result, "finish_reason"))
                json_object_object_add(usage_event, "finish_reason", json_object_new_string(jstr(result, "finish_reason")));
        if (json_object_object_get_ex(result, "truncated", &v) && json_object_get_boolean(v))
                json_object_object_add(usage_event, "truncated", json_object_new_boolean(true));
        (void) group_append(g, "llm.usage", l->actor->id, usage_event, NULL, NULL);
        json_object_put(reply_event);

        if (l->day == utc_day(now_usec(CLOCK_REALTIME)))
                l->tokens_today += in + out;
        l->turns_ok++;
        l->degraded = false;
}

static void on_turn_reply(struct json_object *reply, int error, bool more, void *userdata) {
        struct llm_turn *t = userdata;
        struct llm_actor *l = t->owner;
        struct json_object *v, *err = NULL, *result = NULL;

        /* Only kept here: the call may already be gone (a plain reply to a streaming call is
         * handed over after the call was freed), so nothing happens until the last callback. */
        if (reply && !t->reply)
                t->reply = json_object_get(reply);
        if (more)
                return;
        t->call = NULL; /* proto_link freed it */
        if (t->reply) {
                if (json_object_object_get_ex(t->reply, "ok", &v) && json_object_get_boolean(v) &&
                    json_object_object_get_ex(t->reply, "result", &result))
                        turn_succeeded(l, t, result);
                else {
                        struct json_object *status = NULL, *attempts = NULL;
                        char http[32] = "";
                        int64_t n;

                        json_object_object_get_ex(t->reply, "error", &err);
                        json_object_object_get_ex(err, "status", &status);
                        json_object_object_get_ex(err, "attempts", &attempts);
                        if (status && json_object_is_type(status, json_type_int))
                                snprintf(http, sizeof http, ", HTTP %" PRId64, json_object_get_int64(status));
                        n = attempts ? json_object_get_int64(attempts) : 0;
                        turn_failed(l, t, jstr(err, "code") ?: "internal", err, "provider %s (model %s): %s after %" PRId64
                                    " attempt%s%s: %s", t->provider, t->model, jstr(err, "code") ?: "internal", n,
                                    n == 1 ? "" : "s", http, jstr(err, "message") ?: "no reason given");
                }
        } else if (llm_supervisor(l)->state == SUPERVISOR_STOPPING) {
                /* Shutting down: the message stays unanswered and unread, and is answered after
                 * the next start. */
                turn_free(t);
                return;
        } else if (error == -ETIMEDOUT)
                turn_failed(l, t, "timeout", NULL, "conclave-channels did not answer in time");
        else if (error == -ECONNABORTED)
                turn_failed(l, t, "worker_lost", NULL, "conclave-channels went away during the request (see its journal)");
        else
                turn_failed(l, t, "internal", NULL, "the request to conclave-channels failed: %s",
                            strerror(error < 0 ? -error : EIO));
        turn_free(t);
        advance_cursor(l);
        llm_actor_pump(l);
}

struct history {
        struct json_object **events; /* newest first */
        size_t n, cap;
        struct json_object *page;    /* one page read forward */
};

static int collect_page(struct json_object *event, void *userdata) {
        struct history *h = userdata;
        return json_object_array_add(h->page, json_object_get(event)) < 0 ? -ENOMEM : 0;
}

/* Messages to or from the actor before `seq`, newest first, at most `max`. */
static int gather_history(struct llm_actor *l, uint64_t seq, size_t max, struct history *h) {
        struct group *g = l->actor->group;
        size_t scanned = 0;

        for (uint64_t end = seq - 1; end > 0 && h->n < max && scanned < LLM_HISTORY_SCAN_MAX;) {
                uint64_t start = end > LLM_PAGE ? end - LLM_PAGE : 0;
                int r;

                h->page = json_object_new_array();
                if (!h->page)
                        return -ENOMEM;
                r = ledger_read_range(g->ledger, start, end - start, collect_page, h);
                if (r < 0) {
                        h->page = (json_object_put(h->page), NULL);
                        return r;
                }
                for (size_t i = json_object_array_length(h->page); i > 0 && h->n < max; i--) {
                        struct json_object *e = json_object_array_get_idx(h->page, i - 1), *data = NULL;
                        const char *by = jstr(e, "by");
                        scanned++;
                        if (!streq(jstr(e, "kind"), "chat.message") || !json_object_object_get_ex(e, "data", &data) ||
                            !jstr(data, "text") || !by ||
                            !(streq(by, l->actor->id) || group_state_addressed_to(g->gs, e, l->actor->id)))
                                continue;
                        if (h->n == h->cap) {
                                size_t cap = h->cap ? h->cap * 2 : 16;
                                struct json_object **n = reallocarray(h->events, cap, sizeof *n);
                                if (!n) {
                                        h->page = (json_object_put(h->page), NULL);
                                        return -ENOMEM;
                                }
                                h->events = n;
                                h->cap = cap;
                        }
                        h->events[h->n++] = json_object_get(e);
                }
                h->page = (json_object_put(h->page), NULL);
                end = start;
        }
        return 0;
}

static void history_done(struct history *h) {
        for (size_t i = 0; i < h->n; i++)
                json_object_put(h->events[i]);
        free(h->events);
        json_object_put(h->page);
}

/* The llm.complete arguments for answering `event`; NULL with *ret_error set on failure. */
static struct json_object *build_request(struct llm_actor *l, struct llm_turn *t, struct json_object *event,
                                         const struct config_provider *p, const char **ret_error) {
        struct actor *a = l->actor;
        struct group *g = a->group;
        _cleanup_json_ struct json_object *args = NULL;
        _cleanup_free_ struct llm_context_item *items = NULL;
        _cleanup_free_ char *system = NULL;
        struct history h = {};
        struct json_object *data = NULL;
        struct llm_context_item current;
        size_t budget = l->settings.context_chars;
        int r;

        json_object_object_get_ex(event, "data", &data);
        current = (struct llm_context_item){ .by = jstr(event, "by"), .text = jstr(data, "text") };
        if (!current.by || !current.text) {
                *ret_error = "the message has no text";
                return NULL;
        }
        r = gather_history(l, t->seq, l->settings.context_messages, &h);
        items = calloc(h.n + 1, sizeof *items);
        if (r < 0 || !items) {
                history_done(&h);
                *ret_error = "cannot read the conversation from the ledger";
                return NULL;
        }
        for (size_t i = 0; i < h.n; i++) {
                struct json_object *d = NULL;
                json_object_object_get_ex(h.events[i], "data", &d);
                items[i] = (struct llm_context_item){ .by = jstr(h.events[i], "by"), .text = jstr(d, "text") };
        }
        system = l->settings.system_prompt ? strdup(l->settings.system_prompt)
                                           : llm_default_system_prompt(a->id, a->title, g->id, g->title);
        /* Halve the history budget until the request fits one packet of the worker channel. */
        for (unsigned tries = 0; tries < 8; tries++) {
                struct json_object *messages = NULL;
                const char *text;
                size_t used = 0;

                json_object_put(args);
                args = json_object_new_object();
                if (!args || !system || llm_context_build(a->id, items, h.n, &current, l->settings.context_messages, budget,
                                                          &messages, &used) < 0) {
                        history_done(&h);
                        *ret_error = "out of memory";
                        return NULL;
                }
                json_object_object_add(args, "provider", json_object_new_string(p->name));
                if (l->settings.model)
                        json_object_object_add(args, "model", json_object_new_string(l->settings.model));
                json_object_object_add(args, "system", json_object_new_string(system));
                json_object_object_add(args, "messages", messages);
                if (l->settings.max_tokens)
                        json_object_object_add(args, "max_tokens", json_object_new_int64(l->settings.max_tokens));
                json_object_object_add(args, "group", json_object_new_string(g->id));
                json_object_object_add(args, "actor", json_object_new_string(a->id));
                text = json_object_to_json_string_ext(args, JSON_C_TO_STRING_PLAIN);
                if (text && strlen(text) <= LLM_REQUEST_MAX) {
                        t->prompt_chars = strlen(system);
                        for (size_t i = 0; i < json_object_array_length(messages); i++)
                                t->prompt_chars += strlen(jstr(json_object_array_get_idx(messages, i), "content") ?: "");
                        history_done(&h);
                        return json_object_get(args);
                }
                if (used == 0)
                        break;
                budget = budget / 2;
        }
        history_done(&h);
        *ret_error = "the message and system prompt do not fit one request to conclave-channels";
        return NULL;
}

/* Starts a turn for `event`. Returns 1 when a turn runs, 0 when the message was handled at
 * once (refused, failed early). */
static int start_turn(struct llm_actor *l, struct worker_proc *w, struct json_object *event) {
        struct group *g = l->actor->group;
        const struct config_provider *p = llm_provider(l);
        _cleanup_json_ struct json_object *args = NULL;
        struct json_object *data = NULL;
        struct llm_turn *t = calloc(1, sizeof *t);
        const char *why = NULL;
        uint64_t timeout;
        int r;

        if (!t)
                return log_llm(l, NULL, LOG_ERR, ENOMEM, "out of memory"), 0;
        t->owner = l;
        t->seq = jseq(event);
        t->started_usec = now_usec(CLOCK_MONOTONIC);
        snprintf(t->event_id, sizeof t->event_id, "%s", jstr(event, "id") ?: "");
        snprintf(t->from, sizeof t->from, "%s", jstr(event, "by") ?: "");
        json_object_object_get_ex(event, "data", &data);
        {
                /* The start of the question, on one line, cut at a character boundary. */
                const char *text = jstr(data, "text") ?: "";
                size_t n = 0, max = sizeof t->excerpt - 4;
                while (n < max && text[n])
                        n++;
                while (n > 0 && n < strlen(text) && ((unsigned char) text[n] & 0xc0) == 0x80)
                        n--;
                snprintf(t->excerpt, sizeof t->excerpt, "%.*s%s", (int) n, text, text[n] ? "…" : "");
                for (char *c = t->excerpt; *c; c++)
                        if (*c == '\n' || *c == '\t' || *c == '\r')
                                *c = ' ';
        }
        /* A turn in the list from here on, so failures below are reported like any other. */
        t->next = l->turns;
        l->turns = t;
        l->in_flight++;

        if (!p) {
                if (l->settings.provider)
                        turn_failed(l, t, "config", NULL, "provider %s is not configured ([providers.%s] in config.toml)",
                                    l->settings.provider, l->settings.provider);
                else
                        turn_failed(l, t, "config", NULL, "no provider: set [provider] default or give the actor one "
                                    "(conclave actor add … --provider NAME)");
                turn_free(t);
                return 0;
        }
        snprintf(t->provider, sizeof t->provider, "%s", p->name);
        snprintf(t->model, sizeof t->model, "%s", l->settings.model ? l->settings.model : p->model ? p->model : "");
        if (budget_check(l) > 0) {
                char msg[256];
                snprintf(msg, sizeof msg, "the daily token budget of %" PRIu64 " is used up (%" PRIu64 " tokens today, UTC); "
                         "it renews at midnight UTC", l->settings.daily_tokens, l->tokens_today);
                l->turns_refused++;
                notify_failure(l, t, "llm_budget", "budget", msg, NULL);
                turn_free(t);
                return 0;
        }
        args = build_request(l, t, event, p, &why);
        if (!args) {
                turn_failed(l, t, "context_too_long", NULL, "%s", why);
                turn_free(t);
                return 0;
        }
        /* The provider's attempts, backoffs and Retry-After waits, plus slack: past this the
         * channels side is not doing its job and the turn fails here. */
        timeout = (p->retries + 1) * (p->timeout_usec + LLM_RETRY_AFTER_MAX_USEC) + LLM_CALL_SLACK_USEC;
        r = proto_link_call(w->link, "llm.complete", args, timeout, true, on_turn_reply, t, &t->call);
        if (r < 0) {
                turn_failed(l, t, "internal", NULL, "cannot send the request to conclave-channels: %s", strerror(-r));
                turn_free(t);
                return 0;
        }
        log_llm(l, p->name, LOG_DEBUG, 0, "group %s: %s answers #%" PRIu64 " from %s with %s (model %s)", g->id,
                l->actor->id, t->seq, t->from, p->name, t->model);
        return 1;
}

/* --- pumping -------------------------------------------------------------------------------- */

struct scan {
        struct llm_actor *l;
        struct json_object *found;
};

static int scan_one(struct json_object *event, void *userdata) {
        struct scan *sc = userdata;
        uint64_t seq = jseq(event);

        if (seq <= sc->l->delivered_seq)
                return 0;
        if (should_answer(sc->l, event)) {
                sc->found = json_object_get(event);
                return -ECANCELED;
        }
        sc->l->delivered_seq = seq;
        return 0;
}

void llm_actor_pump(struct llm_actor *l) {
        struct group *g = l->actor->group;
        struct worker_proc *w;
        uint64_t durable;
        bool refused = false;

        if (l->pumping || !llm_should_run(l) || !(w = channels_ready(l)))
                return;
        l->pumping = true;
        if (!l->started) {
                /* At least once: whatever is after the cursor is answered (again) after a restart. */
                l->delivered_seq = group_state_cursor(g->gs, l->actor->id);
                l->started = true;
        }
        durable = group_durable_seq(g);
        while (l->in_flight < l->settings.concurrency && l->delivered_seq < durable && llm_should_run(l)) {
                struct scan sc = { .l = l };
                int r = ledger_read_range(g->ledger, l->delivered_seq, LLM_PAGE, scan_one, &sc);

                if (r < 0 && r != -ECANCELED) {
                        log_llm(l, NULL, LOG_ERR, r, "llm actor %s: cannot read the ledger of group %s", l->actor->id, g->id);
                        break;
                }
                if (!sc.found) {
                        if (r == 0)
                                break;
                        continue;
                }
                if (jseq(sc.found) > durable) {
                        json_object_put(sc.found);
                        break; /* not durable yet: the flush pumps again */
                }
                l->delivered_seq = jseq(sc.found);
                if (start_turn(l, w, sc.found) == 0)
                        refused = true;
                json_object_put(sc.found);
        }
        if (l->delivered_seq > durable)
                l->delivered_seq = durable;
        l->pumping = false;
        if (refused)
                advance_cursor(l);
}

void llm_actor_stop(struct llm_actor *l) {
        if (l->turns)
                log_llm(l, NULL, LOG_INFO, 0, "llm actor %s: cancelling %u running turn(s); they are answered once it runs again",
                        l->actor->id, l->in_flight);
        cancel_turns(l);
        l->started = false; /* re-read from the cursor when it runs again */
}

void llm_actor_sync(struct llm_actor *l) {
        if (llm_should_run(l))
                llm_actor_pump(l);
        else
                llm_actor_stop(l);
}

void llm_actor_restart(struct llm_actor *l) {
        cancel_turns(l);
        l->started = false;
        l->degraded = false;
        l->exhausted = false;
        l->day = 0;
        llm_actor_pump(l);
}

const char *llm_actor_state(const struct llm_actor *l) {
        const struct group *g = l->actor->group;

        if (!l->actor->enabled || g->broken || g->state != GROUP_ACTIVE)
                return "stopped";
        if (!channels_ready((struct llm_actor *) l))
                return "waiting";
        if (l->degraded)
                return "degraded";
        if (l->exhausted && l->day == utc_day(now_usec(CLOCK_REALTIME)))
                return "exhausted";
        return l->in_flight > 0 ? "busy" : "ready";
}

struct json_object *llm_actor_settings_json(const struct llm_actor *l) {
        return llm_settings_to_json(&l->settings);
}

struct json_object *llm_actor_status_json(struct llm_actor *l) {
        struct json_object *o = llm_settings_to_json(&l->settings);
        const struct config_provider *p = llm_provider(l);
        char ts[40];

        if (!o)
                return NULL;
        /* What a turn would use now, after defaults. */
        json_object_object_add(o, "provider", p ? json_object_new_string(p->name) : NULL);
        json_object_object_add(o, "model", l->settings.model ? json_object_new_string(l->settings.model)
                                           : p && p->model ? json_object_new_string(p->model) : NULL);
        json_object_object_add(o, "provider_kind", p && p->kind ? json_object_new_string(p->kind) : NULL);
        json_object_object_add(o, "concurrency", json_object_new_int64(l->settings.concurrency));
        json_object_object_add(o, "context_messages", json_object_new_int64(l->settings.context_messages));
        json_object_object_add(o, "context_chars", json_object_new_int64(l->settings.context_chars));
        json_object_object_add(o, "daily_tokens", json_object_new_uint64(l->settings.daily_tokens));
        json_object_object_add(o, "in_flight", json_object_new_int64(l->in_flight));
        json_object_object_add(o, "turns_ok", json_object_new_uint64(l->turns_ok));
        json_object_object_add(o, "turns_failed", json_object_new_uint64(l->turns_failed));
        json_object_object_add(o, "turns_refused", json_object_new_uint64(l->turns_refused));
        if (l->day != utc_day(now_usec(CLOCK_REALTIME)))
                (void) load_tokens_today(l, utc_day(now_usec(CLOCK_REALTIME)));
        json_object_object_add(o, "tokens_today", l->day == utc_day(now_usec(CLOCK_REALTIME))
                                                          ? json_object_new_uint64(l->tokens_today) : NULL);
        json_object_object_add(o, "degraded", json_object_new_boolean(l->degraded));
        json_object_object_add(o, "last_error", *l->last_error ? json_object_new_string(l->last_error) : NULL);
        json_object_object_add(o, "last_error_code", *l->last_error_code ? json_object_new_string(l->last_error_code) : NULL);
        json_object_object_add(o, "last_error_time", l->last_error_realtime_usec
                                                             ? json_object_new_string(format_timestamp_iso(ts, sizeof ts, l->last_error_realtime_usec))
                                                             : NULL);
        return o;
}

int llm_settings_for_add(struct supervisor *s, struct json_object *arg, struct json_object **ret, char *err,
                         size_t err_size) {
        struct llm_settings st;
        const struct config_provider *p;
        int r = llm_settings_from_json(arg, &st, err, err_size);

        if (r < 0)
                return r;
        p = st.provider ? config_find_provider(s->config, st.provider) : config_default_provider(s->config);
        if (!p) {
                if (st.provider)
                        snprintf(err, err_size, "no provider \"%s\" in %s (add a [providers.%s] section, then "
                                 "`systemctl --user reload conclave`)", st.provider, s->config_path, st.provider);
                else
                        snprintf(err, err_size, "no default provider: pass --provider NAME, or set [provider] default "
                                 "in %s", s->config_path);
                llm_settings_done(&st);
                return -ENOENT;
        }
        *ret = llm_settings_to_json(&st);
        llm_settings_done(&st);
        return *ret ? 0 : -ENOMEM;
}

void llm_actors_pump_all(struct supervisor *s) {
        for (size_t i = 0; i < s->n_groups; i++)
                for (size_t j = 0; j < s->groups[i]->n_actors; j++)
                        if (s->groups[i]->actors[j]->llm)
                                llm_actor_pump(s->groups[i]->actors[j]->llm);
}
