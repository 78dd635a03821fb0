/* The driver interface of conclave-channels: what a channel kind (irc, telegram, webhook, …)
 * implements, and the core services the framework offers it.
 *
 * A *channel* is one [channels.NAME] section of config.toml. Its *kind* is a driver: a table of
 * functions (struct channel_kind) listed once in channel_kinds.h. The framework owns each
 * channel: it allocates the driver's private state, calls the driver from the one sd-event loop
 * of the process, and does everything that is the same for every platform:
 *
 *   inbound   the driver reports a message (channel_report_inbound()); the framework checks the
 *             sender against allowed_users (deny by default; "*" must be explicit; a denied
 *             sender is logged with who and which channel, the text is never stored), cleans
 *             the text (valid UTF-8, no control characters) and hands it to the supervisor,
 *             which stores it as a chat.message by the `human` actor bound to that platform
 *             user in the channel's group (the actor is created on first contact), de-duplicated
 *             by the platform's message id.
 *
 *   outbound  messages addressed to a human actor bound to this channel come from the
 *             supervisor's outbox (derived from the ledger). For each, the framework records a
 *             durable `chat.delivery` "attempted" event, then calls deliver(); the driver
 *             completes it with channel_delivery_done(): "succeeded" (with the platform's
 *             message id) or an error, transient (retried with backoff, or after the platform's
 *             Retry-After) or permanent ("failed"). Pacing (flood control) is asked of the driver
 *             with send_delay() *before* the attempt is recorded, so deliver() can put the
 *             message on the wire at once: the window between "attempted" and the bytes leaving
 *             is a few function calls, which is what makes the guarantee after a crash precise
 *             (see resend_in_doubt and docs/channels.md, "Delivery guarantees").
 *
 *   state     the driver says how it is (channel_set_state(): connecting | up | degraded | down
 *             and the last error); the framework reports every change to the supervisor, which
 *             shows it in `conclave status`, `conclave channel list`, the STATUS= line and
 *             daemon_state.json. Deliveries are only handed to a channel that is up or degraded.
 *
 *   storage   small driver state that must survive restarts (a long-poll offset, a sync token):
 *             channel_store_get()/channel_store_set(), kept by the supervisor in
 *             $CONCLAVE_HOME/channels/NAME.json. Values are loaded before start() is called.
 *
 *   secrets   channel_credential(): a `*_file` setting (a private file, relative paths under
 *             $CONCLAVE_HOME) or the systemd credential "NAME.KEY" in $CREDENTIALS_DIRECTORY.
 *             Secrets are never logged, never sent to the supervisor, and wiped when freed.
 *
 * Lifetime of a channel, all on the event loop:
 *   configure()  parse and check settings (no network); errors name file, line and key
 *   start()      begin connecting (asynchronous); report CHANNEL_CONNECTING, then UP or DOWN
 *   deliver()*   while up or degraded, at most max_in_flight at a time
 *   doctor()*    a live check on request (`conclave channel doctor`)
 *   stop()       close everything, free what configure()/start() allocated; no callback of
 *                the framework may be called for this channel afterwards. Called exactly once
 *                for every channel whose configure() was called, whatever it returned.
 * A reload that changes a channel's section stops it and configures a new one; an unchanged
 * channel keeps running.
 *
 * Rules: never block (no blocking DNS, connect, read or write: sd-event I/O sources, and the
 * HTTP engine of channel_http() for HTTP, IMAP and SMTP); bound and validate every input from
 * the platform; log through channel_log() so every line carries CONCLAVE_CHANNEL=. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <syslog.h> /* LOG_* levels for channel_log() */
#include <systemd/sd-event.h>

#include "config.h"
#include "http_engine.h"
#include "macro.h"

struct channel;          /* one configured channel (owned by the framework) */
struct channel_check;    /* collects configuration problems (configure()) */
struct channel_delivery; /* one outbound delivery in flight (deliver() → channel_delivery_done()) */
struct channel_doctor;   /* one live check in progress (doctor() → channel_doctor_done()) */

