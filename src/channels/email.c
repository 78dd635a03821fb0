/* The email channel kind: IMAP polling with libcurl (libcurl has no IDLE, so the mailbox is
 * polled every poll_interval: EXAMINE for UIDVALIDITY, UID SEARCH for what is new, UID FETCH of
 * each message; the last UID is persisted once its message is durable), and SMTP for replies,
 * threaded with In-Reply-To/References and a Message-ID derived from the delivery id.
 * Wire formats: email_codec.h. */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "channel.h"
#include "email_codec.h"
#include "platform_driver.h"
#include "proto.h"

/* Messages fetched per poll; the rest wait for the next one. */
#define EMAIL_FETCH_BATCH 20

enum poll_step { STEP_IDLE, STEP_EXAMINE, STEP_SEARCH, STEP_FETCH };

struct email {
        struct channel *ch;
        char *imap_base; /* "imaps://host:port" without a path */
        char *smtp_url;
        char *user_pass;
        char *from;
        char *domain; /* of from, for Message-IDs */
        char *ca_file;
        bool tls;
        uint64_t poll_interval_usec;

        struct http_call *call;
        sd_event_source *timer;
        enum poll_step step;
        uint32_t uidvalidity;
        uint32_t last_uid;
        uint32_t *uids;
        size_t n_uids, next_uid;
        bool first_poll; /* nothing stored: only take the position */
        unsigned failures;
};

static const char *const email_settings[] = {
        "imap_url", "smtp_url", "username", "password_file", "from", "poll_interval", "tls", "ca_file", NULL,
};

static int check_mail_url(struct channel_check *chk, const char *key, const char *url, const char *plain,
                          const char *secure, bool tls) {
        size_t pl = strlen(plain), sl = strlen(secure);

        if (strncmp(url, secure, sl) == 0 && url[sl])
                return 0;
        if (strncmp(url, plain, pl) == 0 && url[pl]) {
                if (!tls && !platform_url_is_loopback(url)) {
                        channel_check_error(chk, key, "tls = false is only allowed to localhost; use %s…, or %s… with "
                                            "STARTTLS (tls = true)", secure, plain);
                        return -EINVAL;
                }
                return 0;
        }
        channel_check_error(chk, key, "expected %s//host[:port] (or %s//host with STARTTLS)", secure, plain);
        return -EINVAL;
}

static int email_configure(struct channel *ch, struct channel_check *chk) {
        struct email *e = channel_driver_data(ch);
        const char *imap, *smtp, *user, *from, *ca;
        char *password = NULL;
        int r, ret = 0;

        e->ch = ch;
        r = channel_check_bool(chk, "tls", true, &e->tls);
        if (r < 0)
                ret = r;
        imap = channel_check_string(chk, "imap_url", true);
        smtp = channel_check_string(chk, "smtp_url", true);
        if (!imap || check_mail_url(chk, "imap_url", imap, "imap:", "imaps:", e->tls) < 0)
                ret = -EINVAL;
        else {
                /* Only scheme, host and port: the mailbox is INBOX. */
                const char *host = strstr(imap, "://") + 3;
                e->imap_base = strndup(imap, (size_t) (host - imap) + strcspn(host, "/?"));
                if (!e->imap_base)
                        return -ENOMEM;
        }
        if (!smtp || check_mail_url(chk, "smtp_url", smtp, "smtp:", "smtps:", e->tls) < 0)
                ret = -EINVAL;
        else if (!(e->smtp_url = strdup(smtp)))
                return -ENOMEM;
        user = channel_check_string(chk, "username", true);
        r = channel_credential(ch, chk, "password_file", &password);
        if (r == -ENOKEY) {
                channel_check_error(chk, "password_file", "the mailbox password (or an app password) is required in a "
                                    "private file");
                ret = -EINVAL;
        } else if (r < 0)
                ret = -EINVAL;
        else if (!user || strchr(user, ':') || strpbrk(user, "\r\n"))
                ret = -EINVAL;
        else if (asprintf(&e->user_pass, "%s:%s", user, password) < 0) {
                channel_secret_free(password);
                return -ENOMEM;
        }
        channel_secret_free(password);
        from = channel_check_string(chk, "from", false);
        if (!from && user && strchr(user, '@'))
                from = user;
        if (!from || !email_address_valid(from)) {
                channel_check_error(chk, "from", "set from = \"bot@example.org\", the address replies are sent from");
                ret = -EINVAL;
        } else {
                e->from = strdup(from);
                e->domain = strdup(strchr(from, '@') + 1);
                if (!e->from || !e->domain)
                        return -ENOMEM;
        }
        ca = channel_check_string(chk, "ca_file", false);
        if (ca && !(e->ca_file = strdup(ca)))
                return -ENOMEM;
        r = channel_check_duration(chk, "poll_interval", 30 * USEC_PER_SEC, USEC_PER_SEC, 3600 * USEC_PER_SEC,
                                   &e->poll_interval_usec);
        return r < 0 ? r : ret;
}

