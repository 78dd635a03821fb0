/* Format versions of the files under CONCLAVE_HOME and the survey of a home (see formats.h). */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup_manifest.h"
#include "fileio.h"
#include "formats.h"
#include "group_state.h"
#include "ledger.h"
#include "ledger_index.h"
#include "macro.h"
#include "paths.h"
#include "proto.h"

#define JSON_FILE_MAX (256u * 1024u * 1024u) /* state/state.json's limit; the others are smaller */
#define TAIL_WINDOW (64u * 1024u)
#define GROUP_ID_MAX 64u
#define LEDGER_JSON_DEPTH 64 /* as deep as the ledger itself parses (ledger.c) */

static const struct format_info infos[_FORMAT_KIND_MAX] = {
        [FORMAT_REGISTRY] = { "registry.json", "the group registry", REGISTRY_FORMAT_VERSION, 0, false, true },
        [FORMAT_GROUP] = { "groups/<id>/group.json", "a group's configuration cache", GROUP_FORMAT_VERSION, 0, true, true },
        [FORMAT_LEDGER] = { "groups/<id>/ledger.jsonl", "a group's ledger", LEDGER_FORMAT_VERSION, 1, false, true },
        [FORMAT_LEDGER_INDEX] = { "groups/<id>/state/ledger.idx", "a ledger's offset index", LEDGER_INDEX_FORMAT_VERSION, 0,
                                  true, true },
        [FORMAT_GROUP_STATE] = { "groups/<id>/state/state.json", "a group's derived state", GROUP_STATE_FORMAT_VERSION, 0,
                                 true, true },
        [FORMAT_RECOVERY_NOTE] = { "groups/<id>/state/recovery.json", "a ledger recovery note",
                                   RECOVERY_NOTE_FORMAT_VERSION, 0, false, true },
        [FORMAT_DAEMON_STATE] = { "daemon_state.json", "the daemon's heartbeat file", DAEMON_STATE_VERSION, 0, true, false },
        [FORMAT_BACKUP_MANIFEST] = { "manifest.json (in a backup)", "a backup manifest", BACKUP_FORMAT_VERSION, 1, false, true },
        [FORMAT_OUTBOX] = { "groups/<id>/state/outbox.json", "a group's channel outbox", OUTBOX_FORMAT_VERSION, 1, true,
                            true },
        [FORMAT_CHANNEL_STORE] = { "channels/<name>.json", "a channel's saved position (offsets, sync tokens)",
                                   CHANNEL_STORE_FORMAT_VERSION, 0, false, true },
};

const struct format_info *format_info(enum format_kind kind) {
        return (unsigned) kind < _FORMAT_KIND_MAX ? &infos[kind] : NULL;
}

int format_json_version(struct json_object *o, unsigned *ret) {
        struct json_object *v;
        int64_t n;

        if (!ret || !json_object_is_type(o, json_type_object))
                return -EBADMSG;
        if (!json_object_object_get_ex(o, "format_version", &v)) {
                *ret = 0;
                return 0;
        }
        if (!json_object_is_type(v, json_type_int))
                return -EBADMSG;
        n = json_object_get_int64(v);
        if (n < 0 || n > 1000000)
                return -EBADMSG;
        *ret = (unsigned) n;
        return 0;
}

static int json_file_version(const char *path, unsigned *ret) {
        _cleanup_free_ char *text = NULL;
        _cleanup_json_ struct json_object *o = NULL;
        size_t len;
        int r;

        r = read_file_bounded(path, JSON_FILE_MAX, &text, &len);
        if (r < 0)
                return r;
        o = json_tokener_parse(text);
        if (!o)
                return -EBADMSG;
        return format_json_version(o, ret);
}

/* "v" of one ledger line: an integer >= 1. */
static int line_version(const char *line, size_t len, unsigned *ret) {
        _cleanup_json_ struct json_object *o = NULL;
        struct json_tokener *tok = json_tokener_new_ex(LEDGER_JSON_DEPTH);
        struct json_object *v;
        int64_t n;

        if (!tok)
                return -ENOMEM;
        o = json_tokener_parse_ex(tok, line, (int) len);
        json_tokener_free(tok);
        if (!o || !json_object_object_get_ex(o, "v", &v) || !json_object_is_type(v, json_type_int))
                return -EBADMSG;
        n = json_object_get_int64(v);
        if (n < 1 || n > 1000000)
                return -EBADMSG;
        *ret = (unsigned) n;
        return 0;
}

static int pread_exact(int fd, char *buf, size_t n, off_t at) {
        size_t done = 0;

        while (done < n) {
                ssize_t k = pread(fd, buf + done, n - done, at + (off_t) done);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return negative_errno();
                if (k == 0)
                        return -ENODATA;
                done += (size_t) k;
        }
        return 0;
}

/* The first line and the last complete line (a torn tail is not a line yet). Windows grow from
 * 64 KiB to what the longest line allowed needs. */
