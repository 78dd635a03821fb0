/* The gateway's HTTP listener: libmicrohttpd in external epoll mode, driven by the sd-event loop
 * (no threads), bound from [gateway] bind/port or taken from systemd socket activation. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <systemd/sd-event.h>

#include "config.h"

struct http_server;

/* Takes over a socket passed by systemd (LISTEN_FDS), if any; listens only once configured. */
int http_server_new(sd_event *event, struct http_server **ret);
struct http_server *http_server_free(struct http_server *s);
static inline void http_server_freep(struct http_server **s) {
        if (*s)
                *s = http_server_free(*s);
}

/* Starts, moves or stops the listener to match c. A new listener is started before the old one
 * is stopped; on failure the old one keeps serving and -errno is returned. -EPERM when c would
 * expose the gateway beyond loopback without a token and allow_public_bind. */
int http_server_apply_config(struct http_server *s, const struct config *c);

/* Requests other than /healthz go to api (borrowed; NULL: 404). */
struct gateway_api;
/* After apply_config: whether the listener accepts loopback connections only. */
bool http_server_loopback_only(const struct http_server *s);
void http_server_set_api(struct http_server *s, struct gateway_api *api);

/* "listening on 127.0.0.1:7777", "listening on [::1]:7777", "disabled" or "not listening". */
void http_server_status(const struct http_server *s, char *buf, size_t size);
