/* Telegram Bot API wire format (https://core.telegram.org/bots/api): the {"ok":…} envelope and
 * its errors, Update objects from getUpdates or a webhook, sendMessage bodies and the 4096
 * character limit (UTF-16 code units). Pure code: no I/O. */
#pragma once

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "platform.h"

#define TELEGRAM_TEXT_MAX 4096
#define TELEGRAM_UPDATES_LIMIT 100

/* Parses a Bot API answer. {"ok":true,"result":R}: 0 and *ret_result = R (a new reference).
 * {"ok":false,…}: -EREMOTEIO with err filled from error_code, description and
 * parameters.retry_after. Anything else: -EBADMSG. status is the HTTP status (for err). */
int telegram_parse_response(long status, const char *body, size_t len, struct json_object **ret_result,
                            struct platform_error *err);

/* One Update. Returns 1 with *ret filled for a text message from a human (id "CHAT:MESSAGE",
 * sender the user id, conversation the chat id, thread the message id, reply_to "CHAT:MESSAGE"
 * of the message it answers), 0 for an update that
 * carries nothing for us (edits, joins, stickers, bots), -EBADMSG when malformed. *ret_update_id
 * is set whenever the update has a valid update_id (also for 0). */
int telegram_parse_update(struct json_object *update, int64_t *ret_update_id, struct platform_message *ret);

/* The result array of getUpdates. *ret_next_offset: max(update_id) + 1, or unchanged when the
 * array is empty. Malformed updates are skipped (counted in *ret_malformed) but still advance
 * the offset, so one bad update cannot stall the channel. -EBADMSG if result is not an array. */
int telegram_parse_updates(struct json_object *result, int64_t *ret_next_offset, struct platform_message **ret,
                           size_t *ret_n, size_t *ret_malformed);

/* sendMessage body: {"chat_id":…,"text":…,"reply_parameters":{"message_id":N,
 * "allow_sending_without_reply":true}} (reply_to may be NULL). NULL on ENOMEM or a bad id. */
char *telegram_build_send(const char *chat_id, const char *text, size_t len, const char *reply_to);

/* getUpdates query string: "offset=N&timeout=S&limit=100&allowed_updates=%5B%22message%22%5D". */
int telegram_updates_query(int64_t offset, unsigned timeout_sec, char *buf, size_t size);

/* The Message sendMessage returned: its message_id as text. */
int telegram_parse_sent(struct json_object *result, char **ret_message_id);

/* getMe: the bot's username. */
int telegram_parse_me(struct json_object *result, char **ret_username);
