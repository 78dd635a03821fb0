/* The `irc` channel kind: one connection to an IRC server (plain or TLS), registered with a nick
 * (SASL PLAIN or NickServ IDENTIFY when a password is set), in one channel. Messages in the
 * channel and private messages to the nick come in from their nicks; deliveries go to the
 * channel as "nick: text" (or privately, answering a private message), cut into lines that fit,
 * paced by a token bucket (flood control), each confirmed by a PING whose PONG proves the
 * server read every line before it. Reconnects with backoff. See docs/channels.md. */

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "channel.h"
#include "irc_proto.h"
#include "line_conn.h"
#include "timeutil.h"

#define IRC_RECONNECT_MIN_USEC (1 * USEC_PER_SEC)
#define IRC_RECONNECT_MAX_USEC (300 * USEC_PER_SEC)
#define IRC_TICK_USEC (10 * USEC_PER_SEC)
#define IRC_IDLE_PING_USEC (90 * USEC_PER_SEC)
#define IRC_DEAD_USEC (240 * USEC_PER_SEC)
#define IRC_CONFIRM_TIMEOUT_USEC (60 * USEC_PER_SEC)
#define IRC_REJOIN_USEC (30 * USEC_PER_SEC)
#define IRC_DOWN_AFTER_FAILURES 3
/* Room kept for the ":nick!user@host " prefix the server puts in front of our lines. */
#define IRC_PREFIX_RESERVE 100
#define IRC_DM_THREAD "dm"

enum irc_phase { IRC_IDLE, IRC_CONNECTING, IRC_REGISTERING, IRC_REGISTERED, IRC_JOINED };

struct irc_pending {
        struct irc_pending *next;
        struct channel_delivery *delivery;
        uint64_t token;
        uint64_t sent_usec;
};

struct irc {
        struct channel *channel;
        /* settings */
        const char *server, *ca_file, *nick, *username, *room;
        uint16_t port;
        bool tls, sasl;
        char *password;
        uint64_t flood_interval_usec;
        unsigned flood_burst;

        struct line_conn *conn;
        enum irc_phase phase;
        char current_nick[IRC_NICK_MAX + 1];
        unsigned nick_tries;
        unsigned failures;
        bool auth_failed; /* SASL refused: retrying fast cannot help */
        char last_error[CHANNEL_ERROR_MAX];
        char join_problem[CHANNEL_ERROR_MAX];
        uint64_t last_rx_usec, last_ping_usec;
        sd_event_source *reconnect_timer, *tick, *rejoin_timer;

        int64_t credit_usec; /* flood tokens in units of time; may go below zero (debt) */
        uint64_t credit_at;

        uint64_t next_token;
        uint64_t ping_outstanding; /* token of the confirmation PING in flight; 0: none */
        struct irc_pending *pending, **pending_tail;
};

static const char *const irc_settings[] = {
        "server", "port", "tls", "ca_file", "nick", "username", "channel", "password_file", "sasl",
        "flood_burst", "flood_interval", NULL,
};

static uint64_t now_mono(void) {
        return now_usec(CLOCK_MONOTONIC);
}

static void irc_connect(struct irc *irc);

/* --- flood control ------------------------------------------------------------------------- */

static void bucket_refill(struct irc *irc, uint64_t now) {
        int64_t full = (int64_t) (irc->flood_burst * irc->flood_interval_usec);

        if (irc->credit_at == 0) {
                irc->credit_usec = full;
                irc->credit_at = now;
                return;
        }
        irc->credit_usec += (int64_t) (now - irc->credit_at);
        if (irc->credit_usec > full)
                irc->credit_usec = full;
        irc->credit_at = now;
}

static uint64_t bucket_wait(struct irc *irc, unsigned lines) {
        int64_t need;

        if (irc->flood_interval_usec == 0)
                return 0;
        bucket_refill(irc, now_mono());
        /* More lines than the burst: wait for a full bucket, then go into debt. */
        need = (int64_t) (MIN(lines, irc->flood_burst) * irc->flood_interval_usec);
        return irc->credit_usec >= need ? 0 : (uint64_t) (need - irc->credit_usec);
}

