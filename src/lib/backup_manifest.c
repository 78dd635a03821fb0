/* Backup manifests and archive path rules (see backup_manifest.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup_manifest.h"
#include "macro.h"
#include "proto.h"

#define LEDGER_PREFIX "groups/"
#define LEDGER_SUFFIX "/ledger.jsonl"

bool backup_path_valid(const char *path) {
        size_t n = path ? strnlen(path, BACKUP_PATH_MAX + 1) : 0;
        const char *c;

        if (n == 0 || n > BACKUP_PATH_MAX || path[0] == '/')
                return false;
        for (const char *p = path; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f || *p == '\\')
                        return false;
        for (c = path; *c;) {
                size_t len = strcspn(c, "/");
                if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
                        return false;
                c += len;
                if (*c == '/') {
                        c++;
                        if (!*c)
                                return false; /* trailing slash: a directory, not a file */
                }
        }
        return true;
}

static bool id_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

bool backup_group_id_valid(const char *id) {
        size_t n = id ? strnlen(id, BACKUP_GROUP_ID_MAX + 1) : 0;

        if (n == 0 || n > BACKUP_GROUP_ID_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!id_char(id[i]))
                        return false;
        return true;
}

bool backup_path_is_ledger(const char *path, char *id) {
        size_t n = path ? strlen(path) : 0, pre = strlen(LEDGER_PREFIX), suf = strlen(LEDGER_SUFFIX), idlen;

        if (n <= pre + suf || strncmp(path, LEDGER_PREFIX, pre) != 0 || strcmp(path + n - suf, LEDGER_SUFFIX) != 0)
                return false;
        idlen = n - pre - suf;
        if (idlen > BACKUP_GROUP_ID_MAX)
                return false;
        for (size_t i = 0; i < idlen; i++)
                if (!id_char(path[pre + i]))
                        return false;
        memcpy(id, path + pre, idlen);
        id[idlen] = 0;
        return true;
}

static bool sha256_hex_valid(const char *s) {
        if (!s || strlen(s) != BACKUP_SHA256_HEX)
                return false;
        for (; *s; s++)
                if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
                        return false;
        return true;
}

int backup_manifest_new(struct backup_manifest **ret) {
        struct backup_manifest *m = calloc(1, sizeof *m);

        if (!m)
                return -ENOMEM;
        m->format_version = BACKUP_FORMAT_VERSION;
        *ret = m;
        return 0;
}

void backup_manifest_free(struct backup_manifest *m) {
        if (!m)
                return;
        for (size_t i = 0; i < m->n_files; i++)
                free(m->files[i].path);
        for (size_t i = 0; i < m->n_groups; i++)
                free(m->groups[i].id);
        free(m->files);
        free(m->groups);
        free(m->conclave_version);
        free(m->created);
        free(m->home);
        free(m);
}

int backup_manifest_add_file(struct backup_manifest *m, const char *path, uint64_t size, unsigned mode,
                             const char *sha256_hex) {
        struct backup_file *n;

        if (!backup_path_valid(path) || streq(path, BACKUP_MANIFEST_NAME) || mode > 0777 ||
            !sha256_hex_valid(sha256_hex))
                return -EINVAL;
        if (m->n_files >= BACKUP_FILES_MAX)
                return -E2BIG;
        n = reallocarray(m->files, m->n_files + 1, sizeof *n);
        if (!n)
                return -ENOMEM;
        m->files = n;
        n = &m->files[m->n_files];
        *n = (struct backup_file){ .path = strdup(path), .size = size, .mode = mode };
        if (!n->path)
                return -ENOMEM;
        memcpy(n->sha256, sha256_hex, BACKUP_SHA256_HEX + 1);
        m->n_files++;
        return 0;
}

int backup_manifest_add_group(struct backup_manifest *m, const char *id, uint64_t ledger_bytes, uint64_t last_seq) {
        struct backup_group *n;

        if (!backup_group_id_valid(id))
                return -EINVAL;
        n = reallocarray(m->groups, m->n_groups + 1, sizeof *n);
        if (!n)
                return -ENOMEM;
        m->groups = n;
        n = &m->groups[m->n_groups];
        *n = (struct backup_group){ .id = strdup(id), .ledger_bytes = ledger_bytes, .last_seq = last_seq };
        if (!n->id)
                return -ENOMEM;
        m->n_groups++;
        return 0;
}

struct json_object *backup_manifest_to_json(const struct backup_manifest *m) {
        _cleanup_json_ struct json_object *o = json_object_new_object();
        struct json_object *groups = json_object_new_array(), *files = json_object_new_array();

