/* Webhook signature checks (see webhook_verify.h). The order of checks is fixed: secret,
 * headers present, headers well-formed, timestamp window, then the HMAC, compared in constant
 * time. Inputs are read only within their given lengths. */

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <string.h>

#include "macro.h"
#include "webhook_verify.h"

/* Unix seconds fit in 11 digits until the year 5138; more is not a timestamp. */
#define TIMESTAMP_DIGITS_MAX 12

const char *webhook_verdict_to_string(enum webhook_verdict v) {
        switch (v) {
        case WEBHOOK_VALID: return "valid";
        case WEBHOOK_NO_SECRET: return "no secret configured for this channel";
        case WEBHOOK_MISSING_HEADER: return "missing signature header";
        case WEBHOOK_MALFORMED: return "malformed signature header";
        case WEBHOOK_OUTSIDE_WINDOW: return "timestamp outside the accepted window";
        case WEBHOOK_BAD_SIGNATURE: return "signature does not match";
        case WEBHOOK_INTERNAL_ERROR: return "internal error";
        }
        return "?";
}

int webhook_hmac_sha256(const void *key, size_t key_len, const struct iovec *parts, size_t n_parts,
                        uint8_t out[WEBHOOK_HMAC_SHA256_SIZE]) {
        OSSL_PARAM params[] = {
                OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *) "SHA256", 0),
                OSSL_PARAM_construct_end(),
        };
        EVP_MAC *mac = NULL;
        EVP_MAC_CTX *ctx = NULL;
        size_t out_len = 0;
        int r = -EIO;

        mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
        if (!mac)
                return -ENOMEM;
        ctx = EVP_MAC_CTX_new(mac);
        if (!ctx) {
                r = -ENOMEM;
                goto out;
        }
        /* A NULL key means "keep the previous key" to EVP_MAC_init; an empty one is a key. */
        if (!EVP_MAC_init(ctx, key_len ? key : (const void *) "", key_len, params))
                goto out;
        for (size_t i = 0; i < n_parts; i++)
                if (parts[i].iov_len > 0 && !EVP_MAC_update(ctx, parts[i].iov_base, parts[i].iov_len))
                        goto out;
        if (!EVP_MAC_final(ctx, out, &out_len, WEBHOOK_HMAC_SHA256_SIZE) ||
            out_len != WEBHOOK_HMAC_SHA256_SIZE)
                goto out;
        r = 0;
out:
        EVP_MAC_CTX_free(ctx);
        EVP_MAC_free(mac);
        return r;
}

static int sha256(const void *data, size_t len, uint8_t out[32]) {
        unsigned out_len = 0;

        if (!EVP_Digest(len ? data : "", len, out, &out_len, EVP_sha256(), NULL) || out_len != 32)
                return -EIO;
        return 0;
}

static int hex_value(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* "<prefix>" followed by exactly 64 hex digits, into 32 bytes. */
static bool parse_prefixed_hex(struct webhook_header h, const char *prefix, uint8_t out[32]) {
        size_t plen = strlen(prefix);

        if (h.len != plen + 64 || memcmp(h.value, prefix, plen) != 0)
                return false;
        for (size_t i = 0; i < 32; i++) {
                int hi = hex_value(h.value[plen + 2 * i]), lo = hex_value(h.value[plen + 2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return false;
                out[i] = (uint8_t) (hi << 4 | lo);
        }
        return true;
}

/* Decimal unix seconds, digits only. */
static bool parse_timestamp(struct webhook_header h, int64_t *ret) {
        int64_t v = 0;

        if (h.len == 0 || h.len > TIMESTAMP_DIGITS_MAX)
                return false;
        for (size_t i = 0; i < h.len; i++) {
                if (h.value[i] < '0' || h.value[i] > '9')
                        return false;
                v = v * 10 + (h.value[i] - '0');
        }
        *ret = v;
        return true;
}

static bool within_window(int64_t ts, int64_t now, int64_t window) {
        const int64_t bound = (int64_t) 1 << 62;

        /* ts < 10^12; with now bounded too the difference cannot overflow. */
        if (now < -bound || now > bound)
                return false;
        return (now > ts ? now - ts : ts - now) <= window;
}

bool webhook_delivery_id_valid(const char *id, size_t len) {
        if (!id || len == 0 || len > WEBHOOK_DELIVERY_ID_MAX)
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = id[i];
                if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == ':' || c == '-'))
                        return false;
        }
        return true;
}