static void bucket_take(struct irc *irc, unsigned lines) {
        if (irc->flood_interval_usec == 0)
                return;
        bucket_refill(irc, now_mono());
        irc->credit_usec -= (int64_t) (lines * irc->flood_interval_usec);
}

/* --- sending ------------------------------------------------------------------------------- */

static int send_line(struct irc *irc, const char *format, ...) _printf_(2, 3);
static int send_line(struct irc *irc, const char *format, ...) {
        char line[IRC_LINE_MAX + 1];
        va_list ap;
        int n;

        va_start(ap, format);
        n = vsnprintf(line, sizeof line - 2, format, ap);
        va_end(ap);
        if (n < 0 || (size_t) n >= sizeof line - 2)
                return -EMSGSIZE;
        /* Nothing from a platform or the ledger may smuggle a second command in. */
        if (strpbrk(line, "\r\n"))
                return -EINVAL;
        memcpy(line + n, "\r\n", 3);
        return line_conn_send(irc->conn, line, (size_t) n + 2);
}

/* --- deliveries waiting for their PONG ---------------------------------------------------- */

static void pending_fail_all(struct irc *irc, int error, const char *detail) {
        struct irc_pending *p;

        while ((p = irc->pending)) {
                struct channel_delivery_result r = { .error = error, .detail = detail };
                irc->pending = p->next;
                channel_delivery_done(p->delivery, &r);
                free(p);
        }
        irc->pending_tail = &irc->pending;
}

/* One PING confirms every line written before it, so there is at most one in flight: lines
 * written meanwhile wait for the next (fewer commands, which servers count for flood too). */
static void confirm_ping(struct irc *irc) {
        if (irc->ping_outstanding || !irc->pending)
                return;
        irc->ping_outstanding = ++irc->next_token;
        for (struct irc_pending *p = irc->pending; p; p = p->next)
                if (p->token == 0)
                        p->token = irc->ping_outstanding;
        bucket_take(irc, 1);
        (void) send_line(irc, "PING :cd%" PRIu64, irc->ping_outstanding);
}

static void pending_confirm(struct irc *irc, uint64_t token) {
        struct irc_pending *p;

        if (token != irc->ping_outstanding)
                return;
        irc->ping_outstanding = 0;
        /* The server answers in order: everything written before this PING was read. */
        while ((p = irc->pending) && p->token != 0 && p->token <= token) {
                struct channel_delivery_result r = { .error = 0 };
                irc->pending = p->next;
                channel_delivery_done(p->delivery, &r);
                free(p);
        }
        if (!irc->pending)
                irc->pending_tail = &irc->pending;
        confirm_ping(irc);
}

/* --- connection life ----------------------------------------------------------------------- */

static void set_error(struct irc *irc, const char *format, ...) _printf_(2, 3);
static void set_error(struct irc *irc, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        vsnprintf(irc->last_error, sizeof irc->last_error, format, ap);
        va_end(ap);
}

static int on_reconnect(sd_event_source *src, uint64_t usec, void *userdata) {
        struct irc *irc = userdata;

        irc->reconnect_timer = sd_event_source_disable_unref(irc->reconnect_timer);
        irc_connect(irc);
        return 0;
}

static void schedule_reconnect(struct irc *irc) {
        uint64_t delay = IRC_RECONNECT_MIN_USEC;

        for (unsigned i = 1; i < irc->failures && delay < IRC_RECONNECT_MAX_USEC; i++)
                delay *= 2;
        if (irc->auth_failed)
                delay = IRC_RECONNECT_MAX_USEC;
        delay = MIN(delay, IRC_RECONNECT_MAX_USEC);
        irc->reconnect_timer = sd_event_source_disable_unref(irc->reconnect_timer);
        (void) sd_event_add_time_relative(channel_event(irc->channel), &irc->reconnect_timer, CLOCK_MONOTONIC, delay,
                                          TIMER_ACCURACY_USEC, on_reconnect, irc);
        channel_set_state(irc->channel,
                          irc->auth_failed || irc->failures >= IRC_DOWN_AFTER_FAILURES ? CHANNEL_DOWN : CHANNEL_CONNECTING,
                          "%s; reconnecting in %" PRIu64 "s", irc->last_error, delay / USEC_PER_SEC);
}

