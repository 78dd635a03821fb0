/* Unit tests for backup_manifest.c: the path rules every archive entry must follow, manifests
 * written and read back, and each way a manifest is refused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backup_manifest.h"
#include "macro.h"
#include "proto.h"

#define SHA_A "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SHA_B "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"

static void test_paths(void **state) {
        static const char *const good[] = { "registry.json", "config.toml", "groups/g1/ledger.jsonl",
                                            "secrets/web.token", "a/b/c/d", "..hidden", "x..y", ".token" };
        static const char *const bad[] = { "", "/etc/passwd", "../evil", "groups/../../evil", "a/./b", ".", "..",
                                           "a//b", "a/", "groups/g1/..", "a\\b", "a\nb", "tab\there", "del\x7f" };
        char longpath[BACKUP_PATH_MAX + 2];

        for (size_t i = 0; i < ELEMENTSOF(good); i++)
                assert_true(backup_path_valid(good[i]));
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_false(backup_path_valid(bad[i]));
        assert_false(backup_path_valid(NULL));
        memset(longpath, 'a', sizeof longpath - 1);
        longpath[sizeof longpath - 1] = 0;
        assert_false(backup_path_valid(longpath));
        longpath[BACKUP_PATH_MAX] = 0;
        assert_true(backup_path_valid(longpath));
}

static void test_ledger_paths(void **state) {
        char id[BACKUP_GROUP_ID_MAX + 1];

        assert_true(backup_path_is_ledger("groups/release-1/ledger.jsonl", id));
        assert_string_equal(id, "release-1");
        assert_false(backup_path_is_ledger("groups//ledger.jsonl", id));
        assert_false(backup_path_is_ledger("groups/a/b/ledger.jsonl", id));
        assert_false(backup_path_is_ledger("groups/a/group.json", id));
        assert_false(backup_path_is_ledger("x/groups/a/ledger.jsonl", id));
        assert_true(backup_group_id_valid("g_1-A"));
        assert_false(backup_group_id_valid("g 1"));
        assert_false(backup_group_id_valid(""));
}

static struct backup_manifest *sample(void) {
        struct backup_manifest *m = NULL;

        assert_int_equal(backup_manifest_new(&m), 0);
        m->conclave_version = strdup("0.1.0");
        m->created = strdup("2026-11-23T09:34:26.123Z");
        m->home = strdup("/home/me/.conclave");
        m->online = true;
        assert_int_equal(backup_manifest_add_file(m, "registry.json", 40, 0600, SHA_A), 0);
        assert_int_equal(backup_manifest_add_file(m, "groups/g1/ledger.jsonl", 4096, 0600, SHA_B), 0);
        assert_int_equal(backup_manifest_add_file(m, "secrets/web.token", 33, 0600, SHA_A), 0);
        assert_int_equal(backup_manifest_add_group(m, "g1", 4096, 12), 0);
        return m;
}

static void test_round_trip(void **state) {
        _cleanup_(backup_manifest_freep) struct backup_manifest *m = sample(), *back = NULL;
        _cleanup_json_ struct json_object *o = backup_manifest_to_json(m);
        const char *text = json_object_to_json_string(o);
        const struct backup_file *f;
        char why[256] = "";

        assert_int_equal(backup_manifest_parse(text, strlen(text), &back, why, sizeof why), 0);
        assert_int_equal(back->format_version, BACKUP_FORMAT_VERSION);
        assert_string_equal(back->conclave_version, "0.1.0");
        assert_true(back->online);
        assert_int_equal(back->n_files, 3);
        f = backup_manifest_find(back, "secrets/web.token");
        assert_non_null(f);
        assert_int_equal(f->size, 33);
        assert_int_equal(f->mode, 0600);
        assert_string_equal(f->sha256, SHA_A);
        assert_null(backup_manifest_find(back, "nope"));
        assert_non_null(backup_manifest_find_group(back, "g1"));
        assert_int_equal(backup_manifest_find_group(back, "g1")->last_seq, 12);
        assert_null(backup_manifest_find_group(back, "g2"));
}

static void test_add_refuses(void **state) {
        _cleanup_(backup_manifest_freep) struct backup_manifest *m = sample();

        assert_int_equal(backup_manifest_add_file(m, "../x", 1, 0600, SHA_A), -EINVAL);
        assert_int_equal(backup_manifest_add_file(m, BACKUP_MANIFEST_NAME, 1, 0600, SHA_A), -EINVAL);
        assert_int_equal(backup_manifest_add_file(m, "x", 1, 01777, SHA_A), -EINVAL);
        assert_int_equal(backup_manifest_add_file(m, "x", 1, 0600, "ABC"), -EINVAL);
        assert_int_equal(backup_manifest_add_group(m, "no/slash", 0, 0), -EINVAL);
}

/* Parses sample() after `edit` changed its JSON; returns the result and the reason. */
static int parse_edited(void (*edit)(struct json_object *o), char *why, size_t size) {
        _cleanup_(backup_manifest_freep) struct backup_manifest *m = sample(), *back = NULL;
        _cleanup_json_ struct json_object *o = backup_manifest_to_json(m);
        const char *text;

        edit(o);
        text = json_object_to_json_string(o);
        return backup_manifest_parse(text, strlen(text), &back, why, size);
}