static enum webhook_verdict compare(const uint8_t expected[32], const uint8_t presented[32]) {
        return CRYPTO_memcmp(expected, presented, 32) == 0 ? WEBHOOK_VALID : WEBHOOK_BAD_SIGNATURE;
}

enum webhook_verdict webhook_verify_telegram(const void *secret, size_t secret_len,
                                             struct webhook_header token) {
        uint8_t a[32], b[32];

        if (!secret || secret_len == 0)
                return WEBHOOK_NO_SECRET;
        if (!token.value)
                return WEBHOOK_MISSING_HEADER;
        /* Digests have one length whatever the token's, so the comparison time says nothing
         * about how much of the secret a guess got right, nor about the secret's length. */
        if (sha256(secret, secret_len, a) < 0 || sha256(token.value, token.len, b) < 0)
                return WEBHOOK_INTERNAL_ERROR;
        return compare(a, b);
}

enum webhook_verdict webhook_verify_slack(const void *secret, size_t secret_len,
                                          const struct webhook_request *req) {
        uint8_t presented[32], expected[32];
        int64_t ts;
        struct iovec parts[4];

        if (!secret || secret_len == 0)
                return WEBHOOK_NO_SECRET;
        if (!req->signature.value || !req->timestamp.value)
                return WEBHOOK_MISSING_HEADER;
        if (!parse_prefixed_hex(req->signature, "v0=", presented) || !parse_timestamp(req->timestamp, &ts))
                return WEBHOOK_MALFORMED;
        if (!within_window(ts, req->now, WEBHOOK_WINDOW_SEC))
                return WEBHOOK_OUTSIDE_WINDOW;
        parts[0] = (struct iovec){ (void *) "v0:", 3 };
        parts[1] = (struct iovec){ (void *) req->timestamp.value, req->timestamp.len };
        parts[2] = (struct iovec){ (void *) ":", 1 };
        parts[3] = (struct iovec){ (void *) req->body, req->body ? req->body_len : 0 };
        if (webhook_hmac_sha256(secret, secret_len, parts, ELEMENTSOF(parts), expected) < 0)
                return WEBHOOK_INTERNAL_ERROR;
        return compare(expected, presented);
}

enum webhook_verdict webhook_verify_generic(const void *secret, size_t secret_len,
                                            const struct webhook_request *req, int64_t window_sec) {
        uint8_t presented[32], expected[32];
        int64_t ts;
        struct iovec parts[5];

        if (!secret || secret_len == 0)
                return WEBHOOK_NO_SECRET;
        if (!req->signature.value || !req->timestamp.value || !req->delivery.value)
                return WEBHOOK_MISSING_HEADER;
        if (!parse_prefixed_hex(req->signature, "sha256=", presented) ||
            !parse_timestamp(req->timestamp, &ts) ||
            !webhook_delivery_id_valid(req->delivery.value, req->delivery.len))
                return WEBHOOK_MALFORMED;
        if (!within_window(ts, req->now, window_sec > 0 ? window_sec : WEBHOOK_WINDOW_SEC))
                return WEBHOOK_OUTSIDE_WINDOW;
        parts[0] = (struct iovec){ (void *) req->timestamp.value, req->timestamp.len };
        parts[1] = (struct iovec){ (void *) ".", 1 };
        parts[2] = (struct iovec){ (void *) req->delivery.value, req->delivery.len };
        parts[3] = (struct iovec){ (void *) ".", 1 };
        parts[4] = (struct iovec){ (void *) req->body, req->body ? req->body_len : 0 };
        if (webhook_hmac_sha256(secret, secret_len, parts, ELEMENTSOF(parts), expected) < 0)
                return WEBHOOK_INTERNAL_ERROR;
        return compare(expected, presented);
}