        if (!o || !groups || !files) {
                json_object_put(groups);
                json_object_put(files);
                return NULL;
        }
        json_object_object_add(o, "format", json_object_new_string(BACKUP_FORMAT));
        json_object_object_add(o, "format_version", json_object_new_int((int) m->format_version));
        json_object_object_add(o, "conclave_version", json_object_new_string(m->conclave_version ? m->conclave_version : ""));
        json_object_object_add(o, "created", json_object_new_string(m->created ? m->created : ""));
        json_object_object_add(o, "home", json_object_new_string(m->home ? m->home : ""));
        json_object_object_add(o, "online", json_object_new_boolean(m->online));
        json_object_object_add(o, "groups", groups);
        json_object_object_add(o, "files", files);
        for (size_t i = 0; i < m->n_groups; i++) {
                struct json_object *g = json_object_new_object();
                if (!g || json_object_array_add(groups, g) < 0)
                        return json_object_put(g), NULL;
                json_object_object_add(g, "id", json_object_new_string(m->groups[i].id));
                json_object_object_add(g, "ledger_bytes", json_object_new_uint64(m->groups[i].ledger_bytes));
                json_object_object_add(g, "last_seq", json_object_new_uint64(m->groups[i].last_seq));
        }
        for (size_t i = 0; i < m->n_files; i++) {
                struct json_object *f = json_object_new_object();
                char mode[8];
                if (!f || json_object_array_add(files, f) < 0)
                        return json_object_put(f), NULL;
                snprintf(mode, sizeof mode, "%04o", m->files[i].mode);
                json_object_object_add(f, "path", json_object_new_string(m->files[i].path));
                json_object_object_add(f, "size", json_object_new_uint64(m->files[i].size));
                json_object_object_add(f, "mode", json_object_new_string(mode));
                json_object_object_add(f, "sha256", json_object_new_string(m->files[i].sha256));
        }
        return json_object_get(o);
}

/* --- parsing ------------------------------------------------------------------------------ */

static int bad(char *why, size_t size, const char *fmt, ...) _printf_(3, 4);
static int bad(char *why, size_t size, const char *fmt, ...) {
        va_list ap;

        if (why && size) {
                va_start(ap, fmt);
                vsnprintf(why, size, fmt, ap);
                va_end(ap);
        }
        return -EBADMSG;
}

static const char *get_string(struct json_object *o, const char *key) {
        struct json_object *v;
        return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
                       ? json_object_get_string(v) : NULL;
}

/* A non-negative JSON integer (json-c keeps values above INT64_MAX as uint64). */
static bool get_uint(struct json_object *o, const char *key, uint64_t *ret) {
        struct json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return false;
        if (json_object_get_int64(v) < 0)
                return false;
        *ret = json_object_get_uint64(v);
        return true;
}

static bool parse_mode(const char *s, unsigned *ret) {
        unsigned v = 0;

        if (!s || !*s || strlen(s) > 4)
                return false;
        for (; *s; s++) {
                if (*s < '0' || *s > '7')
                        return false;
                v = v * 8 + (unsigned) (*s - '0');
        }
        *ret = v;
        return v <= 0777;
}

static int file_cmp(const void *a, const void *b) {
        return strcmp(((const struct backup_file *) a)->path, ((const struct backup_file *) b)->path);
}

static int group_cmp(const void *a, const void *b) {
        return strcmp(((const struct backup_group *) a)->id, ((const struct backup_group *) b)->id);
}

const struct backup_file *backup_manifest_find(const struct backup_manifest *m, const char *path) {
        struct backup_file key = { .path = (char *) path };
        return m->n_files ? bsearch(&key, m->files, m->n_files, sizeof *m->files, file_cmp) : NULL;
}

const struct backup_group *backup_manifest_find_group(const struct backup_manifest *m, const char *id) {
        struct backup_group key = { .id = (char *) id };
        return m->n_groups && id ? bsearch(&key, m->groups, m->n_groups, sizeof *m->groups, group_cmp) : NULL;
}

static int parse_files(struct backup_manifest *m, struct json_object *files, char *why, size_t size) {
        size_t n = json_object_array_length(files);

        if (n > BACKUP_FILES_MAX)
                return bad(why, size, "more than %u files", BACKUP_FILES_MAX);
        for (size_t i = 0; i < n; i++) {
                struct json_object *f = json_object_array_get_idx(files, i);
                const char *path = get_string(f, "path"), *sha = get_string(f, "sha256");
                uint64_t fsize;
                unsigned mode;
                int r;

                if (!json_object_is_type(f, json_type_object))
                        return bad(why, size, "files[%zu] is not an object", i);
                if (!backup_path_valid(path) || streq(path, BACKUP_MANIFEST_NAME))
                        return bad(why, size, "files[%zu]: invalid path", i);
                if (!get_uint(f, "size", &fsize))
                        return bad(why, size, "files[%zu] (%s): invalid size", i, path);
                if (!parse_mode(get_string(f, "mode"), &mode))
                        return bad(why, size, "files[%zu] (%s): invalid mode", i, path);
                if (!sha256_hex_valid(sha))
                        return bad(why, size, "files[%zu] (%s): invalid sha256", i, path);
                r = backup_manifest_add_file(m, path, fsize, mode, sha);
                if (r < 0)
                        return r;
        }
        qsort(m->files, m->n_files, sizeof *m->files, file_cmp);
        for (size_t i = 1; i < m->n_files; i++)
                if (streq(m->files[i - 1].path, m->files[i].path))
                        return bad(why, size, "%s is listed twice", m->files[i].path);
        return 0;
}

