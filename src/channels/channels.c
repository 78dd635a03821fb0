/* The set of chat channels of conclave-channels (channels.h). */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel_internal.h"
#include "channels.h"
#include "control.h"
#include "log.h"
#include "macro.h"
#include "proto.h"
#include "worker.h"

#define OUTBOX_RETRY_USEC (1 * USEC_PER_SEC)
#define REPORT_INTERVAL_USEC (5 * USEC_PER_SEC) /* counters are refreshed this often */
#define DOCTOR_DRIVER_TIMEOUT_USEC (20 * USEC_PER_SEC)

struct doctor_run;

struct channel_doctor {
        struct doctor_run *run;
        struct channel *channel; /* NULL once answered or abandoned */
        struct json_object *result;
        bool done;
};

struct doctor_run {
        struct channel_set *set;
        struct doctor_run *next;
        uint64_t request_id;
        struct channel_doctor *docs;
        size_t n_docs, n_open;
        sd_event_source *timer;
        bool answered;
};

static struct doctor_run *doctor_runs; /* one process, one set: runs in progress */

static void outbox_follow(struct channel_set *set);

/* --- the delivery index -------------------------------------------------------------------- */

static uint64_t hash_key(const char *s) {
        uint64_t h = 1469598103934665603ull;
        for (; *s; s++)
                h = (h ^ (unsigned char) *s) * 1099511628211ull;
        return h;
}

struct channel_delivery *channel_set_find(struct channel_set *set, const char *key) {
        if (set->hash_size == 0)
                return NULL;
        for (struct channel_delivery *d = set->hash[hash_key(key) % set->hash_size]; d; d = d->hash_next)
                if (streq(d->key, key))
                        return d;
        return NULL;
}

int channel_set_hash(struct channel_set *set, struct channel_delivery *d) {
        if (set->n_deliveries + 1 > set->hash_size) {
                size_t n = set->hash_size ? set->hash_size * 2 : 256;
                struct channel_delivery **t = calloc(n, sizeof *t);
                if (!t)
                        return -ENOMEM;
                for (size_t i = 0; i < set->hash_size; i++)
                        for (struct channel_delivery *e = set->hash[i], *next; e; e = next) {
                                next = e->hash_next;
                                e->hash_next = t[hash_key(e->key) % n];
                                t[hash_key(e->key) % n] = e;
                        }
                free(set->hash);
                set->hash = t;
                set->hash_size = n;
        }
        d->hash_next = set->hash[hash_key(d->key) % set->hash_size];
        set->hash[hash_key(d->key) % set->hash_size] = d;
        set->n_deliveries++;
        return 0;
}

void channel_set_unhash(struct channel_set *set, struct channel_delivery *d) {
        if (set->hash_size == 0 || !d->key)
                return;
        for (struct channel_delivery **p = &set->hash[hash_key(d->key) % set->hash_size]; *p; p = &(*p)->hash_next)
                if (*p == d) {
                        *p = d->hash_next;
                        set->n_deliveries--;
                        return;
                }
}

/* --- state reports ------------------------------------------------------------------------- */

static int on_report(sd_event_source *src, void *userdata) {
        struct channel_set *set = userdata;
        _cleanup_json_ struct json_object *data = json_object_new_object();
        struct json_object *list = json_object_new_array();

        if (!data || !list) {
                json_object_put(list);
                return 0;
        }
        for (struct channel *ch = set->channels; ch; ch = ch->next)
                json_object_array_add(list, channel_status_json(ch));
        json_object_object_add(data, "channels", list);
        (void) worker_send(set->worker, "channels.state", 0, data);
        worker_update_status(set->worker);
        return 0;
}

static int on_report_timer(sd_event_source *src, uint64_t usec, void *userdata) {
        (void) sd_event_source_set_time(src, usec + REPORT_INTERVAL_USEC);
        return on_report(NULL, userdata);
}

