/* `conclave backup [FILE]`: a consistent archive of CONCLAVE_HOME while the service runs. The
 * daemon answers backup.begin with the durable length of every ledger; this copies each ledger
 * up to that length (later appends are not in the backup), with group.json, registry.json,
 * config.toml, the secret files the configuration names inside CONCLAVE_HOME, and a manifest
 * of sizes and SHA-256 digests, into a temp file renamed into place only when complete.
 * Without a daemon the files are copied as they are (nothing writes them). */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backup_io.h"
#include "backup_manifest.h"
#include "cli.h"
#include "config.h"
#include "control.h"
#include "fileio.h"
#include "formats.h"
#include "ledger_check.h"
#include "macro.h"
#include "paths.h"
#include "proto.h"
#include "timeutil.h"

#define SMALL_FILE_MAX (4u * 1024u * 1024u) /* registry.json, group.json (the daemon's limit) */
#define SECRET_FILE_MAX (64u * 1024u)
#define COPY_BLOCK (1024u * 1024u)

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
        interrupted = 1;
}

struct backup {
        bool json;
        FILE *info; /* where notes go: stdout, or stderr with --json */
        const char *file;
        char *tmp;
        int fd;
        struct archive *archive;
        struct backup_manifest *manifest;
        struct sha256 *sha;
        char *home;
        char *config_path;
        struct json_object *notes; /* files left out, torn tails cut */
        uint64_t bytes, events;
        unsigned secrets;
        time_t now;
};

