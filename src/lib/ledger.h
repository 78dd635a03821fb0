/* A group's ledger: groups/<id>/ledger.jsonl, append-only, one JSON event per line:
 *   {"v":1,"id":"01JD…","seq":N,"ts":"2026-11-22T14:36:41.123Z","kind":"chat.message",
 *    "group_id":"g1","by":"alice","data":{…}}
 * plus a derived offset index (groups/<id>/state/ledger.idx: a versioned header, then one
 * little-endian uint64 byte offset per event, see ledger_index.h) so reads by seq and
 * `tail -n N` never scan the file. Appends are single write()s of whole lines; durability is
 * the caller's choice of when to call ledger_sync(). Nothing before the last line is ever
 * rewritten, so a line keeps the format version ("v") it was written in: every version from 1
 * to LEDGER_FORMAT_VERSION stays readable, a newer one is refused (-EPROTONOSUPPORT). */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LEDGER_FORMAT_VERSION 1
#define LEDGER_LINE_MAX (1024u * 1024u) /* a longer line is refused on append, corrupt on read */
#define EVENT_ID_LEN 26                 /* ULID: 48-bit ms time + 80 random bits, base32 */

struct ledger;

struct ledger_recovery {
        bool truncated;            /* a torn/unparsable last line was cut */
        uint64_t truncated_offset; /* where the file now ends */
        uint64_t truncated_bytes;  /* how many bytes were cut */
        char reason[160];          /* why, e.g. "no trailing newline", "invalid JSON" */
        bool index_rebuilt;        /* the index was missing or stale and was rebuilt */
        uint64_t corrupt_offset;   /* with -EBADMSG from ledger_open: byte offset of the bad line */
        char corrupt_reason[160];
};

/* Opens (creating if missing) dir/ledger.jsonl and dir/state/ledger.idx for group_id.
 * Recovers a torn or unparsable LAST line by truncating it (reported in *rec). A corrupt line
 * anywhere else returns -EBADMSG with rec->corrupt_offset/corrupt_reason set: the caller must
 * not use the group. The index is checked against the ledger's tail and rebuilt (one streaming
 * scan, constant memory) when missing or stale. A clean open does not read the whole file:
 * corruption in the middle is found by ledger_verify_*() or by the read that meets it
 * (-EBADMSG). A line of a newer format gives -EPROTONOSUPPORT and is never cut. */
int ledger_open(const char *dir, const char *group_id, struct ledger **ret, struct ledger_recovery *rec);
void ledger_close(struct ledger *l);

uint64_t ledger_last_seq(const struct ledger *l);
uint64_t ledger_size_bytes(const struct ledger *l);
const char *ledger_path(const struct ledger *l);

/* Appends {"v","id","seq","ts","kind","group_id","by","data"} as one line (not yet durable).
 * data is borrowed (may be NULL: {}). *ret_event (optional) receives the complete event (new
 * reference). -E2BIG if the line would exceed LEDGER_LINE_MAX. On a failed or short write the
 * file is cut back to its previous size, so a half line never stays behind. */
int ledger_append(struct ledger *l, const char *kind, const char *by, struct json_object *data,
                  struct json_object **ret_event);

/* fdatasync() the ledger: everything appended so far is durable once this returns 0. */
int ledger_sync(struct ledger *l);

/* Reads the event with this seq (1-based). -ENOENT if seq is 0 or beyond the end. */
int ledger_read(struct ledger *l, uint64_t seq, struct json_object **ret);

/* Calls cb for events after_seq+1 … after_seq+limit (fewer at the end), in order. A negative
 * return from cb stops and is returned. Returns the number of events visited. */
typedef int (*ledger_event_cb)(struct json_object *event, void *userdata);
int ledger_read_range(struct ledger *l, uint64_t after_seq, size_t limit, ledger_event_cb cb, void *userdata);

/* The last n events (fewer if the ledger is shorter), oldest first. */
int ledger_tail(struct ledger *l, size_t n, ledger_event_cb cb, void *userdata);

/* Validates one ledger line (without its '\n'): JSON object with v, id, seq, ts, kind.
 * Returns 0 and *ret_seq, or -EBADMSG with *why set. Exposed for tests and the fuzzer. */
int ledger_parse_line(const char *line, size_t len, uint64_t *ret_seq, struct json_object **ret_event,
                      const char **why);
/* The same with a tokener kept for many lines (ledger_tokener_new(); json_tokener_free()):
 * a tokener per line costs as much as the parse itself. */
struct json_tokener *ledger_tokener_new(void);
int ledger_parse_line_with(struct json_tokener *tok, const char *line, size_t len, uint64_t *ret_seq,
                           struct json_object **ret_event, const char **why);

/* Full verification of the lines that existed when it began, a bounded number of lines per
 * step, so a daemon can check a large ledger from its event loop without stalling it (a clean
 * open trusts the index and reads only the last lines). */
struct ledger_verify;
int ledger_verify_begin(struct ledger *l, struct ledger_verify **ret);
/* 1: all verified; 0: call again; -EBADMSG/-EPROTONOSUPPORT with rec->corrupt_* set. */
int ledger_verify_step(struct ledger *l, struct ledger_verify *v, size_t max_lines, struct ledger_recovery *rec);
void ledger_verify_free(struct ledger_verify *v);
static inline void ledger_verify_freep(struct ledger_verify **v) {
        ledger_verify_free(*v);
}

/* Makes the ids this process creates sort after `id` (the last id of a ledger just opened), so
 * ids keep growing with seq even when the clock stepped back between runs. */
void event_id_observe(const char *id);

/* A new time-sortable unique id (ULID, Crockford base32, 26 chars + NUL). Ids made by one
 * process are strictly increasing, also within the same millisecond. */
int event_id_new(char buf[EVENT_ID_LEN + 1]);
/* Same, for a given time in ms since the epoch (tests). */
int event_id_new_at(char buf[EVENT_ID_LEN + 1], uint64_t unix_ms);