/* --- polling ------------------------------------------------------------------------------ */

static void poll_start(struct email *e);

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        (void) s;
        (void) usec;
        poll_start(userdata);
        return 0;
}

static void poll_later(struct email *e, uint64_t delay) {
        e->step = STEP_IDLE;
        e->uids = mfree(e->uids);
        e->n_uids = e->next_uid = 0;
        e->timer = sd_event_source_disable_unref(e->timer);
        if (sd_event_add_time_relative(channel_event(e->ch), &e->timer, CLOCK_MONOTONIC, delay, TIMER_ACCURACY_USEC,
                                       on_timer, e) < 0)
                channel_set_state(e->ch, CHANNEL_DOWN, "cannot arm a timer");
}

static void poll_failed(struct email *e, const char *what, const struct http_response *resp, int error) {
        e->failures++;
        if (error == -EACCES)
                channel_set_state(e->ch, CHANNEL_DOWN, "IMAP %s: login refused: check username and password_file", what);
        else if (error == -EBADMSG)
                channel_set_state(e->ch, CHANNEL_DEGRADED, "IMAP %s: malformed answer", what);
        else
                channel_set_state(e->ch, CHANNEL_DEGRADED, "IMAP %s: %s", what,
                                  resp && resp->error_detail ? resp->error_detail : strerror(-error));
        poll_later(e, MAX(platform_backoff_usec(e->failures, 0), e->poll_interval_usec));
}

static int imap_call(struct email *e, const char *path, const char *command, http_done_fn done) {
        _cleanup_free_ char *url = NULL;
        struct http_request req = {
                .method = command,
                .timeout_usec = 60 * USEC_PER_SEC,
                .ca_file = e->ca_file,
                .user_pass = e->user_pass,
                .require_tls = e->tls,
                .max_response = EMAIL_MESSAGE_MAX,
        };

        if (asprintf(&url, "%s/%s", e->imap_base, path) < 0)
                return -ENOMEM;
        req.url = url;
        return http_call_start(channel_http(e->ch), &req, NULL, done, e, &e->call);
}

static void save_position(struct email *e) {
        char v[24];

        snprintf(v, sizeof v, "%" PRIu32, e->uidvalidity);
        (void) channel_store_set(e->ch, "uidvalidity", v);
        snprintf(v, sizeof v, "%" PRIu32, e->last_uid);
        (void) channel_store_set(e->ch, "uid", v);
}

static void fetch_next(struct email *e);

static void on_inbound_done(struct channel *ch, int error, void *userdata) {
        struct email *e = channel_driver_data(ch);
        uint32_t uid = (uint32_t) (uintptr_t) userdata;

        if (error < 0 && error != -ENOENT && error != -EPERM) {
                channel_log(ch, LOG_WARNING, error, "message UID %" PRIu32 " was not stored; fetching it again", uid);
                return poll_later(e, platform_backoff_usec(++e->failures, 0));
        }
        e->last_uid = uid;
        save_position(e);
        fetch_next(e);
}