static void note(struct backup *b, const char *fmt, ...) _printf_(2, 3);
static void note(struct backup *b, const char *fmt, ...) {
        char msg[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        fprintf(b->info, "Note: %s\n", msg);
        json_object_array_add(b->notes, json_object_new_string(msg));
}

static int archive_failed(struct backup *b, const char *what) {
        fprintf(stderr, "conclave backup: %s: %s\n", what, archive_error_string(b->archive) ?: "archive error");
        return -EIO;
}

static int write_data(struct backup *b, const void *buf, size_t len) {
        const char *p = buf;

        while (len > 0) {
                la_ssize_t n = archive_write_data(b->archive, p, len);
                if (n <= 0)
                        return archive_failed(b, "writing the archive");
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

static int write_header(struct backup *b, const char *path, uint64_t size, unsigned mode, time_t mtime) {
        struct archive_entry *e = archive_entry_new();
        int r;

        if (!e)
                return -ENOMEM;
        archive_entry_set_pathname(e, path);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, mode);
        archive_entry_set_size(e, (la_int64_t) size);
        archive_entry_set_mtime(e, mtime, 0);
        r = archive_write_header(b->archive, e);
        archive_entry_free(e);
        return r == ARCHIVE_OK ? 0 : archive_failed(b, path);
}

/* One file from memory: header, data, manifest line. */
static int add_buffer(struct backup *b, const char *path, const void *data, size_t len, unsigned mode, time_t mtime) {
        char hex[BACKUP_SHA256_HEX + 1];
        int r;

        r = write_header(b, path, len, mode, mtime);
        if (r >= 0)
                r = write_data(b, data, len);
        if (r >= 0)
                r = sha256_update(b->sha, data, len);
        if (r >= 0)
                r = sha256_final_hex(b->sha, hex);
        if (r >= 0)
                r = backup_manifest_add_file(b->manifest, path, len, mode, hex);
        if (r < 0)
                return r;
        b->bytes += len;
        return 0;
}

/* A small file of CONCLAVE_HOME, if it exists (0: missing, 1: added). */
static int add_home_file(struct backup *b, const char *rel, size_t max, bool required) {
        _cleanup_free_ char *path = path_join(b->home, rel), *text = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        size_t len;
        int r;

        if (!path)
                return -ENOMEM;
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT && !required)
                return 0;
        if (fd < 0 || fstat(fd, &st) < 0) {
                fprintf(stderr, "conclave backup: cannot read %s: %m\n", path);
                return negative_errno();
        }
        if (!S_ISREG(st.st_mode)) {
                fprintf(stderr, "conclave backup: %s is not a regular file\n", path);
                return -EINVAL;
        }
        r = read_file_bounded(path, max, &text, &len);
        if (r < 0) {
                fprintf(stderr, "conclave backup: cannot read %s: %s\n", path, strerror(-r));
                return r;
        }
        r = add_buffer(b, rel, text, len, (unsigned) (st.st_mode & 0777), st.st_mtim.tv_sec);
        return r < 0 ? r : 1;
}

/* Offline: the end of the last complete line (a torn tail was never acknowledged). */
static int complete_length(int fd, uint64_t size, uint64_t *ret) {
        char buf[8192];
        uint64_t pos = size;

        while (pos > 0) {
                size_t n = pos < sizeof buf ? (size_t) pos : sizeof buf;
                ssize_t k = pread(fd, buf, n, (off_t) (pos - n));
                const char *nl;

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return negative_errno();
                if ((size_t) k != n)
                        return -ENODATA;
                nl = memrchr(buf, '\n', n);
                if (nl) {
                        *ret = pos - n + (uint64_t) (nl - buf) + 1;
                        return 0;
                }
                pos -= n;
        }
        *ret = 0;
        return 0;
}

/* groups/<id>/ledger.jsonl, the first `length` bytes (UINT64_MAX: every complete line), checked
 * line by line on the way: the archive never holds a ledger `restore` would refuse. */
static int add_ledger(struct backup *b, const char *id, uint64_t length, uint64_t want_seq) {
        _cleanup_(ledger_check_freep) struct ledger_check *check = NULL;
        _cleanup_free_ char *rel = NULL, *path = NULL, *buf = NULL;
        _cleanup_close_ int fd = -EBADF;
        char hex[BACKUP_SHA256_HEX + 1], size_text[FORMAT_BYTES_MAX];
        struct progress progress;
        const char *why;
        uint64_t done = 0, offset = 0;
        struct stat st;
        int r;

        if (asprintf(&rel, "groups/%s/ledger.jsonl", id) < 0 || !(path = path_join(b->home, rel)) ||
            ledger_check_new(&check) < 0)
                return -ENOMEM;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 || fstat(fd, &st) < 0) {
                r = negative_errno();
                fprintf(stderr, "conclave backup: cannot read %s: %s%s\n", path, strerror(-r),
                        r == -ENOENT && length != UINT64_MAX ? " (was the group deleted during the backup? run it again)" : "");
                return r;
        }
        if (length == UINT64_MAX) {
                /* The ledger's writer holds an exclusive lock; a daemon that does not answer on
                 * the control socket yet (starting, or stuck) must not be copied under. */
                if (flock(fd, LOCK_SH | LOCK_NB) < 0) {
                        fprintf(stderr, "conclave backup: %s is in use by a Conclave daemon that does not answer on the "
                                "control socket; wait for it to start (or stop it) and run backup again\n", path);
                        return -EBUSY;
                }
                (void) flock(fd, LOCK_UN);
                r = complete_length(fd, (uint64_t) st.st_size, &length);
                if (r < 0) {
                        fprintf(stderr, "conclave backup: cannot read %s: %s\n", path, strerror(-r));
                        return r;
                }
                if (length < (uint64_t) st.st_size)
                        note(b, "%s ends in a torn line of %" PRIu64 " bytes that was never acknowledged; it is left out "
                             "(the daemon cuts it at its next start)", rel, (uint64_t) st.st_size - length);
        } else if ((uint64_t) st.st_size < length) {
                fprintf(stderr, "conclave backup: %s is shorter (%" PRIu64 " bytes) than at the backup point (%" PRIu64
                        "); was the group deleted and created again? Run backup again\n",
                        path, (uint64_t) st.st_size, length);
                return -ENODATA;
        }

        r = write_header(b, rel, length, 0600, st.st_mtim.tv_sec);
        if (r < 0)
                return r;
        buf = malloc(COPY_BLOCK);
        if (!buf)
                return -ENOMEM;
        progress_begin(&progress, rel, length);
        while (done < length) {
                size_t n = length - done < COPY_BLOCK ? (size_t) (length - done) : COPY_BLOCK;
                ssize_t k = pread(fd, buf, n, (off_t) done);

                if (interrupted) {
                        progress_end(&progress);
                        return -EINTR;
                }
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0) {
                        r = k < 0 ? negative_errno() : -ENODATA;
                        progress_end(&progress);
                        fprintf(stderr, "conclave backup: cannot read %s: %s\n", path, strerror(-r));
                        return r;
                }
                r = ledger_check_feed(check, buf, (size_t) k);
                if (r < 0 && r != -EBADMSG && r != -EPROTONOSUPPORT)
                        return r;
                if (r < 0)
                        break;
                r = sha256_update(b->sha, buf, (size_t) k);
                if (r >= 0)
                        r = write_data(b, buf, (size_t) k);
                if (r < 0) {
                        progress_end(&progress);
                        return r;
                }
                done += (uint64_t) k;
                progress_update(&progress, done);
        }
        progress_end(&progress);
        r = ledger_check_finish(check);
        if ((why = ledger_check_error(check, &offset))) {
                fprintf(stderr, "conclave backup: %s is corrupt at byte offset %" PRIu64 ": %s; nothing was written "
                        "(see conclave-supervisor(8) on repairing a ledger)\n", path, offset, why);
                return r;
        }
        if (want_seq != UINT64_MAX && ledger_check_last_seq(check) != want_seq) {
                fprintf(stderr, "conclave backup: %s holds %" PRIu64 " events up to the backup point, the daemon said %" PRIu64
                        "; was the group deleted and created again? Run backup again\n",
                        path, ledger_check_last_seq(check), want_seq);
                return -ESTALE;
        }
        r = sha256_final_hex(b->sha, hex);
        if (r >= 0)
                r = backup_manifest_add_file(b->manifest, rel, length, 0600, hex);
        if (r >= 0)
                r = backup_manifest_add_group(b->manifest, id, length, ledger_check_last_seq(check));
        if (r < 0)
                return r;
        b->bytes += length;
        b->events += ledger_check_last_seq(check);
        if (!b->json && length >= 64u * 1024u * 1024u)
                fprintf(b->info, "%s: %" PRIu64 " events, %s\n", rel, ledger_check_last_seq(check),
                        format_bytes(size_text, sizeof size_text, length));
        return 0;
}

