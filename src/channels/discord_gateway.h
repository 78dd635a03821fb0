/* The inbound half of the discord channel kind: a session on the Discord Gateway (WebSocket,
 * ws_client.h): HELLO → IDENTIFY (or RESUME after a dropped connection), heartbeats with a
 * zombie check, READY/RESUMED, MESSAGE_CREATE handed to channel_report_inbound(), RECONNECT
 * and INVALID_SESSION handled, fatal close codes (4004 bad token, 4014 disallowed intents)
 * reported with their fix. Sessions live in memory: after a restart of conclave-channels the
 * bot identifies anew, and Discord does not replay what was said meanwhile. */
#pragma once

#include "channel.h"

struct discord_gateway;

int discord_gateway_new(struct channel *ch, const char *token, const char *ca_file, struct discord_gateway **ret);
struct discord_gateway *discord_gateway_free(struct discord_gateway *g);
/* Connects to url (from GET /gateway/bot) with ?v=10&encoding=json. */
int discord_gateway_connect(struct discord_gateway *g, const char *url);
/* Whether the session is READY (or RESUMED). */
bool discord_gateway_ready(const struct discord_gateway *g);
