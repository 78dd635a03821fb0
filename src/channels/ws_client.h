/* A WebSocket client for conclave-channels on libwebsockets (Debian's libwebsockets-dev).
 *
 * Debian's libwebsockets 4.1 has no external-poll support and its foreign event loops are
 * libuv, libev and glib, not sd-event; so each client runs lws in a thread of its own, and
 * everything crosses over in two queues guarded by a mutex: what arrives (connected, a whole
 * text message, closed with a code) is handed to the sd-event loop through an eventfd, and
 * what is sent is queued and written by the lws thread when the socket is writable. The
 * callbacks below therefore run on the event loop, like everything else in the process; the
 * thread only moves bytes. TLS peer verification is on (lws's default for wss://). */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

/* Largest message accepted; a larger one closes the connection (1009, message too big). */
#define WS_MESSAGE_MAX (4u * 1024u * 1024u)

struct ws_client;

enum ws_event {
        WS_CONNECTED,
        WS_MESSAGE, /* data, len: one whole text message */
        WS_CLOSED,  /* code: the close code from the peer, or 0 when the connection just ended
                     * (or could not be made; data then says why) */
};

/* Runs on the event loop; it may send, close and connect, but not free the client. */
typedef void (*ws_event_fn)(struct ws_client *c, enum ws_event ev, const char *data, size_t len, int code,
                            void *userdata);

/* Starts the client's thread (no connection yet). ca_file may be NULL (the system's CAs). */
int ws_client_new(sd_event *event, const char *ca_file, ws_event_fn cb, void *userdata, struct ws_client **ret);
/* Closes any connection, stops and joins the thread, frees. No callback runs afterwards. */
struct ws_client *ws_client_free(struct ws_client *c);

/* Connects to url (ws:// only to loopback, or wss://). One connection at a time: a call while
 * connected closes the old one first. */
int ws_client_connect(struct ws_client *c, const char *url);
/* Queues one text message. -ENOTCONN when not connected. */
int ws_client_send(struct ws_client *c, const char *text, size_t len);
/* Closes the connection with a close code (1000 normal; 4000 makes Discord keep the session
 * resumable). WS_CLOSED follows. */
void ws_client_close(struct ws_client *c, int code);