enum channel_state {
        CHANNEL_CONNECTING, /* starting, or reconnecting after a failure */
        CHANNEL_UP,         /* connected: inbound arrives, deliveries are handed over */
        CHANNEL_DEGRADED,   /* connected but impaired (rate-limited, a room not joined, …) */
        CHANNEL_DOWN,       /* not working: configuration, credentials, or given up; see error */
        _CHANNEL_STATE_MAX,
};

/* "connecting", "up", "degraded", "down". */
const char *channel_state_to_string(enum channel_state st);

/* --- limits ------------------------------------------------------------------------------- */

#define CHANNEL_USER_MAX 256        /* platform user id, bytes */
#define CHANNEL_MESSAGE_ID_MAX 128  /* platform message id, [A-Za-z0-9_.:@-] (encode others) */
#define CHANNEL_THREAD_MAX 128      /* platform thread id, same characters */
#define CHANNEL_TEXT_MAX (64u * 1024u)
#define CHANNEL_STORE_KEY_MAX 64
#define CHANNEL_STORE_VALUE_MAX 4096
#define CHANNEL_STORE_KEYS_MAX 32
#define CHANNEL_ERROR_MAX 256       /* last error text shown in status */

/* --- what a driver implements ------------------------------------------------------------- */

/* A message to put on the platform. Every pointer stays valid until channel_delivery_done(). */
struct channel_outbound {
        /* Stable for this message and recipient across retries and restarts, unique in the
         * installation: "EVENT_ID:ACTOR" (at most 91 characters of [A-Za-z0-9_:-]). Use it as
         * the platform's idempotency key where there is one (the webhook kind sends it as
         * X-Conclave-Delivery). */
        const char *delivery_id;
        const char *group;
        const char *event_id;     /* the chat.message in the ledger */
        const char *from;         /* the sending actor's id (e.g. "echo"), for a "from: " prefix */
        const char *user;         /* the recipient's platform user id (the bound human) */
        const char *display_name; /* the recipient's display name; may be NULL */
        const char *text;         /* UTF-8 without control characters but \t \n; up to 64 KiB:
                                   * split it as the platform needs */
        const char *reply_to;     /* platform message id this answers; NULL: not a reply, or the
                                   * original did not come through this channel */
        const char *thread;       /* platform thread it belongs to; NULL: none */
        unsigned attempt;         /* 1 for the first attempt */
};

/* How a delivery ended. */
struct channel_delivery_result {
        int error;                 /* 0: the platform has it; else -errno */
        const char *platform_id;   /* on success: the platform's id of (the first part of) the
                                    * message, recorded for de-duplication and threading; NULL
                                    * when the platform has none (IRC) */
        bool permanent;            /* retrying cannot help (4xx other than 408/429, unknown
                                    * recipient, message refused): recorded as "failed" */
        uint64_t retry_after_usec; /* the platform asked to wait this long (429 Retry-After);
                                    * 0: the framework's backoff */
        const char *detail;        /* short reason for the ledger and the journal: never the
                                    * text, never a secret; may be NULL */
};

struct channel_kind {
        const char *name;          /* the `kind = "…"` value */
        size_t size;               /* bytes of zeroed private state: channel_driver_data() */
        /* Keys this kind reads beyond kind, group and allowed_users (NULL-terminated). Others
         * get a warning with file and line. Every key must also be known to config.c. */
        const char *const *settings;
        /* Deliveries handed to deliver() at once (0 means 1). */
        unsigned max_in_flight;
        /* After a crash of conclave-channels (or the whole service) a delivery can be "in
         * doubt": "attempted" was recorded, its outcome was not. true: deliver it again (the
         * platform de-duplicates on delivery_id, or a rare duplicate is acceptable). false: the
         * bytes were handed to the kernel right after "attempted", so assume they arrived and
         * record "unconfirmed" instead of sending twice (IRC, which has no idempotency key). */
        bool resend_in_doubt;