void channel_set_state_changed(struct channel_set *set) {
        /* Coalesced: a burst of changes makes one report. */
        if (!set->report_defer && sd_event_add_defer(set->event, &set->report_defer, on_report, set) < 0)
                return;
        (void) sd_event_source_set_enabled(set->report_defer, SD_EVENT_ONESHOT);
}

void channel_set_status(struct channel_set *set, char *buf, size_t size) {
        size_t n = 0, up = 0, len;

        for (struct channel *ch = set->channels; ch; ch = ch->next) {
                const char *error;
                enum channel_state st = channel_effective_state(ch, &error);
                n++;
                up += st == CHANNEL_UP;
        }
        if (n == 0) {
                snprintf(buf, size, "0/0 channels up (none configured)");
                return;
        }
        snprintf(buf, size, "%zu/%zu channels up", up, n);
        for (struct channel *ch = set->channels; ch; ch = ch->next) {
                const char *error;
                enum channel_state st = channel_effective_state(ch, &error);
                if (st == CHANNEL_UP)
                        continue;
                len = strlen(buf);
                if (len + strlen(ch->name) + 16 >= size)
                        break;
                snprintf(buf + len, size - len, "; %s %s", ch->name, channel_state_to_string(st));
        }
}

/* --- the outbox ---------------------------------------------------------------------------- */

static int on_outbox_retry(sd_event_source *src, uint64_t usec, void *userdata) {
        struct channel_set *set = userdata;

        set->outbox_retry = sd_event_source_disable_unref(set->outbox_retry);
        outbox_follow(set);
        return 0;
}

static void on_outbox(struct json_object *line, int error, bool more, void *userdata) {
        struct channel_set *set = userdata;
        struct json_object *d, *ok;

        if (!more) {
                set->outbox_call = NULL;
                set->outbox_following = false;
                if (error != -ECONNABORTED)
                        log_warning_errno(error, "the supervisor's channel outbox stream ended; following it again");
                if (!set->outbox_retry && proto_link_is_open(set->link))
                        (void) sd_event_add_time_relative(set->event, &set->outbox_retry, CLOCK_MONOTONIC,
                                                          OUTBOX_RETRY_USEC, TIMER_ACCURACY_USEC, on_outbox_retry, set);
                return;
        }
        if (json_object_object_get_ex(line, "delivery", &d)) {
                int r = channel_delivery_receive(set, d);
                if (r < 0)
                        log_warning_errno(r, "ignoring a malformed delivery from the supervisor");
                return;
        }
        if (json_object_object_get_ex(line, "ok", &ok)) {
                if (json_object_get_boolean(ok))
                        set->outbox_following = true;
                else
                        log_error("the supervisor refused the channel outbox: %s",
                                  json_object_to_json_string_ext(line, JSON_C_TO_STRING_PLAIN));
        }
}

static void outbox_follow(struct channel_set *set) {
        int r;

        if (set->outbox_call || !proto_link_is_open(set->link))
                return;
        r = proto_link_call(set->link, "channel.outbox", NULL, 0, true, on_outbox, set, &set->outbox_call);
        if (r < 0) {
                log_warning_errno(r, "cannot follow the supervisor's channel outbox");
                if (!set->outbox_retry)
                        (void) sd_event_add_time_relative(set->event, &set->outbox_retry, CLOCK_MONOTONIC,
                                                          OUTBOX_RETRY_USEC, TIMER_ACCURACY_USEC, on_outbox_retry, set);
        }
}

/* --- configuration ------------------------------------------------------------------------- */

int channel_set_new(struct worker *w, struct http_engine *http, struct channel_set **ret) {
        struct channel_set *set = calloc(1, sizeof *set);

        if (!set)
                return -ENOMEM;
        set->worker = w;
        set->event = sd_event_ref(w->event);
        set->link = w->link;
        set->http = http;
        if (set->link && sd_event_add_time_relative(set->event, &set->report_timer, CLOCK_MONOTONIC, REPORT_INTERVAL_USEC,
                                                    TIMER_ACCURACY_USEC, on_report_timer, set) >= 0)
                (void) sd_event_source_set_enabled(set->report_timer, SD_EVENT_ON);
        *ret = set;
        return 0;
}

