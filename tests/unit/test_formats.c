/* Unit tests for formats.c and migrate.c: reading each file's format version, surveying a home
 * laid out as Conclave 0.1.0 left it, the refusal wording for newer files, and every migration
 * step (each JSON file from version 0, the ledger index from version 0), on real files. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "backup_manifest.h"
#include "fileio.h"
#include "formats.h"
#include "group_state.h"
#include "ledger.h"
#include "ledger_index.h"
#include "macro.h"
#include "migrate.h"
#include "paths.h"
#include "proto.h"

struct scratch {
        char home[64];
};

static int scratch_setup(void **state) {
        struct scratch *s = calloc(1, sizeof *s);

        if (!s)
                return -1;
        strcpy(s->home, "/tmp/test_formats.XXXXXX"); /* fits */
        if (!mkdtemp(s->home)) {
                free(s);
                return -1;
        }
        *state = s;
        return 0;
}

static void remove_tree(const char *path) {
        DIR *d = opendir(path);

        if (d) {
                struct dirent *de;
                while ((de = readdir(d))) {
                        _cleanup_free_ char *sub = NULL;
                        if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                                continue;
                        if (asprintf(&sub, "%s/%s", path, de->d_name) < 0)
                                continue;
                        if (unlink(sub) < 0 && errno == EISDIR)
                                remove_tree(sub);
                }
                closedir(d);
        }
        (void) rmdir(path);
}

static int scratch_teardown(void **state) {
        struct scratch *s = *state;

        remove_tree(s->home);
        free(s);
        return 0;
}

/* --- helpers ------------------------------------------------------------------------------ */

static char *at(const struct scratch *s, const char *rel) {
        char *p = path_join(s->home, rel);
        assert_non_null(p);
        return p;
}

static void put(const struct scratch *s, const char *rel, const char *text) {
        _cleanup_free_ char *p = at(s, rel), *dir = strdup(p);

        assert_non_null(dir);
        *strrchr(dir, '/') = 0;
        assert_int_equal(mkdir_parents(dir, 0700), 0);
        assert_int_equal(write_file_atomic(p, text, strlen(text), 0600), 0);
}

static char *get(const struct scratch *s, const char *rel) {
        _cleanup_free_ char *p = at(s, rel);
        char *text = NULL;

        assert_int_equal(read_file_bounded(p, 64u << 20, &text, NULL), 0);
        return text;
}

static bool exists(const struct scratch *s, const char *rel) {
        _cleanup_free_ char *p = at(s, rel);
        return access(p, F_OK) == 0;
}

/* A group directory as 0.1.0 left it: a ledger of n events, its index without a header. */
static void make_group(const struct scratch *s, const char *id, unsigned n) {
        _cleanup_free_ char *dir = NULL, *idx = NULL, *text = NULL;
        struct ledger *l = NULL;
        size_t len;

        assert_true(asprintf(&dir, "%s/groups/%s", s->home, id) > 0);
        assert_int_equal(mkdir_parents(dir, 0700), 0);
        assert_int_equal(ledger_open(dir, id, &l, NULL), 0);
        for (unsigned i = 0; i < n; i++)
                assert_int_equal(ledger_append(l, "chat.message", "operator", NULL, NULL), 0);
        ledger_close(l);
        assert_true(asprintf(&idx, "%s/state/ledger.idx", dir) > 0);
        assert_int_equal(read_file_bounded(idx, 1u << 20, &text, &len), 0);
        assert_int_equal(write_file_atomic(idx, text + LEDGER_INDEX_HEADER_SIZE, len - LEDGER_INDEX_HEADER_SIZE, 0600), 0);
}

static const struct format_file *find(const struct format_survey *sv, const char *rel) {
        for (size_t i = 0; i < sv->n_files; i++)
                if (streq(sv->files[i].path, rel))
                        return &sv->files[i];
        return NULL;
}

static unsigned version_of(const struct scratch *s, enum format_kind kind, const char *rel) {
        _cleanup_free_ char *p = at(s, rel);
        unsigned v = 999;
        assert_int_equal(format_file_version(kind, p, &v), 0);
        return v;
}

static struct json_object *parse(const char *text) {
        struct json_object *o = json_tokener_parse(text);
        assert_non_null(o);
        return o;
}

