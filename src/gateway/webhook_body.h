/* The body of a generic webhook (`kind = "webhook"` channels, docs/api.md): one JSON object
 * {"text","from","name"?,"reply_to"?,"to"?,"reply_required"?,"attention"?}, checked before anything is sent on. Pure:
 * any bytes in, a message or the reason it is refused out; unit tested and fuzzed. */
#pragma once

#include <json-c/json.h>
#include <stddef.h>

#define WEBHOOK_FROM_MAX 64

struct webhook_message {
        struct json_object *body; /* owns everything below */
        const char *from;         /* 1-WEBHOOK_FROM_MAX bytes */
        struct json_object *text; /* a string */
        struct json_object *name, *reply_to; /* strings, or NULL (other types are ignored) */
        struct json_object *to, *reply_required, *attention; /* as sent, or NULL; the supervisor checks them */
};

/* 0, or -EBADMSG with *reason set (a static string for the client), or -ENOMEM. */
int webhook_message_parse(const void *body, size_t len, struct webhook_message *ret, const char **reason);
void webhook_message_done(struct webhook_message *m);