/* Drops the connection (its deliveries are retried) and reconnects later. */
static void disconnect(struct irc *irc) {
        irc->conn = line_conn_free(irc->conn);
        irc->rejoin_timer = sd_event_source_disable_unref(irc->rejoin_timer);
        irc->phase = IRC_IDLE;
        irc->ping_outstanding = 0;
        pending_fail_all(irc, -ECONNRESET, "the IRC connection was lost before the server confirmed the message");
        irc->failures++;
        schedule_reconnect(irc);
}

static void on_closed(struct line_conn *c, int error, const char *detail, void *userdata) {
        struct irc *irc = userdata;

        if (detail)
                set_error(irc, "%s:%u: %s", irc->server, irc->port, detail);
        else if (!(irc->phase >= IRC_REGISTERING && *irc->last_error && strstr(irc->last_error, "ERROR")))
                set_error(irc, "%s:%u: %s", irc->server, irc->port,
                          irc->phase == IRC_CONNECTING ? strerror(-error) : "connection closed by the server");
        channel_log(irc->channel, LOG_WARNING, error, "%s", irc->last_error);
        disconnect(irc);
}

static void update_state(struct irc *irc) {
        if (irc->phase != IRC_JOINED)
                return;
        if (*irc->join_problem)
                channel_set_state(irc->channel, CHANNEL_DEGRADED, "%s", irc->join_problem);
        else if (!irc_nick_equal(irc->current_nick, irc->nick))
                channel_set_state(irc->channel, CHANNEL_DEGRADED, "nick %s is in use; connected as %s", irc->nick,
                                  irc->current_nick);
        else
                channel_set_state(irc->channel, CHANNEL_UP, NULL);
}

static void on_connected(struct line_conn *c, void *userdata) {
        struct irc *irc = userdata;

        irc->phase = IRC_REGISTERING;
        irc->last_rx_usec = now_mono();
        irc->nick_tries = 0;
        snprintf(irc->current_nick, sizeof irc->current_nick, "%s", irc->nick);
        channel_log(irc->channel, LOG_INFO, 0, "connected to %s:%u%s; registering as %s", irc->server, irc->port,
                    irc->tls ? " (TLS)" : "", irc->nick);
        if (irc->sasl)
                (void) send_line(irc, "CAP REQ :sasl");
        (void) send_line(irc, "NICK %s", irc->nick);
        (void) send_line(irc, "USER %s 0 * :Conclave", irc->username);
}

static void auth_failed(struct irc *irc, const char *why) {
        irc->auth_failed = true;
        set_error(irc, "%s", why);
        channel_log(irc->channel, LOG_ERR, 0, "%s", why);
        disconnect(irc);
}

static void send_sasl_plain(struct irc *irc) {
        char raw[3 * 256 + 3], encoded[((sizeof raw + 2) / 3) * 4 + 1];
        size_t u = strlen(irc->username), p = strlen(irc->password);
        int n;

        if (u > 255 || p > 255) {
                auth_failed(irc, "SASL credentials longer than 255 bytes");
                return;
        }
        /* authzid \0 authcid \0 password, RFC 4616 */
        memcpy(raw, irc->username, u);
        raw[u] = 0;
        memcpy(raw + u + 1, irc->username, u);
        raw[2 * u + 1] = 0;
        memcpy(raw + 2 * u + 2, irc->password, p);
        n = EVP_EncodeBlock((unsigned char *) encoded, (const unsigned char *) raw, (int) (2 * u + 2 + p));
        explicit_bzero(raw, sizeof raw);
        if (n > 400) {
                explicit_bzero(encoded, sizeof encoded);
                auth_failed(irc, "SASL credentials too long for one AUTHENTICATE line");
                return;
        }
        (void) send_line(irc, "AUTHENTICATE %s", encoded);
        explicit_bzero(encoded, sizeof encoded);
}