static void doctor_abandon_channel(struct channel *ch);

static void channel_unlink_free(struct channel_set *set, struct channel *ch) {
        for (struct channel **p = &set->channels; *p; p = &(*p)->next)
                if (*p == ch) {
                        *p = ch->next;
                        break;
                }
        doctor_abandon_channel(ch);
        channel_free(ch);
}

struct channel_set *channel_set_free(struct channel_set *set) {
        if (!set)
                return NULL;
        while (set->channels)
                channel_unlink_free(set, set->channels);
        while (set->orphans)
                channel_delivery_free(set->orphans);
        proto_call_cancel(set->outbox_call);
        sd_event_source_disable_unref(set->outbox_retry);
        sd_event_source_disable_unref(set->report_defer);
        sd_event_source_disable_unref(set->report_timer);
        free(set->hash);
        sd_event_unref(set->event);
        free(set);
        return NULL;
}

int channel_set_apply_config(struct channel_set *set, const struct config *c) {
        struct channel *fresh = NULL, **tail = &fresh;

        /* Build the new list first, so an allocation failure leaves the running one alone. */
        for (size_t i = 0; i < c->n_channels; i++) {
                const struct config_channel *cc = &c->channels[i];
                _cleanup_free_ char *fp = channel_fingerprint(cc);
                struct channel *old = NULL;

                if (!fp)
                        goto oom;
                for (struct channel *ch = set->channels; ch; ch = ch->next)
                        if (streq(ch->name, cc->name) && streq(ch->fingerprint, fp))
                                old = ch;
                if (old)
                        continue; /* kept below */
                *tail = channel_new(set, c, cc);
                if (!*tail)
                        goto oom;
                tail = &(*tail)->next;
        }
        /* Unchanged channels move over (pointing at the new config); the rest stop. */
        for (struct channel *ch = set->channels, *next; ch; ch = next) {
                bool kept = false;
                next = ch->next;
                for (size_t i = 0; i < c->n_channels && !kept; i++) {
                        _cleanup_free_ char *fp = channel_fingerprint(&c->channels[i]);
                        if (fp && streq(ch->name, c->channels[i].name) && streq(ch->fingerprint, fp))
                                kept = true;
                }
                if (kept) {
                        for (struct channel **p = &set->channels; *p; p = &(*p)->next)
                                if (*p == ch) {
                                        *p = ch->next;
                                        break;
                                }
                        ch->next = NULL;
                        *tail = ch;
                        tail = &ch->next;
                } else {
                        log_info("channel %s: stopping (removed or changed in the configuration)", ch->name);
                        channel_unlink_free(set, ch);
                }
        }
        set->channels = fresh;
        for (struct channel *ch = set->channels; ch; ch = ch->next)
                channel_start(ch);
        outbox_follow(set);
        channel_set_state_changed(set);
        return 0;
oom:
        while (fresh) {
                struct channel *ch = fresh;
                fresh = ch->next;
                channel_free(ch);
        }
        return log_error_errno(ENOMEM, "out of memory");
}

/* --- live checks --------------------------------------------------------------------------- */

