/* Discord Gateway session (discord_gateway.h). */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "discord_codec.h"
#include "discord_gateway.h"
#include "platform_driver.h"
#include "proto.h"
#include "ws_client.h"

struct discord_gateway {
        struct channel *ch;
        char *token;
        struct ws_client *ws;
        char *url;        /* where IDENTIFY goes */
        char *resume_url; /* where RESUME goes */
        char *session;
        char *user_id;
        int64_t seq;
        uint64_t heartbeat_usec;
        bool acked;
        bool ready;
        bool connected;
        bool fatal;
        unsigned failures;
        sd_event_source *heartbeat;
        sd_event_source *reconnect;
};

static int connect_now(struct discord_gateway *g);

static int on_reconnect(sd_event_source *s, uint64_t usec, void *userdata) {
        (void) s;
        (void) usec;
        (void) connect_now(userdata);
        return 0;
}

static void reconnect_later(struct discord_gateway *g, uint64_t delay) {
        g->reconnect = sd_event_source_disable_unref(g->reconnect);
        (void) sd_event_add_time_relative(channel_event(g->ch), &g->reconnect, CLOCK_MONOTONIC, delay, TIMER_ACCURACY_USEC,
                                          on_reconnect, g);
}

static int send_text(struct discord_gateway *g, char *text) {
        int r;

        if (!text)
                return -ENOMEM;
        r = ws_client_send(g->ws, text, strlen(text));
        /* IDENTIFY and RESUME carry the token. */
        explicit_bzero(text, strlen(text));
        free(text);
        return r;
}

