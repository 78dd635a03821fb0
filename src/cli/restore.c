/* `conclave restore FILE [--force]`: puts a `conclave backup` archive back as CONCLAVE_HOME.
 * Refuses while the daemon runs. Everything is checked before CONCLAVE_HOME is touched: each
 * entry's path (relative, no "..", regular files only), size and SHA-256 against the manifest,
 * and every ledger line by line (ledger_parse_line, seqs 1, 2, 3, …). The archive is extracted
 * into a fresh directory next to CONCLAVE_HOME, which is renamed into place at the end; a
 * non-empty CONCLAVE_HOME is moved aside (never deleted), and only with --force. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backup_io.h"
#include "backup_manifest.h"
#include "cli.h"
#include "fileio.h"
#include "formats.h"
#include "ledger_check.h"
#include "macro.h"
#include "paths.h"
#include "proto.h"

#define SMALL_FILE_MAX (16u * 1024u * 1024u) /* anything but a ledger */
#define COPY_BLOCK (1024u * 1024u)

struct extracted {
        char *path;
        uint64_t size;
        char sha256[BACKUP_SHA256_HEX + 1];
        bool ledger;
        uint64_t last_seq;
};

struct restore {
        const char *file;
        char *tmpdir;
        int tmp_fd;
        struct archive *archive;
        struct sha256 *sha;
        struct extracted *entries;
        size_t n_entries;
        char *manifest_text;
        size_t manifest_len;
        struct backup_manifest *manifest;
        uint64_t bytes, events;
        char why[768];
};

/* The archive is unusable: why says so. */
static int refuse(struct restore *r, const char *fmt, ...) _printf_(2, 3);
static int refuse(struct restore *r, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(r->why, sizeof r->why, fmt, ap);
        va_end(ap);
        return -EBADMSG;
}

static int archive_refused(struct restore *r, const char *what) {
        return refuse(r, "%s: %s", what, archive_error_string(r->archive) ?: "archive error");
}

/* Opens (creating with mode 0700) the directories of `path` below the temp directory. Nothing
 * but our own directories and files exists there, and no component is followed as a link. */
static int open_parent(struct restore *r, const char *path, int *ret_fd, const char **ret_name) {
        _cleanup_close_ int fd = fcntl(r->tmp_fd, F_DUPFD_CLOEXEC, 3);
        const char *p = path, *slash;

        if (fd < 0)
                return negative_errno();
        while ((slash = strchr(p, '/'))) {
                char name[BACKUP_PATH_MAX + 1];
                int next;

                snprintf(name, sizeof name, "%.*s", (int) (slash - p), p);
                if (mkdirat(fd, name, 0700) < 0 && errno != EEXIST)
                        return negative_errno();
                next = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (next < 0)
                        return negative_errno();
                close(fd);
                fd = next;
                p = slash + 1;
        }
        *ret_fd = fd;
        fd = -EBADF;
        *ret_name = p;
        return 0;
}

static int add_extracted(struct restore *r, const char *path, uint64_t size, const char *hex, bool ledger,
                         uint64_t last_seq) {
        struct extracted *n = reallocarray(r->entries, r->n_entries + 1, sizeof *n);

        if (!n)
                return -ENOMEM;
        r->entries = n;
        n = &r->entries[r->n_entries];
        *n = (struct extracted){ .path = strdup(path), .size = size, .ledger = ledger, .last_seq = last_seq };
        if (!n->path)
                return -ENOMEM;
        memcpy(n->sha256, hex, sizeof n->sha256);
        r->n_entries++;
        return 0;
}

static int read_manifest(struct restore *r, uint64_t size) {
        size_t len = 0;
        la_ssize_t n;

        if (r->manifest_text)
                return refuse(r, "%s appears twice", BACKUP_MANIFEST_NAME);
        if (size > BACKUP_MANIFEST_MAX)
                return refuse(r, "%s is larger than %u bytes", BACKUP_MANIFEST_NAME, BACKUP_MANIFEST_MAX);
        r->manifest_text = malloc((size_t) size + 1);
        if (!r->manifest_text)
                return -ENOMEM;
        while (len < size && (n = archive_read_data(r->archive, r->manifest_text + len, (size_t) size - len)) != 0) {
                if (n < 0)
                        return archive_refused(r, BACKUP_MANIFEST_NAME);
                len += (size_t) n;
        }
        if (len != size)
                return refuse(r, "%s is shorter than its header says", BACKUP_MANIFEST_NAME);
        r->manifest_text[len] = 0;
        r->manifest_len = len;
        return 0;
}

