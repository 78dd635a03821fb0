/* Unit tests for irc_proto.c (parsing, case mapping, formatting, line cutting) and
 * text_clean.c (what platform text becomes in the ledger). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "irc_proto.h"
#include "text_clean.h"

static void test_parse(void **state) {
        char line[] = "@time=2024 :alice!~a@host PRIVMSG #conclave :hello there: you";
        char ping[] = "PING :irc.test";
        char many[] = "CMD a b c d e f g h i j k l m n o p q";
        char bare[] = ":server";
        struct irc_message m;

        (void) state;
        assert_int_equal(irc_parse(line, &m), 0);
        assert_string_equal(m.prefix, "alice!~a@host");
        assert_string_equal(m.command, "PRIVMSG");
        assert_int_equal(m.n_params, 2);
        assert_string_equal(m.params[0], "#conclave");
        assert_string_equal(m.params[1], "hello there: you");

        assert_int_equal(irc_parse(ping, &m), 0);
        assert_null(m.prefix);
        assert_string_equal(m.command, "PING");
        assert_string_equal(m.params[0], "irc.test");

        /* Past 15 parameters the rest is one. */
        assert_int_equal(irc_parse(many, &m), 0);
        assert_int_equal(m.n_params, IRC_PARAMS_MAX);
        assert_string_equal(m.params[IRC_PARAMS_MAX - 1], "o p q");

        assert_int_equal(irc_parse(bare, &m), -EINVAL);
}

static void test_nicks(void **state) {
        char nick[IRC_NICK_MAX + 1], folded[] = "Al[i]ce\\~";

        (void) state;
        irc_prefix_nick("bob!~b@h", nick, sizeof nick);
        assert_string_equal(nick, "bob");
        irc_prefix_nick("irc.server.example", nick, sizeof nick);
        assert_string_equal(nick, "irc.server.example");
        irc_casefold(folded);
        assert_string_equal(folded, "al{i}ce|^");
        assert_true(irc_nick_equal("Conclave", "conclave"));
        assert_true(irc_nick_equal("a[b]", "A{B}"));
        assert_false(irc_nick_equal("conclave", "conclave_"));
        assert_true(irc_valid_nick("conclave_[1]"));
        assert_false(irc_valid_nick("1abc"));
        assert_false(irc_valid_nick("a b"));
        assert_false(irc_valid_nick(""));
        assert_true(irc_valid_channel("#conclave"));
        assert_false(irc_valid_channel("conclave"));
        assert_false(irc_valid_channel("#a b"));
        assert_false(irc_valid_channel("#a,b"));
}

static void test_strip(void **state) {
        char s[] = "\x02" "bold\x02 \x03" "04,12red\x03 \x1dit\x1d \x0f" "end \x03" "9x";

        (void) state;
        irc_strip_formatting(s);
        assert_string_equal(s, "bold red it end x");
}

struct pieces {
        char out[16][600];
        int n;
};

static int collect(const char *piece, size_t len, void *userdata) {
        struct pieces *p = userdata;
        assert_true(p->n < 16);
        memcpy(p->out[p->n], piece, len);
        p->out[p->n][len] = 0;
        p->n++;
        return 0;
}

static void test_split(void **state) {
        struct pieces p = {};
        char long_text[1200];

        (void) state;
        assert_int_equal(irc_split_text("one\r\ntwo\n\nthree", 100, collect, &p), 3);
        assert_string_equal(p.out[0], "one");
        assert_string_equal(p.out[1], "two");
        assert_string_equal(p.out[2], "three");

        /* Cut at the last space that fits. */
        memset(&p, 0, sizeof p);
        assert_int_equal(irc_split_text("aaaa bbbb cccc", 10, collect, &p), 2);
        assert_string_equal(p.out[0], "aaaa bbbb");
        assert_string_equal(p.out[1], "cccc");

        /* No space: cut on a UTF-8 boundary, never inside "é" (2 bytes). */
        memset(&p, 0, sizeof p);
        assert_int_equal(irc_split_text("ééééééé", 9, collect, &p), 2);
        assert_string_equal(p.out[0], "éééé");
        assert_string_equal(p.out[1], "ééé");

        memset(long_text, 'x', sizeof long_text - 1);
        long_text[sizeof long_text - 1] = 0;
        assert_int_equal(irc_split_text(long_text, 400, NULL, NULL), 3);
        assert_int_equal(irc_split_text("", 400, NULL, NULL), 0);
        assert_int_equal(irc_split_text("x", 4, NULL, NULL), -EINVAL);
}

static void test_text_clean(void **state) {
        char *out = NULL;
        const char bad[] = "ok\x01\x7f tab\there\r\nline\rnext \xff\xc3\x28 \xc2\x85 caf\xc3\xa9";
        char big[100];

        (void) state;
        assert_int_equal(text_clean(bad, strlen(bad), 1000, &out), 0);
        /* Controls dropped, CR LF and CR become LF, invalid bytes U+FFFD, C1 (U+0085) dropped. */
        assert_string_equal(out, "ok tab\there\nline\nnext \xef\xbf\xbd\xef\xbf\xbd(  caf\xc3\xa9");
        free(out);

        /* Cut on a character boundary. */
        memset(big, 0, sizeof big);
        strcpy(big, "a\xc3\xa9\xc3\xa9");
        assert_int_equal(text_clean(big, strlen(big), 4, &out), 0);
        assert_string_equal(out, "a\xc3\xa9");
        free(out);

        assert_int_equal(text_clean("", 0, 10, &out), 0);
        assert_string_equal(out, "");
        free(out);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse), cmocka_unit_test(test_nicks), cmocka_unit_test(test_strip),
                cmocka_unit_test(test_split), cmocka_unit_test(test_text_clean),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
