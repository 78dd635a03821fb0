/* Messages, replies, acks and read marks: validation and the events they append. Shared by the
 * control socket (operator, CLI) and command actors' stdout. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

struct group;
struct control_request;

struct message_error {
        const char *code; /* bad_request, not_found, invalid_state, not_owed, broken */
        char message[256];
};

struct message_args {
        const char *by;              /* a member of the group (default "operator") */
        const char *text;
        struct json_object *to;      /* array of ids or ["@all"]; NULL: @all (or the original sender for replies) */
        const char *reply_to;        /* event id or seq of a chat.message; NULL: not a reply */
        bool reply_required;
        bool attention;
        const char *channel;         /* the channel it came through; NULL: none */
        const char *external_id;     /* the platform's message or delivery id: stored once */
        const char *external_from;   /* the platform user, when the actor stands for several */
        const char *thread;          /* the platform thread it belongs to (channels); NULL: none */
        bool keep_cursor;            /* a reply does not move the replier's read cursor (the
                                      * caller does: llm actors answer out of order) */
};

/* Appends a chat.message; req (may be NULL) is answered once durable. A reply also moves the
 * replier's read cursor up to the message it answers. Returns 0, or -errno with *err set. */
int message_post(struct group *g, const struct message_args *m, struct control_request *req, struct message_error *err);
int message_ack(struct group *g, const char *by, const char *event, struct control_request *req, struct message_error *err);
int message_mark_read(struct group *g, const char *by, uint64_t up_to_seq, struct control_request *req,
                      struct message_error *err);
/* A member of g (the operator is a member of every group). */
bool message_sender_valid(struct group *g, const char *by);