/* Writes one entry below the temp directory, hashing it, and checking it line by line when it
 * is a ledger. */
static int extract_entry(struct restore *r, struct archive_entry *e, char *buf) {
        _cleanup_(ledger_check_freep) struct ledger_check *check = NULL;
        _cleanup_close_ int dir_fd = -EBADF, fd = -EBADF;
        const char *path = archive_entry_pathname(e), *name, *why;
        char id[BACKUP_GROUP_ID_MAX + 1], hex[BACKUP_SHA256_HEX + 1];
        struct progress progress;
        uint64_t size, done = 0, offset = 0;
        bool ledger;
        int k;

        if (!path || !backup_path_valid(path))
                return refuse(r, "entry \"%s\" has an unsafe path (absolute, \"..\", empty or control characters)",
                              path ? path : "(unreadable name)");
        if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e) || archive_entry_symlink(e))
                return refuse(r, "entry %s is not a regular file (links, devices and directories are refused)", path);
        if (!archive_entry_size_is_set(e) || archive_entry_size(e) < 0)
                return refuse(r, "entry %s has no size", path);
        size = (uint64_t) archive_entry_size(e);
        if (streq(path, BACKUP_MANIFEST_NAME))
                return read_manifest(r, size);
        if (r->n_entries >= BACKUP_FILES_MAX)
                return refuse(r, "more than %u files", BACKUP_FILES_MAX);
        ledger = backup_path_is_ledger(path, id);
        if (!ledger && size > SMALL_FILE_MAX)
                return refuse(r, "entry %s is larger than %u bytes", path, SMALL_FILE_MAX);
        if (ledger && ledger_check_new(&check) < 0)
                return -ENOMEM;

        k = open_parent(r, path, &dir_fd, &name);
        if (k == -ENOTDIR || k == -ELOOP)
                return refuse(r, "entry %s lies below another entry that is a file", path);
        if (k < 0)
                return refuse(r, "cannot create the directories of %s in %s: %s", path, r->tmpdir, strerror(-k));
        fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && (errno == EEXIST || errno == EISDIR))
                return refuse(r, "entry %s appears twice", path);
        if (fd < 0)
                return refuse(r, "cannot create %s in %s: %m", path, r->tmpdir);

        progress_begin(&progress, path, size);
        for (;;) {
                la_ssize_t n = archive_read_data(r->archive, buf, COPY_BLOCK);
                const char *p = buf;
                size_t left;

                if (n == 0)
                        break;
                if (n < 0) {
                        progress_end(&progress);
                        return archive_refused(r, path);
                }
                if (check && ledger_check_feed(check, buf, (size_t) n) == -ENOMEM)
                        return -ENOMEM;
                if (sha256_update(r->sha, buf, (size_t) n) < 0)
                        return -EIO;
                for (left = (size_t) n; left > 0;) {
                        ssize_t w = write(fd, p, left);
                        if (w < 0 && errno == EINTR)
                                continue;
                        if (w < 0) {
                                progress_end(&progress);
                                return refuse(r, "cannot write %s in %s: %m", path, r->tmpdir);
                        }
                        p += w;
                        left -= (size_t) w;
                }
                done += (uint64_t) n;
                progress_update(&progress, done);
        }
        progress_end(&progress);
        if (done != size)
                return refuse(r, "entry %s holds %" PRIu64 " bytes, its header says %" PRIu64, path, done, size);
        if (check) {
                (void) ledger_check_finish(check);
                if ((why = ledger_check_error(check, &offset)))
                        return refuse(r, "%s is corrupt at byte offset %" PRIu64 ": %s", path, offset, why);
        }
        if (fchmod(fd, (archive_entry_perm(e) & 0700) | 0600) < 0 || fsync(fd) < 0)
                return refuse(r, "cannot write %s in %s: %m", path, r->tmpdir);
        if (sha256_final_hex(r->sha, hex) < 0)
                return -EIO;
        r->bytes += size;
        return add_extracted(r, path, size, hex, ledger, check ? ledger_check_last_seq(check) : 0);
}

static int extract_all(struct restore *r) {
        _cleanup_free_ char *buf = malloc(COPY_BLOCK);
        struct archive_entry *e;
        int k;

        if (!buf)
                return -ENOMEM;
        for (;;) {
                k = archive_read_next_header(r->archive, &e);
                if (k == ARCHIVE_EOF)
                        break;
                if (k < ARCHIVE_WARN)
                        return archive_refused(r, "reading the archive");
                k = extract_entry(r, e, buf);
                if (k < 0)
                        return k;
        }
        return 0;
}