static void registered(struct irc *irc, const char *nick) {
        irc->phase = IRC_REGISTERED;
        irc->failures = 0;
        irc->auth_failed = false;
        *irc->last_error = 0;
        if (nick)
                snprintf(irc->current_nick, sizeof irc->current_nick, "%s", nick);
        if (irc->password && !irc->sasl)
                (void) send_line(irc, "PRIVMSG NickServ :IDENTIFY %s %s", irc->nick, irc->password);
        (void) send_line(irc, "JOIN %s", irc->room);
        channel_set_state(irc->channel, CHANNEL_CONNECTING, "registered as %s; joining %s", irc->current_nick, irc->room);
}

static int on_rejoin(sd_event_source *src, uint64_t usec, void *userdata) {
        struct irc *irc = userdata;

        irc->rejoin_timer = sd_event_source_disable_unref(irc->rejoin_timer);
        if (irc->phase >= IRC_REGISTERED)
                (void) send_line(irc, "JOIN %s", irc->room);
        return 0;
}

static void rejoin_later(struct irc *irc) {
        if (!irc->rejoin_timer)
                (void) sd_event_add_time_relative(channel_event(irc->channel), &irc->rejoin_timer, CLOCK_MONOTONIC,
                                                  IRC_REJOIN_USEC, TIMER_ACCURACY_USEC, on_rejoin, irc);
}

static void on_privmsg(struct irc *irc, const struct irc_message *m) {
        char nick[IRC_NICK_MAX + 1], user[IRC_NICK_MAX + 1], *text;
        bool private;
        int r;

        if (m->n_params < 2)
                return;
        irc_prefix_nick(m->prefix, nick, sizeof nick);
        if (!*nick || irc_nick_equal(nick, irc->current_nick))
                return;
        private = irc_nick_equal(m->params[0], irc->current_nick);
        if (!private && !irc_nick_equal(m->params[0], irc->room))
                return;
        if (m->params[1][0] == 1)
                return; /* CTCP (ACTION, VERSION, …) */
        text = strdup(m->params[1]);
        if (!text)
                return;
        irc_strip_formatting(text);
        snprintf(user, sizeof user, "%s", nick);
        irc_casefold(user);
        r = channel_report_inbound(irc->channel,
                                   &(struct channel_inbound){ .user = user, .display_name = nick, .text = text,
                                                              .thread = private ? IRC_DM_THREAD : NULL },
                                   NULL, NULL);
        if (r < 0 && r != -EACCES)
                channel_log(irc->channel, LOG_WARNING, r, "message from %s not passed on", nick);
        free(text);
}

