/* The manifest of a `conclave backup` archive (manifest.json, the archive's last entry):
 *   {"format":"conclave-backup","format_version":1,"conclave_version":"0.1.0",
 *    "created":"2026-11-23T09:34:26.123Z","home":"/home/me/.conclave","online":true,
 *    "groups":[{"id":"g1","ledger_bytes":4096,"last_seq":12}],
 *    "files":[{"path":"groups/g1/ledger.jsonl","size":4096,"mode":"0600","sha256":"…"}]}
 * and the rules every path in an archive must follow. Building, writing and strict parsing;
 * the archive itself is read and written by the CLI (src/cli/backup.c, restore.c). */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BACKUP_FORMAT "conclave-backup"
#define BACKUP_FORMAT_VERSION 1
#define BACKUP_MANIFEST_NAME "manifest.json"
#define BACKUP_MANIFEST_MAX (16u * 1024u * 1024u)
#define BACKUP_FILES_MAX 100000u
#define BACKUP_PATH_MAX 255u
#define BACKUP_GROUP_ID_MAX 64u
#define BACKUP_SHA256_HEX 64u

struct backup_file {
        char *path;
        uint64_t size;
        unsigned mode; /* permission bits, at most 0777 */
        char sha256[BACKUP_SHA256_HEX + 1];
};

struct backup_group {
        char *id;
        uint64_t ledger_bytes;
        uint64_t last_seq;
};

struct backup_manifest {
        unsigned format_version;
        char *conclave_version;
        char *created;
        char *home;
        bool online;
        struct backup_file *files; /* sorted by path after backup_manifest_parse() */
        size_t n_files;
        struct backup_group *groups;
        size_t n_groups;
};

/* A relative path of 1-255 bytes whose components are neither empty, "." nor "..", without
 * control characters or backslashes. Everything an archive holds must have such a path. */
bool backup_path_valid(const char *path);
/* Group ids as the supervisor accepts them: 1-64 characters [A-Za-z0-9_-]. */
bool backup_group_id_valid(const char *id);
/* If path is "groups/<id>/ledger.jsonl" with a valid id, copies id (BACKUP_GROUP_ID_MAX + 1
 * bytes) and returns true. */
bool backup_path_is_ledger(const char *path, char *id);

int backup_manifest_new(struct backup_manifest **ret);
void backup_manifest_free(struct backup_manifest *m);
static inline void backup_manifest_freep(struct backup_manifest **m) {
        backup_manifest_free(*m);
}

/* Both copy their strings; -EINVAL for an invalid path, id, mode or digest. Duplicates are the
 * caller's to avoid (backup_manifest_parse() refuses them). */
int backup_manifest_add_file(struct backup_manifest *m, const char *path, uint64_t size, unsigned mode,
                             const char *sha256_hex);
int backup_manifest_add_group(struct backup_manifest *m, const char *id, uint64_t ledger_bytes, uint64_t last_seq);

/* The manifest as JSON (new reference), NULL when out of memory. */
struct json_object *backup_manifest_to_json(const struct backup_manifest *m);

/* Parses and validates manifest text: -EPROTONOSUPPORT for a newer format, -EBADMSG for anything
 * malformed (why says what, e.g. "files[3]: invalid path"); -ENOMEM. Checks that paths are valid
 * and unique, registry.json is listed, and every group's ledger is listed with its byte count. */
int backup_manifest_parse(const char *text, size_t len, struct backup_manifest **ret, char *why, size_t why_size);

/* The listed file with this path (after backup_manifest_parse()), or NULL. */
const struct backup_file *backup_manifest_find(const struct backup_manifest *m, const char *path);
/* The group with this id (after backup_manifest_parse()), or NULL. */
const struct backup_group *backup_manifest_find_group(const struct backup_manifest *m, const char *id);
