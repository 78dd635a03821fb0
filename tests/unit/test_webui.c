/* Unit tests for webui.c and the generated table: every file the page references is
 * embedded, whole, with a content type the browser will accept under a strict CSP. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "webui.h"

static const char *find_in(const unsigned char *data, size_t len, const char *needle) {
        size_t n = strlen(needle);
        for (size_t i = 0; n <= len && i <= len - n; i++)
                if (memcmp(data + i, needle, n) == 0)
                        return (const char *) data + i;
        return NULL;
}

static void test_lookup_known_files(void **state) {
        static const struct {
                const char *name, *type, *starts;
        } files[] = {
                { "index.html", "text/html; charset=utf-8", "<!doctype html>" },
                { "app.js", "text/javascript; charset=utf-8", "//" },
                { "style.css", "text/css; charset=utf-8", "/*" },
                { "favicon.svg", "image/svg+xml", "<svg" },
        };
        (void) state;
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
                const unsigned char *data = NULL;
                const char *type = NULL;
                size_t len = 0;
                assert_true(webui_lookup(files[i].name, &data, &len, &type));
                assert_string_equal(type, files[i].type);
                assert_true(len > strlen(files[i].starts));
                assert_memory_equal(data, files[i].starts, strlen(files[i].starts));
                /* The array carries a NUL after the file that is not counted. */
                assert_int_equal(data[len], 0);
                assert_int_not_equal(data[len - 1], 0);
        }
}

static void test_lookup_unknown(void **state) {
        const unsigned char *data = (const unsigned char *) "x";
        const char *type = "unchanged";
        size_t len = 42;

        (void) state;
        assert_false(webui_lookup("nope.js", &data, &len, &type));
        assert_false(webui_lookup("", &data, &len, &type));
        assert_false(webui_lookup(NULL, &data, &len, &type));
        assert_false(webui_lookup("index.html/", &data, &len, &type));
        assert_false(webui_lookup("../index.html", &data, &len, &type));
        assert_false(webui_lookup("INDEX.HTML", &data, &len, &type));
        assert_int_equal(len, 42);
        assert_string_equal(type, "unchanged");
}

/* Every /ui/<file> that index.html loads is in the table; nothing is inline (CSP). */
static void test_index_references_embedded_files(void **state) {
        const unsigned char *html, *other;
        const char *type, *p, *end;
        size_t len, olen, refs = 0;

        (void) state;
        assert_true(webui_lookup("index.html", &html, &len, &type));
        end = (const char *) html + len;
        for (p = (const char *) html; (p = find_in((const unsigned char *) p, (size_t) (end - p), "\"/ui/")); refs++) {
                char name[64];
                const char *q = p + 5;
                size_t n = 0;
                while (q + n < end && q[n] != '"' && n < sizeof name - 1)
                        n++;
                memcpy(name, q, n);
                name[n] = 0;
                if (!webui_lookup(name, &other, &olen, &type))
                        fail_msg("index.html references /ui/%s, which is not embedded", name);
                p = q + n;
        }
        assert_true(refs >= 3);
        assert_null(find_in(html, len, "<script>"));
        assert_null(find_in(html, len, "<style"));
        assert_null(find_in(html, len, " style="));
        assert_null(find_in(html, len, " onclick="));
}

/* The script never hands data to the HTML parser. */
static void test_app_builds_no_html(void **state) {
        const unsigned char *js;
        const char *type;
        size_t len;

        (void) state;
        assert_true(webui_lookup("app.js", &js, &len, &type));
        assert_null(find_in(js, len, "innerHTML"));
        assert_null(find_in(js, len, "outerHTML"));
        assert_null(find_in(js, len, "insertAdjacentHTML"));
        assert_null(find_in(js, len, "document.write"));
        assert_null(find_in(js, len, "eval("));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_lookup_known_files),
                cmocka_unit_test(test_lookup_unknown),
                cmocka_unit_test(test_index_references_embedded_files),
                cmocka_unit_test(test_app_builds_no_html),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