static void on_line(struct line_conn *c, const char *line, size_t len, void *userdata) {
        struct irc *irc = userdata;
        _cleanup_free_ char *copy = strndup(line, len);
        struct irc_message m;
        const char *cmd;
        char nick[IRC_NICK_MAX + 1];

        if (!copy || irc_parse(copy, &m) < 0)
                return;
        irc->last_rx_usec = now_mono();
        cmd = m.command;
        if (streq(cmd, "PING")) {
                (void) send_line(irc, "PONG :%s", m.n_params > 0 ? m.params[m.n_params - 1] : "");
        } else if (streq(cmd, "PONG")) {
                const char *token = m.n_params > 0 ? m.params[m.n_params - 1] : "";
                if (strncmp(token, "cd", 2) == 0)
                        pending_confirm(irc, strtoull(token + 2, NULL, 10));
        } else if (streq(cmd, "001")) {
                registered(irc, m.n_params > 0 ? m.params[0] : NULL);
        } else if ((streq(cmd, "433") || streq(cmd, "432")) && irc->phase == IRC_REGISTERING) {
                /* Nick in use (or refused): try NICK_, NICK__, NICK___. */
                if (++irc->nick_tries > 3 || strlen(irc->nick) + irc->nick_tries > 30) {
                        set_error(irc, "nick %s is in use or refused on %s", irc->nick, irc->server);
                        disconnect(irc);
                        return;
                }
                snprintf(irc->current_nick, sizeof irc->current_nick, "%s%.*s", irc->nick, (int) irc->nick_tries, "___");
                (void) send_line(irc, "NICK %s", irc->current_nick);
        } else if (streq(cmd, "NICK")) {
                irc_prefix_nick(m.prefix, nick, sizeof nick);
                if (irc_nick_equal(nick, irc->current_nick) && m.n_params > 0) {
                        snprintf(irc->current_nick, sizeof irc->current_nick, "%s", m.params[0]);
                        update_state(irc);
                }
        } else if (streq(cmd, "JOIN")) {
                irc_prefix_nick(m.prefix, nick, sizeof nick);
                if (irc_nick_equal(nick, irc->current_nick) && m.n_params > 0 && irc_nick_equal(m.params[0], irc->room)) {
                        irc->phase = IRC_JOINED;
                        *irc->join_problem = 0;
                        channel_log(irc->channel, LOG_INFO, 0, "joined %s as %s", irc->room, irc->current_nick);
                        update_state(irc);
                }
        } else if (streq(cmd, "KICK") && m.n_params >= 2 && irc_nick_equal(m.params[1], irc->current_nick)) {
                snprintf(irc->join_problem, sizeof irc->join_problem, "kicked from %s; rejoining", irc->room);
                irc->phase = IRC_REGISTERED;
                channel_set_state(irc->channel, CHANNEL_DEGRADED, "%s", irc->join_problem);
                rejoin_later(irc);
        } else if (streq(cmd, "403") || streq(cmd, "405") || streq(cmd, "471") || streq(cmd, "473") ||
                   streq(cmd, "474") || streq(cmd, "475") || streq(cmd, "477")) {
                snprintf(irc->join_problem, sizeof irc->join_problem, "cannot join %s: %s", irc->room,
                         m.n_params > 0 ? m.params[m.n_params - 1] : cmd);
                channel_set_state(irc->channel, CHANNEL_DEGRADED, "%s", irc->join_problem);
                rejoin_later(irc);
        } else if (streq(cmd, "PRIVMSG")) {
                on_privmsg(irc, &m);
        } else if (streq(cmd, "CAP") && m.n_params >= 3 && irc->sasl) {
                if (streq(m.params[1], "ACK") && strstr(m.params[2], "sasl"))
                        (void) send_line(irc, "AUTHENTICATE PLAIN");
                else if (streq(m.params[1], "NAK"))
                        auth_failed(irc, "the server does not offer SASL; set sasl = false (NickServ is used then)");
        } else if (streq(cmd, "AUTHENTICATE") && m.n_params > 0 && streq(m.params[0], "+")) {
                send_sasl_plain(irc);
        } else if (streq(cmd, "903")) {
                (void) send_line(irc, "CAP END");
        } else if (streq(cmd, "902") || streq(cmd, "904") || streq(cmd, "905") || streq(cmd, "906") ||
                   streq(cmd, "908")) {
                auth_failed(irc, "SASL PLAIN login refused; check username and password_file");
        } else if (streq(cmd, "ERROR")) {
                set_error(irc, "%s:%u: the server closed the connection: ERROR %s", irc->server, irc->port,
                          m.n_params > 0 ? m.params[m.n_params - 1] : "");
        } else if (streq(cmd, "NOTICE")) {
                irc_prefix_nick(m.prefix, nick, sizeof nick);
                if (irc_nick_equal(nick, "NickServ") && m.n_params > 1)
                        channel_log(irc->channel, LOG_NOTICE, 0, "NickServ says: %.200s", m.params[1]);
        }
}

