/* The chat channels of conclave-channels as one subsystem: the configured channels (started,
 * restarted on a changed section, stopped), the supervisor's outbox followed and handed to them,
 * their states reported (the "channels.state" packet and STATUS=), live checks answered. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "http_engine.h"

struct worker;
struct channel_set;

int channel_set_new(struct worker *w, struct http_engine *http, struct channel_set **ret);
struct channel_set *channel_set_free(struct channel_set *set);
/* Applies [channels.*]; channels whose section is unchanged keep running. */
int channel_set_apply_config(struct channel_set *set, const struct config *c);
/* A packet from the supervisor that is not a reply: 1 if it was ours (a channel.doctor
 * request), 0 if not. */
int channel_set_message(struct channel_set *set, struct json_object *msg);
/* "2/3 channels up; irc down" for STATUS=. */
void channel_set_status(struct channel_set *set, char *buf, size_t size);
