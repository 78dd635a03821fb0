/* The framework's own view of channels and deliveries, shared by channels.c (the set of
 * channels, the supervisor link), channel_core.c (the services of channel.h) and
 * channel_delivery.c (the outbound pipeline). Drivers include channel.h only. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "channel.h"
#include "config.h"
#include "proto_link.h"

struct worker;
struct channel_set;

/* Attempts before a delivery is given up ("failed"), and the backoff between them. */
#define DELIVERY_MAX_ATTEMPTS 10
#define DELIVERY_BACKOFF_MIN_USEC (1 * USEC_PER_SEC)
#define DELIVERY_BACKOFF_MAX_USEC (300 * USEC_PER_SEC)
#define DELIVERY_RETRY_AFTER_MAX_USEC (3600 * USEC_PER_SEC)
#define CHANNEL_CALL_TIMEOUT_USEC (30 * USEC_PER_SEC)

enum delivery_state {
        DELIVERY_QUEUED,    /* waiting for the channel, a slot, its retry time or the pacing */
        DELIVERY_RECORDING, /* "attempted" (or "unconfirmed") being made durable */
        DELIVERY_SENDING,   /* handed to the driver */
        DELIVERY_SETTLING,  /* the outcome being made durable */
};

struct channel_delivery {
        struct channel_set *set;
        struct channel *channel;            /* NULL while its channel does not exist */
        struct channel_delivery *next, *prev; /* in the channel's queue or the set's orphans */
        struct channel_delivery *hash_next;
        char *key;                          /* GROUP.EVENT_ID.ACTOR: the index key */
        char *delivery_id;                  /* EVENT_ID:ACTOR: what the driver sees */
        char *channel_name;
        struct json_object *line;           /* the supervisor's delivery object (owns the strings) */
        struct channel_outbound msg;
        enum delivery_state state;
        unsigned attempts;                  /* recorded by the ledger so far */
        bool in_doubt;                      /* as received: the last attempt has no outcome */
        uint64_t not_before;                /* CLOCK_MONOTONIC */
        struct proto_call *call;
        void *driver_userdata;
        /* The driver's outcome, kept until it is durable. */
        int result_error;
        bool result_permanent;
        uint64_t result_retry_after_usec;
        char *result_platform_id;
        char *result_detail;
        uint64_t sent_usec;                 /* when deliver() was called */
        sd_event_source *done_defer;        /* processes a completion outside the driver */
};

struct channel_inbound_call {
        struct channel *channel;
        struct channel_inbound_call *next, *prev;
        struct proto_call *call;
        channel_inbound_done_fn done;
        void *userdata;
};

struct channel {
        struct channel_set *set;
        struct channel *next;
        char *name;
        const struct channel_kind *kind;      /* NULL: unknown kind (the channel is down) */
        const struct config_channel *config;  /* == own_config */
        struct config_channel *own_config;    /* a copy: valid however the worker's config changes */
        const char *config_path;
        char *config_path_copy;
        char *fingerprint;                    /* the section as text: a reload that changes it restarts */
        void *data;                           /* the driver's private state */
        bool configured, started, stopped;
        char *config_error;                   /* why configure() failed */

        enum channel_state state;
        char error[CHANNEL_ERROR_MAX];
        char inbound_problem[CHANNEL_ERROR_MAX]; /* the supervisor refused inbound (no group, …) */
        uint64_t since_realtime;

        struct json_object *store;            /* persisted values (channel.store.*) */
        struct proto_call *store_call;        /* loading them before start() */

        struct channel_delivery *queue_head, *queue_tail;
        sd_event_source *kick, *timer;
        struct channel_inbound_call *inbound_calls;

        uint64_t n_inbound, n_denied, n_delivered, n_failed, n_unconfirmed, n_retried;
};

struct channel_set {
        struct worker *worker;
        sd_event *event;
        struct proto_link *link;              /* NULL standalone */
        struct http_engine *http;
        struct channel *channels;
        struct channel_delivery *orphans;     /* deliveries for channels that do not exist */
        struct channel_delivery **hash;
        size_t hash_size, n_deliveries;
        struct proto_call *outbox_call;
        bool outbox_following;
        sd_event_source *outbox_retry, *report_defer, *report_timer;
        uint64_t inbound_counter;
};

/* channels.c */
void channel_set_state_changed(struct channel_set *set);
int channel_set_hash(struct channel_set *set, struct channel_delivery *d);
void channel_set_unhash(struct channel_set *set, struct channel_delivery *d);
struct channel_delivery *channel_set_find(struct channel_set *set, const char *key);

/* channel_delivery.c */
int channel_delivery_receive(struct channel_set *set, struct json_object *delivery);
void channel_delivery_attach(struct channel *ch);  /* orphans with its name join its queue */
void channel_delivery_detach(struct channel *ch);  /* its queue becomes orphans (stopping) */
void channel_delivery_schedule(struct channel *ch);
void channel_delivery_free(struct channel_delivery *d);
size_t channel_queue_length(const struct channel *ch);

/* channel_core.c */
struct channel *channel_new(struct channel_set *set, const struct config *c, const struct config_channel *cc);
void channel_start(struct channel *ch);
void channel_free(struct channel *ch);
char *channel_fingerprint(const struct config_channel *cc);
struct json_object *channel_status_json(const struct channel *ch);
/* The state shown: the driver's, or degraded when the supervisor refuses its inbound. */
enum channel_state channel_effective_state(const struct channel *ch, const char **ret_error);
int channel_call(struct channel *ch, const char *op, struct json_object *args, proto_call_cb cb, void *userdata,
                 struct proto_call **ret);
/* A reply's error code mapped to -errno (not_found -ENOENT, invalid_state -EPERM, …). */
int channel_reply_error(struct json_object *reply, int error, const char **ret_message);