/* --- versions ------------------------------------------------------------------------------ */

static void test_table(void **state) {
        (void) state;
        for (int k = 0; k < _FORMAT_KIND_MAX; k++) {
                const struct format_info *i = format_info(k);
                assert_non_null(i);
                assert_non_null(i->name);
                assert_non_null(i->what);
                assert_true(i->current >= 1);
                assert_true(i->oldest <= i->current);
        }
        assert_null(format_info(_FORMAT_KIND_MAX));
        /* The table follows the modules' own constants. */
        assert_int_equal(format_info(FORMAT_LEDGER)->current, LEDGER_FORMAT_VERSION);
        assert_int_equal(format_info(FORMAT_LEDGER_INDEX)->current, LEDGER_INDEX_FORMAT_VERSION);
        assert_int_equal(format_info(FORMAT_GROUP_STATE)->current, GROUP_STATE_FORMAT_VERSION);
        assert_int_equal(format_info(FORMAT_BACKUP_MANIFEST)->current, BACKUP_FORMAT_VERSION);
        assert_true(format_info(FORMAT_LEDGER_INDEX)->derived);
        assert_false(format_info(FORMAT_REGISTRY)->derived);
        assert_false(format_info(FORMAT_DAEMON_STATE)->refused_when_newer);
}

static void test_json_version(void **state) {
        _cleanup_json_ struct json_object *none = parse("{\"groups\":[]}"), *one = parse("{\"format_version\":1}"),
                                          *two = parse("{\"format_version\":2,\"x\":1}"),
                                          *str = parse("{\"format_version\":\"1\"}"),
                                          *neg = parse("{\"format_version\":-1}"), *arr = parse("[1]");
        unsigned v = 99;

        (void) state;
        assert_int_equal(format_json_version(none, &v), 0);
        assert_int_equal(v, 0);
        assert_int_equal(format_json_version(one, &v), 0);
        assert_int_equal(v, 1);
        assert_int_equal(format_json_version(two, &v), 0);
        assert_int_equal(v, 2);
        assert_int_equal(format_json_version(str, &v), -EBADMSG);
        assert_int_equal(format_json_version(neg, &v), -EBADMSG);
        assert_int_equal(format_json_version(arr, &v), -EBADMSG);
        assert_int_equal(format_json_version(NULL, &v), -EBADMSG);
}

static void test_ledger_version(void **state) {
        const struct scratch *s = *state;
        _cleanup_free_ char *p = at(s, "ledger.jsonl"), *long_line = NULL;
        unsigned v = 0;
        size_t n = 200 * 1024;

        put(s, "ledger.jsonl", "");
        assert_int_equal(format_file_version(FORMAT_LEDGER, p, &v), 0);
        assert_int_equal(v, LEDGER_FORMAT_VERSION);
        put(s, "ledger.jsonl", "{\"v\":1,\"seq\":1}\n{\"v\":1,\"seq\":2}\n");
        assert_int_equal(version_of(s, FORMAT_LEDGER, "ledger.jsonl"), 1);
        /* A newer writer appended: the last line says so. */
        put(s, "ledger.jsonl", "{\"v\":1,\"seq\":1}\n{\"v\":1,\"seq\":2}\n{\"v\":2,\"seq\":3}\n");
        assert_int_equal(version_of(s, FORMAT_LEDGER, "ledger.jsonl"), 2);
        /* A torn tail is not a line; the last complete one counts. */
        put(s, "ledger.jsonl", "{\"v\":1,\"seq\":1}\n{\"v\":3,\"se");
        assert_int_equal(version_of(s, FORMAT_LEDGER, "ledger.jsonl"), 1);
        put(s, "ledger.jsonl", "{\"v\":3,\"se");
        assert_int_equal(version_of(s, FORMAT_LEDGER, "ledger.jsonl"), LEDGER_FORMAT_VERSION);
        /* Lines longer than the first window are still found. */
        long_line = malloc(n + 64);
        assert_non_null(long_line);
        snprintf(long_line, 64, "{\"v\":1,\"seq\":1}\n{\"v\":2,\"t\":\"");
        memset(long_line + strlen(long_line), 'x', n);
        strcpy(long_line + strlen("{\"v\":1,\"seq\":1}\n{\"v\":2,\"t\":\"") + n, "\"}\n");
        put(s, "ledger.jsonl", long_line);
        assert_int_equal(version_of(s, FORMAT_LEDGER, "ledger.jsonl"), 2);
        /* Not a ledger line. */
        put(s, "ledger.jsonl", "{\"seq\":1}\n");
        assert_int_equal(format_file_version(FORMAT_LEDGER, p, &v), -EBADMSG);
        put(s, "ledger.jsonl", "{\"v\":0}\n");
        assert_int_equal(format_file_version(FORMAT_LEDGER, p, &v), -EBADMSG);
        put(s, "ledger.jsonl", "not json\n");
        assert_int_equal(format_file_version(FORMAT_LEDGER, p, &v), -EBADMSG);
}