/* Everything extracted is listed in the manifest with the same size and digest, and everything
 * listed was extracted; each group's ledger has the events the manifest promises. */
static int verify(struct restore *r) {
        char why[512] = "";
        int k;

        if (!r->manifest_text)
                return refuse(r, "no %s: not an archive made by `conclave backup`", BACKUP_MANIFEST_NAME);
        k = backup_manifest_parse(r->manifest_text, r->manifest_len, &r->manifest, why, sizeof why);
        if (k == -EPROTONOSUPPORT)
                return refuse(r, "%s", why);
        if (k < 0)
                return k == -ENOMEM ? k : refuse(r, "%s: %s", BACKUP_MANIFEST_NAME, why);
        for (size_t i = 0; i < r->n_entries; i++) {
                const struct extracted *x = &r->entries[i];
                const struct backup_file *f = backup_manifest_find(r->manifest, x->path);
                if (!f)
                        return refuse(r, "%s is not listed in the manifest", x->path);
                if (f->size != x->size)
                        return refuse(r, "%s has %" PRIu64 " bytes, the manifest says %" PRIu64, x->path, x->size, f->size);
                if (!streq(f->sha256, x->sha256))
                        return refuse(r, "%s does not match its SHA-256 in the manifest (the archive is damaged)", x->path);
        }
        /* Entries are unique (created with O_EXCL) and all listed: fewer means some are missing. */
        if (r->n_entries != r->manifest->n_files) {
                _cleanup_free_ bool *seen = calloc(r->manifest->n_files, sizeof *seen);
                if (!seen)
                        return -ENOMEM;
                for (size_t i = 0; i < r->n_entries; i++)
                        seen[backup_manifest_find(r->manifest, r->entries[i].path) - r->manifest->files] = true;
                for (size_t i = 0; i < r->manifest->n_files; i++)
                        if (!seen[i])
                                return refuse(r, "%s is listed in the manifest but missing from the archive",
                                              r->manifest->files[i].path);
        }
        for (size_t i = 0; i < r->n_entries; i++) {
                char id[BACKUP_GROUP_ID_MAX + 1];
                const struct backup_group *g;

                if (!r->entries[i].ledger || !backup_path_is_ledger(r->entries[i].path, id))
                        continue;
                g = backup_manifest_find_group(r->manifest, id);
                if (!g)
                        return refuse(r, "%s belongs to no group of the manifest", r->entries[i].path);
                if (g->last_seq != r->entries[i].last_seq)
                        return refuse(r, "%s holds %" PRIu64 " events, the manifest says %" PRIu64, r->entries[i].path,
                                      r->entries[i].last_seq, g->last_seq);
                r->events += g->last_seq;
        }
        return 0;
}

/* registry.json lists exactly the manifest's groups. */
static int verify_registry(struct restore *r) {
        _cleanup_free_ char *path = path_join(r->tmpdir, "registry.json"), *text = NULL;
        _cleanup_free_ bool *seen = NULL;
        _cleanup_json_ struct json_object *o = NULL;
        struct json_object *groups;
        size_t n;

        if (!path)
                return -ENOMEM;
        if (read_file_bounded(path, SMALL_FILE_MAX, &text, NULL) < 0 || !(o = json_tokener_parse(text)) ||
            !json_object_object_get_ex(o, "groups", &groups) || !json_object_is_type(groups, json_type_array))
                return refuse(r, "registry.json is not a Conclave registry");
        n = json_object_array_length(groups);
        seen = calloc(r->manifest->n_groups + 1, sizeof *seen);
        if (!seen)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                const char *id = json_object_get_string(json_object_array_get_idx(groups, i));
                const struct backup_group *g = backup_manifest_find_group(r->manifest, id);
                if (!g)
                        return refuse(r, "registry.json lists group \"%s\", which the manifest does not", id ? id : "");
                seen[g - r->manifest->groups] = true;
        }
        for (size_t i = 0; i < r->manifest->n_groups; i++)
                if (!seen[i])
                        return refuse(r, "group %s of the manifest is not in registry.json", r->manifest->groups[i].id);
        return 0;
}

/* Every file in a format this Conclave reads: a newer one would stop the daemon after the
 * restore. Older files are fine: the daemon migrates them at start. */
