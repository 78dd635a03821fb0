/* POST /webhook/<channel>: the inbound side of `webhook` channels ([channels.NAME] kind =
 * "webhook"). The request is verified with the channel's secret (webhook_verify.h: HMAC-SHA256
 * over timestamp, delivery id and body, timestamp window), the sender checked against the
 * channel's allowed_users, and the message handed to the supervisor (channel.inbound) with the
 * delivery id as its platform message id, so a retried delivery is stored once; the sender is
 * the human actor bound to it on this channel, created on first contact. Outbound deliveries of
 * the kind are conclave-channels' (src/channels/webhook.c). Platform webhooks (Telegram, Slack) are
 * parsed by their channels in conclave-channels. */
#pragma once

#include <json-c/json.h>

#include "config.h"
#include "request.h"

struct webhooks;

int webhooks_new(struct webhooks **ret);
struct webhooks *webhooks_free(struct webhooks *w);
/* Reads each webhook channel's secret; -errno (logged with the file) keeps the old set. */
int webhooks_apply_config(struct webhooks *w, const struct config *c);
/* Verifies req for channel. Returns the channel.inbound arguments (caller owns), or NULL when
 * it answered req with an error. */
struct json_object *webhooks_verify(struct webhooks *w, struct http_request *req, const char *channel);
