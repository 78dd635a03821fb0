/* POST /webhook/<channel> for the platform kinds that push: Telegram (webhook mode; the
 * X-Telegram-Bot-Api-Secret-Token header must equal the channel's secret) and Slack (Events
 * API, signed with the app's signing secret; url_verification answered here). A verified
 * message is parsed with the platform's codec (src/channels/telegram_codec.c, slack_codec.c) and handed to the
 * supervisor as channel.inbound — the same operation conclave-channels uses, so allowlist,
 * human actor binding and de-duplication by platform message id (a retried webhook) are one
 * code path. The platform is answered 200 only once the message is durable; refused senders
 * and events that carry nothing for us are answered 200 too, so the platform does not retry
 * them. */
#pragma once

#include <stdbool.h>

#include "config.h"
#include "request.h"
#include "upstream.h"

struct platform_webhooks;

/* The secret of [channels.NAME] KEY (a `*_file` key: the file, relative to $CONCLAVE_HOME, mode
 * 0600), or else the systemd credential NAME.BASE (KEY without `_file`), as conclave-channels
 * reads it (channel_credential()); trailing newlines removed. -ENOKEY when neither exists;
 * other errors are logged with the channel, key and path. Used by every webhook kind. */
int gateway_channel_secret(const struct config_channel *ch, const char *key, char **ret, size_t *ret_len);

int platform_webhooks_new(struct platform_webhooks **ret);
struct platform_webhooks *platform_webhooks_free(struct platform_webhooks *p);
/* Reads each telegram (mode = "webhook") and slack channel's secret; -errno (logged) keeps
 * the old set. */
int platform_webhooks_apply_config(struct platform_webhooks *p, const struct config *c);
/* false: channel is not one of these kinds (the caller goes on). true: req was handled (answered
 * now, or later once the supervisor replied through u). */
bool platform_webhooks_handle(struct platform_webhooks *p, struct upstream *u, struct http_request *req,
                              const char *channel);
