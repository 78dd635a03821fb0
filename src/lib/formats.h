/* The format version of every file Conclave keeps under CONCLAVE_HOME: which versions this
 * build writes, how a file's version is read, and a survey of a home that says which files are
 * older (to be migrated, see migrate.h) or newer (written by a newer Conclave: refused).
 * docs/operations.md ("Format versions") is the operator's view of the same table. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

/* Version 0 everywhere means "no version recorded": the layout Conclave 0.1.0 wrote for the
 * ledger index and the recovery note, and a JSON file without "format_version". */
#define REGISTRY_FORMAT_VERSION 1      /* registry.json: "format_version" */
#define GROUP_FORMAT_VERSION 1         /* groups/<id>/group.json: "format_version" */
#define RECOVERY_NOTE_FORMAT_VERSION 1 /* groups/<id>/state/recovery.json: "format_version" */
#define DAEMON_STATE_VERSION 1         /* daemon_state.json: "format_version" */
#define OUTBOX_FORMAT_VERSION 1        /* groups/<id>/state/outbox.json: "format_version" */
#define CHANNEL_STORE_FORMAT_VERSION 1 /* channels/<name>.json: "format_version" */
/* LEDGER_FORMAT_VERSION, LEDGER_INDEX_FORMAT_VERSION (ledger.h), GROUP_STATE_FORMAT_VERSION
 * (group_state.h) and BACKUP_FORMAT_VERSION (backup_manifest.h) live with their modules. */

enum format_kind {
        FORMAT_REGISTRY,
        FORMAT_GROUP,
        FORMAT_LEDGER,
        FORMAT_LEDGER_INDEX,
        FORMAT_GROUP_STATE,
        FORMAT_RECOVERY_NOTE,
        FORMAT_DAEMON_STATE,
        FORMAT_BACKUP_MANIFEST,
        FORMAT_OUTBOX,
        FORMAT_CHANNEL_STORE,
        _FORMAT_KIND_MAX,
};

struct format_info {
        const char *name;     /* where it lives, e.g. "groups/<id>/state/ledger.idx" */
        const char *what;     /* "the ledger index" */
        unsigned current;     /* the version this Conclave writes and the newest it reads */
        unsigned oldest;      /* the oldest version it reads or migrates */
        bool derived;         /* rebuilt from the ledger when missing */
        bool refused_when_newer; /* a newer one stops the daemon (daemon_state.json does not:
                                  * the daemon rewrites it at start) */
};

const struct format_info *format_info(enum format_kind kind);

/* "format_version" of a JSON object: 0 when absent; -EBADMSG when it is not a non-negative
 * integer (or o is not an object). */
int format_json_version(struct json_object *o, unsigned *ret);

/* The version of one file, read without changing it: 0 and *ret, -ENOENT when it does not
 * exist, -EBADMSG when it cannot be told (not JSON, an invalid version field, an index of the
 * wrong size, a ledger whose first or last line does not parse), another -errno when it cannot
 * be read. For a ledger, the highest "v" of its first and last complete lines (the daemon's
 * background verification checks every other line). */
int format_file_version(enum format_kind kind, const char *path, unsigned *ret);

enum format_status {
        FORMAT_CURRENT,
        FORMAT_OLDER,   /* older than `current`: the daemon migrates it at start */
        FORMAT_NEWER,   /* newer than this Conclave reads */
        FORMAT_INVALID, /* its version cannot be told; left to the module that loads it */
};

struct format_file {
        enum format_kind kind;
        char *path; /* relative to the surveyed home, e.g. "groups/team/group.json" */
        unsigned version;
        enum format_status status;
        int error; /* with FORMAT_INVALID: the -errno from format_file_version() */
};

struct format_survey {
        struct format_file *files;
        size_t n_files;
        size_t n_older, n_newer, n_invalid;
        size_t n_preserved; /* "*.pre-v<N>" copies an earlier migration kept */
};

/* Every versioned file under home: registry.json, daemon_state.json and, for each directory
 * under groups/ named like a group id, group.json, ledger.jsonl, state/ledger.idx,
 * state/state.json, state/recovery.json and state/outbox.json; and channels/<name>.json. Missing files are skipped; nothing is changed.
 * -ENOMEM, or -errno when home or groups/ cannot be listed (a missing home is an empty survey). */
int format_survey(const char *home, struct format_survey **ret);
void format_survey_free(struct format_survey *s);
static inline void format_survey_freep(struct format_survey **s) {
        format_survey_free(*s);
}

/* "groups/team/group.json has format version 3, but this Conclave (0.1.0) reads up to
 * version 1": the one wording of a refusal, for the journal, doctor and restore. */
int format_newer_message(const struct format_file *f, char *buf, size_t size);

/* What to do about it, one sentence, depending on whether the file is derived. */
const char *format_newer_advice(enum format_kind kind);