        /* Parses the settings into the private state (channel_setting*() / channel_check_*())
         * and reads credentials. Reports each problem with channel_check_error(); returns 0, or
         * -EINVAL when it reported errors, or another -errno. No network. */
        int (*configure)(struct channel *ch, struct channel_check *chk);
        /* Starts connecting; returns 0 or -errno (the channel is then down with that error). */
        int (*start)(struct channel *ch);
        /* See the lifetime above. May be NULL when there is nothing to free. */
        void (*stop)(struct channel *ch);
        /* Puts one message on the platform now. Returns 0 and later (or from inside this call)
         * calls channel_delivery_done() exactly once; or returns -errno (a transient failure,
         * retried; done must then not be called). Deliveries still in flight when the channel
         * goes down should be completed with an error (e.g. -ECONNRESET): they are retried. */
        int (*deliver)(struct channel *ch, struct channel_delivery *d, const struct channel_outbound *m);
        /* How long until deliver() could put m on the wire at once (flood control, rate
         * limits); 0: now. NULL: always 0. Asked before "attempted" is recorded. */
        uint64_t (*send_delay)(struct channel *ch, const struct channel_outbound *m);
        /* Live check: calls channel_doctor_done() once (from inside or later). The framework
         * has already checked the configuration, the allowlist and the group; the driver checks
         * what only it can (credentials accepted, endpoint reachable, webhook registered). */
        void (*doctor)(struct channel *ch, struct channel_doctor *doc);
};

/* --- core services: identity and plumbing ------------------------------------------------- */

const char *channel_name(const struct channel *ch);
const struct channel_kind *channel_kind_of(const struct channel *ch);
/* The configured group; NULL when the section has no `group`. */
const char *channel_group(const struct channel *ch);
/* The driver's private state (struct channel_kind.size bytes, zeroed at creation). */
void *channel_driver_data(struct channel *ch);
sd_event *channel_event(struct channel *ch);
/* The process's HTTP engine (libcurl multi on the loop), shared with the LLM providers. */
struct http_engine *channel_http(struct channel *ch);

/* Logs with CONCLAVE_CHANNEL=NAME and CONCLAVE_CHANNEL_KIND=KIND. Never pass message text or
 * secrets. Returns -abs(error) like the log_*_errno() helpers. */
int channel_log_internal(struct channel *ch, int level, int error, const char *file, int line,
                         const char *func, const char *format, ...) _printf_(7, 8);
#define channel_log(ch, level, error, ...) \
        channel_log_internal(ch, level, error, __FILE__, __LINE__, __func__, __VA_ARGS__)

/* --- core services: configuration --------------------------------------------------------- */

/* A kind-specific setting's string value, NULL when absent. Booleans and numbers come as
 * written ("true", "6697"). The channel keeps its own copy of its section, so the strings stay
 * valid until stop() returns (a reload that changes the section makes a new channel). */
const char *channel_setting(const struct channel *ch, const char *key);
/* Checked accessors for configure(): on a bad value they report "file:LINE: [channels.NAME]
 * KEY: …" through chk and return -EINVAL; absent keys give the default. */
const char *channel_check_string(struct channel_check *chk, const char *key, bool required);
int channel_check_uint(struct channel_check *chk, const char *key, uint64_t def, uint64_t min,
                       uint64_t max, uint64_t *ret);
int channel_check_bool(struct channel_check *chk, const char *key, bool def, bool *ret);
int channel_check_duration(struct channel_check *chk, const char *key, uint64_t def_usec,
                           uint64_t min_usec, uint64_t max_usec, uint64_t *ret);
/* Reports one problem with key's file and line (or the section's, for a missing key). The
 * message should say how to fix it. */
void channel_check_error(struct channel_check *chk, const char *key, const char *format, ...) _printf_(3, 4);
/* The secret named by setting `key` (which must end in "_file"): the file's content without a
 * trailing newline, or the systemd credential "NAME.BASE" ($CREDENTIALS_DIRECTORY/NAME.BASE,
 * BASE being key without "_file") when the setting is absent. The file must not be readable by
 * group or others. Returns 0 with *ret (free with channel_secret_free()), -ENOKEY when neither
 * exists (not reported: the caller decides if it is required), or -errno (reported via chk when
 * chk is not NULL). */