static void on_fetch(struct http_call *call, const struct http_response *resp, void *userdata) {
        struct email *e = userdata;
        uint32_t uid = e->uids[e->next_uid - 1];
        struct platform_message m = {};
        char fallback[48];
        int r;

        (void) call;
        e->call = NULL;
        if (resp->error < 0)
                return poll_failed(e, "UID FETCH", resp, resp->error);
        snprintf(fallback, sizeof fallback, "uid:%" PRIu32 ":%" PRIu32, e->uidvalidity, uid);
        r = email_parse(resp->body, resp->body_len, fallback, &m);
        if (r <= 0) {
                if (r < 0)
                        channel_log(e->ch, LOG_WARNING, r, "message UID %" PRIu32 " is not a readable mail (%zu bytes); "
                                    "skipped", uid, resp->body_len);
                e->last_uid = uid;
                save_position(e);
                return fetch_next(e);
        }
        /* Message-IDs carry characters channel ids may not: encoded; too long ones fall back. */
        _cleanup_free_ char *id = platform_id_encode(m.id, CHANNEL_MESSAGE_ID_MAX);
        if (!id)
                id = strdup(fallback);
        struct channel_inbound in = {
                .message_id = id,
                .user = m.sender,
                .display_name = m.sender_name,
                .text = m.text,
        };
        r = channel_report_inbound(e->ch, &in, on_inbound_done, (void *) (uintptr_t) uid);
        platform_message_done(&m);
        if (r == -ENOTCONN)
                return poll_later(e, platform_backoff_usec(++e->failures, 0));
        if (r < 0) { /* not allowed (logged by the framework) or invalid: handled */
                e->last_uid = uid;
                save_position(e);
                fetch_next(e);
        }
}

static void fetch_next(struct email *e) {
        char path[64];
        int r;

        if (e->next_uid >= e->n_uids || e->next_uid >= EMAIL_FETCH_BATCH) {
                e->failures = 0;
                return poll_later(e, e->next_uid >= EMAIL_FETCH_BATCH ? 0 : e->poll_interval_usec);
        }
        e->step = STEP_FETCH;
        snprintf(path, sizeof path, "INBOX;UIDVALIDITY=%" PRIu32 ";UID=%" PRIu32, e->uidvalidity, e->uids[e->next_uid++]);
        r = imap_call(e, path, NULL, on_fetch);
        if (r < 0)
                poll_failed(e, "UID FETCH", NULL, r);
}

static void on_search(struct http_call *call, const struct http_response *resp, void *userdata) {
        struct email *e = userdata;
        int r;

        (void) call;
        e->call = NULL;
        if (resp->error < 0)
                return poll_failed(e, "UID SEARCH", resp, resp->error);
        free(e->uids);
        e->uids = NULL;
        r = imap_parse_search(resp->body, resp->body_len, e->last_uid + 1, &e->uids, &e->n_uids);
        if (r < 0)
                return poll_failed(e, "UID SEARCH", resp, r);
        if (channel_get_state(e->ch) != CHANNEL_UP)
                channel_set_state(e->ch, CHANNEL_UP, NULL);
        if (e->first_poll) {
                /* Mail from before the channel existed is not imported. */
                e->first_poll = false;
                if (e->n_uids > 0)
                        e->last_uid = e->uids[e->n_uids - 1];
                save_position(e);
                e->failures = 0;
                return poll_later(e, e->poll_interval_usec);
        }
        e->next_uid = 0;
        fetch_next(e);
}

