/* Unit tests for webhook_verify.c: HMAC-SHA256 against RFC 4231, Slack's documented example,
 * the generic scheme against a signature made with `openssl dgst -sha256 -hmac`, Telegram's
 * secret token, every refusal, and arbitrary bytes in exact-size buffers (ASan sees overreads). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "macro.h"
#include "webhook_verify.h"

static void hex(const uint8_t *d, size_t n, char *out) {
        for (size_t i = 0; i < n; i++)
                snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static struct webhook_header H(const char *s) {
        return (struct webhook_header){ s, s ? strlen(s) : 0 };
}

/* --- HMAC-SHA256: RFC 4231 test cases 1, 2, 3 and 6 ---------------------------------------- */

static void test_hmac_rfc4231(void **state) {
        uint8_t key[131], data[50], mac[32];
        char got[65];

        (void) state;
        memset(key, 0x0b, 20);
        /* Split in parts: the MAC is over their concatenation. */
        assert_int_equal(webhook_hmac_sha256(key, 20,
                                             (struct iovec[]){ { (void *) "Hi ", 3 }, { NULL, 0 }, { (void *) "There", 5 } },
                                             3, mac),
                         0);
        hex(mac, 32, got);
        assert_string_equal(got, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");

        assert_int_equal(webhook_hmac_sha256("Jefe", 4,
                                             (struct iovec[]){ { (void *) "what do ya want for nothing?", 28 } }, 1, mac),
                         0);
        hex(mac, 32, got);
        assert_string_equal(got, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

        memset(key, 0xaa, 20);
        memset(data, 0xdd, 50);
        assert_int_equal(webhook_hmac_sha256(key, 20, (struct iovec[]){ { data, 50 } }, 1, mac), 0);
        hex(mac, 32, got);
        assert_string_equal(got, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");

        /* A key longer than the block size is hashed first. */
        memset(key, 0xaa, 131);
        assert_int_equal(webhook_hmac_sha256(key, 131,
                                             (struct iovec[]){ { (void *) "Test Using Larger Than Block-Size Key - Hash Key First", 54 } },
                                             1, mac),
                         0);
        hex(mac, 32, got);
        assert_string_equal(got, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

/* --- Slack: the example from "Verifying requests from Slack" ------------------------------- */

#define SLACK_SECRET "8f742231b10e8888abcd99yyyzzz85a5"
#define SLACK_TS "1531420618"
#define SLACK_BODY                                                                                         \
        "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&" \
        "channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&"     \
        "response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F"           \
        "96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
#define SLACK_SIG "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"

static enum webhook_verdict slack(const char *sig, const char *ts, const char *body, int64_t now) {
        struct webhook_request r = {
                .signature = H(sig), .timestamp = H(ts), .body = body, .body_len = body ? strlen(body) : 0, .now = now,
        };
        return webhook_verify_slack(SLACK_SECRET, strlen(SLACK_SECRET), &r);
}

static void test_slack(void **state) {
        const int64_t t = 1531420618;

        (void) state;
        assert_int_equal(slack(SLACK_SIG, SLACK_TS, SLACK_BODY, t), WEBHOOK_VALID);
        assert_int_equal(slack(SLACK_SIG, SLACK_TS, SLACK_BODY, t + 300), WEBHOOK_VALID);
        assert_int_equal(slack(SLACK_SIG, SLACK_TS, SLACK_BODY, t - 300), WEBHOOK_VALID);
        /* Hex digits in upper case are the same signature. */
        assert_int_equal(slack("v0=A2114D57B48EAC39B9AD189DD8316235A7B4A8D21A10BD27519666489C69B503", SLACK_TS,
                               SLACK_BODY, t),
                         WEBHOOK_VALID);

        /* Replay window, both ways. */
        assert_int_equal(slack(SLACK_SIG, SLACK_TS, SLACK_BODY, t + 301), WEBHOOK_OUTSIDE_WINDOW);
        assert_int_equal(slack(SLACK_SIG, SLACK_TS, SLACK_BODY, t - 301), WEBHOOK_OUTSIDE_WINDOW);
        assert_int_equal(slack(SLACK_SIG, SLACK_TS, SLACK_BODY, INT64_MAX), WEBHOOK_OUTSIDE_WINDOW);
        assert_int_equal(slack(SLACK_SIG, SLACK_TS, SLACK_BODY, INT64_MIN), WEBHOOK_OUTSIDE_WINDOW);

        /* Wrong signature, changed body, changed (still fresh) timestamp, wrong secret. */
        assert_int_equal(slack("v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b504", SLACK_TS,
                               SLACK_BODY, t),
                         WEBHOOK_BAD_SIGNATURE);
        assert_int_equal(slack(SLACK_SIG, SLACK_TS, SLACK_BODY "&x=1", t), WEBHOOK_BAD_SIGNATURE);
        assert_int_equal(slack(SLACK_SIG, SLACK_TS, "", t), WEBHOOK_BAD_SIGNATURE);
        assert_int_equal(slack(SLACK_SIG, NULL, SLACK_BODY, t), WEBHOOK_MISSING_HEADER);
        assert_int_equal(slack(SLACK_SIG, "1531420619", SLACK_BODY, t), WEBHOOK_BAD_SIGNATURE);
        assert_int_equal(slack(SLACK_SIG, "01531420618", SLACK_BODY, t), WEBHOOK_BAD_SIGNATURE);
        {
                struct webhook_request r = { .signature = H(SLACK_SIG), .timestamp = H(SLACK_TS),
                                             .body = SLACK_BODY, .body_len = strlen(SLACK_BODY), .now = t };
                assert_int_equal(webhook_verify_slack("8f742231b10e8888abcd99yyyzzz85a6", 32, &r), WEBHOOK_BAD_SIGNATURE);
                assert_int_equal(webhook_verify_slack(SLACK_SECRET, 0, &r), WEBHOOK_NO_SECRET);
                assert_int_equal(webhook_verify_slack(NULL, 32, &r), WEBHOOK_NO_SECRET);
        }

        /* Missing and malformed headers. */
        assert_int_equal(slack(NULL, SLACK_TS, SLACK_BODY, t), WEBHOOK_MISSING_HEADER);
        assert_int_equal(slack("", SLACK_TS, SLACK_BODY, t), WEBHOOK_MALFORMED);
        assert_int_equal(slack("v1=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503", SLACK_TS,
                               SLACK_BODY, t),
                         WEBHOOK_MALFORMED);
        assert_int_equal(slack("a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503", SLACK_TS,
                               SLACK_BODY, t),
                         WEBHOOK_MALFORMED);
        assert_int_equal(slack("v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b50", SLACK_TS,
                               SLACK_BODY, t),
                         WEBHOOK_MALFORMED);
        assert_int_equal(slack(SLACK_SIG "0", SLACK_TS, SLACK_BODY, t), WEBHOOK_MALFORMED);
        assert_int_equal(slack(SLACK_SIG " ", SLACK_TS, SLACK_BODY, t), WEBHOOK_MALFORMED);
        assert_int_equal(slack("v0=g2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503", SLACK_TS,
                               SLACK_BODY, t),
                         WEBHOOK_MALFORMED);
        assert_int_equal(slack(SLACK_SIG, "", SLACK_BODY, t), WEBHOOK_MALFORMED);
        assert_int_equal(slack(SLACK_SIG, "+1531420618", SLACK_BODY, t), WEBHOOK_MALFORMED);
        assert_int_equal(slack(SLACK_SIG, " 1531420618", SLACK_BODY, t), WEBHOOK_MALFORMED);
        assert_int_equal(slack(SLACK_SIG, "1531420618.5", SLACK_BODY, t), WEBHOOK_MALFORMED);
        assert_int_equal(slack(SLACK_SIG, "1531420618000", SLACK_BODY, t), WEBHOOK_MALFORMED);
        assert_int_equal(slack(SLACK_SIG, "-1", SLACK_BODY, t), WEBHOOK_MALFORMED);

        /* A NUL inside the signature header is not skipped over. */
        {
                char sig[sizeof SLACK_SIG];
                struct webhook_request r = { .timestamp = H(SLACK_TS), .body = SLACK_BODY,
                                             .body_len = strlen(SLACK_BODY), .now = t };
                memcpy(sig, SLACK_SIG, sizeof sig);
                sig[10] = 0;
                r.signature = (struct webhook_header){ sig, strlen(SLACK_SIG) };
                assert_int_equal(webhook_verify_slack(SLACK_SECRET, strlen(SLACK_SECRET), &r), WEBHOOK_MALFORMED);
        }
}

/* --- generic: signature made with
 *   printf '1700000000.evt_01HX:2-a.{"text":"hello"}' | openssl dgst -sha256 -hmac 'whsec-test-0123456789' */

#define GEN_SECRET "whsec-test-0123456789"
#define GEN_TS "1700000000"
#define GEN_ID "evt_01HX:2-a"
#define GEN_BODY "{\"text\":\"hello\"}"
#define GEN_SIG "sha256=77f0c6da574d9094effafa942abeea7559c8ad0bf2e0ad621fd21888291b26e6"
/* the same with an empty body */
#define GEN_SIG_EMPTY "sha256=701e00563333f621bf8c9a9f6c91f153123c59ce72899c8a12b5d725fb15b659"

static enum webhook_verdict generic(const char *sig, const char *ts, const char *id, const char *body,
                                    int64_t now, int64_t window) {
        struct webhook_request r = {
                .signature = H(sig), .timestamp = H(ts), .delivery = H(id),
                .body = body, .body_len = body ? strlen(body) : 0, .now = now,
        };
        return webhook_verify_generic(GEN_SECRET, strlen(GEN_SECRET), &r, window);
}

static void test_generic(void **state) {
        const int64_t t = 1700000000;

        (void) state;
        assert_int_equal(generic(GEN_SIG, GEN_TS, GEN_ID, GEN_BODY, t, 0), WEBHOOK_VALID);
        assert_int_equal(generic(GEN_SIG_EMPTY, GEN_TS, GEN_ID, NULL, t, 0), WEBHOOK_VALID);
        assert_int_equal(generic(GEN_SIG_EMPTY, GEN_TS, GEN_ID, "", t, 0), WEBHOOK_VALID);
        assert_int_equal(generic(GEN_SIG, GEN_TS, GEN_ID, GEN_BODY, t + 300, 0), WEBHOOK_VALID);
        assert_int_equal(generic(GEN_SIG, GEN_TS, GEN_ID, GEN_BODY, t + 301, 0), WEBHOOK_OUTSIDE_WINDOW);
        assert_int_equal(generic(GEN_SIG, GEN_TS, GEN_ID, GEN_BODY, t - 301, 0), WEBHOOK_OUTSIDE_WINDOW);
        assert_int_equal(generic(GEN_SIG, GEN_TS, GEN_ID, GEN_BODY, t + 60, 60), WEBHOOK_VALID);
        assert_int_equal(generic(GEN_SIG, GEN_TS, GEN_ID, GEN_BODY, t + 61, 60), WEBHOOK_OUTSIDE_WINDOW);
        assert_int_equal(generic(GEN_SIG, GEN_TS, GEN_ID, GEN_BODY, t - 61, 60), WEBHOOK_OUTSIDE_WINDOW);

        /* The delivery id is signed: a replay under a fresh id fails. */
        assert_int_equal(generic(GEN_SIG, GEN_TS, "evt_01HX:2-b", GEN_BODY, t, 0), WEBHOOK_BAD_SIGNATURE);
        assert_int_equal(generic(GEN_SIG, GEN_TS, GEN_ID, GEN_BODY " ", t, 0), WEBHOOK_BAD_SIGNATURE);
        assert_int_equal(generic(GEN_SIG, "1700000001", GEN_ID, GEN_BODY, t, 0), WEBHOOK_BAD_SIGNATURE);
        assert_int_equal(generic("sha256=77f0c6da574d9094effafa942abeea7559c8ad0bf2e0ad621fd21888291b26e7", GEN_TS,
                                 GEN_ID, GEN_BODY, t, 0),
                         WEBHOOK_BAD_SIGNATURE);

        assert_int_equal(generic(NULL, GEN_TS, GEN_ID, GEN_BODY, t, 0), WEBHOOK_MISSING_HEADER);
        assert_int_equal(generic(GEN_SIG, NULL, GEN_ID, GEN_BODY, t, 0), WEBHOOK_MISSING_HEADER);
        assert_int_equal(generic(GEN_SIG, GEN_TS, NULL, GEN_BODY, t, 0), WEBHOOK_MISSING_HEADER);
        assert_int_equal(generic(GEN_SIG, GEN_TS, "", GEN_BODY, t, 0), WEBHOOK_MALFORMED);
        assert_int_equal(generic(GEN_SIG, GEN_TS, "evt.1", GEN_BODY, t, 0), WEBHOOK_MALFORMED);
        assert_int_equal(generic("sha1=77f0c6da574d9094effafa942abeea7559c8ad0bf2e0ad621fd21888291b26e6", GEN_TS,
                                 GEN_ID, GEN_BODY, t, 0),
                         WEBHOOK_MALFORMED);
        assert_int_equal(generic(SLACK_SIG, GEN_TS, GEN_ID, GEN_BODY, t, 0), WEBHOOK_MALFORMED);
        assert_int_equal(generic(GEN_SIG, "17e8", GEN_ID, GEN_BODY, t, 0), WEBHOOK_MALFORMED);
        {
                struct webhook_request r = { .signature = H(GEN_SIG), .timestamp = H(GEN_TS), .delivery = H(GEN_ID),
                                             .body = GEN_BODY, .body_len = strlen(GEN_BODY), .now = t };
                assert_int_equal(webhook_verify_generic("", 0, &r, 0), WEBHOOK_NO_SECRET);
                assert_int_equal(webhook_verify_generic("whsec-test-012345678", 20, &r, 0), WEBHOOK_BAD_SIGNATURE);
        }
}

static void test_delivery_id(void **state) {
        char id[WEBHOOK_DELIVERY_ID_MAX + 1];

        (void) state;
        memset(id, 'a', sizeof id);
        assert_true(webhook_delivery_id_valid(id, WEBHOOK_DELIVERY_ID_MAX));
        assert_false(webhook_delivery_id_valid(id, WEBHOOK_DELIVERY_ID_MAX + 1));
        assert_true(webhook_delivery_id_valid("A", 1));
        assert_true(webhook_delivery_id_valid("550e8400-e29b-41d4-a716-446655440000", 36));
        assert_true(webhook_delivery_id_valid("github:12_34-AZaz09", 19));
        assert_false(webhook_delivery_id_valid("", 0));
        assert_false(webhook_delivery_id_valid(NULL, 3));
        assert_false(webhook_delivery_id_valid("a.b", 3));
        assert_false(webhook_delivery_id_valid("a b", 3));
        assert_false(webhook_delivery_id_valid("a/b", 3));
        assert_false(webhook_delivery_id_valid("a\0b", 3));
        assert_false(webhook_delivery_id_valid("\xc3\xa9", 2));
}

/* --- Telegram ------------------------------------------------------------------------------ */

static void test_telegram(void **state) {
        const char *secret = "tg_Secret-Token_0123";

        (void) state;
        assert_int_equal(webhook_verify_telegram(secret, strlen(secret), H("tg_Secret-Token_0123")), WEBHOOK_VALID);
        assert_int_equal(webhook_verify_telegram(secret, strlen(secret), H("tg_Secret-Token_012")), WEBHOOK_BAD_SIGNATURE);
        assert_int_equal(webhook_verify_telegram(secret, strlen(secret), H("tg_Secret-Token_01234")),
                         WEBHOOK_BAD_SIGNATURE);
        assert_int_equal(webhook_verify_telegram(secret, strlen(secret), H("TG_Secret-Token_0123")),
                         WEBHOOK_BAD_SIGNATURE);
        assert_int_equal(webhook_verify_telegram(secret, strlen(secret), H("")), WEBHOOK_BAD_SIGNATURE);
        assert_int_equal(webhook_verify_telegram(secret, strlen(secret), H(NULL)), WEBHOOK_MISSING_HEADER);
        assert_int_equal(webhook_verify_telegram(secret, 0, H("x")), WEBHOOK_NO_SECRET);
        /* Length decides, not a NUL. */
        assert_int_equal(webhook_verify_telegram(secret, strlen(secret),
                                                 (struct webhook_header){ "tg_Secret-Token_0123\0x", 22 }),
                         WEBHOOK_BAD_SIGNATURE);
}

static void test_verdict_strings(void **state) {
        (void) state;
        for (int v = WEBHOOK_VALID; v <= WEBHOOK_INTERNAL_ERROR; v++)
                assert_string_not_equal(webhook_verdict_to_string((enum webhook_verdict) v), "?");
        assert_string_equal(webhook_verdict_to_string(WEBHOOK_OUTSIDE_WINDOW), "timestamp outside the accepted window");
}

/* --- arbitrary bytes ----------------------------------------------------------------------- */

/* Heap copies of exactly n bytes, no terminator, so any read past the length is an ASan error. */
static char *exact(const uint8_t *src, size_t n) {
        char *p = malloc(n ? n : 1);
        assert_non_null(p);
        memcpy(p, src, n);
        return p;
}

static void test_arbitrary_bytes(void **state) {
        static const char *const seeds[] = { "v0=", "sha256=", "1700000000", "0123456789abcdef", "" };
        uint64_t x = 0x9e3779b97f4a7c15ULL;
        size_t n_valid = 0;

        (void) state;
        for (int iter = 0; iter < 20000; iter++) {
                uint8_t buf[4][160];
                size_t len[4];
                char *p[4];
                struct webhook_request r;

                for (int k = 0; k < 4; k++) {
                        const char *seed = seeds[(x >> 7) % ELEMENTSOF(seeds)];
                        size_t sl = strlen(seed);
                        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                        len[k] = x % sizeof buf[k];
                        for (size_t i = 0; i < len[k]; i++) {
                                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                                /* Mostly hex digits, to get past the shape checks now and then. */
                                buf[k][i] = (x & 3) ? (uint8_t) "0123456789abcdef"[(x >> 8) & 15] : (uint8_t) (x >> 16);
                        }
                        if (sl <= len[k] && (x & 8))
                                memcpy(buf[k], seed, sl);
                        p[k] = exact(buf[k], len[k]);
                }
                r = (struct webhook_request){
                        .signature = { p[0], len[0] }, .timestamp = { p[1], len[1] }, .delivery = { p[2], len[2] },
                        .body = p[3], .body_len = len[3], .now = (int64_t) (x >> 1) % 4000000000,
                };
                n_valid += webhook_verify_slack(p[3], len[3], &r) == WEBHOOK_VALID;
                n_valid += webhook_verify_generic(p[2], len[2], &r, (int64_t) (x % 1000)) == WEBHOOK_VALID;
                n_valid += webhook_verify_telegram(p[0], len[0], r.timestamp) == WEBHOOK_VALID;
                n_valid += webhook_delivery_id_valid(p[2], len[2]) && len[2] == 0;
                for (int k = 0; k < 4; k++)
                        free(p[k]);
        }
        /* Telegram matches when both random strings are equal (both empty: no secret, not valid). */
        assert_true(n_valid < 20);
}

int main(void) {
        static const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_hmac_rfc4231),
                cmocka_unit_test(test_slack),
                cmocka_unit_test(test_generic),
                cmocka_unit_test(test_delivery_id),
                cmocka_unit_test(test_telegram),
                cmocka_unit_test(test_verdict_strings),
                cmocka_unit_test(test_arbitrary_bytes),
        };
        return cmocka_run_group_tests_name("webhook_verify", tests, NULL, NULL);
}