static int verify_formats(struct restore *r) {
        _cleanup_(format_survey_freep) struct format_survey *s = NULL;
        int k = format_survey(r->tmpdir, &s);

        if (k < 0)
                return k == -ENOMEM ? k : refuse(r, "cannot check the file formats in it: %s", strerror(-k));
        for (size_t i = 0; i < s->n_files; i++)
                if (s->files[i].status == FORMAT_NEWER) {
                        char message[512];
                        (void) format_newer_message(&s->files[i], message, sizeof message);
                        return refuse(r, "%s (restore it with that Conclave or a newer one)", message);
                }
        return 0;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) remove(path);
        return 0;
}

static void remove_tree(const char *path) {
        (void) nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

/* 1: a directory with something in it; 0: missing or empty; -ENOTDIR etc. */
static int home_in_use(const char *home) {
        struct dirent *de;
        DIR *d = opendir(home);
        int r = 0;

        if (!d)
                return errno == ENOENT ? 0 : negative_errno();
        while ((de = readdir(d)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, "..")) {
                        r = 1;
                        break;
                }
        closedir(d);
        return r;
}

/* HOME.before-restore-YYYYmmdd-HHMMSS, with -2, -3, … when taken. */
static char *aside_name(const char *home) {
        char stamp[32];
        time_t now = time(NULL);
        struct tm tm;

        localtime_r(&now, &tm);
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
        for (unsigned i = 1; i < 1000; i++) {
                char *p;
                if ((i == 1 ? asprintf(&p, "%s.before-restore-%s", home, stamp)
                            : asprintf(&p, "%s.before-restore-%s-%u", home, stamp, i)) < 0)
                        return NULL;
                if (access(p, F_OK) < 0 && errno == ENOENT)
                        return p;
                free(p);
        }
        errno = EEXIST;
        return NULL;
}

/* Puts the verified tree in place; the old home, if any, moves aside. */
static int install(struct restore *r, const char *home, int in_use, char **ret_aside) {
        _cleanup_free_ char *aside = NULL, *copy = NULL;
        _cleanup_close_ int dfd = -EBADF;

        if (in_use > 0) {
                aside = aside_name(home);
                if (!aside || rename(home, aside) < 0) {
                        fprintf(stderr, "conclave restore: cannot move %s aside: %m\n", home);
                        return negative_errno();
                }
        } else if (rmdir(home) < 0 && errno != ENOENT) {
                fprintf(stderr, "conclave restore: cannot replace the empty %s: %m\n", home);
                return negative_errno();
        }
        if (rename(r->tmpdir, home) < 0) {
                int k = negative_errno();
                fprintf(stderr, "conclave restore: cannot rename %s to %s: %s\n", r->tmpdir, home, strerror(-k));
                if (aside && rename(aside, home) < 0)
                        fprintf(stderr, "conclave restore: and cannot move %s back to %s: %m\n", aside, home);
                return k;
        }
        copy = strdup(home);
        if (copy && (dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0)
                (void) fsync(dfd);
        *ret_aside = aside;
        aside = NULL;
        return 0;
}

static void help(void) {
        printf("Usage: conclave restore [--force] FILE\n\n"
               "Restores CONCLAVE_HOME from an archive made by `conclave backup`. Refuses while the daemon\n"
               "runs. The whole archive is verified first (manifest version, each file's size and SHA-256,\n"
               "every ledger line by line, safe paths only) and extracted next to CONCLAVE_HOME, then\n"
               "renamed into place; a damaged archive leaves CONCLAVE_HOME untouched. Afterwards start the\n"
               "service and run `conclave doctor`; the daemon rebuilds derived state from the ledgers.\n\n"
               "      --force  restore over a non-empty CONCLAVE_HOME: it is moved aside to\n"
               "               CONCLAVE_HOME.before-restore-YYYYmmdd-HHMMSS (never deleted)\n"
               "  -h, --help   show this help\n");
}

int cmd_restore(int argc, char **argv) {
        static const struct option options[] = {
                { "force", no_argument, NULL, 'f' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        struct restore r = { .tmp_fd = -EBADF };
        _cleanup_free_ char *home = NULL, *parent = NULL, *base = NULL, *socket = NULL, *aside = NULL;
        const char *dir, *name;
        char unit_state[32];
        bool force = false;
        int c, in_use, k;

        optind = 1;
        while ((c = getopt_long(argc, argv, "fh", options, NULL)) >= 0)
                switch (c) {
                case 'f':
                        force = true;
                        break;
                case 'h':
                        help();
                        return EXIT_SUCCESS;
                default:
                        return EXIT_USAGE;
                }
        if (argc - optind != 1) {
                fprintf(stderr, "conclave restore: %s; see `conclave restore --help`\n",
                        argc - optind < 1 ? "which archive? (FILE is missing)" : "only one FILE");
                return EXIT_USAGE;
        }
        r.file = argv[optind];

        if (daemon_running(&socket, unit_state, sizeof unit_state)) {
                if (socket)
                        fprintf(stderr, "conclave restore: the daemon is running (it answers on %s).\n", socket);
                else
                        fprintf(stderr, "conclave restore: conclave.service is %s.\n", unit_state);
                fprintf(stderr, "Stop it first: `conclave service stop` (or Ctrl-C a foreground `conclave daemon`), "
                                "then run restore again.\n");
                return EXIT_FAILURE;
        }
        home = paths_home();
        if (!home) {
                fprintf(stderr, "conclave restore: cannot determine CONCLAVE_HOME (is HOME set?)\n");
                return EXIT_FAILURE;
        }
        in_use = home_in_use(home);
        if (in_use < 0) {
                fprintf(stderr, "conclave restore: %s: %s\n", home, strerror(-in_use));
                return EXIT_FAILURE;
        }
        if (in_use && !force) {
                fprintf(stderr, "conclave restore: %s is not empty. `conclave restore --force %s` moves it aside to "
                        "%s.before-restore-YYYYmmdd-HHMMSS (nothing is deleted) and restores into its place.\n",
                        home, r.file, home);
                return EXIT_FAILURE;
        }

        parent = strdup(home);
        base = strdup(home);
        if (!parent || !base || sha256_new(&r.sha) < 0)
                return cli_oom();
        dir = dirname(parent);
        name = basename(base);
        k = mkdir_parents(dir, 0700);
        /* A hidden name next to CONCLAVE_HOME: ~/.conclave.restore-XXXXXX. */
        if (k < 0 || asprintf(&r.tmpdir, "%s/%s%s.restore-XXXXXX", dir, name[0] == '.' ? "" : ".", name) < 0) {
                fprintf(stderr, "conclave restore: cannot create %s: %s\n", dir, strerror(k < 0 ? -k : ENOMEM));
                sha256_free(r.sha);
                return EXIT_FAILURE;
        }
        if (!mkdtemp(r.tmpdir) || (r.tmp_fd = open(r.tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
                fprintf(stderr, "conclave restore: cannot create a directory next to %s: %m\n", home);
                free(r.tmpdir);
                sha256_free(r.sha);
                return EXIT_FAILURE;
        }

        r.archive = archive_read_new();
        if (!r.archive)
                k = -ENOMEM;
        else if (archive_read_support_filter_all(r.archive) < ARCHIVE_WARN ||
                 archive_read_support_format_tar(r.archive) != ARCHIVE_OK)
                k = archive_refused(&r, "libarchive");
        else if (archive_read_open_filename(r.archive, r.file, 64 * 1024) != ARCHIVE_OK)
                k = archive_refused(&r, r.file);
        else
                k = extract_all(&r);
        if (k >= 0)
                k = verify(&r);
        if (k >= 0)
                k = verify_registry(&r);
        if (k >= 0)
                k = verify_formats(&r);
        if (k >= 0 && fsync(r.tmp_fd) < 0)
                k = refuse(&r, "cannot write %s: %m", r.tmpdir);
        if (k >= 0)
                k = install(&r, home, in_use, &aside);

        if (k == -ENOMEM)
                cli_oom();
        else if (k == -EBADMSG)
                fprintf(stderr, "conclave restore: %s cannot be restored: %s.\n%s was not touched.\n", r.file, r.why, home);
        if (k < 0)
                remove_tree(r.tmpdir);
        else {
                char size[FORMAT_BYTES_MAX];
                printf("Restored %zu group(s), %" PRIu64 " event(s), %s, into %s from %s (made %s by Conclave %s%s).\n",
                       r.manifest->n_groups, r.events, format_bytes(size, sizeof size, r.bytes), home, r.file,
                       r.manifest->created, r.manifest->conclave_version, r.manifest->online ? " while the service ran" : "");
                if (aside)
                        printf("The previous %s is in %s (nothing was deleted).\n", home, aside);
                printf("Start the service (`conclave service start`) and check with `conclave doctor`; derived state "
                       "is rebuilt from the ledgers at start.\n");
        }

        if (r.archive)
                archive_read_free(r.archive);
        if (r.tmp_fd >= 0)
                close(r.tmp_fd);
        for (size_t i = 0; i < r.n_entries; i++)
                free(r.entries[i].path);
        free(r.entries);
        free(r.manifest_text);
        free(r.tmpdir);
        backup_manifest_free(r.manifest);
        sha256_free(r.sha);
        return k < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