static void test_json_file_versions(void **state) {
        const struct scratch *s = *state;
        _cleanup_free_ char *p = at(s, "x.json");
        unsigned v;

        put(s, "x.json", "{\"format_version\":1,\"groups\":[]}");
        assert_int_equal(version_of(s, FORMAT_REGISTRY, "x.json"), 1);
        put(s, "x.json", "{\"groups\":[]}");
        assert_int_equal(version_of(s, FORMAT_REGISTRY, "x.json"), 0);
        put(s, "x.json", "{\"format_version\":5}");
        assert_int_equal(version_of(s, FORMAT_GROUP_STATE, "x.json"), 5);
        put(s, "x.json", "{\"format_v");
        assert_int_equal(format_file_version(FORMAT_GROUP, p, &v), -EBADMSG);
        assert_int_equal(format_file_version(FORMAT_GROUP, "/nonexistent/x.json", &v), -ENOENT);
}

/* --- survey --------------------------------------------------------------------------------- */

/* The files of Conclave 0.1.0: recovery.json and ledger.idx without a version, the rest at 1. */
static void make_home_0_1_0(const struct scratch *s) {
        put(s, "registry.json", "{\n  \"format_version\": 1,\n  \"groups\": [ \"team\", \"old\" ]\n}");
        make_group(s, "team", 12);
        make_group(s, "old", 4);
        put(s, "groups/team/group.json", "{\"format_version\":1,\"id\":\"team\",\"title\":\"Team\",\"state\":\"active\"}");
        put(s, "groups/old/group.json", "{\"format_version\":1,\"id\":\"old\",\"title\":\"\",\"state\":\"stopped\"}");
        put(s, "groups/team/state/state.json", "{\"format_version\":1,\"last_seq\":12,\"members\":[]}");
        put(s, "groups/old/state/recovery.json",
            "{\n  \"time\": \"2026-11-23T16:03:14.320Z\",\n  \"what\": \"truncated\",\n  \"offset\": 926,\n"
            "  \"bytes\": 19,\n  \"reason\": \"no trailing newline (torn write)\"\n}");
        put(s, "daemon_state.json", "{\"format_version\":1}");
        put(s, "config.toml", "[gateway]\nport = 7777\n");
        /* Not groups: ignored. */
        put(s, "groups/.hidden/group.json", "{\"format_version\":9}");
        put(s, "groups/bad name/group.json", "{\"format_version\":9}");
}

static void test_survey_0_1_0(void **state) {
        const struct scratch *s = *state;
        _cleanup_(format_survey_freep) struct format_survey *sv = NULL;
        const struct format_file *f;

        make_home_0_1_0(s);
        assert_int_equal(format_survey(s->home, &sv), 0);
        assert_int_equal(sv->n_newer, 0);
        assert_int_equal(sv->n_invalid, 0);
        assert_int_equal(sv->n_older, 3); /* two indexes, one recovery note */
        assert_int_equal(sv->n_preserved, 0);
        /* registry, then 4 files each: old has a recovery note and no state.json */
        assert_int_equal(sv->n_files, 1 + 4 + 4);
        assert_string_equal(sv->files[0].path, "registry.json");
        /* Groups in name order. */
        assert_string_equal(sv->files[1].path, "groups/old/group.json");

        f = find(sv, "groups/team/state/ledger.idx");
        assert_non_null(f);
        assert_int_equal(f->kind, FORMAT_LEDGER_INDEX);
        assert_int_equal(f->version, 0);
        assert_int_equal(f->status, FORMAT_OLDER);
        f = find(sv, "groups/old/state/recovery.json");
        assert_non_null(f);
        assert_int_equal(f->status, FORMAT_OLDER);
        f = find(sv, "groups/team/ledger.jsonl");
        assert_non_null(f);
        assert_int_equal(f->status, FORMAT_CURRENT);
        assert_int_equal(find(sv, "groups/team/group.json")->status, FORMAT_CURRENT);
        assert_null(find(sv, "daemon_state.json")); /* rewritten at start, not surveyed */
        assert_null(find(sv, "groups/.hidden/group.json"));
        assert_null(find(sv, "groups/bad name/group.json"));
}

