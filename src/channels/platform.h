/* What the platform codecs (telegram_codec.c, slack_codec.c, discord_codec.c, matrix_codec.c,
 * email_codec.c) have in common: one inbound message as parsed from a platform's payload, what
 * a failed API call said, bounded JSON parsing and splitting of long texts. Pure code: no I/O. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest text taken from a platform message; longer ones are refused as malformed. */
#define PLATFORM_TEXT_MAX (64u * 1024u)
/* Largest id, name or token field taken from a platform payload. */
#define PLATFORM_FIELD_MAX 256u

struct platform_message {
        char *id;           /* unique within the channel: the de-duplication key */
        char *sender;       /* the platform's user id, as allowed_users lists it */
        char *sender_name;  /* readable name (username, display name); may be NULL */
        char *conversation; /* where a reply goes: chat id, channel id, room id, address */
        char *thread;       /* what a reply threads under; may be NULL */
        char *reply_to;     /* the platform id of the message this one answers; may be NULL */
        char *subject;      /* e-mail only; may be NULL */
        char *text;
};

void platform_message_done(struct platform_message *m);
void platform_messages_free(struct platform_message *v, size_t n);
/* Appends a copy of *m (moved: *m is emptied). */
int platform_messages_push(struct platform_message **v, size_t *n, struct platform_message *m);

/* What a platform said when a call failed. */
struct platform_error {
        long status;               /* HTTP status; 0: none */
        char code[64];             /* "429", "invalid_auth", "M_LIMIT_EXCEEDED", "50035" … */
        char description[256];     /* the platform's own words */
        uint64_t retry_after_usec; /* how long the platform asked us to wait; 0: not said */
        bool retryable;            /* a later try may succeed (rate limit, 5xx, timeouts) */
};

/* Fills e from an HTTP status alone (5xx and 429 retryable) and clears the rest. */
void platform_error_from_status(struct platform_error *e, long status);

/* Parses exactly [body, body+len) as one JSON value (trailing bytes are malformed). 0 or
 * -EBADMSG (also for NUL bytes, over PLATFORM_TEXT_MAX * 16 bytes), -ENOMEM. */
int platform_json_parse(const char *body, size_t len, struct json_object **ret);

/* Typed getters of obj[key]; NULL / false when missing or of another type. */
const char *platform_json_string(struct json_object *obj, const char *key);
struct json_object *platform_json_object(struct json_object *obj, const char *key);
struct json_object *platform_json_array(struct json_object *obj, const char *key);
bool platform_json_int(struct json_object *obj, const char *key, int64_t *ret);

/* strdup of a string field that must hold 1..max bytes and no control characters;
 * -EBADMSG otherwise. */
int platform_strdup_field(const char *s, size_t max, char **ret);

/* Splits text into pieces of at most `limit` units — Unicode code points, or UTF-16 code units
 * when utf16 (Telegram counts those) — preferring to break after a newline, then after a space,
 * and never inside a UTF-8 sequence. Returns the number of pieces (>= 1; an empty text is one
 * empty piece) with their byte lengths in *ret_lengths, or -ENOMEM / -EINVAL (limit < 2). */
int platform_chunk_text(const char *text, size_t len, size_t limit, bool utf16, size_t **ret_lengths);

/* Units of text as platform_chunk_text counts them. */
size_t platform_text_units(const char *text, size_t len, bool utf16);