static void doctor_run_maybe_finish(struct doctor_run *run) {
        _cleanup_json_ struct json_object *reply = NULL, *result = NULL;
        struct json_object *list;

        if (!run->answered && (run->n_open == 0 || !run->timer)) {
                reply = json_object_new_object();
                result = json_object_new_object();
                list = json_object_new_array();
                for (size_t i = 0; i < run->n_docs; i++)
                        json_object_array_add(list, json_object_get(run->docs[i].result));
                json_object_object_add(result, "channels", list);
                json_object_object_add(reply, "ok", json_object_new_boolean(1));
                json_object_object_add(reply, "result", json_object_get(result));
                (void) proto_link_send(run->set->link, "reply", run->request_id, reply);
                run->answered = true;
        }
        if (run->answered && run->n_open == 0) {
                for (struct doctor_run **p = &doctor_runs; *p; p = &(*p)->next)
                        if (*p == run) {
                                *p = run->next;
                                break;
                        }
                for (size_t i = 0; i < run->n_docs; i++)
                        json_object_put(run->docs[i].result);
                sd_event_source_disable_unref(run->timer);
                free(run->docs);
                free(run);
        }
}

static void doc_result(struct json_object *o, bool ok, const char *problem, const char *fix, const char *detail) {
        json_object_object_add(o, "ok", json_object_new_boolean(ok));
        json_object_object_add(o, "problem", problem ? json_object_new_string(problem) : NULL);
        json_object_object_add(o, "fix", fix ? json_object_new_string(fix) : NULL);
        json_object_object_add(o, "detail", detail ? json_object_new_string(detail) : NULL);
}

void channel_doctor_done(struct channel_doctor *doc, bool ok, const char *problem, const char *fix, const char *detail) {
        if (!doc || doc->done)
                return;
        doc_result(doc->result, ok, ok ? NULL : (problem ? problem : "the live check failed"),
                   ok ? NULL : (fix ? fix : "see the journal: journalctl --user -u conclave.service -t conclave-channels"),
                   detail);
        doc->done = true;
        doc->channel = NULL;
        doc->run->n_open--;
        doctor_run_maybe_finish(doc->run);
}

static void doctor_abandon_channel(struct channel *ch) {
        for (struct doctor_run *run = doctor_runs; run; run = run->next)
                for (size_t i = 0; i < run->n_docs; i++)
                        if (run->docs[i].channel == ch && !run->docs[i].done)
                                channel_doctor_done(&run->docs[i], false, "the channel was restarted during the check",
                                                    "run `conclave channel doctor` again", NULL);
}

static int on_doctor_timeout(sd_event_source *src, uint64_t usec, void *userdata) {
        struct doctor_run *run = userdata;

        for (size_t i = 0; i < run->n_docs; i++)
                if (!run->docs[i].done) {
                        /* Keep the slot open for a late answer, but report the silence now. */
                        doc_result(run->docs[i].result, false, "the live check did not finish within 20 seconds",
                                   "check that the endpoint is reachable from this host", NULL);
                }
        run->timer = sd_event_source_disable_unref(run->timer);
        doctor_run_maybe_finish(run);
        return 0;
}

static bool list_contains(struct json_object *list, const char *s) {
        for (size_t i = 0; list && i < json_object_array_length(list); i++)
                if (streq(json_object_get_string(json_object_array_get_idx(list, i)), s))
                        return true;
        return false;
}

/* The framework's checks; true when the driver's live check should follow. */
static bool doctor_precheck(struct channel *ch, struct json_object *groups, struct json_object *o) {
        const struct config_channel *cc = ch->config;
        char problem[512], fix[512];

        if (!ch->kind) {
                snprintf(problem, sizeof problem, "kind \"%s\" is not implemented in this build", cc->kind ? cc->kind : "");
                snprintf(fix, sizeof fix, "use a kind this build has (see docs/channels.md) in [channels.%s]", ch->name);
        } else if (ch->config_error) {
                snprintf(problem, sizeof problem, "%s", ch->config_error);
                snprintf(fix, sizeof fix, "edit %s as the message says, then run `conclave service reload`", ch->config_path);
        } else if (groups && cc->group && !list_contains(groups, cc->group)) {
                snprintf(problem, sizeof problem, "group \"%s\" does not exist", cc->group);
                snprintf(fix, sizeof fix, "run `conclave group create %s` (and `conclave group start %s`)", cc->group,
                         cc->group);
        } else if (cc->n_allowed_users == 0) {
                snprintf(problem, sizeof problem, "allowed_users is empty: every sender is refused");
                snprintf(fix, sizeof fix, "set allowed_users = [\"USER_ID\", …] in [channels.%s] (or [\"*\"] to allow "
                         "everyone, deliberately), then `conclave service reload`", ch->name);
        } else
                return true;
        doc_result(o, false, problem, fix, NULL);
        return false;
}