static int on_heartbeat(sd_event_source *s, uint64_t usec, void *userdata) {
        struct discord_gateway *g = userdata;

        (void) usec;
        if (!g->acked) {
                /* No ACK since the last beat: a zombie connection. 4000 keeps the session resumable. */
                channel_log(g->ch, LOG_WARNING, 0, "discord gateway: no heartbeat ACK; reconnecting");
                ws_client_close(g->ws, 4000);
                return 0;
        }
        g->acked = false;
        (void) send_text(g, discord_build_heartbeat(g->seq));
        (void) sd_event_source_set_time_relative(s, g->heartbeat_usec);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

static void on_inbound_done(struct channel *ch, int error, void *userdata) {
        (void) userdata;
        /* The Gateway cannot replay a message: a failure here loses it, loudly. */
        if (error < 0 && error != -ENOENT && error != -EPERM)
                channel_log(ch, LOG_ERR, error, "discord: a message could not be stored and is lost");
}

static void dispatch(struct discord_gateway *g, const struct discord_frame *f) {
        if (f->seq > g->seq)
                g->seq = f->seq;
        if (streq(f->event, "READY")) {
                char *session = NULL, *resume = NULL, *uid = NULL;
                if (discord_parse_ready(f, &session, &resume, &uid) < 0) {
                        channel_log(g->ch, LOG_WARNING, 0, "discord gateway: malformed READY");
                        return;
                }
                free(g->session);
                free(g->resume_url);
                free(g->user_id);
                g->session = session;
                g->resume_url = resume;
                g->user_id = uid;
                g->ready = true;
                g->failures = 0;
                channel_set_state(g->ch, CHANNEL_UP, NULL);
        } else if (streq(f->event, "RESUMED")) {
                g->ready = true;
                g->failures = 0;
                channel_set_state(g->ch, CHANNEL_UP, NULL);
        } else if (streq(f->event, "MESSAGE_CREATE")) {
                struct platform_message m = {};
                char id[64], reply[64];
                int r = discord_parse_message(f, g->user_id, &m);
                if (r < 0) {
                        channel_log(g->ch, LOG_WARNING, r, "discord gateway: malformed MESSAGE_CREATE skipped");
                        return;
                }
                if (r == 0)
                        return;
                /* "CHANNEL:MESSAGE", so a reply knows its channel. */
                snprintf(id, sizeof id, "%s:%s", m.conversation, m.id);
                if (m.reply_to)
                        snprintf(reply, sizeof reply, "%s:%s", m.conversation, m.reply_to);
                struct channel_inbound in = { .message_id = id, .user = m.sender, .display_name = m.sender_name, .text = m.text,
                                              .reply_to = m.reply_to ? reply : NULL };
                (void) channel_report_inbound(g->ch, &in, on_inbound_done, NULL);
                platform_message_done(&m);
        }
}

static void on_message(struct discord_gateway *g, const char *data, size_t len) {
        _cleanup_json_ struct json_object *o = NULL;
        struct discord_frame f;
        uint64_t interval, jitter;

        if (discord_parse_frame(data, len, &o, &f) < 0) {
                channel_log(g->ch, LOG_WARNING, 0, "discord gateway: malformed payload (%zu bytes) ignored", len);
                return;
        }
        switch (f.op) {
        case DISCORD_OP_HELLO:
                if (discord_parse_hello(&f, &interval) < 0) {
                        ws_client_close(g->ws, 4000);
                        return;
                }
                g->heartbeat_usec = interval;
                g->acked = true;
                /* The first beat after interval * jitter, as Discord asks. */
                if (getrandom(&jitter, sizeof jitter, GRND_NONBLOCK) != sizeof jitter)
                        jitter = 0;
                g->heartbeat = sd_event_source_disable_unref(g->heartbeat);
                (void) sd_event_add_time_relative(channel_event(g->ch), &g->heartbeat, CLOCK_MONOTONIC,
                                                  (uint64_t) ((double) interval * (double) (jitter % 1000) / 1000.0),
                                                  TIMER_ACCURACY_USEC, on_heartbeat, g);
                if (g->session && g->seq > 0)
                        (void) send_text(g, discord_build_resume(g->token, g->session, g->seq));
                else
                        (void) send_text(g, discord_build_identify(g->token, DISCORD_INTENTS));
                break;
        case DISCORD_OP_HEARTBEAT:
                (void) send_text(g, discord_build_heartbeat(g->seq));
                break;
        case DISCORD_OP_HEARTBEAT_ACK:
                g->acked = true;
                break;
        case DISCORD_OP_RECONNECT:
                ws_client_close(g->ws, 4000);
                break;
        case DISCORD_OP_INVALID_SESSION:
                if (!f.data || !json_object_get_boolean(f.data)) {
                        g->session = mfree(g->session);
                        g->resume_url = mfree(g->resume_url);
                        g->seq = 0;
                }
                ws_client_close(g->ws, 4000);
                break;
        case DISCORD_OP_DISPATCH:
                dispatch(g, &f);
                break;
        default:
                break;
        }
}

/* Close codes after which reconnecting cannot help. */
static const char *fatal_close(int code) {
        switch (code) {
        case 4004:
                return "authentication failed: reset the bot token in the Developer Portal and update token_file";
        case 4010:
        case 4011:
                return "sharding is required for this bot (not supported)";
        case 4012:
                return "invalid API version";
        case 4013:
        case 4014:
                return "intents not allowed: enable MESSAGE CONTENT INTENT under Bot → Privileged Gateway Intents";
        default:
                return NULL;
        }
}

static void on_ws(struct ws_client *ws, enum ws_event ev, const char *data, size_t len, int code, void *userdata) {
        struct discord_gateway *g = userdata;
        const char *fatal;

        (void) ws;
        switch (ev) {
        case WS_CONNECTED:
                g->connected = true;
                break;
        case WS_MESSAGE:
                on_message(g, data, len);
                break;
        case WS_CLOSED:
                g->connected = false;
                g->ready = false;
                g->heartbeat = sd_event_source_disable_unref(g->heartbeat);
                fatal = fatal_close(code);
                if (fatal) {
                        g->fatal = true;
                        channel_set_state(g->ch, CHANNEL_DOWN, "discord gateway closed %d: %s", code, fatal);
                        return;
                }
                if (code == 4007 || code == 4009) { /* invalid seq, session timed out: identify anew */
                        g->session = mfree(g->session);
                        g->seq = 0;
                }
                g->failures++;
                channel_set_state(g->ch, CHANNEL_DEGRADED, "discord gateway: %s%.*s; reconnecting (sending still works)",
                                  code ? "closed " : "", code ? 0 : (int) MIN(len, (size_t) 200), code ? "" : data);
                reconnect_later(g, platform_backoff_usec(g->failures - 1, 0));
                break;
        }
}

static int connect_now(struct discord_gateway *g) {
        _cleanup_free_ char *url = NULL;
        const char *base = g->session && g->resume_url ? g->resume_url : g->url;

        if (g->fatal || !base)
                return 0;
        if (asprintf(&url, "%s/?v=10&encoding=json", base) < 0)
                return -ENOMEM;
        return ws_client_connect(g->ws, url);
}

int discord_gateway_connect(struct discord_gateway *g, const char *url) {
        char *copy = strdup(url);

        if (!copy)
                return -ENOMEM;
        while (*copy && copy[strlen(copy) - 1] == '/')
                copy[strlen(copy) - 1] = 0;
        free(g->url);
        g->url = copy;
        g->fatal = false;
        return connect_now(g);
}

bool discord_gateway_ready(const struct discord_gateway *g) {
        return g && g->ready;
}

int discord_gateway_new(struct channel *ch, const char *token, const char *ca_file, struct discord_gateway **ret) {
        struct discord_gateway *g = calloc(1, sizeof *g);
        int r;

        if (!g)
                return -ENOMEM;
        g->ch = ch;
        g->token = strdup(token);
        if (!g->token) {
                free(g);
                return -ENOMEM;
        }
        r = ws_client_new(channel_event(ch), ca_file, on_ws, g, &g->ws);
        if (r < 0) {
                discord_gateway_free(g);
                return r;
        }
        *ret = g;
        return 0;
}

struct discord_gateway *discord_gateway_free(struct discord_gateway *g) {
        if (!g)
                return NULL;
        ws_client_free(g->ws);
        g->heartbeat = sd_event_source_disable_unref(g->heartbeat);
        g->reconnect = sd_event_source_disable_unref(g->reconnect);
        channel_secret_free(g->token);
        free(g->url);
        free(g->resume_url);
        free(g->session);
        free(g->user_id);
        free(g);
        return NULL;
}