static int add_group(struct backup *b, const char *id, uint64_t length, uint64_t last_seq) {
        _cleanup_free_ char *rel = NULL;
        int r;

        if (!backup_group_id_valid(id)) {
                fprintf(stderr, "conclave backup: invalid group id \"%s\" in the registry\n", id ? id : "");
                return -EBADMSG;
        }
        if (asprintf(&rel, "groups/%s/group.json", id) < 0)
                return -ENOMEM;
        /* group.json may reflect events after the backup point: the daemon then replays the
         * whole ledger on start (its config_seq is ahead). It is rebuilt when missing, too. */
        r = add_home_file(b, rel, SMALL_FILE_MAX, false);
        if (r < 0)
                return r;
        return add_ledger(b, id, length, last_seq);
}

static bool manifest_has(const struct backup_manifest *m, const char *path) {
        for (size_t i = 0; i < m->n_files; i++)
                if (streq(m->files[i].path, path))
                        return true;
        return false;
}

/* The path of a secret file relative to CONCLAVE_HOME, or NULL (with a note) when it is not in
 * it. Relative paths in the configuration are relative to CONCLAVE_HOME (as doctor reads them). */
static char *secret_relative(struct backup *b, const char *path, const char *real_home) {
        _cleanup_free_ char *full = NULL, *real = NULL;
        size_t n = strlen(real_home);
        struct stat st;

        if (strncmp(path, "credential:", 11) == 0)
                return NULL; /* systemd's credential store, not a file of ours */
        full = path[0] == '/' ? strdup(path) : path_join(b->home, path);
        if (!full)
                return NULL;
        real = realpath(full, NULL);
        if (!real || stat(real, &st) < 0 || !S_ISREG(st.st_mode)) {
                note(b, "secret file %s is missing or not a regular file; not in the backup", full);
                return NULL;
        }
        if (strncmp(real, real_home, n) != 0 || real[n] != '/') {
                note(b, "secret file %s is outside CONCLAVE_HOME and not in the backup; keep a copy of it yourself", full);
                return NULL;
        }
        return strdup(real + n + 1);
}

static int add_secret(struct backup *b, const char *path, const char *real_home) {
        _cleanup_free_ char *rel = secret_relative(b, path, real_home);

        if (!rel)
                return 0;
        if (!backup_path_valid(rel) || streq(rel, "config.toml") || streq(rel, "registry.json") ||
            streq(rel, BACKUP_MANIFEST_NAME) || strncmp(rel, "groups/", 7) == 0) {
                note(b, "secret file %s has a name the backup keeps for itself; not in the backup", rel);
                return 0;
        }
        if (manifest_has(b->manifest, rel))
                return 0; /* named twice in the configuration */
        if (add_home_file(b, rel, SECRET_FILE_MAX, true) < 0)
                return -EIO;
        b->secrets++;
        return 0;
}