static int ledger_version(const char *path, unsigned *ret) {
        static const size_t windows[] = { TAIL_WINDOW, 2u * LEDGER_LINE_MAX + 2u };
        _cleanup_close_ int fd = -EBADF;
        unsigned first = 0, last = 0;
        struct stat st;
        size_t size;
        int r;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADMSG;
        size = (size_t) st.st_size;

        for (size_t w = 0; w < ELEMENTSOF(windows); w++) {
                size_t n = size < windows[w] ? size : windows[w];
                _cleanup_free_ char *buf = malloc(n + 1);
                const char *nl;

                if (!buf)
                        return -ENOMEM;
                r = pread_exact(fd, buf, n, 0);
                if (r < 0)
                        return r;
                nl = memchr(buf, '\n', n);
                if (!nl && n < size)
                        continue;
                if (!nl) { /* no complete line at all: an empty ledger, or only a torn one */
                        *ret = LEDGER_FORMAT_VERSION;
                        return 0;
                }
                r = line_version(buf, (size_t) (nl - buf), &first);
                if (r < 0)
                        return r;
                break;
        }
        if (first == 0)
                return -EBADMSG; /* a first line longer than any line may be */

        for (size_t w = 0; w < ELEMENTSOF(windows); w++) {
                size_t n = size < windows[w] ? size : windows[w];
                _cleanup_free_ char *buf = malloc(n + 1);
                char *end, *start;

                if (!buf)
                        return -ENOMEM;
                r = pread_exact(fd, buf, n, (off_t) (size - n));
                if (r < 0)
                        return r;
                end = memrchr(buf, '\n', n); /* found: the first line ends in the file */
                if (!end)
                        continue;
                start = memrchr(buf, '\n', (size_t) (end - buf));
                if (!start && n < size)
                        continue;
                start = start ? start + 1 : buf;
                r = line_version(start, (size_t) (end - start), &last);
                if (r < 0)
                        return r;
                break;
        }
        if (last == 0)
                return -EBADMSG;
        *ret = first > last ? first : last;
        return 0;
}

int format_file_version(enum format_kind kind, const char *path, unsigned *ret) {
        if (!path || !ret || (unsigned) kind >= _FORMAT_KIND_MAX)
                return -EINVAL;
        switch (kind) {
        case FORMAT_LEDGER:
                return ledger_version(path, ret);
        case FORMAT_LEDGER_INDEX:
                return ledger_index_file_version(path, ret);
        default:
                return json_file_version(path, ret);
        }
}

/* --- survey --------------------------------------------------------------------------------- */

static bool group_id_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > GROUP_ID_MAX)
                return false;
        for (; *s; s++)
                if (!isalnum((unsigned char) *s) && *s != '-' && *s != '_')
                        return false;
        return true;
}

/* "name.pre-v<digits>": a copy kept by a migration. */
static bool is_preserved_copy(const char *name) {
        const char *p = strstr(name, ".pre-v");

        if (!p || p == name || !p[6])
                return false;
        for (p += 6; *p; p++)
                if (!isdigit((unsigned char) *p))
                        return false;
        return true;
}

static size_t count_preserved(const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *de;
        size_t n = 0;

        if (!d)
                return 0;
        while ((de = readdir(d)))
                n += is_preserved_copy(de->d_name);
        closedir(d);
        return n;
}

static int survey_add(struct format_survey *s, const char *home, enum format_kind kind, const char *rel) {
        _cleanup_free_ char *full = path_join(home, rel);
        struct format_file *n, *f;
        unsigned version = 0;
        int r;

        if (!full)
                return -ENOMEM;
        r = format_file_version(kind, full, &version);
        if (r == -ENOENT)
                return 0;
        if (r == -ENOMEM)
                return r;
        n = reallocarray(s->files, s->n_files + 1, sizeof *n);
        if (!n)
                return -ENOMEM;
        s->files = n;
        f = &s->files[s->n_files];
        *f = (struct format_file) { .kind = kind, .path = strdup(rel), .version = version };
        if (!f->path)
                return -ENOMEM;
        s->n_files++;
        if (r < 0) {
                f->status = FORMAT_INVALID;
                f->error = r;
                s->n_invalid++;
        } else if (version > infos[kind].current) {
                f->status = FORMAT_NEWER;
                s->n_newer++;
        } else if (version < infos[kind].oldest) {
                f->status = FORMAT_INVALID;
                f->error = -EBADMSG;
                s->n_invalid++;
        } else if (version < infos[kind].current) {
                f->status = FORMAT_OLDER;
                s->n_older++;
        } else
                f->status = FORMAT_CURRENT;
        return 0;
}

static int compare_names(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static int survey_group(struct format_survey *s, const char *home, const char *id) {
        static const struct {
                enum format_kind kind;
                const char *name;
        } files[] = {
                { FORMAT_GROUP, "group.json" },
                { FORMAT_LEDGER, "ledger.jsonl" },
                { FORMAT_LEDGER_INDEX, "state/ledger.idx" },
                { FORMAT_GROUP_STATE, "state/state.json" },
                { FORMAT_RECOVERY_NOTE, "state/recovery.json" },
                { FORMAT_OUTBOX, "state/outbox.json" },
        };
        int r;

        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                _cleanup_free_ char *rel = NULL;
                if (asprintf(&rel, "groups/%s/%s", id, files[i].name) < 0)
                        return -ENOMEM;
                r = survey_add(s, home, files[i].kind, rel);
                if (r < 0)
                        return r;
        }
        {
                _cleanup_free_ char *dir = NULL, *state = NULL;
                if (asprintf(&dir, "%s/groups/%s", home, id) < 0 || asprintf(&state, "%s/groups/%s/state", home, id) < 0)
                        return -ENOMEM;
                s->n_preserved += count_preserved(dir) + count_preserved(state);
        }
        return 0;
}