static int parse_groups(struct backup_manifest *m, struct json_object *groups, char *why, size_t size) {
        size_t n = json_object_array_length(groups);

        if (n > BACKUP_FILES_MAX)
                return bad(why, size, "more than %u groups", BACKUP_FILES_MAX);
        for (size_t i = 0; i < n; i++) {
                struct json_object *g = json_object_array_get_idx(groups, i);
                const char *id = get_string(g, "id");
                uint64_t bytes, last_seq;
                int r;

                if (!json_object_is_type(g, json_type_object) || !backup_group_id_valid(id))
                        return bad(why, size, "groups[%zu]: missing or invalid id", i);
                if (!get_uint(g, "ledger_bytes", &bytes) || !get_uint(g, "last_seq", &last_seq))
                        return bad(why, size, "groups[%zu] (%s): invalid ledger_bytes or last_seq", i, id);
                r = backup_manifest_add_group(m, id, bytes, last_seq);
                if (r < 0)
                        return r;
        }
        qsort(m->groups, m->n_groups, sizeof *m->groups, group_cmp);
        for (size_t i = 0; i < m->n_groups; i++) {
                char path[BACKUP_PATH_MAX + 1];
                const struct backup_file *f;

                if (i > 0 && streq(m->groups[i - 1].id, m->groups[i].id))
                        return bad(why, size, "group %s is listed twice", m->groups[i].id);
                snprintf(path, sizeof path, LEDGER_PREFIX "%s" LEDGER_SUFFIX, m->groups[i].id);
                f = backup_manifest_find(m, path);
                if (!f)
                        return bad(why, size, "group %s: %s is not listed", m->groups[i].id, path);
                if (f->size != m->groups[i].ledger_bytes)
                        return bad(why, size, "group %s: ledger_bytes differs from the size of %s", m->groups[i].id, path);
        }
        return 0;
}

int backup_manifest_parse(const char *text, size_t len, struct backup_manifest **ret, char *why, size_t size) {
        _cleanup_(backup_manifest_freep) struct backup_manifest *m = NULL;
        _cleanup_json_ struct json_object *o = NULL;
        struct json_tokener *tok;
        struct json_object *v, *files, *groups;
        uint64_t version;
        int r;

        if (len > BACKUP_MANIFEST_MAX)
                return bad(why, size, "larger than %u bytes", BACKUP_MANIFEST_MAX);
        tok = json_tokener_new_ex(16);
        if (!tok)
                return -ENOMEM;
        o = json_tokener_parse_ex(tok, text, (int) len);
        if (o && json_tokener_get_parse_end(tok) != len)
                o = (json_object_put(o), NULL);
        json_tokener_free(tok);
        if (!o || !json_object_is_type(o, json_type_object))
                return bad(why, size, "not a JSON object");
        if (!streq(get_string(o, "format"), BACKUP_FORMAT))
                return bad(why, size, "not a Conclave backup manifest (\"format\" is not \"%s\")", BACKUP_FORMAT);
        if (!get_uint(o, "format_version", &version) || version == 0)
                return bad(why, size, "missing or invalid format_version");
        if (version > BACKUP_FORMAT_VERSION) {
                if (why && size)
                        snprintf(why, size, "made by a newer Conclave (backup format %llu, this one reads %d); "
                                 "restore it with that version or later", (unsigned long long) version,
                                 BACKUP_FORMAT_VERSION);
                return -EPROTONOSUPPORT;
        }
        if (!json_object_object_get_ex(o, "files", &files) || !json_object_is_type(files, json_type_array) ||
            !json_object_object_get_ex(o, "groups", &groups) || !json_object_is_type(groups, json_type_array))
                return bad(why, size, "missing \"files\" or \"groups\" array");

        r = backup_manifest_new(&m);
        if (r < 0)
                return r;
        m->format_version = (unsigned) version;
        m->conclave_version = strdup(get_string(o, "conclave_version") ?: "");
        m->created = strdup(get_string(o, "created") ?: "");
        m->home = strdup(get_string(o, "home") ?: "");
        m->online = json_object_object_get_ex(o, "online", &v) && json_object_get_boolean(v);
        if (!m->conclave_version || !m->created || !m->home)
                return -ENOMEM;
        r = parse_files(m, files, why, size);
        if (r < 0)
                return r;
        if (!backup_manifest_find(m, "registry.json"))
                return bad(why, size, "registry.json is not listed");
        r = parse_groups(m, groups, why, size);
        if (r < 0)
                return r;
        *ret = m;
        m = NULL;
        return 0;
}