/* Token and key files the configuration names ([gateway] token_file, providers' api_key_file,
 * channels' *_file but ca_file), when they live inside CONCLAVE_HOME. */
static int add_secrets(struct backup *b) {
        _cleanup_(config_freep) struct config *c = NULL;
        _cleanup_free_ char *real_home = realpath(b->home, NULL);
        int r;

        if (!real_home)
                return 0;
        r = config_load(b->config_path, true, &c, NULL);
        if (r < 0) {
                note(b, "cannot read %s (%s): secret files it names are not in the backup", b->config_path, strerror(-r));
                return 0;
        }
        if (c->gateway_token_file && (r = add_secret(b, c->gateway_token_file, real_home)) < 0)
                return r;
        for (size_t i = 0; i < c->n_providers; i++)
                if (c->providers[i].api_key_file && (r = add_secret(b, c->providers[i].api_key_file, real_home)) < 0)
                        return r;
        for (size_t i = 0; i < c->n_channels; i++)
                for (size_t j = 0; j < c->channels[i].n_settings; j++) {
                        const struct config_setting *s = &c->channels[i].settings[j];
                        size_t len = strlen(s->key);
                        if (len > 5 && streq(s->key + len - 5, "_file") && !streq(s->key, "ca_file") &&
                            (r = add_secret(b, s->value, real_home)) < 0)
                                return r;
                }
        return 0;
}

/* --- the consistent point -------------------------------------------------------------------- */

static const char *result_str(struct json_object *o, const char *key) {
        struct json_object *v;
        return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
                       ? json_object_get_string(v) : NULL;
}

static uint64_t result_uint(struct json_object *o, const char *key) {
        struct json_object *v;
        return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_int) ? json_object_get_uint64(v) : 0;
}