static void test_survey_empty(void **state) {
        const struct scratch *s = *state;
        _cleanup_(format_survey_freep) struct format_survey *sv = NULL, *none = NULL;
        _cleanup_free_ char *missing = at(s, "nothing-here");

        assert_int_equal(format_survey(s->home, &sv), 0);
        assert_int_equal(sv->n_files, 0);
        assert_int_equal(format_survey(missing, &none), 0);
        assert_int_equal(none->n_files, 0);
}

static void test_survey_newer(void **state) {
        const struct scratch *s = *state;
        _cleanup_(format_survey_freep) struct format_survey *sv = NULL;
        const struct format_file *f;
        char message[512];

        make_home_0_1_0(s);
        put(s, "registry.json", "{\"format_version\":2,\"groups\":[\"team\",\"old\"],\"more\":{}}");
        put(s, "groups/team/state/state.json", "{\"format_version\":\"two\"}");
        assert_int_equal(format_survey(s->home, &sv), 0);
        assert_int_equal(sv->n_newer, 1);
        assert_int_equal(sv->n_invalid, 1);
        f = find(sv, "registry.json");
        assert_int_equal(f->status, FORMAT_NEWER);
        assert_int_equal(f->version, 2);
        assert_true(format_newer_message(f, message, sizeof message) > 0);
        assert_string_equal(message, "registry.json has format version 2, but this Conclave (" PACKAGE_VERSION
                                     ") reads the group registry only up to version 1");
        assert_non_null(strstr(format_newer_advice(FORMAT_REGISTRY), ".pre-v"));
        assert_non_null(strstr(format_newer_advice(FORMAT_LEDGER_INDEX), "rebuilt from the ledger"));
        f = find(sv, "groups/team/state/state.json");
        assert_int_equal(f->status, FORMAT_INVALID);
        assert_int_equal(f->error, -EBADMSG);
}

/* --- migrations ------------------------------------------------------------------------------ */

/* Migrates rel (found at version 0) and checks the result: version 1 first, the rest kept,
 * the original kept byte for byte as rel.pre-v1. */
static void migrate_json_ok(const struct scratch *s, enum format_kind kind, const char *rel, const char *text,
                            const char *key) {
        struct format_file f = { .kind = kind, .path = (char *) rel, .version = 0, .status = FORMAT_OLDER };
        _cleanup_free_ char *kept = NULL, *after = NULL, *copy = NULL, *want_kept = NULL;
        _cleanup_json_ struct json_object *o = NULL, *orig = parse(text);
        struct json_object *v;

        put(s, rel, text);
        assert_int_equal(migrate_file(s->home, &f, &kept), 0);
        assert_true(asprintf(&want_kept, "%s.pre-v1", rel) > 0);
        assert_string_equal(kept, want_kept);
        copy = get(s, want_kept);
        assert_string_equal(copy, text);
        after = get(s, rel);
        assert_non_null(strstr(after, "\"format_version\""));
        assert_true(strstr(after, "\"format_version\"") < strstr(after, key)); /* first */
        o = parse(after);
        assert_int_equal(version_of(s, kind, rel), 1);
        json_object_object_foreach(orig, k, val) {
                assert_true(json_object_object_get_ex(o, k, &v));
                assert_true(json_object_equal(v, val));
        }
        assert_int_equal(json_object_object_length(o), json_object_object_length(orig) + 1);
}

static void test_migrate_registry(void **state) {
        migrate_json_ok(*state, FORMAT_REGISTRY, "registry.json", "{\"groups\":[\"a\",\"b\"]}", "\"groups\"");
}