static void irc_connect(struct irc *irc) {
        static const struct line_conn_ops ops = { .connected = on_connected, .line = on_line, .closed = on_closed };
        struct line_conn_options o = {
                .host = irc->server, .port = irc->port, .tls = irc->tls, .ca_file = irc->ca_file,
                .max_line = 8192, .max_output = 1024 * 1024,
        };
        int r;

        irc->phase = IRC_CONNECTING;
        if (*irc->last_error)
                channel_set_state(irc->channel, irc->failures >= IRC_DOWN_AFTER_FAILURES ? CHANNEL_DOWN : CHANNEL_CONNECTING,
                                  "%s", irc->last_error);
        else
                channel_set_state(irc->channel, CHANNEL_CONNECTING, NULL);
        r = line_conn_new(channel_event(irc->channel), &o, &ops, irc, &irc->conn);
        if (r < 0) {
                set_error(irc, "cannot connect to %s:%u: %s", irc->server, irc->port, strerror(-r));
                irc->phase = IRC_IDLE;
                irc->failures++;
                schedule_reconnect(irc);
        }
}

static int on_tick(sd_event_source *src, uint64_t usec, void *userdata) {
        struct irc *irc = userdata;
        uint64_t now = now_mono();

        (void) sd_event_source_set_time(src, usec + IRC_TICK_USEC);
        if (irc->phase < IRC_REGISTERING || !irc->conn)
                return 0;
        if (now - irc->last_rx_usec > IRC_DEAD_USEC ||
            (irc->pending && now - irc->pending->sent_usec > IRC_CONFIRM_TIMEOUT_USEC)) {
                set_error(irc, "%s:%u: no answer from the server for %" PRIu64 "s", irc->server, irc->port,
                          (now - irc->last_rx_usec) / USEC_PER_SEC);
                channel_log(irc->channel, LOG_WARNING, 0, "%s; reconnecting", irc->last_error);
                disconnect(irc);
                return 0;
        }
        /* A nick taken by our own ghost (after a crash) frees up once the server drops it. */
        if (irc->phase >= IRC_REGISTERED && !irc_nick_equal(irc->current_nick, irc->nick))
                (void) send_line(irc, "NICK %s", irc->nick);
        if (now - irc->last_rx_usec > IRC_IDLE_PING_USEC && now - irc->last_ping_usec > IRC_IDLE_PING_USEC) {
                irc->last_ping_usec = now;
                (void) send_line(irc, "PING :idle");
        }
        return 0;
}

/* --- the driver ---------------------------------------------------------------------------- */

static int irc_configure(struct channel *ch, struct channel_check *chk) {
        struct irc *irc = channel_driver_data(ch);
        uint64_t port = 0, burst = 0;
        int r;

        irc->channel = ch;
        irc->pending_tail = &irc->pending;
        irc->server = channel_check_string(chk, "server", true);
        irc->nick = channel_check_string(chk, "nick", true);
        irc->room = channel_check_string(chk, "channel", true);
        irc->username = channel_check_string(chk, "username", false) ?: irc->nick;
        irc->ca_file = channel_check_string(chk, "ca_file", false);
        /* Each checked on its own, so every bad value is reported (the errors count in chk). */
        (void) channel_check_bool(chk, "tls", true, &irc->tls);
        (void) channel_check_bool(chk, "sasl", false, &irc->sasl);
        (void) channel_check_uint(chk, "port", irc->tls ? 6697 : 6667, 1, 65535, &port);
        (void) channel_check_uint(chk, "flood_burst", 4, 1, 100, &burst);
        (void) channel_check_duration(chk, "flood_interval", 1 * USEC_PER_SEC, 0, 60 * USEC_PER_SEC,
                                      &irc->flood_interval_usec);
        irc->port = (uint16_t) port;
        irc->flood_burst = (unsigned) burst;
        if (irc->server && (!*irc->server || strpbrk(irc->server, " /:") || strlen(irc->server) > 253))
                channel_check_error(chk, "server", "\"%s\" is not a host name or address (the port goes in port =)",
                                    irc->server);
        if (irc->nick && !irc_valid_nick(irc->nick))
                channel_check_error(chk, "nick", "\"%s\" is not a valid IRC nick (1-30 letters, digits, []\\`_^{|}-, "
                                    "not starting with a digit or -)", irc->nick);
        if (irc->room && !irc_valid_channel(irc->room))
                channel_check_error(chk, "channel", "\"%s\" is not an IRC channel name (e.g. \"#conclave\")", irc->room);
        if (irc->username && (strlen(irc->username) > 32 || strpbrk(irc->username, " @!\r\n")))
                channel_check_error(chk, "username", "\"%s\" is not a valid user name (no spaces, @ or !; up to 32)",
                                    irc->username);
        if (irc->ca_file && !irc->tls)
                channel_check_error(chk, "ca_file", "set, but tls = false: the CA is only used with TLS");
        r = channel_credential(ch, chk, "password_file", &irc->password);
        if (r == -ENOKEY) {
                r = 0;
                if (irc->sasl)
                        channel_check_error(chk, "password_file", "sasl = true needs the SASL password: set "
                                            "password_file = (mode 600) or the credential %s.password", channel_name(ch));
        }
        return r < 0 ? r : 0;
}