/* Online: the daemon's backup point. Its registry is written as it was then. */
static int backup_online(struct backup *b, struct json_object *point) {
        struct json_object *groups, *registry;
        const char *text;
        int r;

        if (!json_object_object_get_ex(point, "groups", &groups) || !json_object_is_type(groups, json_type_array) ||
            !json_object_object_get_ex(point, "registry", &registry) || !json_object_is_type(registry, json_type_object)) {
                fprintf(stderr, "conclave backup: the daemon's backup.begin answer lacks groups or registry\n");
                return -EPROTO;
        }
        text = json_object_to_json_string_ext(registry, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED);
        r = add_buffer(b, "registry.json", text, strlen(text), 0600, b->now);
        if (r < 0)
                return r;
        r = add_home_file(b, "config.toml", CONFIG_FILE_MAX, false);
        if (r < 0)
                return r;
        for (size_t i = 0; i < json_object_array_length(groups); i++) {
                struct json_object *g = json_object_array_get_idx(groups, i);
                r = add_group(b, result_str(g, "id"), result_uint(g, "ledger_bytes"), result_uint(g, "last_seq"));
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Offline: registry.json and every complete ledger line as they are on disk. */
static int backup_offline(struct backup *b) {
        _cleanup_free_ char *path = path_join(b->home, "registry.json"), *text = NULL;
        _cleanup_json_ struct json_object *registry = NULL;
        struct json_object *groups, *v;
        struct stat st;
        size_t len = 0;
        int r;

        if (!path)
                return -ENOMEM;
        if (stat(b->home, &st) < 0 || !S_ISDIR(st.st_mode)) {
                fprintf(stderr, "conclave backup: %s does not exist: nothing to back up\n", b->home);
                return -ENOENT;
        }
        r = read_file_bounded(path, SMALL_FILE_MAX, &text, &len);
        if (r == -ENOENT) {
                /* A home without groups yet: the backup still restores as one. */
                free(text);
                text = strdup("{ \"format_version\": 1, \"groups\": [ ] }");
                if (!text)
                        return -ENOMEM;
                len = strlen(text);
        } else if (r < 0) {
                fprintf(stderr, "conclave backup: cannot read %s: %s\n", path, strerror(-r));
                return r;
        }
        registry = json_tokener_parse(text);
        if (!registry || !json_object_object_get_ex(registry, "groups", &groups) ||
            !json_object_is_type(groups, json_type_array)) {
                fprintf(stderr, "conclave backup: %s is not a Conclave registry (expected {\"groups\":[…]})\n", path);
                return -EBADMSG;
        }
        if (json_object_object_get_ex(registry, "format_version", &v) && json_object_get_int(v) > REGISTRY_FORMAT_VERSION) {
                fprintf(stderr, "conclave backup: %s was written by a newer Conclave (format %d); use that version\n", path,
                        json_object_get_int(v));
                return -EPROTONOSUPPORT;
        }
        r = add_buffer(b, "registry.json", text, len, 0600, b->now);
        if (r < 0)
                return r;
        r = add_home_file(b, "config.toml", CONFIG_FILE_MAX, false);
        if (r < 0)
                return r;
        for (size_t i = 0; i < json_object_array_length(groups); i++) {
                r = add_group(b, json_object_get_string(json_object_array_get_idx(groups, i)), UINT64_MAX, UINT64_MAX);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* --- the archive ------------------------------------------------------------------------------ */

static bool has_suffix(const char *s, const char *suffix) {
        size_t n = strlen(s), m = strlen(suffix);
        return n > m && streq(s + n - m, suffix);
}

static int open_archive(struct backup *b) {
        _cleanup_free_ char *copy = strdup(b->file), *copy2 = strdup(b->file);
        int r;

        if (!copy || !copy2 || asprintf(&b->tmp, "%s/.%s.XXXXXX", dirname(copy), basename(copy2)) < 0)
                return -ENOMEM;
        b->fd = mkostemp(b->tmp, O_CLOEXEC); /* mode 0600: the archive holds secrets */
        if (b->fd < 0) {
                r = negative_errno();
                fprintf(stderr, "conclave backup: cannot create %s: %s\n", b->tmp, strerror(-r));
                free(b->tmp);
                b->tmp = NULL;
                return r;
        }
        b->archive = archive_write_new();
        if (!b->archive)
                return -ENOMEM;
        if (archive_write_set_format_pax_restricted(b->archive) != ARCHIVE_OK)
                return archive_failed(b, "tar format");
        if (has_suffix(b->file, ".tar.zst") || has_suffix(b->file, ".tzst"))
                r = archive_write_add_filter_zstd(b->archive);
        else if (has_suffix(b->file, ".tar.gz") || has_suffix(b->file, ".tgz"))
                r = archive_write_add_filter_gzip(b->archive);
        else
                r = archive_write_add_filter_none(b->archive);
        if (r != ARCHIVE_OK)
                return archive_failed(b, "compression");
        if (archive_write_open_fd(b->archive, b->fd) != ARCHIVE_OK)
                return archive_failed(b, b->tmp);
        return 0;
}

static int finish_archive(struct backup *b) {
        _cleanup_json_ struct json_object *manifest = backup_manifest_to_json(b->manifest);
        _cleanup_free_ char *copy = NULL;
        _cleanup_close_ int dfd = -EBADF;
        const char *text;
        int r;

        if (!manifest)
                return -ENOMEM;
        text = json_object_to_json_string_ext(manifest, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                                JSON_C_TO_STRING_NOSLASHESCAPE);
        r = write_header(b, BACKUP_MANIFEST_NAME, strlen(text), 0600, b->now);
        if (r >= 0)
                r = write_data(b, text, strlen(text));
        if (r < 0)
                return r;
        if (archive_write_close(b->archive) != ARCHIVE_OK)
                return archive_failed(b, "finishing the archive");
        if (fsync(b->fd) < 0 || rename(b->tmp, b->file) < 0) {
                r = negative_errno();
                fprintf(stderr, "conclave backup: cannot write %s: %s\n", b->file, strerror(-r));
                return r;
        }
        free(b->tmp);
        b->tmp = NULL;
        copy = strdup(b->file);
        if (!copy)
                return 0; /* renamed; only the directory sync is skipped */
        dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0)
                (void) fsync(dfd);
        return 0;
}

static void summary(struct backup *b, bool online) {
        char data[FORMAT_BYTES_MAX], size[FORMAT_BYTES_MAX];
        struct stat st;
        uint64_t archive_bytes = stat(b->file, &st) == 0 ? (uint64_t) st.st_size : 0;

        if (b->json) {
                _cleanup_json_ struct json_object *o = json_object_new_object();
                struct json_object *groups = json_object_new_array();
                if (!o || !groups) {
                        json_object_put(groups);
                        return;
                }
                for (size_t i = 0; i < b->manifest->n_groups; i++) {
                        struct json_object *g = json_object_new_object();
                        json_object_object_add(g, "id", json_object_new_string(b->manifest->groups[i].id));
                        json_object_object_add(g, "last_seq", json_object_new_uint64(b->manifest->groups[i].last_seq));
                        json_object_object_add(g, "ledger_bytes", json_object_new_uint64(b->manifest->groups[i].ledger_bytes));
                        json_object_array_add(groups, g);
                }
                json_object_object_add(o, "file", json_object_new_string(b->file));
                json_object_object_add(o, "online", json_object_new_boolean(online));
                json_object_object_add(o, "created", json_object_new_string(b->manifest->created));
                json_object_object_add(o, "home", json_object_new_string(b->home));
                json_object_object_add(o, "groups", groups);
                json_object_object_add(o, "events", json_object_new_uint64(b->events));
                json_object_object_add(o, "files", json_object_new_uint64(b->manifest->n_files + 1));
                json_object_object_add(o, "bytes", json_object_new_uint64(b->bytes));
                json_object_object_add(o, "archive_bytes", json_object_new_uint64(archive_bytes));
                json_object_object_add(o, "notes", json_object_get(b->notes));
                cli_print_json(o);
                return;
        }
        printf("Backed up %zu group(s), %" PRIu64 " event(s), %s in %zu files to %s (%s).\n", b->manifest->n_groups,
               b->events, format_bytes(data, sizeof data, b->bytes), b->manifest->n_files + 1, b->file,
               format_bytes(size, sizeof size, archive_bytes));
        if (b->secrets > 0)
                printf("It holds %u secret file(s) (tokens, keys): keep it as private as CONCLAVE_HOME itself.\n",
                       b->secrets);
}

/* Releases everything; a temp file still there means the backup failed: it goes. */
static void backup_done(struct backup *b) {
        if (b->archive)
                archive_write_free(b->archive);
        if (b->fd >= 0)
                close(b->fd);
        if (b->tmp)
                (void) unlink(b->tmp);
        free(b->tmp);
        free(b->home);
        free(b->config_path);
        backup_manifest_free(b->manifest);
        sha256_free(b->sha);
}

static void default_name(char *buf, size_t size, time_t now) {
        struct tm tm;

        localtime_r(&now, &tm);
        strftime(buf, size, "conclave-backup-%Y%m%d-%H%M%S.tar.zst", &tm);
}

static void help(void) {
        printf("Usage: conclave backup [--json] [FILE]\n\n"
               "Writes a consistent archive of CONCLAVE_HOME: registry.json, config.toml, every group's\n"
               "group.json and ledger, the secret files the configuration names inside CONCLAVE_HOME, and a\n"
               "manifest with each file's size and SHA-256. With the daemon running, it makes every event\n"
               "acknowledged so far durable and the backup holds exactly those (the service keeps running;\n"
               "later events are not in it); without it, the files are copied as they are. Derived state\n"
               "(groups/*/state/) is left out: the daemon rebuilds it. Restore with `conclave restore FILE`.\n\n"
               "FILE defaults to conclave-backup-YYYYmmdd-HHMMSS.tar.zst in the current directory; a name\n"
               "ending in .tar.gz/.tgz is gzip-compressed, .tar is not compressed. An existing FILE is not\n"
               "overwritten. The archive is written to a temporary file and renamed when complete.\n\n"
               "      --json  print the summary as JSON\n"
               "  -h, --help  show this help\n");
}

int cmd_backup(int argc, char **argv) {
        static const struct option options[] = {
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_json_ struct json_object *point = NULL, *notes = json_object_new_array();
        _cleanup_(backup_done) struct backup b = { .fd = -EBADF, .info = stdout, .notes = notes };
        struct sigaction sa = { .sa_handler = on_signal }, old_int, old_term;
        char name[64], ts[40];
        _cleanup_close_ int control_fd = -EBADF;
        _cleanup_free_ char *socket = paths_control_socket();
        bool online;
        int c, r;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'j':
                        b.json = true;
                        b.info = stderr;
                        break;
                case 'h':
                        help();
                        return EXIT_SUCCESS;
                default:
                        return EXIT_USAGE;
                }
        if (argc - optind > 1) {
                fprintf(stderr, "conclave backup: unexpected argument '%s'\n", argv[optind + 1]);
                return EXIT_USAGE;
        }
        if (!notes || !socket)
                return cli_oom();
        b.now = time(NULL);
        default_name(name, sizeof name, b.now);
        b.file = optind < argc ? argv[optind] : name;
        if (!has_suffix(b.file, ".tar.zst") && !has_suffix(b.file, ".tzst") && !has_suffix(b.file, ".tar.gz") &&
            !has_suffix(b.file, ".tgz") && !has_suffix(b.file, ".tar")) {
                fprintf(stderr, "conclave backup: %s: the name must end in .tar.zst, .tar.gz or .tar\n", b.file);
                return EXIT_USAGE;
        }
        if (access(b.file, F_OK) == 0) {
                fprintf(stderr, "conclave backup: %s exists; choose another name or remove it\n", b.file);
                return EXIT_FAILURE;
        }

        control_fd = control_connect(socket);
        online = control_fd >= 0;
        if (!online && control_fd != -ENOENT && control_fd != -ECONNREFUSED) {
                fprintf(stderr, "conclave backup: cannot connect to %s: %s\n", socket, strerror(-control_fd));
                return EXIT_FAILURE;
        }
        if (online) {
                _cleanup_free_ char *my_home = paths_home();
                r = cli_call(control_fd, "backup.begin", NULL, &point);
                close(control_fd);
                control_fd = -EBADF;
                if (r < 0)
                        return EXIT_FAILURE;
                if (isempty(result_str(point, "home")) || isempty(result_str(point, "config_path"))) {
                        fprintf(stderr, "conclave backup: the daemon's backup.begin answer lacks home or config_path\n");
                        return EXIT_FAILURE;
                }
                b.home = strdup(result_str(point, "home"));
                b.config_path = strdup(result_str(point, "config_path"));
                if (!b.home || !b.config_path)
                        /* cppcheck does not know __attribute__((cleanup)): backup_done() frees them. */
                        /* cppcheck-suppress memleak */
                        return cli_oom();
                fprintf(b.info, "The daemon made every event acknowledged so far durable (%s): the backup holds those.\n",
                        result_str(point, "time") ?: "?");
                if (my_home && !streq(my_home, b.home))
                        note(&b, "backing up the daemon's home %s (CONCLAVE_HOME here is %s)", b.home, my_home);
        } else {
                b.home = paths_home();
                b.config_path = paths_config_file();
                if (!b.home || !b.config_path) {
                        fprintf(stderr, "conclave backup: cannot determine CONCLAVE_HOME (is HOME set?)\n");
                        return EXIT_FAILURE;
                }
                fprintf(b.info, "The daemon is not running (nothing answers on %s): copying the files in %s directly; "
                        "nothing is writing them.\n", socket, b.home);
        }

        r = backup_manifest_new(&b.manifest);
        if (r >= 0)
                r = sha256_new(&b.sha);
        if (r < 0)
                return cli_oom();
        b.manifest->conclave_version = strdup(PACKAGE_VERSION);
        b.manifest->created = strdup(format_timestamp_iso(ts, sizeof ts, now_usec(CLOCK_REALTIME)));
        b.manifest->home = strdup(b.home);
        b.manifest->online = online;

        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, &old_int);
        sigaction(SIGTERM, &sa, &old_term);
        r = open_archive(&b);
        if (r >= 0)
                r = online ? backup_online(&b, point) : backup_offline(&b);
        if (r >= 0) {
                _cleanup_free_ char *own = path_join(b.home, "config.toml");
                if (own && !streq(own, b.config_path) && access(b.config_path, F_OK) == 0)
                        note(&b, "the configuration in use, %s, is outside CONCLAVE_HOME and not in the backup", b.config_path);
                r = add_secrets(&b);
        }
        if (r >= 0 && interrupted)
                r = -EINTR;
        if (r >= 0)
                r = finish_archive(&b);
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);

        if (r == -EINTR)
                fprintf(stderr, "conclave backup: interrupted\n");
        else if (r == -ENOMEM)
                cli_oom();
        if (r < 0) {
                fprintf(stderr, "conclave backup: failed; nothing was written to %s\n", b.file);
                return EXIT_FAILURE;
        }
        summary(&b, online);
        return EXIT_SUCCESS;
}
