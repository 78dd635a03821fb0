/* Slack wire format (https://api.slack.com): Events API request bodies (url_verification,
 * event_callback with message events) and Web API answers ({"ok":false,"error":…}) and
 * chat.postMessage bodies. Signatures are checked by webhook_verify.c. Pure code: no I/O. */
#pragma once

#include <json-c/json.h>
#include <stddef.h>

#include "platform.h"

/* Slack truncates longer texts; we split before that. */
#define SLACK_TEXT_MAX 4000

enum slack_payload {
        SLACK_URL_VERIFICATION, /* answer with the challenge */
        SLACK_MESSAGE,          /* a human's message: *ret filled */
        SLACK_IGNORED,          /* other events, bot messages, edits, our own messages */
};

/* Parses an Events API body. For SLACK_MESSAGE: id "CHANNEL:TS" (retries carry the same),
 * sender the user id, conversation the channel, thread the thread_ts (or the message's own
 * ts, so the answer opens a thread under it). bot_user_id (may be NULL) is our own user.
 * Returns the payload kind, or -EBADMSG / -ENOMEM. */
int slack_parse_event(const char *body, size_t len, const char *bot_user_id, struct platform_message *ret,
                      char **ret_challenge);

/* Parses a Web API answer: 0 with *ret (new reference) when "ok" is true; -EREMOTEIO with err
 * (code = Slack's "error", retryable for ratelimited and server-side errors) when false;
 * -EBADMSG when malformed. retry_after_usec comes from the caller (Retry-After header). */
int slack_parse_response(long status, const char *body, size_t len, uint64_t retry_after_usec,
                         struct json_object **ret, struct platform_error *err);

/* chat.postMessage body (thread_ts may be NULL). NULL on ENOMEM. */
char *slack_build_post(const char *channel, const char *text, size_t len, const char *thread_ts);