static int irc_start(struct channel *ch) {
        struct irc *irc = channel_driver_data(ch);
        int r;

        r = sd_event_add_time_relative(channel_event(ch), &irc->tick, CLOCK_MONOTONIC, IRC_TICK_USEC, TIMER_ACCURACY_USEC,
                                       on_tick, irc);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(irc->tick, SD_EVENT_ON);
        irc_connect(irc);
        return 0;
}

static void irc_stop(struct channel *ch) {
        struct irc *irc = channel_driver_data(ch);
        struct irc_pending *p;

        if (irc->conn && line_conn_is_connected(irc->conn))
                (void) send_line(irc, "QUIT :Conclave stopping");
        irc->conn = line_conn_free(irc->conn);
        while ((p = irc->pending)) {
                irc->pending = p->next;
                free(p);
        }
        irc->reconnect_timer = sd_event_source_disable_unref(irc->reconnect_timer);
        irc->rejoin_timer = sd_event_source_disable_unref(irc->rejoin_timer);
        irc->tick = sd_event_source_disable_unref(irc->tick);
        channel_secret_free(irc->password);
        irc->password = NULL;
}

/* Where a delivery goes and the text in front of each of its lines. */
static void delivery_target(struct irc *irc, const struct channel_outbound *m, const char **target, char *prefix,
                            size_t size) {
        if (streq(m->thread, IRC_DM_THREAD)) {
                *target = m->user;
                *prefix = 0;
        } else {
                *target = irc->room;
                snprintf(prefix, size, "%s: ", m->display_name ? m->display_name : m->user);
        }
}

static size_t piece_max(struct irc *irc, const char *target, const char *prefix) {
        size_t used = strlen("PRIVMSG ") + strlen(target) + strlen(" :") + strlen(prefix) + IRC_PREFIX_RESERVE + 2;
        return used + 64 < IRC_LINE_MAX ? IRC_LINE_MAX - used : 64;
}

static uint64_t irc_send_delay(struct channel *ch, const struct channel_outbound *m) {
        struct irc *irc = channel_driver_data(ch);
        char prefix[IRC_NICK_MAX + 4];
        const char *target;
        int n;

        delivery_target(irc, m, &target, prefix, sizeof prefix);
        n = irc_split_text(m->text, piece_max(irc, target, prefix), NULL, NULL);
        return bucket_wait(irc, n > 0 ? (unsigned) n : 1);
}

struct piece_out {
        struct irc *irc;
        const char *target, *prefix;
        int error;
};

static int send_piece(const char *piece, size_t len, void *userdata) {
        struct piece_out *o = userdata;
        int r = send_line(o->irc, "PRIVMSG %s :%s%.*s", o->target, o->prefix, (int) len, piece);

        if (r < 0)
                o->error = r;
        return r;
}

