/* What the gateway serves once a request has arrived whole: auth, limits, the REST API, the
 * event stream, webhooks and the web UI. http.c owns connections; this owns meaning. */
#pragma once

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "request.h"

struct gateway_api;
struct worker;

int gateway_api_new(sd_event *event, struct worker *worker, struct gateway_api **ret);
struct gateway_api *gateway_api_free(struct gateway_api *api);
static inline void gateway_api_freep(struct gateway_api **api) {
        if (*api)
                *api = gateway_api_free(*api);
}
/* Takes the new configuration (auth token, limits, webhooks). loopback: the listener accepts
 * only loopback connections (an open gateway is allowed only then). -errno leaves the old one. */
int gateway_api_apply_config(struct gateway_api *api, const struct config *c, bool loopback);

/* Called when the request line and headers are in: may answer at once (401, 429, 413), in
 * which case the body is not read. Returns true when it answered. */
bool gateway_api_check_headers(struct gateway_api *api, struct http_request *req);
/* Called with the whole body: answers now or later. */
void gateway_api_handle(struct gateway_api *api, struct http_request *req);
/* MHD is done with the request: drop what waits for it. */
void gateway_api_request_done(struct gateway_api *api, struct http_request *req);
size_t gateway_api_max_body(const struct gateway_api *api);
