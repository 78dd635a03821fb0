/* The outbound pipeline of conclave-channels: deliveries owed by the supervisor's outbox are
 * queued per channel, each attempt is recorded ("attempted") before the driver puts it on the
 * wire, and its outcome ("succeeded", "deferred", "failed", "unconfirmed") is recorded before
 * it is forgotten. See channel.h and docs/channels.md, "Delivery guarantees". */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "channel_internal.h"
#include "log.h"
#include "macro.h"
#include "proto.h"
#include "timeutil.h"

static const char *jstr(struct json_object *o, const char *key) {
        struct json_object *v;
        if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static uint64_t now_mono(void) {
        return now_usec(CLOCK_MONOTONIC);
}

/* --- queues -------------------------------------------------------------------------------- */

static struct channel_delivery **list_head(struct channel_delivery *d) {
        return d->channel ? &d->channel->queue_head : &d->set->orphans;
}

static void list_unlink(struct channel_delivery *d) {
        struct channel_delivery **head = list_head(d);

        if (d->prev)
                d->prev->next = d->next;
        else if (*head == d)
                *head = d->next;
        if (d->next)
                d->next->prev = d->prev;
        else if (d->channel && d->channel->queue_tail == d)
                d->channel->queue_tail = d->prev;
        d->next = d->prev = NULL;
}

/* Appends to its channel's queue (in the order the supervisor owes them) or to the orphans. */
static void list_append(struct channel_delivery *d) {
        if (d->channel) {
                struct channel *ch = d->channel;
                d->prev = ch->queue_tail;
                if (ch->queue_tail)
                        ch->queue_tail->next = d;
                else
                        ch->queue_head = d;
                ch->queue_tail = d;
        } else {
                d->next = d->set->orphans;
                if (d->next)
                        d->next->prev = d;
                d->set->orphans = d;
        }
}

size_t channel_queue_length(const struct channel *ch) {
        size_t n = 0;
        for (const struct channel_delivery *d = ch->queue_head; d; d = d->next)
                n++;
        return n;
}

void channel_delivery_free(struct channel_delivery *d) {
        if (!d)
                return;
        list_unlink(d);
        channel_set_unhash(d->set, d);
        proto_call_cancel(d->call);
        sd_event_source_disable_unref(d->done_defer);
        json_object_put(d->line);
        free(d->key);
        free(d->delivery_id);
        free(d->channel_name);
        free(d->result_platform_id);
        free(d->result_detail);
        free(d);
}

void channel_delivery_attach(struct channel *ch) {
        for (struct channel_delivery *d = ch->set->orphans, *next; d; d = next) {
                next = d->next;
                if (!streq(d->channel_name, ch->name))
                        continue;
                list_unlink(d);
                d->channel = ch;
                list_append(d);
        }
        channel_kick(ch);
}

void channel_delivery_detach(struct channel *ch) {
        while (ch->queue_head) {
                struct channel_delivery *d = ch->queue_head;
                list_unlink(d);
                if (d->state == DELIVERY_SENDING) {
                        /* The driver stops with it in its hands: the outcome is unknown, as after a
                         * crash. The next channel of this name treats it so. */
                        d->state = DELIVERY_QUEUED;
                        d->in_doubt = true;
                }
                d->channel = NULL;
                list_append(d);
        }
        ch->queue_tail = NULL;
}

/* --- recording ----------------------------------------------------------------------------- */

static void on_recorded(struct json_object *reply, int error, bool more, void *userdata);

/* Records status for d: attempted, succeeded, deferred, failed, unconfirmed. */
static int record(struct channel_delivery *d, const char *status) {
        _cleanup_json_ struct json_object *args = json_object_new_object();
        struct proto_link *link = d->set->link;

        if (!args)
                return -ENOMEM;
        if (!proto_link_is_open(link))
                return -ENOTCONN;
        json_object_object_add(args, "group", json_object_new_string(d->msg.group));
        json_object_object_add(args, "event_id", json_object_new_string(d->msg.event_id));
        json_object_object_add(args, "actor", json_object_new_string(jstr(d->line, "actor")));
        json_object_object_add(args, "status", json_object_new_string(status));
        if (d->result_platform_id && streq(status, "succeeded"))
                json_object_object_add(args, "platform_id", json_object_new_string(d->result_platform_id));
        if (d->result_detail && !streq(status, "attempted") && !streq(status, "succeeded"))
                json_object_object_add(args, "error", json_object_new_string(d->result_detail));
        if (streq(status, "deferred"))
                json_object_object_add(args, "retry_in_usec", json_object_new_int64((int64_t) (d->not_before > now_mono()
                                                                                                 ? d->not_before - now_mono()
                                                                                                 : 0)));
        /* The status travels in the call's userdata: what to do once it is durable. */
        return proto_link_call(link, "channel.delivery", args, CHANNEL_CALL_TIMEOUT_USEC, false, on_recorded, d, &d->call);
}

static uint64_t backoff(unsigned attempts) {
        uint64_t delay = DELIVERY_BACKOFF_MIN_USEC;

        for (unsigned i = 1; i < attempts && delay < DELIVERY_BACKOFF_MAX_USEC; i++)
                delay *= 2;
        return MIN(delay, DELIVERY_BACKOFF_MAX_USEC);
}

/* A copy of at most max bytes of s (not cut inside a UTF-8 sequence). */
static char *bounded_copy(const char *s, size_t max) {
        size_t n = strnlen(s, max + 1);
        char *c;

        if (n > max) {
                n = max;
                while (n > 0 && ((unsigned char) s[n] & 0xc0) == 0x80)
                        n--;
        }
        c = malloc(n + 1);
        if (c) {
                memcpy(c, s, n);
                c[n] = 0;
        }
        return c;
}

static void set_result(struct channel_delivery *d, int error, bool permanent, uint64_t retry_after, const char *platform_id,
                       const char *detail) {
        free(d->result_platform_id);
        free(d->result_detail);
        d->result_error = error;
        d->result_permanent = permanent;
        d->result_retry_after_usec = retry_after;
        d->result_platform_id = platform_id ? bounded_copy(platform_id, 256) : NULL;
        d->result_detail = detail ? bounded_copy(detail, 400) : (error < 0 ? strdup(strerror(-error)) : NULL);
}

static void settle(struct channel_delivery *d);

static void on_recorded(struct json_object *reply, int error, bool more, void *userdata) {
        struct channel_delivery *d = userdata;
        struct channel *ch = d->channel;
        const char *message = NULL;
        int r = channel_reply_error(reply, error, &message);

        d->call = NULL;
        if (r == -EALREADY || r == -ENOENT) {
                /* Settled already, or the group or actor is gone: nothing is owed any more. */
                channel_delivery_free(d);
                if (ch)
                        channel_kick(ch);
                return;
        }
        if (r < 0) {
                /* The supervisor did not record it (timeout, or it is going away): try again. */
                log_warning_errno(r, "cannot record a delivery of %s: %s", d->msg.event_id, message ?: strerror(-r));
                if (d->state == DELIVERY_RECORDING) {
                        d->state = DELIVERY_QUEUED;
                        d->not_before = now_mono() + DELIVERY_BACKOFF_MIN_USEC;
                } else if (d->state == DELIVERY_SETTLING)
                        d->not_before = now_mono() + DELIVERY_BACKOFF_MIN_USEC; /* settle again then */
                if (ch)
                        channel_kick(ch);
                return;
        }

        if (d->state == DELIVERY_RECORDING) {
                if (d->in_doubt && ch && !ch->kind->resend_in_doubt) {
                        /* That was "unconfirmed": settled. */
                        ch->n_unconfirmed++;
                        channel_delivery_free(d);
                        channel_kick(ch);
                        return;
                }
                /* "attempted" is durable: put it on the wire now, or say why it was not. */
                d->attempts++;
                d->in_doubt = true;
                if (!ch || (ch->state != CHANNEL_UP && ch->state != CHANNEL_DEGRADED)) {
                        set_result(d, -ENOTCONN, false, 0, NULL, "the channel went down before sending");
                        d->state = DELIVERY_SETTLING;
                        settle(d);
                        return;
                }
                d->msg.attempt = d->attempts;
                d->state = DELIVERY_SENDING;
                d->sent_usec = now_mono();
                r = ch->kind->deliver(ch, d, &d->msg);
                if (r < 0 && d->state == DELIVERY_SENDING) {
                        set_result(d, r, false, 0, NULL, NULL);
                        d->state = DELIVERY_SETTLING;
                        settle(d);
                }
                return;
        }
        if (d->state == DELIVERY_SETTLING) {
                if (d->result_error >= 0 || d->result_permanent || d->attempts >= DELIVERY_MAX_ATTEMPTS) {
                        channel_delivery_free(d);
                        if (ch)
                                channel_kick(ch);
                        return;
                }
                /* "deferred" is durable: back in the queue until its retry time. */
                d->in_doubt = false;
                d->state = DELIVERY_QUEUED;
                if (ch) {
                        ch->n_retried++;
                        channel_kick(ch);
                }
        }
}

/* Records the outcome kept in d (state SETTLING). */
static void settle(struct channel_delivery *d) {
        struct channel *ch = d->channel;
        const char *status;
        int r;

        if (d->result_error >= 0)
                status = "succeeded";
        else if (d->result_permanent || d->attempts >= DELIVERY_MAX_ATTEMPTS)
                status = "failed";
        else {
                uint64_t delay = d->result_retry_after_usec ? MIN(d->result_retry_after_usec, DELIVERY_RETRY_AFTER_MAX_USEC)
                                                            : backoff(d->attempts);
                status = "deferred";
                d->not_before = now_mono() + delay;
        }
        if (ch) {
                if (streq(status, "succeeded"))
                        ch->n_delivered++;
                else if (streq(status, "failed")) {
                        ch->n_failed++;
                        channel_log(ch, LOG_WARNING, d->result_error, "giving up on delivering %s to %s after %u attempt(s): %s",
                                    d->msg.event_id, d->msg.user, d->attempts, d->result_detail ?: "error");
                } else
                        channel_log(ch, LOG_NOTICE, d->result_error, "delivery of %s to %s failed (attempt %u), retrying: %s",
                                    d->msg.event_id, d->msg.user, d->attempts, d->result_detail ?: "error");
        }
        r = record(d, status);
        if (r < 0) {
                log_warning_errno(r, "cannot record the outcome of delivering %s", d->msg.event_id);
                d->not_before = now_mono() + DELIVERY_BACKOFF_MIN_USEC;
        }
}

static int on_done_defer(sd_event_source *src, void *userdata) {
        struct channel_delivery *d = userdata;

        d->done_defer = sd_event_source_disable_unref(d->done_defer);
        settle(d);
        return 0;
}

void channel_delivery_done(struct channel_delivery *d, const struct channel_delivery_result *r) {
        struct channel *ch = d ? d->channel : NULL;

        if (!d || d->state != DELIVERY_SENDING || !ch)
                return; /* not in the driver's hands (any more): ignored */
        set_result(d, r->error, r->error < 0 && r->permanent, r->retry_after_usec, r->platform_id, r->detail);
        d->state = DELIVERY_SETTLING;
        d->driver_userdata = NULL;
        /* Outside the driver: it may be in the middle of its own bookkeeping. */
        if (sd_event_add_defer(d->set->event, &d->done_defer, on_done_defer, d) >= 0)
                (void) sd_event_source_set_enabled(d->done_defer, SD_EVENT_ONESHOT);
        else
                settle(d);
        channel_kick(ch);
}

const struct channel_outbound *channel_delivery_message(const struct channel_delivery *d) {
        return &d->msg;
}

void channel_delivery_set_userdata(struct channel_delivery *d, void *userdata) {
        d->driver_userdata = userdata;
}

void *channel_delivery_get_userdata(const struct channel_delivery *d) {
        return d->driver_userdata;
}

/* --- scheduling ---------------------------------------------------------------------------- */

static int on_kick(sd_event_source *src, void *userdata) {
        channel_delivery_schedule(userdata);
        return 0;
}

static int on_timer(sd_event_source *src, uint64_t usec, void *userdata) {
        struct channel *ch = userdata;

        ch->timer = sd_event_source_disable_unref(ch->timer);
        channel_delivery_schedule(ch);
        return 0;
}

void channel_kick(struct channel *ch) {
        if (!ch || ch->stopped)
                return;
        if (!ch->kick && sd_event_add_defer(ch->set->event, &ch->kick, on_kick, ch) < 0)
                return;
        (void) sd_event_source_set_enabled(ch->kick, SD_EVENT_ONESHOT);
}

static void arm_timer(struct channel *ch, uint64_t when) {
        uint64_t current;

        if (ch->timer && sd_event_source_get_time(ch->timer, &current) >= 0 && current <= when)
                return;
        ch->timer = sd_event_source_disable_unref(ch->timer);
        (void) sd_event_add_time(ch->set->event, &ch->timer, CLOCK_MONOTONIC, when, TIMER_ACCURACY_USEC, on_timer, ch);
}

void channel_delivery_schedule(struct channel *ch) {
        unsigned max = ch->kind && ch->kind->max_in_flight ? ch->kind->max_in_flight : 1;
        uint64_t now = now_mono(), wake = UINT64_MAX;
        unsigned in_flight = 0;

        if (!ch->kind || !ch->started || ch->stopped)
                return;
        for (struct channel_delivery *d = ch->queue_head; d; d = d->next)
                in_flight += d->state == DELIVERY_RECORDING || d->state == DELIVERY_SENDING;
        for (struct channel_delivery *d = ch->queue_head; d; d = d->next) {
                bool up = ch->state == CHANNEL_UP || ch->state == CHANNEL_DEGRADED;

                if (d->state == DELIVERY_SETTLING && !d->call && !d->done_defer) {
                        /* An outcome whose recording failed: try again at its time. */
                        if (d->not_before <= now)
                                settle(d);
                        else
                                wake = MIN(wake, d->not_before);
                        continue;
                }
                if (d->state != DELIVERY_QUEUED)
                        continue;
                if (d->not_before > now) {
                        wake = MIN(wake, d->not_before);
                        continue;
                }
                if (in_flight >= max)
                        break;
                if (d->in_doubt && !ch->kind->resend_in_doubt) {
                        /* After a crash: the bytes left right after "attempted" was durable. */
                        channel_log(ch, LOG_NOTICE, 0, "delivery of %s to %s was in progress when conclave-channels "
                                    "stopped; recording it as unconfirmed rather than sending it twice",
                                    d->msg.event_id, d->msg.user);
                        set_result(d, 0, false, 0, NULL, "in progress when conclave-channels stopped; assumed delivered");
                        if (record(d, "unconfirmed") >= 0) {
                                d->state = DELIVERY_RECORDING;
                                in_flight++;
                        } else
                                d->not_before = now + DELIVERY_BACKOFF_MIN_USEC;
                        continue;
                }
                if (!up)
                        break;
                if (ch->kind->send_delay) {
                        uint64_t delay = ch->kind->send_delay(ch, &d->msg);
                        if (delay > 0) {
                                wake = MIN(wake, now + delay);
                                break; /* in order: the next waits behind this one */
                        }
                }
                free(d->result_detail);
                d->result_detail = NULL;
                if (record(d, "attempted") < 0) {
                        d->not_before = now + DELIVERY_BACKOFF_MIN_USEC;
                        wake = MIN(wake, d->not_before);
                        continue;
                }
                d->in_doubt = false; /* this attempt is recorded; in doubt once it is durable */
                d->state = DELIVERY_RECORDING;
                in_flight++;
        }
        if (wake != UINT64_MAX)
                arm_timer(ch, wake);
}

/* --- from the supervisor ------------------------------------------------------------------- */

static struct channel *find_channel(struct channel_set *set, const char *name) {
        for (struct channel *ch = set->channels; ch; ch = ch->next)
                if (streq(ch->name, name))
                        return ch;
        return NULL;
}

int channel_delivery_receive(struct channel_set *set, struct json_object *line) {
        const char *group = jstr(line, "group"), *event_id = jstr(line, "event_id"), *actor = jstr(line, "actor");
        const char *channel = jstr(line, "channel");
        struct channel_delivery *d;
        struct json_object *v;
        char *key;

        if (!group || !event_id || !actor || !channel || !jstr(line, "user") || !jstr(line, "text"))
                return -EINVAL;
        if (asprintf(&key, "%s.%s.%s", group, event_id, actor) < 0)
                return -ENOMEM;
        /* Already known (a re-subscription lists everything owed again). */
        if (channel_set_find(set, key)) {
                free(key);
                return 0;
        }
        d = calloc(1, sizeof *d);
        if (!d) {
                free(key);
                return -ENOMEM;
        }
        d->set = set;
        d->key = key;
        d->channel_name = strdup(channel);
        d->line = json_object_get(line);
        d->attempts = json_object_object_get_ex(line, "attempts", &v) ? (unsigned) json_object_get_int(v) : 0;
        d->in_doubt = json_object_object_get_ex(line, "in_doubt", &v) && json_object_get_boolean(v);
        if (asprintf(&d->delivery_id, "%s:%s", event_id, actor) < 0)
                d->delivery_id = NULL;
        d->msg = (struct channel_outbound){
                .delivery_id = d->delivery_id, .group = group, .event_id = event_id, .from = jstr(line, "from"),
                .user = jstr(line, "user"), .display_name = jstr(line, "display_name"), .text = jstr(line, "text"),
                .reply_to = jstr(line, "reply_to"), .thread = jstr(line, "thread"),
        };
        if (!d->channel_name || !d->delivery_id) {
                json_object_put(d->line);
                free(d->key);
                free(d->channel_name);
                free(d->delivery_id);
                free(d);
                return -ENOMEM;
        }
        /* Index it (channels.c owns the table). */
        {
                int r = channel_set_hash(set, d);
                if (r < 0) {
                        json_object_put(d->line);
                        free(d->key);
                        free(d->channel_name);
                        free(d->delivery_id);
                        free(d);
                        return r;
                }
        }
        d->channel = find_channel(set, channel);
        if (d->channel && !d->channel->started)
                d->channel = NULL; /* attached when it starts */
        list_append(d);
        if (d->channel)
                channel_kick(d->channel);
        return 0;
}
