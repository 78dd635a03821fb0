/* Unit tests for email_codec.c: parsing plain, quoted-printable, base64 and multipart mail,
 * RFC 2047 subjects, auto-replies and bounces skipped, quoted tails stripped; building the
 * threaded reply; IMAP SEARCH and UIDVALIDITY lines. */
#include "pf_test.h"

#include "email_codec.h"
#include "macro.h"

static int parse(const char *s, struct platform_message *m) {
        size_t n;
        char *b = exact(s, &n);
        int r = email_parse(b, n, "uid:1:5", m);
        free(b);
        return r;
}

static void test_parse(void **state) {
        struct platform_message m = {};

        (void) state;
        assert_int_equal(parse("From: \"Alice Doe\" <Alice@Example.TEST>\r\nTo: bot@example.test\r\n"
                               "Subject: =?utf-8?B?Y2Fmw6k=?= =?utf-8?Q?_time?=\r\nMessage-ID: <m1@example.test>\r\n"
                               "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
                               "Hello caf=C3=A9, a long=\r\n line\r\n\r\nOn Mon, Bob wrote:\r\n> old\r\n> text\r\n", &m), 1);
        assert_string_equal(m.id, "<m1@example.test>");
        assert_string_equal(m.sender, "alice@example.test");
        assert_string_equal(m.sender_name, "Alice Doe");
        assert_string_equal(m.conversation, "alice@example.test");
        assert_string_equal(m.thread, "<m1@example.test>");
        assert_string_equal(m.subject, "caf\xC3\xA9 time");
        assert_string_equal(m.text, "Hello caf\xC3\xA9, a long line");
        platform_message_done(&m);

        /* multipart/alternative: the text/plain part, base64, Latin-1; folded header; no Message-ID. */
        assert_int_equal(parse("From: bob@example.test\nSubject: a\n folded\nContent-Type: multipart/alternative;\n"
                               " boundary=\"XX\"\n\npreamble\n--XX\nContent-Type: text/html\n\n<p>no</p>\n--XX\n"
                               "Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: base64\n\n"
                               "Y2Fm6SBvdQ==\n--XX--\n", &m), 1);
        assert_string_equal(m.id, "uid:1:5");
        assert_null(m.thread);
        assert_string_equal(m.subject, "a folded");
        assert_string_equal(m.text, "caf\xC3\xA9 ou");
        platform_message_done(&m);

        /* Signature dropped. */
        assert_int_equal(parse("From: c@example.test\n\nbody\n-- \nsig\n", &m), 1);
        assert_string_equal(m.text, "body");
        platform_message_done(&m);

        /* Not to be answered. */
        assert_int_equal(parse("From: a@example.test\nAuto-Submitted: auto-replied\n\nI am away\n", &m), 0);
        assert_int_equal(parse("From: MAILER-DAEMON@example.test\n\nbounce\n", &m), 0);
        assert_int_equal(parse("From: a@example.test\nReturn-Path: <>\n\nbounce\n", &m), 0);
        assert_int_equal(parse("From: a@example.test\nContent-Type: image/png\n\nxx\n", &m), 0);
        assert_int_equal(parse("From: a@example.test\n\n> only quoted\n", &m), 0);

        /* Malformed. */
        const char *bad[] = { "no headers at all", "To: x@y\n\nno from\n", "From: not an address\n\nx\n",
                              "From: <a@b@c>\n\nx\n", "From: a@b\nContent-Type: multipart/mixed\n\nno boundary\n" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(parse(bad[i], &m), -EBADMSG);
        assert_int_equal(email_parse("From: a@b\n\n\0x", 15, "f", &m), -EBADMSG);
}

static void test_build(void **state) {
        struct email_reply r = {
                .from = "bot@example.test", .to = "alice@example.test", .subject = "caf\xC3\xA9",
                .message_id = "<r1@example.test>", .in_reply_to = "<m1@example.test>",
                .text = "Hi =)\n.dot line\nlast ", .text_len = 21, .date = 0,
        };
        struct platform_message m = {};
        size_t len;
        char *s;

        (void) state;
        s = email_build(&r, &len);
        assert_non_null(s);
        assert_non_null(strstr(s, "From: <bot@example.test>\r\nTo: <alice@example.test>\r\nSubject: =?utf-8?B?UmU6IGNhZsOp?=\r\n"
                                  "Date: Thu, 01 Jan 1970 00:00:00 +0000\r\nMessage-ID: <r1@example.test>\r\n"
                                  "In-Reply-To: <m1@example.test>\r\nReferences: <m1@example.test>\r\n"));
        assert_non_null(strstr(s, "\r\n\r\nHi =3D)\r\n=2Edot line\r\nlast=20\r\n"));
        /* What we build, we read back. */
        assert_int_equal(email_parse(s, len, NULL, &m), 0); /* Auto-Submitted: never answered */
        free(s);
        r.subject = "Re: x";
        s = email_build(&r, &len);
        assert_non_null(strstr(s, "Subject: Re: x\r\n"));
        free(s);
        r.subject = "evil\r\nBcc: x@y";
        assert_null(email_build(&r, &len));
        r.subject = NULL;
        r.to = "a@b>\r\nBcc: c@d";
        assert_null(email_build(&r, &len));
}

static void test_imap(void **state) {
        uint32_t *v, val;
        size_t n;

        (void) state;
        assert_int_equal(imap_parse_search("* SEARCH 9 3 12\r\nA003 OK done\r\n", 31, 4, &v, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(v[0], 9);
        assert_int_equal(v[1], 12);
        free(v);
        assert_int_equal(imap_parse_search("* SEARCH\r\n", 10, 1, &v, &n), 0);
        assert_int_equal(n, 0);
        free(v);
        assert_int_equal(imap_parse_search("* SEARCH 1 x\r\n", 14, 1, &v, &n), -EBADMSG);
        assert_int_equal(imap_parse_search("* SEARCH 99999999999\r\n", 22, 1, &v, &n), -EBADMSG);
        assert_int_equal(imap_parse_uidvalidity("* OK [UIDVALIDITY 1795449658] UIDs valid\r\n", 42, &val), 0);
        assert_int_equal(val, 1795449658u);
        assert_int_equal(imap_parse_uidvalidity("* 0 EXISTS\r\n", 12, &val), -ENOENT);
        assert_int_equal(imap_parse_uidvalidity("* OK [UIDVALIDITY x]", 20, &val), -EBADMSG);
        assert_true(email_address_valid("a.b+c@example.test"));
        assert_false(email_address_valid("a b@example.test"));
        assert_false(email_address_valid("@example.test"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse),
                cmocka_unit_test(test_build),
                cmocka_unit_test(test_imap),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