static int doctor_start(struct channel_set *set, uint64_t id, struct json_object *args) {
        struct json_object *v, *groups = NULL;
        const char *only = NULL;
        struct doctor_run *run;
        size_t n = 0, i = 0;

        if (json_object_object_get_ex(args, "channel", &v) && json_object_is_type(v, json_type_string))
                only = json_object_get_string(v);
        if (json_object_object_get_ex(args, "groups", &v) && json_object_is_type(v, json_type_array))
                groups = v;
        for (struct channel *ch = set->channels; ch; ch = ch->next)
                n += !only || streq(ch->name, only);
        run = calloc(1, sizeof *run);
        if (!run || (n > 0 && !(run->docs = calloc(n, sizeof *run->docs)))) {
                free(run);
                return -ENOMEM;
        }
        run->set = set;
        run->request_id = id;
        run->n_docs = n;
        run->next = doctor_runs;
        doctor_runs = run;
        (void) sd_event_add_time_relative(set->event, &run->timer, CLOCK_MONOTONIC, DOCTOR_DRIVER_TIMEOUT_USEC,
                                          TIMER_ACCURACY_USEC, on_doctor_timeout, run);
        for (struct channel *ch = set->channels; ch; ch = ch->next) {
                struct channel_doctor *doc;
                const char *error;
                enum channel_state st;
                if (only && !streq(ch->name, only))
                        continue;
                doc = &run->docs[i++];
                doc->run = run;
                doc->result = json_object_new_object();
                st = channel_effective_state(ch, &error);
                json_object_object_add(doc->result, "name", json_object_new_string(ch->name));
                json_object_object_add(doc->result, "kind", json_object_new_string(ch->config->kind ? ch->config->kind : "?"));
                json_object_object_add(doc->result, "state", json_object_new_string(channel_state_to_string(st)));
                json_object_object_add(doc->result, "error", error ? json_object_new_string(error) : NULL);
                if (!doctor_precheck(ch, groups, doc->result)) {
                        doc->done = true;
                        continue;
                }
                run->n_open++;
                doc->channel = ch;
        }
        /* The drivers' own checks, once every slot is set up (one may answer at once: the extra
         * count keeps the run alive through this loop). */
        run->n_open++;
        for (size_t k = 0; k < run->n_docs; k++) {
                struct channel_doctor *doc = &run->docs[k];
                struct channel *ch = doc->channel;
                if (!ch || doc->done)
                        continue;
                if (ch->kind->doctor)
                        ch->kind->doctor(ch, doc);
                else
                        channel_doctor_done(doc, true, NULL, NULL, "configuration checked; this kind has no live check");
        }
        run->n_open--;
        doctor_run_maybe_finish(run);
        return 0;
}

int channel_set_message(struct channel_set *set, struct json_object *msg) {
        struct json_object *data = proto_data(msg), *op, *args = NULL;

        if (!streq(proto_type(msg), "request") || !data || !json_object_object_get_ex(data, "op", &op))
                return 0;
        if (!streq(json_object_get_string(op), "channel.doctor"))
                return 0;
        json_object_object_get_ex(data, "args", &args);
        if (doctor_start(set, proto_id(msg), args) < 0) {
                _cleanup_json_ struct json_object *reply = control_error_new("internal", "out of memory");
                (void) proto_link_send(set->link, "reply", proto_id(msg), reply);
        }
        return 1;
}
