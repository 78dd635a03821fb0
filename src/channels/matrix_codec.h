/* Matrix client-server API wire format (https://spec.matrix.org/v1.10/client-server-api/):
 * /sync responses (next_batch, rooms.join.*.timeline.events of type m.room.message), message
 * event bodies with rich replies (m.relates_to.m.in_reply_to), errors ({"errcode","error",
 * "retry_after_ms"}), whoami, and escaping of ids in URL paths. Pure code: no I/O. */
#pragma once

#include <json-c/json.h>
#include <stddef.h>

#include "platform.h"

/* Servers accept 65536-byte events; split long texts well below that. */
#define MATRIX_TEXT_MAX 16000

/* Parses a /sync answer. *ret_next_batch: the token for the next call. Messages: m.room.message
 * events with msgtype m.text or m.emote, not sent by own_user_id (our own messages come back),
 * id the event_id, sender the user id, conversation the room id, thread the event id, reply_to the
 * event id of m.relates_to.m.in_reply_to. Malformed
 * events are skipped and counted in *ret_malformed; a malformed envelope is -EBADMSG. */
int matrix_parse_sync(const char *body, size_t len, const char *own_user_id, char **ret_next_batch,
                      struct platform_message **ret, size_t *ret_n, size_t *ret_malformed);

/* {"msgtype":"m.text","body":…} with m.relates_to.m.in_reply_to.event_id when in_reply_to. */
char *matrix_build_message(const char *text, size_t len, const char *in_reply_to);

/* Fills err from an error answer (errcode, error, retry_after_ms; the Retry-After header value
 * passed in retry_after_usec wins when retry_after_ms is absent). */
void matrix_parse_error(long status, const char *body, size_t len, uint64_t retry_after_usec,
                        struct platform_error *err);

/* {"event_id": …} of a send; {"user_id": …} of whoami. */
int matrix_parse_event_id(const char *body, size_t len, char **ret);
int matrix_parse_whoami(const char *body, size_t len, char **ret_user_id);

/* Percent-encodes everything but unreserved characters (RFC 3986), for room ids ("!a:b") and
 * transaction ids in paths. NULL on ENOMEM or over 1024 bytes. */
char *matrix_path_escape(const char *s);