static struct json_object *file_at(struct json_object *o, size_t i) {
        struct json_object *files;
        assert_true(json_object_object_get_ex(o, "files", &files));
        return json_object_array_get_idx(files, i);
}

static void newer_version(struct json_object *o) {
        json_object_object_add(o, "format_version", json_object_new_int(BACKUP_FORMAT_VERSION + 1));
}
static void other_format(struct json_object *o) {
        json_object_object_add(o, "format", json_object_new_string("tarball"));
}
static void traversal(struct json_object *o) {
        json_object_object_add(file_at(o, 2), "path", json_object_new_string("../../.bashrc"));
}
static void duplicate(struct json_object *o) {
        json_object_object_add(file_at(o, 2), "path", json_object_new_string("registry.json"));
}
static void bad_digest(struct json_object *o) {
        json_object_object_add(file_at(o, 0), "sha256", json_object_new_string("xyz"));
}
static void negative_size(struct json_object *o) {
        json_object_object_add(file_at(o, 0), "size", json_object_new_int(-1));
}
static void bad_mode(struct json_object *o) {
        json_object_object_add(file_at(o, 0), "mode", json_object_new_string("0800"));
}
static void no_registry(struct json_object *o) {
        json_object_object_add(file_at(o, 0), "path", json_object_new_string("other.json"));
}
static void ledger_size_differs(struct json_object *o) {
        json_object_object_add(file_at(o, 1), "size", json_object_new_int(4095));
}
static void ledger_missing(struct json_object *o) {
        json_object_object_add(file_at(o, 1), "path", json_object_new_string("groups/g1/other.jsonl"));
}
static void no_files(struct json_object *o) {
        json_object_object_del(o, "files");
}

static void test_parse_refuses(void **state) {
        static const struct {
                void (*edit)(struct json_object *o);
                int error;
                const char *why;
        } cases[] = {
                { newer_version, -EPROTONOSUPPORT, "newer Conclave" },
                { other_format, -EBADMSG, "not a Conclave backup manifest" },
                { traversal, -EBADMSG, "invalid path" },
                { duplicate, -EBADMSG, "listed twice" },
                { bad_digest, -EBADMSG, "invalid sha256" },
                { negative_size, -EBADMSG, "invalid size" },
                { bad_mode, -EBADMSG, "invalid mode" },
                { no_registry, -EBADMSG, "registry.json is not listed" },
                { ledger_size_differs, -EBADMSG, "ledger_bytes differs" },
                { ledger_missing, -EBADMSG, "groups/g1/ledger.jsonl is not listed" },
                { no_files, -EBADMSG, "missing \"files\"" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char why[256] = "";
                assert_int_equal(parse_edited(cases[i].edit, why, sizeof why), cases[i].error);
                if (!strstr(why, cases[i].why))
                        fail_msg("case %zu: \"%s\" does not say \"%s\"", i, why, cases[i].why);
        }
}

static void test_parse_garbage(void **state) {
        struct backup_manifest *m = NULL;
        char why[128];

        assert_int_equal(backup_manifest_parse("[1,2]", 5, &m, why, sizeof why), -EBADMSG);
        assert_int_equal(backup_manifest_parse("{\"format\":", 10, &m, why, sizeof why), -EBADMSG);
        assert_int_equal(backup_manifest_parse("{} trailing", 11, &m, why, sizeof why), -EBADMSG);
        assert_null(m);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_paths),
                cmocka_unit_test(test_ledger_paths),
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_add_refuses),
                cmocka_unit_test(test_parse_refuses),
                cmocka_unit_test(test_parse_garbage),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
