/* Migration steps between format versions (see migrate.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fileio.h"
#include "ledger_index.h"
#include "macro.h"
#include "migrate.h"
#include "paths.h"
#include "proto.h"

#define JSON_FILE_MAX (256u * 1024u * 1024u)

/* A step gets the object in version N and leaves it in version N + 1. */
typedef int (*json_step)(struct json_object *o);

/* Version 0 of a JSON file is version 1 without "format_version" (Conclave 0.1.0 wrote
 * state/recovery.json that way; the other files always carried it, but a file restored from
 * elsewhere or written by hand may not). The step checks the shape version 1 needs. */
static int require_keys(struct json_object *o, const char *const *keys, const json_type *types, size_t n) {
        for (size_t i = 0; i < n; i++) {
                struct json_object *v;
                if (!json_object_object_get_ex(o, keys[i], &v) || !json_object_is_type(v, types[i]))
                        return -EBADMSG;
        }
        return 0;
}

static int registry_0_to_1(struct json_object *o) {
        static const char *const keys[] = { "groups" };
        static const json_type types[] = { json_type_array };
        return require_keys(o, keys, types, ELEMENTSOF(keys));
}

static int group_0_to_1(struct json_object *o) {
        static const char *const keys[] = { "id" };
        static const json_type types[] = { json_type_string };
        return require_keys(o, keys, types, ELEMENTSOF(keys));
}

static int group_state_0_to_1(struct json_object *o) {
        static const char *const keys[] = { "last_seq", "members" };
        static const json_type types[] = { json_type_int, json_type_array };
        return require_keys(o, keys, types, ELEMENTSOF(keys));
}

static int recovery_note_0_to_1(struct json_object *o) {
        static const char *const keys[] = { "what", "offset" };
        static const json_type types[] = { json_type_string, json_type_int };
        return require_keys(o, keys, types, ELEMENTSOF(keys));
}

/* A channel's store (0.1.x wrote it without a version): an object of strings. */
static int channel_store_0_to_1(struct json_object *o) {
        json_object_object_foreach(o, key, value) {
                (void) key;
                if (!json_object_is_type(value, json_type_string))
                        return -EBADMSG;
        }
        return 0;
}

/* steps[kind][N]: from version N to N + 1. NULL: no path. */
#define STEPS_MAX 4
static const json_step steps[_FORMAT_KIND_MAX][STEPS_MAX] = {
        [FORMAT_REGISTRY] = { registry_0_to_1 },
        [FORMAT_GROUP] = { group_0_to_1 },
        [FORMAT_GROUP_STATE] = { group_state_0_to_1 },
        [FORMAT_RECOVERY_NOTE] = { recovery_note_0_to_1 },
        [FORMAT_CHANNEL_STORE] = { channel_store_0_to_1 },
};

/* The same object with "format_version" first (readers and people look for it there). */
static struct json_object *with_version_first(struct json_object *o, unsigned version) {
        struct json_object *n = json_object_new_object();

        if (!n)
                return NULL;
        if (json_object_object_add(n, "format_version", json_object_new_int((int) version)) < 0) {
                json_object_put(n);
                return NULL;
        }
        json_object_object_foreach(o, key, value) {
                if (streq(key, "format_version"))
                        continue;
                if (json_object_object_add(n, key, json_object_get(value)) < 0) {
                        json_object_put(n);
                        return NULL;
                }
        }
        return n;
}

static int migrate_json(const char *path, const struct format_file *f, char **ret_kept) {
        const struct format_info *info = format_info(f->kind);
        _cleanup_free_ char *text = NULL, *kept = NULL;
        _cleanup_json_ struct json_object *o = NULL, *out = NULL;
        const char *serialized;
        size_t len;
        unsigned version;
        int r;

        r = read_file_bounded(path, JSON_FILE_MAX, &text, &len);
        if (r < 0)
                return r;
        o = json_tokener_parse(text);
        r = format_json_version(o, &version);
        if (r < 0)
                return r;
        if (version != f->version)
                return -ESTALE; /* changed since the survey */
        if (version == info->current)
                return 0;
        if (version > info->current)
                return -EINVAL;
        for (unsigned v = version; v < info->current; v++) {
                if (v >= STEPS_MAX || !steps[f->kind][v])
                        return -EINVAL;
                r = steps[f->kind][v](o);
                if (r < 0)
                        return r;
        }
        out = with_version_first(o, info->current);
        if (!out)
                return -ENOMEM;
        if (asprintf(&kept, "%s.pre-v%u", path, info->current) < 0)
                return -ENOMEM;
        /* The copy is durable before the original is replaced. */
        r = write_file_atomic(kept, text, len, 0600);
        if (r < 0)
                return r;
        serialized = json_object_to_json_string_ext(out, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                                 JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!serialized)
                return -ENOMEM;
        r = write_file_atomic(path, serialized, strlen(serialized), 0600);
        if (r < 0)
                return r;
        if (ret_kept && asprintf(ret_kept, "%s.pre-v%u", f->path, info->current) < 0)
                *ret_kept = NULL;
        return 0;
}

int migrate_file(const char *home, const struct format_file *f, char **ret_kept) {
        _cleanup_free_ char *path = NULL;
        const struct format_info *info;

        if (ret_kept)
                *ret_kept = NULL;
        if (!home || !f || !(info = format_info(f->kind)))
                return -EINVAL;
        if (f->version == info->current)
                return 0;
        if (f->version > info->current)
                return -EINVAL;
        path = path_join(home, f->path);
        if (!path)
                return -ENOMEM;
        switch (f->kind) {
        case FORMAT_LEDGER_INDEX:
                if (f->version != 0)
                        return -EINVAL;
                return ledger_index_migrate_v0(path);
        case FORMAT_REGISTRY:
        case FORMAT_GROUP:
        case FORMAT_GROUP_STATE:
        case FORMAT_RECOVERY_NOTE:
        case FORMAT_CHANNEL_STORE:
                return migrate_json(path, f, ret_kept);
        default:
                return -EINVAL; /* the ledger, daemon_state.json, backup manifests */
        }
}