static int irc_deliver(struct channel *ch, struct channel_delivery *d, const struct channel_outbound *m) {
        struct irc *irc = channel_driver_data(ch);
        char prefix[IRC_NICK_MAX + 4];
        struct piece_out out = { .irc = irc };
        struct irc_pending *p;
        size_t max;
        int n;

        if (!irc->conn || irc->phase < IRC_REGISTERED)
                return -ENOTCONN;
        if (strchr(m->user, ' ') || (streq(m->thread, IRC_DM_THREAD) && !irc_valid_nick(m->user)))
                return -EINVAL;
        delivery_target(irc, m, &out.target, prefix, sizeof prefix);
        out.prefix = prefix;
        max = piece_max(irc, out.target, prefix);
        n = irc_split_text(m->text, max, NULL, NULL);
        if (n <= 0)
                n = 0;
        if (line_conn_queued(irc->conn) + (size_t) (n + 1) * IRC_LINE_MAX > 1024 * 1024)
                return -ENOBUFS; /* the server is not reading: nothing was written */
        p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        if (n > 0 && irc_split_text(m->text, max, send_piece, &out) < 0) {
                free(p);
                return out.error < 0 ? out.error : -EIO;
        }
        bucket_take(irc, (unsigned) MAX(n, 1));
        p->delivery = d;
        p->sent_usec = now_mono();
        *irc->pending_tail = p;
        irc->pending_tail = &p->next;
        confirm_ping(irc);
        return 0;
}

static void irc_doctor(struct channel *ch, struct channel_doctor *doc) {
        struct irc *irc = channel_driver_data(ch);
        char detail[512], fix[512];

        if (irc->phase == IRC_JOINED) {
                snprintf(detail, sizeof detail, "connected to %s:%u%s as %s, in %s", irc->server, irc->port,
                         irc->tls ? " with TLS" : "", irc->current_nick, irc->room);
                if (*irc->join_problem || !irc_nick_equal(irc->current_nick, irc->nick)) {
                        snprintf(fix, sizeof fix, "%s", *irc->join_problem
                                                                ? "check that the channel exists and does not need an invite or key"
                                                                : "choose a nick not in use (nick =), or wait until it is free");
                        channel_doctor_done(doc, false, *irc->join_problem ? irc->join_problem : "the configured nick is in use",
                                            fix, detail);
                } else
                        channel_doctor_done(doc, true, NULL, NULL, detail);
                return;
        }
        if (irc->auth_failed)
                snprintf(fix, sizeof fix, "check username and password_file (the SASL PLAIN credentials registered for %s)",
                         irc->nick);
        else if (strstr(irc->last_error, "certificate"))
                snprintf(fix, sizeof fix, "set ca_file = to the CA certificate that signed %s's certificate, or fix the "
                         "server's certificate (its name must be %s)", irc->server, irc->server);
        else if (strstr(irc->last_error, "refused"))
                snprintf(fix, sizeof fix, "is an IRC server listening on %s port %u? check server =, port = and tls =",
                         irc->server, irc->port);
        else if (strstr(irc->last_error, "resolve"))
                snprintf(fix, sizeof fix, "check server = (\"%s\" does not resolve from this host)", irc->server);
        else if (strstr(irc->last_error, "nick"))
                snprintf(fix, sizeof fix, "choose another nick = in [channels.%s]", channel_name(ch));
        else
                snprintf(fix, sizeof fix, "check that %s:%u is reachable from this host and speaks IRC%s", irc->server,
                         irc->port, irc->tls ? " over TLS" : "");
        channel_doctor_done(doc, false, *irc->last_error ? irc->last_error : "not connected yet", fix, NULL);
}

const struct channel_kind channel_kind_irc = {
        .name = "irc",
        .size = sizeof(struct irc),
        .settings = irc_settings,
        .max_in_flight = 4,
        .resend_in_doubt = false,
        .configure = irc_configure,
        .start = irc_start,
        .stop = irc_stop,
        .deliver = irc_deliver,
        .send_delay = irc_send_delay,
        .doctor = irc_doctor,
};
