/* Fuzz target: webhook signature checks (generic, Slack, Telegram) and the generic body parser.
 * Input: secret, signature, timestamp, delivery id and "now" as lines, then the body. With the
 * first byte odd the signature line is replaced by the right one, so the fuzzer also gets past
 * the HMAC to the body. */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "macro.h"
#include "webhook_body.h"
#include "webhook_verify.h"

struct field {
        const char *at;
        size_t len;
};

static struct field next_line(const uint8_t **p, const uint8_t *end) {
        const uint8_t *nl = memchr(*p, '\n', (size_t) (end - *p));
        struct field f = { (const char *) *p, (size_t) ((nl ? nl : end) - *p) };

        *p = nl ? nl + 1 : end;
        return f;
}

static struct webhook_header as_header(struct field f) {
        /* An empty line stands for a missing header. */
        return (struct webhook_header){ f.len ? f.at : NULL, f.len };
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const uint8_t *p = data, *end = data + size;
        struct field secret, signature, timestamp, delivery, now;
        struct webhook_request req;
        struct webhook_message msg;
        char sig[8 + 2 * WEBHOOK_HMAC_SHA256_SIZE], nowbuf[24];
        const char *reason = NULL;
        bool sign = size > 0 && (data[0] & 1);

        if (size > 0)
                p++;
        secret = next_line(&p, end);
        signature = next_line(&p, end);
        timestamp = next_line(&p, end);
        delivery = next_line(&p, end);
        now = next_line(&p, end);
        snprintf(nowbuf, sizeof nowbuf, "%.*s", (int) (now.len < 20 ? now.len : 20), now.at);

        req = (struct webhook_request){
                .signature = as_header(signature),
                .timestamp = as_header(timestamp),
                .delivery = as_header(delivery),
                .body = p,
                .body_len = (size_t) (end - p),
                .now = strtoll(nowbuf, NULL, 10),
        };
        if (sign) {
                uint8_t mac[WEBHOOK_HMAC_SHA256_SIZE];
                struct iovec parts[] = {
                        { (void *) timestamp.at, timestamp.len }, { (void *) ".", 1 },
                        { (void *) delivery.at, delivery.len },   { (void *) ".", 1 },
                        { (void *) req.body, req.body_len },
                };
                if (webhook_hmac_sha256(secret.at, secret.len, parts, ELEMENTSOF(parts), mac) == 0) {
                        memcpy(sig, "sha256=", 7);
                        for (size_t i = 0; i < sizeof mac; i++)
                                snprintf(sig + 7 + 2 * i, 3, "%02x", mac[i]);
                        req.signature = (struct webhook_header){ sig, 7 + 2 * sizeof mac };
                }
        }
        (void) webhook_verify_generic(secret.at, secret.len, &req, 0);
        (void) webhook_verify_slack(secret.at, secret.len, &req);
        (void) webhook_verify_telegram(secret.at, secret.len, req.signature);
        (void) webhook_delivery_id_valid(delivery.at, delivery.len);
        if (webhook_message_parse(req.body, req.body_len, &msg, &reason) == 0) {
                if (strlen(msg.from) == 0 || strlen(msg.from) > WEBHOOK_FROM_MAX || !json_object_is_type(msg.text, json_type_string))
                        __builtin_trap();
                webhook_message_done(&msg);
        } else if (!reason)
                __builtin_trap();
        return 0;
}