static void on_examine(struct http_call *call, const struct http_response *resp, void *userdata) {
        struct email *e = userdata;
        char command[48];
        uint32_t validity;
        int r;

        (void) call;
        e->call = NULL;
        if (resp->error < 0)
                return poll_failed(e, "EXAMINE", resp, resp->error);
        r = imap_parse_uidvalidity(resp->body, resp->body_len, &validity);
        if (r < 0)
                return poll_failed(e, "EXAMINE", resp, -EBADMSG);
        if (validity != e->uidvalidity) {
                if (e->uidvalidity)
                        channel_log(e->ch, LOG_WARNING, 0, "INBOX UIDVALIDITY changed (%" PRIu32 " → %" PRIu32 "): the "
                                    "mailbox was rebuilt; taking new mail from now on", e->uidvalidity, validity);
                e->uidvalidity = validity;
                e->last_uid = 0;
                e->first_poll = true;
        }
        e->step = STEP_SEARCH;
        snprintf(command, sizeof command, "UID SEARCH UID %" PRIu32 ":*", e->last_uid + 1);
        r = imap_call(e, "INBOX", command, on_search);
        if (r < 0)
                poll_failed(e, "UID SEARCH", NULL, r);
}

static void poll_start(struct email *e) {
        int r;

        if (e->call)
                return;
        e->step = STEP_EXAMINE;
        r = imap_call(e, "", "EXAMINE INBOX", on_examine);
        if (r < 0)
                poll_failed(e, "EXAMINE", NULL, r);
}

static uint32_t parse_u32(const char *s) {
        char *end;
        unsigned long v;

        if (!s)
                return 0;
        errno = 0;
        v = strtoul(s, &end, 10);
        return errno || *end || v > UINT32_MAX ? 0 : (uint32_t) v;
}

static int email_start(struct channel *ch) {
        struct email *e = channel_driver_data(ch);

        e->uidvalidity = parse_u32(channel_store_get(ch, "uidvalidity"));
        e->last_uid = parse_u32(channel_store_get(ch, "uid"));
        e->first_poll = e->uidvalidity == 0;
        channel_set_state(ch, CHANNEL_CONNECTING, NULL);
        poll_start(e);
        return 0;
}

static void email_stop(struct channel *ch) {
        struct email *e = channel_driver_data(ch);

        if (e->call)
                http_call_cancel(e->call);
        e->timer = sd_event_source_disable_unref(e->timer);
        channel_secret_free(e->user_pass);
        free(e->imap_base);
        free(e->smtp_url);
        free(e->from);
        free(e->domain);
        free(e->ca_file);
        free(e->uids);
}

/* --- delivery ----------------------------------------------------------------------------- */

static void on_sent(struct http_call *call, const struct http_response *resp, void *userdata) {
        struct channel_delivery *d = userdata;
        char *message_id = channel_delivery_get_userdata(d);
        struct platform_error err = {};
        _cleanup_free_ char *id = NULL;

        (void) call;
        channel_delivery_set_userdata(d, NULL);
        if (resp->error < 0) {
                platform_error_from_status(&err, resp->status);
                /* 5xx SMTP replies are permanent (a refused recipient), 4xx and network errors not. */
                if (resp->status >= 500 && resp->status < 600) {
                        snprintf(err.code, sizeof err.code, "%ld", resp->status);
                        snprintf(err.description, sizeof err.description, "SMTP server refused the message");
                        err.retryable = false;
                        free(message_id);
                        return platform_delivery_failed(d, -EREMOTEIO, &err);
                }
                free(message_id);
                return platform_delivery_failed(d, resp->error, &err);
        }
        id = platform_id_encode(message_id, CHANNEL_MESSAGE_ID_MAX);
        free(message_id);
        channel_delivery_done(d, &(struct channel_delivery_result){ .platform_id = id });
}

