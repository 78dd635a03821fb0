/* Signature checks for POST /webhook/<channel>, one per platform's documented scheme (see
 * docs/api.md, "Webhook signatures"). Pure functions: every input is (pointer, length) and may
 * hold any bytes; the caller passes the current time. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* How far a signed timestamp may lie from now, either way: Slack's documented five minutes. */
#define WEBHOOK_WINDOW_SEC 300
#define WEBHOOK_DELIVERY_ID_MAX 128
#define WEBHOOK_HMAC_SHA256_SIZE 32

enum webhook_verdict {
        WEBHOOK_VALID,
        WEBHOOK_NO_SECRET,      /* the channel has no (or an empty) secret: refuse everything */
        WEBHOOK_MISSING_HEADER, /* a required header is absent */
        WEBHOOK_MALFORMED,      /* a header is not in its documented form */
        WEBHOOK_OUTSIDE_WINDOW, /* timestamp too old (a replay) or too far in the future */
        WEBHOOK_BAD_SIGNATURE,  /* well-formed, but not signed with the channel's secret */
        WEBHOOK_INTERNAL_ERROR, /* libcrypto failed (out of memory): answer 5xx, not 401 */
};

/* "valid", "no secret configured", "missing header", … for logs and JSON errors. */
const char *webhook_verdict_to_string(enum webhook_verdict v);

/* A header as received; value NULL when the request does not carry it. */
struct webhook_header {
        const char *value;
        size_t len;
};

struct webhook_request {
        struct webhook_header signature; /* X-Slack-Signature / X-Conclave-Signature */
        struct webhook_header timestamp; /* X-Slack-Request-Timestamp / X-Conclave-Timestamp */
        struct webhook_header delivery;  /* X-Conclave-Delivery (generic only) */
        const void *body;                /* the raw body bytes, exactly as received */
        size_t body_len;
        int64_t now; /* CLOCK_REALTIME, unix seconds */
};

/* Telegram: X-Telegram-Bot-Api-Secret-Token must equal the secret_token given to setWebhook. */
enum webhook_verdict webhook_verify_telegram(const void *secret, size_t secret_len,
                                             struct webhook_header token);

/* Slack: X-Slack-Signature = "v0=" HEX(HMAC-SHA256(signing secret, "v0:" TIMESTAMP ":" BODY)),
 * X-Slack-Request-Timestamp within WEBHOOK_WINDOW_SEC of now. */
enum webhook_verdict webhook_verify_slack(const void *secret, size_t secret_len,
                                          const struct webhook_request *req);

/* Generic: X-Conclave-Signature = "sha256=" HEX(HMAC-SHA256(secret, TIMESTAMP "." DELIVERY "."
 * BODY)), X-Conclave-Timestamp within window_sec of now (<= 0: WEBHOOK_WINDOW_SEC), and
 * X-Conclave-Delivery a valid delivery id. The delivery id is signed so a replay inside the
 * window cannot pass de-duplication under a fresh id. */
enum webhook_verdict webhook_verify_generic(const void *secret, size_t secret_len,
                                            const struct webhook_request *req, int64_t window_sec);

/* 1-128 characters of A-Z a-z 0-9 '_' ':' '-' ('.' would make the signed string ambiguous). */
bool webhook_delivery_id_valid(const char *id, size_t len);

/* HMAC-SHA256 of the concatenated parts (libcrypto); 0, -ENOMEM or -EIO. For tests and for
 * senders (the test suite signs requests with it). */
int webhook_hmac_sha256(const void *key, size_t key_len, const struct iovec *parts, size_t n_parts,
                        uint8_t out[WEBHOOK_HMAC_SHA256_SIZE]);