static void test_migrate_group(void **state) {
        migrate_json_ok(*state, FORMAT_GROUP, "groups/a/group.json",
                        "{\"id\":\"a\",\"title\":\"A/B\",\"state\":\"idle\",\"config_seq\":4,\"actors\":[]}", "\"id\"");
}

static void test_migrate_recovery_note(void **state) {
        migrate_json_ok(*state, FORMAT_RECOVERY_NOTE, "groups/old/state/recovery.json",
                        "{\"time\":\"2026-11-23T16:03:14.320Z\",\"what\":\"truncated\",\"offset\":926,\"bytes\":19,"
                        "\"reason\":\"no trailing newline (torn write)\"}",
                        "\"time\"");
}

/* The derived state: version 0 is refused by its loader (rebuilt from the ledger); migrated, the
 * loader accepts it as it is. */
static void test_migrate_group_state(void **state) {
        const struct scratch *s = *state;
        struct group_state *gs = NULL;
        _cleanup_json_ struct json_object *v1 = NULL, *v0 = NULL, *loaded = NULL;
        _cleanup_free_ char *migrated = NULL;
        const char *text;

        assert_int_equal(group_state_new(&gs), 0);
        v1 = group_state_to_json(gs);
        group_state_free(gs);
        gs = NULL;
        assert_non_null(v1);
        v0 = parse(json_object_to_json_string(v1));
        json_object_object_del(v0, "format_version");
        assert_int_equal(group_state_from_json(v0, &gs), -EBADMSG);
        text = json_object_to_json_string(v0);
        migrate_json_ok(s, FORMAT_GROUP_STATE, "groups/a/state/state.json", text, "\"last_seq\"");
        migrated = get(s, "groups/a/state/state.json");
        loaded = parse(migrated);
        assert_int_equal(group_state_from_json(loaded, &gs), 0);
        group_state_free(gs);
}

static void test_migrate_refusals(void **state) {
        const struct scratch *s = *state;
        struct format_file f = { .kind = FORMAT_REGISTRY, .path = (char *) "registry.json", .version = 0 };
        _cleanup_free_ char *after = NULL, *kept = NULL;

        /* The wrong shape for the version it claims: nothing is changed, no copy is made. */
        put(s, "registry.json", "{\"groupz\":[]}");
        assert_int_equal(migrate_file(s->home, &f, &kept), -EBADMSG);
        assert_null(kept);
        after = get(s, "registry.json");
        assert_string_equal(after, "{\"groupz\":[]}");
        assert_false(exists(s, "registry.json.pre-v1"));

        /* The file changed since the survey. */
        put(s, "registry.json", "{\"format_version\":1,\"groups\":[]}");
        assert_int_equal(migrate_file(s->home, &f, NULL), -ESTALE);

        /* Current: nothing to do. Newer, ledgers, manifests: never migrated. */
        f.version = 1;
        assert_int_equal(migrate_file(s->home, &f, NULL), 0);
        f.version = 2;
        assert_int_equal(migrate_file(s->home, &f, NULL), -EINVAL);
        f = (struct format_file) { .kind = FORMAT_LEDGER, .path = (char *) "groups/a/ledger.jsonl", .version = 0 };
        assert_int_equal(migrate_file(s->home, &f, NULL), -EINVAL);
        f = (struct format_file) { .kind = FORMAT_BACKUP_MANIFEST, .path = (char *) "manifest.json", .version = 0 };
        assert_int_equal(migrate_file(s->home, &f, NULL), -EINVAL);
        f = (struct format_file) { .kind = FORMAT_GROUP, .path = (char *) "groups/none/group.json", .version = 0 };
        assert_int_equal(migrate_file(s->home, &f, NULL), -ENOENT);
}

/* The whole 0.1.0 home: every older file migrated; the survey then finds them current, the
 * ledgers untouched and readable through the migrated indexes without a rebuild. */