/* channels/<name>.json: what conclave-channels' drivers keep (long-poll offsets, sync tokens). */
static int survey_channel_stores(struct format_survey *s, const char *home) {
        _cleanup_free_ char *dir = path_join(home, "channels");
        char **names = NULL;
        size_t n_names = 0;
        struct dirent *de;
        DIR *d;
        int r = 0;

        if (!dir)
                return -ENOMEM;
        d = opendir(dir);
        if (!d)
                return errno == ENOENT || errno == ENOTDIR ? 0 : negative_errno();
        while ((de = readdir(d))) {
                size_t n = strlen(de->d_name);
                char **v;
                if (n <= 5 || !streq(de->d_name + n - 5, ".json") || de->d_name[0] == '.')
                        continue;
                v = reallocarray(names, n_names + 1, sizeof *v);
                if (!v || asprintf(&v[n_names], "channels/%s", de->d_name) < 0) {
                        if (v)
                                names = v;
                        r = -ENOMEM;
                        break;
                }
                names = v;
                n_names++;
        }
        closedir(d);
        if (r == 0 && n_names)
                qsort(names, n_names, sizeof *names, compare_names);
        for (size_t i = 0; r == 0 && i < n_names; i++)
                r = survey_add(s, home, FORMAT_CHANNEL_STORE, names[i]);
        for (size_t i = 0; i < n_names; i++)
                free(names[i]);
        free(names);
        if (r == 0)
                s->n_preserved += count_preserved(dir);
        return r;
}

int format_survey(const char *home, struct format_survey **ret) {
        _cleanup_(format_survey_freep) struct format_survey *s = NULL;
        _cleanup_free_ char *groups = NULL;
        char **names = NULL;
        size_t n_names = 0;
        struct dirent *de;
        DIR *d;
        int r;

        if (!home || !ret)
                return -EINVAL;
        s = calloc(1, sizeof *s);
        groups = path_join(home, "groups");
        if (!s || !groups)
                return -ENOMEM;
        r = survey_add(s, home, FORMAT_REGISTRY, "registry.json");
        if (r < 0)
                return r;
        s->n_preserved += count_preserved(home);
        r = survey_channel_stores(s, home);
        if (r < 0)
                return r;

        d = opendir(groups);
        if (!d) {
                if (errno != ENOENT && errno != ENOTDIR)
                        return negative_errno();
                *ret = s;
                s = NULL;
                return 0;
        }
        r = 0;
        while ((de = readdir(d))) {
                struct stat st;
                char **n;
                if (!group_id_valid(de->d_name) || fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
                    !S_ISDIR(st.st_mode))
                        continue;
                n = reallocarray(names, n_names + 1, sizeof *n);
                if (!n || !(n[n_names] = strdup(de->d_name))) {
                        if (n)
                                names = n;
                        r = -ENOMEM;
                        break;
                }
                names = n;
                n_names++;
        }
        closedir(d);
        if (r == 0 && n_names)
                qsort(names, n_names, sizeof *names, compare_names);
        for (size_t i = 0; r == 0 && i < n_names; i++)
                r = survey_group(s, home, names[i]);
        for (size_t i = 0; i < n_names; i++)
                free(names[i]);
        free(names);
        if (r < 0)
                return r;
        *ret = s;
        s = NULL;
        return 0;
}

void format_survey_free(struct format_survey *s) {
        if (!s)
                return;
        for (size_t i = 0; i < s->n_files; i++)
                free(s->files[i].path);
        free(s->files);
        free(s);
}

int format_newer_message(const struct format_file *f, char *buf, size_t size) {
        if (!f || (unsigned) f->kind >= _FORMAT_KIND_MAX)
                return -EINVAL;
        return snprintf(buf, size, "%s has format version %u, but this Conclave (%s) reads %s only up to version %u",
                        f->path, f->version, PACKAGE_VERSION, infos[f->kind].what, infos[f->kind].current);
}

const char *format_newer_advice(enum format_kind kind) {
        if (kind == FORMAT_LEDGER)
                return "a newer Conclave wrote to this ledger: run that version (or newer) again; events it wrote "
                       "cannot be read by this one";
        if ((unsigned) kind < _FORMAT_KIND_MAX && infos[kind].derived)
                return "run the newer Conclave again, or put back the copy the upgrade kept (FILE.pre-vN), or delete "
                       "the file: it is rebuilt from the ledger";
        return "run the newer Conclave again, or put back the copy the upgrade kept (FILE.pre-vN) or a backup "
               "made before the upgrade";
}
