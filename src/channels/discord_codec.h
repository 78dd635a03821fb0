/* Discord wire format (https://discord.com/developers/docs): Gateway payloads ({"op","d","s",
 * "t"}: HELLO, IDENTIFY, HEARTBEAT, RESUME, READY, MESSAGE_CREATE, INVALID_SESSION, RECONNECT),
 * REST message bodies (content <= 2000 characters, message_reference, nonce + enforce_nonce)
 * and REST errors including 429 {"retry_after": seconds, "global"}. Pure code: no I/O. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "platform.h"

#define DISCORD_TEXT_MAX 2000
#define DISCORD_NONCE_MAX 25

enum discord_op {
        DISCORD_OP_DISPATCH = 0,
        DISCORD_OP_HEARTBEAT = 1,
        DISCORD_OP_IDENTIFY = 2,
        DISCORD_OP_RESUME = 6,
        DISCORD_OP_RECONNECT = 7,
        DISCORD_OP_INVALID_SESSION = 9,
        DISCORD_OP_HELLO = 10,
        DISCORD_OP_HEARTBEAT_ACK = 11,
};

/* GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT */
#define DISCORD_INTENTS ((1u << 9) | (1u << 12) | (1u << 15))

struct discord_frame {
        int op;
        int64_t seq;     /* -1: none */
        char event[64];  /* "t" of a dispatch, "" otherwise */
        struct json_object *data; /* "d", borrowed from the parsed object; may be NULL */
};

/* Parses one Gateway text message. *ret_obj owns what f->data points into. */
int discord_parse_frame(const char *text, size_t len, struct json_object **ret_obj, struct discord_frame *f);

int discord_parse_hello(const struct discord_frame *f, uint64_t *ret_interval_usec);
/* READY: session id, resume_gateway_url and our own user id. */
int discord_parse_ready(const struct discord_frame *f, char **ret_session, char **ret_resume_url, char **ret_user_id);
/* MESSAGE_CREATE: 1 and *ret for a human's message with text (id the message id, sender the
 * author id, conversation the channel id, thread the message id), 0 for bots, ourselves and
 * empty content, -EBADMSG. */
int discord_parse_message(const struct discord_frame *f, const char *own_user_id, struct platform_message *ret);

char *discord_build_identify(const char *token, unsigned intents);
char *discord_build_heartbeat(int64_t seq);
char *discord_build_resume(const char *token, const char *session, int64_t seq);

/* POST /channels/{id}/messages body; reply_to and nonce may be NULL (nonce <= 25 bytes). */
char *discord_build_message(const char *text, size_t len, const char *reply_to, const char *nonce);

/* The id of a created message. */
int discord_parse_message_id(const char *body, size_t len, char **ret);
/* Fills err from an error answer: message, code, retry_after (seconds, fractional) of a 429;
 * the Retry-After header value passed in retry_after_usec is the fallback. */
void discord_parse_error(long status, const char *body, size_t len, uint64_t retry_after_usec,
                         struct platform_error *err);

/* Snowflakes: 1-20 decimal digits. */
bool discord_snowflake_valid(const char *s);