static void test_migrate_home_0_1_0(void **state) {
        const struct scratch *s = *state;
        _cleanup_(format_survey_freep) struct format_survey *sv = NULL, *after = NULL;
        _cleanup_free_ char *ledger_before = NULL, *ledger_after = NULL, *dir = at(s, "groups/team");
        struct ledger_recovery rec;
        struct ledger *l = NULL;

        make_home_0_1_0(s);
        ledger_before = get(s, "groups/team/ledger.jsonl");
        assert_int_equal(format_survey(s->home, &sv), 0);
        for (size_t i = 0; i < sv->n_files; i++)
                if (sv->files[i].status == FORMAT_OLDER)
                        assert_int_equal(migrate_file(s->home, &sv->files[i], NULL), 0);
        assert_int_equal(format_survey(s->home, &after), 0);
        assert_int_equal(after->n_older, 0);
        assert_int_equal(after->n_newer, 0);
        assert_int_equal(after->n_files, sv->n_files);
        assert_int_equal(after->n_preserved, 1); /* recovery.json.pre-v1; the indexes are not copied */
        assert_true(exists(s, "groups/old/state/recovery.json.pre-v1"));
        assert_false(exists(s, "groups/team/state/ledger.idx.pre-v1"));
        ledger_after = get(s, "groups/team/ledger.jsonl");
        assert_string_equal(ledger_before, ledger_after);

        assert_int_equal(ledger_open(dir, "team", &l, &rec), 0);
        assert_false(rec.index_rebuilt);
        assert_int_equal(ledger_last_seq(l), 12);
        for (uint64_t seq = 1; seq <= 12; seq++) {
                _cleanup_json_ struct json_object *ev = NULL;
                assert_int_equal(ledger_read(l, seq, &ev), 0);
        }
        ledger_close(l);
}

/* The channels' files: a group's outbox (derived) and a channel's store (0.1.x: no version). */
static void test_channels_files(void **state) {
        const struct scratch *s = *state;
        _cleanup_(format_survey_freep) struct format_survey *sv = NULL;
        const struct format_file *f;

        make_home_0_1_0(s);
        put(s, "groups/team/state/outbox.json", "{\"format_version\":2,\"owed\":[]}");
        put(s, "channels/tg.json", "{\"offset\":\"1234\"}");
        put(s, "channels/mx.json", "{\"format_version\":1,\"since\":\"s72_4\"}");
        assert_int_equal(format_survey(s->home, &sv), 0);
        f = find(sv, "groups/team/state/outbox.json");
        assert_non_null(f);
        assert_int_equal(f->kind, FORMAT_OUTBOX);
        assert_int_equal(f->status, FORMAT_NEWER);
        f = find(sv, "channels/tg.json");
        assert_non_null(f);
        assert_int_equal(f->kind, FORMAT_CHANNEL_STORE);
        assert_int_equal(f->status, FORMAT_OLDER);
        f = find(sv, "channels/mx.json");
        assert_non_null(f);
        assert_int_equal(f->status, FORMAT_CURRENT);

        migrate_json_ok(s, FORMAT_CHANNEL_STORE, "channels/tg.json", "{\"offset\":\"1234\",\"webhook\":\"set\"}",
                        "\"offset\"");
}

/* A store whose values are not all strings is not one 0.1.x wrote: refused, left as it is. */
static void test_migrate_channel_store_refused(void **state) {
        const struct scratch *s = *state;
        struct format_file f = { .kind = FORMAT_CHANNEL_STORE, .path = (char *) "channels/x.json", .version = 0,
                                 .status = FORMAT_OLDER };
        _cleanup_free_ char *kept = NULL, *after = NULL;

        put(s, "channels/x.json", "{\"offset\":12}");
        assert_true(migrate_file(s->home, &f, &kept) < 0);
        after = get(s, "channels/x.json");
        assert_string_equal(after, "{\"offset\":12}");
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, scratch_setup, scratch_teardown)
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_table),
                cmocka_unit_test(test_json_version),
                T(test_ledger_version),
                T(test_json_file_versions),
                T(test_survey_0_1_0),
                T(test_survey_empty),
                T(test_survey_newer),
                T(test_migrate_registry),
                T(test_migrate_group),
                T(test_migrate_recovery_note),
                T(test_migrate_group_state),
                T(test_migrate_refusals),
                T(test_migrate_home_0_1_0),
                T(test_channels_files),
                T(test_migrate_channel_store_refused),
        };
#undef T
        return cmocka_run_group_tests(tests, NULL, NULL);
}