int channel_credential(struct channel *ch, struct channel_check *chk, const char *key, char **ret);
/* Wipes and frees a secret; NULL is fine. */
void channel_secret_free(char *secret);

/* --- core services: running --------------------------------------------------------------- */

/* Reports the channel's state; error: the last problem (printf format, NULL when none), kept
 * until the next call. Logged when the state or error changes. */
void channel_set_state(struct channel *ch, enum channel_state st, const char *error_format, ...) _printf_(3, 4);
enum channel_state channel_get_state(const struct channel *ch);

/* One message from the platform. Pointers are only read during the call. */
struct channel_inbound {
        /* The platform's id of the message, unique within the channel: the de-duplication key
         * (a webhook retried, a long poll repeated). [A-Za-z0-9_.:@-], at most 128 bytes. NULL:
         * the platform has no ids (IRC); the framework makes a unique one. */
        const char *message_id;
        const char *user;         /* stable platform user id: what allowed_users lists */
        const char *display_name; /* NULL: user */
        const char *text;         /* any bytes; cleaned to UTF-8 without control characters */
        const char *reply_to;     /* platform id of the message it answers; NULL: none */
        const char *thread;       /* platform thread id; NULL: none */
};

/* Called once the message is durable in the ledger (error 0; also for a duplicate), or
 * refused by the supervisor (-ENOENT: the group does not exist; -EPERM: the group is stopped;
 * -ECONNABORTED: conclave-channels lost the supervisor; …). Never called from inside
 * channel_report_inbound(). */
typedef void (*channel_inbound_done_fn)(struct channel *ch, int error, void *userdata);

/* Hands a message to the supervisor. Returns 0 (done, if not NULL, will be called), -EACCES
 * when the sender is not in allowed_users (logged with who and which channel; done is not
 * called; the text went nowhere), -EINVAL for an invalid user or message id, -ENOTCONN when
 * there is no supervisor. A driver that persists a position (an offset) should move it in done,
 * once the message is durable. */
int channel_report_inbound(struct channel *ch, const struct channel_inbound *m, channel_inbound_done_fn done,
                           void *userdata);
/* Is this platform user in allowed_users ("*" allows all; ASCII case-insensitive)? */
bool channel_user_allowed(const struct channel *ch, const char *user);

/* Completes a delivery (see deliver()). May be called from inside deliver(). */
void channel_delivery_done(struct channel_delivery *d, const struct channel_delivery_result *r);
/* The message of a delivery in flight. */
const struct channel_outbound *channel_delivery_message(const struct channel_delivery *d);
/* Driver data attached to a delivery in flight (e.g. the PING token that confirms it). */
void channel_delivery_set_userdata(struct channel_delivery *d, void *userdata);
void *channel_delivery_get_userdata(const struct channel_delivery *d);
/* Deliveries may be waiting: ask send_delay()/deliver() again now (e.g. flood tokens came
 * back, or the driver is ready after a reconnect). */
void channel_kick(struct channel *ch);

/* Persisted driver state (see "storage" above). get: NULL when unset. set: value NULL removes
 * the key; returns -E2BIG beyond the limits. Stored asynchronously in order; a value set
 * before a crash may be lost only if the supervisor never got it. */
const char *channel_store_get(const struct channel *ch, const char *key);
int channel_store_set(struct channel *ch, const char *key, const char *value);

/* Completes a live check. ok false: problem says what is wrong, fix what to do about it, in
 * concrete terms ("set nick to a name not in use on irc.libera.chat", "run chmod 600 FILE").
 * detail (optional) says what was checked when ok. */
void channel_doctor_done(struct channel_doctor *doc, bool ok, const char *problem, const char *fix,
                         const char *detail);

/* --- the kind registry -------------------------------------------------------------------- */

/* Every kind this build has (channel_kinds.h), or NULL for an unknown name. */
const struct channel_kind *channel_kind_find(const char *name);
