/* The supervisor's side of the chat channels run by conclave-channels:
 *   - each group's outbox (outbox.h), kept next to the group's derived state and streamed to the
 *     channels worker (op channel.outbox) once durable;
 *   - inbound messages (op channel.inbound): allowlist, the human actor bound to the platform
 *     user (created on first contact), the chat.message de-duplicated by platform id;
 *   - delivery outcomes (op channel.delivery) as chat.delivery events;
 *   - small persisted driver state ($CONCLAVE_HOME/channels/NAME.json, ops channel.store.*);
 *   - the channel states the worker reports, for status, daemon_state.json and the CLI.
 * The operations are in ops_channels.c. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>

struct supervisor;
struct group;
struct control_request;
struct config_channel;

struct channel_hub;

int channel_hub_new(struct supervisor *s, struct channel_hub **ret);
struct channel_hub *channel_hub_free(struct channel_hub *h);

/* Group hooks (groups.c). open: load state/outbox.json (or start empty); its last seq is where
 * the replay must start for it. replay/append: apply one event. durable: stream the deliveries
 * the event created. save: write state/outbox.json if it changed. */
int channel_hub_group_open(struct group *g, uint64_t *ret_last_seq);
void channel_hub_group_apply(struct group *g, struct json_object *event);
void channel_hub_group_durable(struct group *g, struct json_object *event);
void channel_hub_group_save(struct group *g, bool force);

/* A "channels.state" packet from the worker: {"channels":[{name, kind, state, error, since, …}]}. */
void channel_hub_report(struct channel_hub *h, struct json_object *data);
/* The worker went away: the reported states are void. */
void channel_hub_worker_gone(struct channel_hub *h);
/* Adds state, error, since, humans and pending to a channel's status object. */
void channel_hub_annotate(struct channel_hub *h, const char *name, struct json_object *o);

/* Operations (ops_channels.c). */
int channel_hub_inbound(struct supervisor *s, struct control_request *req, struct json_object *args);
int channel_hub_outbox_follow(struct supervisor *s, struct control_request *req);
int channel_hub_delivery(struct supervisor *s, struct control_request *req, struct json_object *args);