static int email_deliver(struct channel *ch, struct channel_delivery *d, const struct channel_outbound *m) {
        struct email *e = channel_driver_data(ch);
        _cleanup_free_ char *message = NULL, *in_reply_to = NULL, *message_id = NULL;
        const char *rcpt[] = { m->user, NULL };
        size_t len;
        uint64_t h = 0xcbf29ce484222325ull;
        int r;

        if (!email_address_valid(m->user)) {
                channel_delivery_done(d, &(struct channel_delivery_result){
                        .error = -EDESTADDRREQ, .permanent = true, .detail = "the recipient is not an e-mail address" });
                return 0;
        }
        /* The same delivery always gets the same Message-ID, so a mail client shows a resend
         * after a crash as the same message. */
        for (const unsigned char *p = (const unsigned char *) m->delivery_id; *p; p++) {
                h ^= *p;
                h *= 0x100000001b3ull;
        }
        if (asprintf(&message_id, "<conclave.%016llx@%s>", (unsigned long long) h, e->domain) < 0)
                return -ENOMEM;
        if (m->reply_to)
                in_reply_to = platform_id_decode(m->reply_to);
        if (in_reply_to && in_reply_to[0] != '<')
                in_reply_to = mfree(in_reply_to); /* "uid:…": the original had no Message-ID */
        struct email_reply reply = {
                .from = e->from,
                .to = m->user,
                .subject = NULL,
                .message_id = message_id,
                .in_reply_to = in_reply_to,
                .text = m->text,
                .text_len = strlen(m->text),
                .date = time(NULL),
        };
        message = email_build(&reply, &len);
        if (!message)
                return -ENOMEM;
        struct http_request req = {
                .url = e->smtp_url,
                .body = message,
                .body_len = len,
                .timeout_usec = 60 * USEC_PER_SEC,
                .ca_file = e->ca_file,
                .user_pass = e->user_pass,
                .require_tls = e->tls,
                .mail_from = e->from,
                .mail_rcpt = rcpt,
        };
        channel_delivery_set_userdata(d, message_id);
        r = http_call_start(channel_http(ch), &req, NULL, on_sent, d, NULL);
        if (r < 0) {
                channel_delivery_set_userdata(d, NULL);
                return r;
        }
        message_id = NULL;
        return 0;
}

/* --- doctor ------------------------------------------------------------------------------- */

static void on_doctor(struct http_call *call, const struct http_response *resp, void *userdata) {
        struct channel_doctor *doc = userdata;
        char problem[512];
        uint32_t v;

        (void) call;
        if (resp->error == -EACCES)
                return channel_doctor_done(doc, false, "IMAP login refused",
                                           "check username and password_file (many providers want an app password)", NULL);
        if (resp->error < 0) {
                snprintf(problem, sizeof problem, "IMAP: %s", resp->error_detail ? resp->error_detail : strerror(-resp->error));
                return channel_doctor_done(doc, false, problem, "check imap_url (imaps://host:993), the network path, "
                                           "tls and ca_file", NULL);
        }
        if (imap_parse_uidvalidity(resp->body, resp->body_len, &v) < 0)
                return channel_doctor_done(doc, false, "IMAP: EXAMINE INBOX gave no UIDVALIDITY",
                                           "check that the account has an INBOX", NULL);
        channel_doctor_done(doc, true, NULL, NULL, "IMAP login and INBOX fine (SMTP is checked when a reply is sent)");
}

static void email_doctor(struct channel *ch, struct channel_doctor *doc) {
        struct email *e = channel_driver_data(ch);
        _cleanup_free_ char *url = NULL;
        struct http_request req = {
                .method = "EXAMINE INBOX",
                .timeout_usec = 30 * USEC_PER_SEC,
                .ca_file = e->ca_file,
                .user_pass = e->user_pass,
                .require_tls = e->tls,
        };

        if (asprintf(&url, "%s/", e->imap_base) < 0)
                return channel_doctor_done(doc, false, "out of memory", "see the journal", NULL);
        req.url = url;
        if (http_call_start(channel_http(ch), &req, NULL, on_doctor, doc, NULL) < 0)
                channel_doctor_done(doc, false, "cannot start the IMAP check", "see the journal", NULL);
}

const struct channel_kind channel_kind_email = {
        .name = "email",
        .size = sizeof(struct email),
        .settings = email_settings,
        .max_in_flight = 1,
        .resend_in_doubt = true,
        .configure = email_configure,
        .start = email_start,
        .stop = email_stop,
        .deliver = email_deliver,
        .doctor = email_doctor,
};
