/* A group's ledger (see ledger.h): append-only JSON lines plus a derived offset index. Opening
 * may cut the last line of the ledger and nothing else; any other damage is reported, not fixed. */

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ledger.h"
#include "ledger_index.h"
#include "log.h"
#include "macro.h"
#include "proto.h"
#include "timeutil.h"

#define LEDGER_NAME_MAX 128u         /* kind, by, group_id */
#define LEDGER_DATA_DEPTH_MAX 32u    /* nesting of "data" (the object itself counts) */
#define LEDGER_TOKENER_DEPTH 64      /* the event object + data, with room to spare */
#define READ_BLOCK (64u * 1024u)     /* first buffer of a forward scan; grows for long lines */
#define BACK_BLOCK 8192u             /* step of a backward search for a line start */
#define INDEX_BATCH 8192u            /* index entries written per pwrite during a scan */
#define ULID_TIME_MAX ((UINT64_C(1) << 48) - 1)
/* Byte position of index entry i (the offset of seq i + 1), after the header. */
#define INDEX_POS(i) (LEDGER_INDEX_HEADER_SIZE + (uint64_t) (i) * sizeof(uint64_t))

struct ledger {
        int fd;
        int index_fd;
        char *path;
        char *group_id;
        uint64_t last_seq;
        uint64_t size;
        struct json_tokener *tok; /* reused for every line we parse */
        char *line;               /* append buffer: serialised event + '\n' */
        size_t line_cap;
        bool broken; /* a failed append could not be undone: refuse further appends */
};

/* --- small I/O helpers ------------------------------------------------------------------- */

static int pread_full(int fd, void *buf, size_t n, uint64_t offset) {
        size_t done = 0;

        while (done < n) {
                ssize_t k = pread(fd, (char *) buf + done, n - done, (off_t) (offset + done));
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0)
                        return -ENODATA; /* the file is shorter than the index or caller said */
                done += (size_t) k;
        }
        return 0;
}

static int pwrite_full(int fd, const void *buf, size_t n, uint64_t offset) {
        size_t done = 0;

        while (done < n) {
                ssize_t k = pwrite(fd, (const char *) buf + done, n - done, (off_t) (offset + done));
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0)
                        return -EIO;
                done += (size_t) k;
        }
        return 0;
}

static int truncate_fd(int fd, uint64_t size) {
        while (ftruncate(fd, (off_t) size) < 0)
                if (errno != EINTR)
                        return negative_errno();
        return 0;
}

static int index_get(int index_fd, uint64_t entry, uint64_t *ret) {
        uint64_t le;
        int r = pread_full(index_fd, &le, sizeof le, INDEX_POS(entry));

        if (r < 0)
                return r;
        *ret = le64toh(le);
        return 0;
}

/* Start of the line whose end (its '\n', or the end of the file) is at `end`: the byte after
 * the previous '\n', or 0. Reads backwards in small blocks. */
static int find_line_start(int fd, uint64_t end, uint64_t *ret) {
        char buf[BACK_BLOCK];
        uint64_t pos = end;

        while (pos > 0) {
                size_t n = pos < sizeof buf ? (size_t) pos : sizeof buf;
                const char *nl;
                int r = pread_full(fd, buf, n, pos - n);

                if (r < 0)
                        return r;
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

/* Forward reader of '\n'-terminated lines in [next, end) with a bounded buffer: it starts at
 * READ_BLOCK and grows only as far as one maximal line needs (LEDGER_LINE_MAX + 1). */
struct line_reader {
        int fd;
        uint64_t next; /* file offset of the next byte to read */
        uint64_t end;
        char *buf;
        size_t cap, start, len; /* unconsumed bytes: buf[start, start + len) */
};

static void line_reader_done(struct line_reader *r) {
        free(r->buf);
        r->buf = NULL;
}

/* 1 with a line (without '\n') and its file offset; 0 at the end; -E2BIG for a line longer than
 * LEDGER_LINE_MAX and -ENODATA for bytes without a final '\n' (offset set for both). */
static int line_reader_next(struct line_reader *r, const char **ret_line, size_t *ret_len, uint64_t *ret_offset) {
        for (;;) {
                char *p = r->buf ? r->buf + r->start : NULL;
                char *nl = p ? memchr(p, '\n', r->len) : NULL;
                ssize_t k;
                size_t want;

                if (nl) {
                        size_t n = (size_t) (nl - p);

                        *ret_offset = r->next - r->len;
                        *ret_line = p;
                        *ret_len = n;
                        r->start += n + 1;
                        r->len -= n + 1;
                        return n > LEDGER_LINE_MAX ? -E2BIG : 1;
                }
                if (r->len > LEDGER_LINE_MAX) {
                        *ret_offset = r->next - r->len;
                        return -E2BIG;
                }
                if (r->next >= r->end) {
                        *ret_offset = r->next - r->len;
                        return r->len > 0 ? -ENODATA : 0;
                }
                if (r->len > 0 && r->start > 0)
                        memmove(r->buf, r->buf + r->start, r->len);
                r->start = 0;
                if (r->len == r->cap) {
                        size_t cap = r->cap == 0 ? READ_BLOCK : r->cap * 2;
                        char *b;

                        if (cap > LEDGER_LINE_MAX + 1)
                                cap = LEDGER_LINE_MAX + 1;
                        b = realloc(r->buf, cap);
                        if (!b)
                                return -ENOMEM;
                        r->buf = b;
                        r->cap = cap;
                }
                want = r->cap - r->len;
                if ((uint64_t) want > r->end - r->next)
                        want = (size_t) (r->end - r->next);
                k = pread(r->fd, r->buf + r->len, want, (off_t) r->next);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0)
                        return -ENODATA; /* someone cut the file under us */
                r->len += (size_t) k;
                r->next += (uint64_t) k;
        }
}

/* --- parsing ----------------------------------------------------------------------------- */

static bool event_id_valid(const char *s, size_t len) {
        if (len != EVENT_ID_LEN)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!strchr("0123456789ABCDEFGHJKMNPQRSTVWXYZ", s[i]) || s[i] == '\0')
                        return false;
        return s[0] <= '7'; /* 48 bits of time: the first character carries only 3 */
}

static bool is_string(struct json_object *o, bool nonempty) {
        return json_object_is_type(o, json_type_string) && (!nonempty || json_object_get_string_len(o) > 0);
}

static int parse_line(struct json_tokener *tok, const char *line, size_t len, uint64_t *ret_seq,
                      struct json_object **ret_event, const char **ret_why) {
        _cleanup_json_ struct json_object *ev = NULL;
        struct json_object *o;
        const char *why = NULL;
        int64_t n;

        if (len == 0)
                why = "empty line";
        else if (len > LEDGER_LINE_MAX)
                why = "line longer than 1 MiB";
        else if (memchr(line, '\0', len))
                why = "NUL byte in line";
        if (why)
                goto bad;

        json_tokener_reset(tok);
        ev = json_tokener_parse_ex(tok, line, (int) len);
        if (!ev || json_tokener_get_error(tok) != json_tokener_success || json_tokener_get_parse_end(tok) != len) {
                why = "invalid JSON";
                goto bad;
        }
        if (!json_object_is_type(ev, json_type_object)) {
                why = "not a JSON object";
                goto bad;
        }
        if (line[0] != '{' || line[len - 1] != '}') {
                why = "whitespace around the JSON object"; /* json-c allows it; we never write it */
                goto bad;
        }

        /* The version first: a newer writer may have changed everything else. */
        if (!json_object_object_get_ex(ev, "v", &o) || !json_object_is_type(o, json_type_int)) {
                why = "missing or non-integer \"v\"";
                goto bad;
        }
        n = json_object_get_int64(o);
        if (n > LEDGER_FORMAT_VERSION) {
                if (ret_why)
                        *ret_why = "written by a newer Conclave (format version above 1)";
                return -EPROTONOSUPPORT;
        }
        if (n < 1) /* every older version stays readable: lines are never rewritten */
                why = "invalid \"v\"";
        else if (!json_object_object_get_ex(ev, "id", &o) || !is_string(o, false) ||
                 !event_id_valid(json_object_get_string(o), (size_t) json_object_get_string_len(o)))
                why = "missing or invalid \"id\"";
        else if (!json_object_object_get_ex(ev, "seq", &o) || !json_object_is_type(o, json_type_int) ||
                 json_object_get_int64(o) < 1)
                why = "missing or invalid \"seq\"";
        if (why)
                goto bad;
        n = json_object_get_int64(o);

        if (!json_object_object_get_ex(ev, "ts", &o) || !is_string(o, true))
                why = "missing or invalid \"ts\"";
        else if (!json_object_object_get_ex(ev, "kind", &o) || !is_string(o, true))
                why = "missing or invalid \"kind\"";
        else if (json_object_object_get_ex(ev, "data", &o) && !json_object_is_type(o, json_type_object))
                why = "\"data\" is not an object";
        else if (json_object_object_get_ex(ev, "by", &o) && !is_string(o, false))
                why = "\"by\" is not a string";
        else if (json_object_object_get_ex(ev, "group_id", &o) && !is_string(o, false))
                why = "\"group_id\" is not a string";
        if (why)
                goto bad;

        if (ret_seq)
                *ret_seq = (uint64_t) n;
        if (ret_event) {
                *ret_event = ev;
                ev = NULL;
        }
        return 0;

bad:
        if (ret_why)
                *ret_why = why;
        return -EBADMSG;
}

static struct json_tokener *tokener_new(void) {
        struct json_tokener *tok = json_tokener_new_ex(LEDGER_TOKENER_DEPTH);

        if (!tok)
                return NULL;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT
#ifdef JSON_TOKENER_VALIDATE_UTF8
                                            | JSON_TOKENER_VALIDATE_UTF8
#endif
        );
        return tok;
}

struct json_tokener *ledger_tokener_new(void) {
        return tokener_new();
}

int ledger_parse_line_with(struct json_tokener *tok, const char *line, size_t len, uint64_t *ret_seq,
                           struct json_object **ret_event, const char **why) {
        if (!tok || (!line && len > 0))
                return -EINVAL;
        return parse_line(tok, line ? line : "", len, ret_seq, ret_event, why);
}

int ledger_parse_line(const char *line, size_t len, uint64_t *ret_seq, struct json_object **ret_event,
                      const char **why) {
        struct json_tokener *tok;
        int r;

        if (!line && len > 0)
                return -EINVAL;
        tok = tokener_new();
        if (!tok)
                return -ENOMEM;
        r = parse_line(tok, line ? line : "", len, ret_seq, ret_event, why);
        json_tokener_free(tok);
        return r;
}

/* --- event ids (ULID) -------------------------------------------------------------------- */

static const char crockford32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* The last id this process made, so the next one sorts after it even within one millisecond or
 * when the clock steps back. Conclave has no threads. */
static struct {
        bool valid;
        uint64_t ms;
        uint8_t random[10];
} last_id;

static int random_bytes(uint8_t *buf, size_t n) {
        size_t done = 0;

        while (done < n) {
                ssize_t k = getrandom(buf + done, n - done, 0);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                done += (size_t) k;
        }
        return 0;
}

/* Adds 1 to the 80-bit big-endian number; false when it wrapped around to 0. */
static bool increment80(uint8_t v[10]) {
        for (size_t i = 10; i > 0; i--)
                if (++v[i - 1] != 0)
                        return true;
        return false;
}

int event_id_new_at(char buf[EVENT_ID_LEN + 1], uint64_t unix_ms) {
        uint8_t rnd[10];
        uint64_t t;
        int r;

        if (!buf || unix_ms > ULID_TIME_MAX)
                return -EINVAL;

        if (last_id.valid && unix_ms <= last_id.ms) {
                unix_ms = last_id.ms;
                memcpy(rnd, last_id.random, sizeof rnd);
                if (!increment80(rnd)) {
                        /* 2^80 ids in one ms cannot happen with a random start, but stay ordered. */
                        if (unix_ms == ULID_TIME_MAX)
                                return -EOVERFLOW;
                        unix_ms++;
                        r = random_bytes(rnd, sizeof rnd);
                        if (r < 0)
                                return r;
                }
        } else {
                r = random_bytes(rnd, sizeof rnd);
                if (r < 0)
                        return r;
        }

        t = unix_ms;
        for (size_t i = 10; i > 0; i--) {
                buf[i - 1] = crockford32[t & 31];
                t >>= 5;
        }
        for (size_t i = 0; i < 16; i++) {
                unsigned v = 0;
                for (size_t b = i * 5; b < i * 5 + 5; b++)
                        v = (v << 1) | ((rnd[b / 8] >> (7 - b % 8)) & 1u);
                buf[10 + i] = crockford32[v];
        }
        buf[EVENT_ID_LEN] = '\0';

        last_id.valid = true;
        last_id.ms = unix_ms;
        memcpy(last_id.random, rnd, sizeof rnd);
        return 0;
}

void event_id_observe(const char *id) {
        uint8_t rnd[10] = {};
        uint64_t ms = 0;

        if (!id || !event_id_valid(id, strlen(id)))
                return;
        for (size_t i = 0; i < 10; i++)
                ms = (ms << 5) | (uint64_t) (strchr(crockford32, id[i]) - crockford32);
        for (size_t i = 0; i < 16; i++) {
                unsigned v = (unsigned) (strchr(crockford32, id[10 + i]) - crockford32);
                for (size_t b = 0; b < 5; b++)
                        if (v & (1u << (4 - b)))
                                rnd[(i * 5 + b) / 8] |= (uint8_t) (1u << (7 - (i * 5 + b) % 8));
        }
        if (last_id.valid && (ms < last_id.ms || (ms == last_id.ms && memcmp(rnd, last_id.random, sizeof rnd) <= 0)))
                return;
        last_id.valid = true;
        last_id.ms = ms;
        memcpy(last_id.random, rnd, sizeof rnd);
}

int event_id_new(char buf[EVENT_ID_LEN + 1]) {
        return event_id_new_at(buf, now_usec(CLOCK_REALTIME) / USEC_PER_MSEC);
}

/* --- open: tail recovery and index check -------------------------------------------------- */

_printf_(4, 5) static int report_corrupt(struct ledger_recovery *rec, uint64_t offset, int error,
                                         const char *format, ...) {
        va_list ap;

        rec->corrupt_offset = offset;
        va_start(ap, format);
        vsnprintf(rec->corrupt_reason, sizeof rec->corrupt_reason, format, ap);
        va_end(ap);
        return error;
}

/* Parses the line [start, nl) where nl is the offset of its '\n'. */
static int parse_at(struct ledger *l, uint64_t start, uint64_t nl, uint64_t *ret_seq, const char **why) {
        _cleanup_free_ char *buf = NULL;
        size_t len;
        int r;

        if (nl - start > LEDGER_LINE_MAX) {
                *why = "line longer than 1 MiB";
                return -EBADMSG;
        }
        len = (size_t) (nl - start);
        buf = malloc(len + 1);
        if (!buf)
                return -ENOMEM;
        r = pread_full(l->fd, buf, len, start);
        if (r < 0)
                return r;
        return parse_line(l->tok, buf, len, ret_seq, NULL, why);
}

/* Decides where the good part of the ledger ends (*ret_end) and the seq of its last line,
 * without changing the file: a torn tail (no final '\n') or else an unparsable or out-of-order
 * last line is to be cut (recorded in rec); at most one line is ever cut. */
static int check_tail(struct ledger *l, uint64_t size, uint64_t *ret_end, uint64_t *ret_seq,
                      struct ledger_recovery *rec) {
        uint64_t end = size, seq = 0;
        bool cut = false;
        char last;
        int r;

        if (size > 0) {
                r = pread_full(l->fd, &last, 1, size - 1);
                if (r < 0)
                        return r;
                if (last != '\n') {
                        r = find_line_start(l->fd, size, &end);
                        if (r < 0)
                                return r;
                        cut = true;
                        snprintf(rec->reason, sizeof rec->reason, "no trailing newline (torn write)");
                }
        }

        while (end > 0) {
                uint64_t start, prev_start, prev_seq = 0;
                const char *why = NULL;
                char reason[64];

                r = find_line_start(l->fd, end - 1, &start);
                if (r < 0)
                        return r;
                r = parse_at(l, start, end - 1, &seq, &why);
                if (r == 0 && start > 0) {
                        r = find_line_start(l->fd, start - 1, &prev_start);
                        if (r < 0)
                                return r;
                        r = parse_at(l, prev_start, start - 1, &prev_seq, &why);
                        if (r == -EBADMSG || r == -EPROTONOSUPPORT)
                                return report_corrupt(rec, prev_start, r, "%s", why);
                        if (r < 0)
                                return r;
                }
                if (r == 0 && seq == prev_seq + 1)
                        break; /* a good last line */
                if (r == 0) {
                        snprintf(reason, sizeof reason, "seq %" PRIu64 " after %" PRIu64, seq, prev_seq);
                        why = reason;
                        r = -EBADMSG;
                }
                if (r != -EBADMSG && r != -EPROTONOSUPPORT)
                        return r;
                /* Never cut a line a newer version wrote, nor a second line. */
                if (r == -EPROTONOSUPPORT || cut)
                        return report_corrupt(rec, start, r, "%s", why);
                cut = true;
                snprintf(rec->reason, sizeof rec->reason, "%s", why);
                end = start;
                seq = 0;
        }

        if (cut) {
                rec->truncated = true;
                rec->truncated_offset = end;
                rec->truncated_bytes = size - end;
        }
        *ret_end = end;
        *ret_seq = seq;
        return 0;
}

/* Validates the lines in [from, end), expecting seqs first_seq, first_seq + 1, …, and writes
 * their offsets to the index from entry first_seq - 1 on. Returns the number of lines. */
static int scan_and_index(struct ledger *l, uint64_t from, uint64_t end, uint64_t first_seq,
                          struct ledger_recovery *rec, uint64_t *ret_count) {
        struct line_reader rd = { .fd = l->fd, .next = from, .end = end };
        _cleanup_free_ uint64_t *batch = NULL;
        uint64_t expected = first_seq, batch_first = first_seq - 1;
        size_t nbatch = 0;
        struct stat st;
        int r;

        batch = malloc(INDEX_BATCH * sizeof *batch);
        if (!batch)
                return -ENOMEM;

        for (;;) {
                const char *line, *why = NULL;
                uint64_t offset, seq;
                size_t len;

                r = line_reader_next(&rd, &line, &len, &offset);
                if (r == 0)
                        break;
                if (r == -E2BIG) {
                        r = report_corrupt(rec, offset, -EBADMSG, "line longer than 1 MiB");
                        goto out;
                }
                if (r == -ENODATA) {
                        r = report_corrupt(rec, offset, -EBADMSG, "no trailing newline");
                        goto out;
                }
                if (r < 0)
                        goto out;
                r = parse_line(l->tok, line, len, &seq, NULL, &why);
                if (r == -EBADMSG || r == -EPROTONOSUPPORT) {
                        r = report_corrupt(rec, offset, r, "%s", why);
                        goto out;
                }
                if (r < 0)
                        goto out;
                if (seq != expected) {
                        r = report_corrupt(rec, offset, -EBADMSG, "seq %" PRIu64 " after %" PRIu64, seq,
                                           expected - 1);
                        goto out;
                }
                expected++;

                batch[nbatch++] = htole64(offset);
                if (nbatch == INDEX_BATCH) {
                        r = pwrite_full(l->index_fd, batch, nbatch * sizeof *batch, INDEX_POS(batch_first));
                        if (r < 0)
                                goto out;
                        batch_first += nbatch;
                        nbatch = 0;
                }
        }
        r = pwrite_full(l->index_fd, batch, nbatch * sizeof *batch, INDEX_POS(batch_first));
        if (r < 0)
                goto out;
        /* Drop stale entries past the end (a partial one, or a longer old index). */
        if (fstat(l->index_fd, &st) < 0) {
                r = negative_errno();
                goto out;
        }
        if ((uint64_t) st.st_size != INDEX_POS(expected - 1)) {
                r = truncate_fd(l->index_fd, INDEX_POS(expected - 1));
                if (r < 0)
                        goto out;
        }
        *ret_count = expected - first_seq;
        r = 0;
out:
        line_reader_done(&rd);
        return r;
}

/* Empties the index down to a header of the current version. */
static int index_reset(struct ledger *l) {
        uint8_t header[LEDGER_INDEX_HEADER_SIZE];
        int r = truncate_fd(l->index_fd, 0);

        if (r < 0)
                return r;
        ledger_index_header_init(header);
        return pwrite_full(l->index_fd, header, sizeof header, 0);
}

/* Is the index trustworthy up to its entry K (the seq of the last line it covers)? It is when
 * it starts with the current header, K <= last_seq, entry 0 is 0 and entry K-1 is the start of
 * a line with seq K; *ret_after is then where line K ends. Only those lines are read: a clean
 * open does not scan the ledger. An index of another version is not usable here: the daemon
 * migrates older ones before it opens ledgers (migrate.h) and refuses newer ones, so what is
 * left (a version-0 index of a group adopted later, garbage) is rebuilt. */
static int index_usable(struct ledger *l, uint64_t end, uint64_t last_seq, uint64_t *ret_k, uint64_t *ret_after) {
        struct line_reader rd = { .fd = l->fd, .end = end };
        uint8_t header[LEDGER_INDEX_HEADER_SIZE], want[LEDGER_INDEX_HEADER_SIZE];
        const char *line, *why;
        uint64_t k, first, offset, seq, at;
        struct stat st;
        size_t len;
        char before;
        int r;

        if (fstat(l->index_fd, &st) < 0)
                return negative_errno();
        if ((uint64_t) st.st_size < LEDGER_INDEX_HEADER_SIZE)
                return 0;
        r = pread_full(l->index_fd, header, sizeof header, 0);
        if (r < 0)
                return r;
        ledger_index_header_init(want);
        if (memcmp(header, want, sizeof header) != 0)
                return 0;
        k = ((uint64_t) st.st_size - LEDGER_INDEX_HEADER_SIZE) / sizeof(uint64_t);
        if (k == 0 || k > last_seq)
                return 0;
        r = index_get(l->index_fd, 0, &first);
        if (r < 0)
                return r;
        r = index_get(l->index_fd, k - 1, &offset);
        if (r < 0)
                return r;
        if (first != 0 || offset >= end)
                return 0;
        if (offset > 0) {
                r = pread_full(l->fd, &before, 1, offset - 1);
                if (r < 0)
                        return r;
                if (before != '\n')
                        return 0;
        }
        rd.next = offset;
        r = line_reader_next(&rd, &line, &len, &at);
        if (r == 1)
                r = parse_line(l->tok, line, len, &seq, NULL, &why) == 0 && seq == k;
        else if (r == -E2BIG || r == -ENODATA)
                r = 0;
        line_reader_done(&rd);
        if (r <= 0)
                return r;
        *ret_k = k;
        *ret_after = offset + len + 1;
        return 1;
}

static int ledger_index(struct ledger *l, uint64_t end, uint64_t last_seq, struct ledger_recovery *rec) {
        uint64_t k = 0, after = 0, count = 0;
        int r;

        if (last_seq == 0)
                return index_reset(l);

        r = index_usable(l, end, last_seq, &k, &after);
        if (r < 0)
                return r;
        if (r == 0) {
                rec->index_rebuilt = true;
                k = 0;
                after = 0;
                r = index_reset(l);
                if (r < 0)
                        return r;
        }
        r = scan_and_index(l, after, end, k + 1, rec, &count);
        if (r < 0) {
                (void) index_reset(l); /* unverified: let the next open rebuild it */
                return r;
        }
        if (k + count != last_seq)
                return report_corrupt(rec, end, -EBADMSG, "ledger has %" PRIu64 " events, last seq is %" PRIu64,
                                      k + count, last_seq);
        return 0;
}

static int open_index(struct ledger *l, const char *dir) {
        _cleanup_free_ char *state = NULL, *path = NULL;

        if (asprintf(&state, "%s/state", dir) < 0 || asprintf(&path, "%s/state/ledger.idx", dir) < 0)
                return -ENOMEM;
        if (mkdir(state, 0700) < 0 && errno != EEXIST)
                return negative_errno();
        l->index_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
        if (l->index_fd < 0)
                return negative_errno();
        return 0;
}

void ledger_close(struct ledger *l) {
        if (!l)
                return;
        if (l->fd >= 0)
                close(l->fd);
        if (l->index_fd >= 0)
                close(l->index_fd);
        if (l->tok)
                json_tokener_free(l->tok);
        free(l->path);
        free(l->group_id);
        free(l->line);
        free(l);
}

static inline void ledger_closep(struct ledger **l) {
        ledger_close(*l);
}

int ledger_open(const char *dir, const char *group_id, struct ledger **ret, struct ledger_recovery *rec) {
        _cleanup_(ledger_closep) struct ledger *l = NULL;
        struct ledger_recovery dummy;
        uint64_t end = 0, last_seq = 0;
        struct stat st;
        int r;

        if (!rec)
                rec = &dummy;
        memset(rec, 0, sizeof *rec);
        if (!dir || !group_id || !ret || group_id[0] == '\0' || strlen(group_id) > LEDGER_NAME_MAX)
                return -EINVAL;

        l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        l->fd = l->index_fd = -1;
        l->group_id = strdup(group_id);
        l->tok = tokener_new();
        if (!l->group_id || !l->tok || asprintf(&l->path, "%s/ledger.jsonl", dir) < 0)
                return -ENOMEM;

        l->fd = open(l->path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
        if (l->fd < 0)
                return negative_errno();
        /* One writer per ledger: a second opener would cut what the first is appending. */
        if (flock(l->fd, LOCK_EX | LOCK_NB) < 0)
                return errno == EWOULDBLOCK ? -EBUSY : negative_errno();
        if (fstat(l->fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        r = open_index(l, dir);
        if (r < 0)
                return r;

        r = check_tail(l, (uint64_t) st.st_size, &end, &last_seq, rec);
        if (r < 0)
                return r;
        r = ledger_index(l, end, last_seq, rec);
        if (r < 0)
                return r;

        if (rec->truncated) {
                r = truncate_fd(l->fd, end);
                if (r < 0)
                        return r;
                if (fsync(l->fd) < 0)
                        return negative_errno();
                log_debug("ledger %s: cut %" PRIu64 " bytes at offset %" PRIu64 " (%s)", l->path,
                          rec->truncated_bytes, end, rec->reason);
        }
        if (rec->index_rebuilt)
                log_debug("ledger %s: index rebuilt (%" PRIu64 " events)", l->path, last_seq);

        l->size = end;
        l->last_seq = last_seq;
        *ret = l;
        l = NULL;
        return 0;
}

uint64_t ledger_last_seq(const struct ledger *l) {
        return l ? l->last_seq : 0;
}

uint64_t ledger_size_bytes(const struct ledger *l) {
        return l ? l->size : 0;
}

const char *ledger_path(const struct ledger *l) {
        return l ? l->path : NULL;
}

/* --- append ------------------------------------------------------------------------------ */

static bool name_valid(const char *s) {
        size_t n = s ? strnlen(s, LEDGER_NAME_MAX + 1) : 0;
        return n > 0 && n <= LEDGER_NAME_MAX;
}

/* json-c writes NaN/Infinity as bare words no strict JSON reader (ours included) accepts, and
 * would write nesting deeper than our reader allows: refuse both before anything is written. */
static bool data_valid(struct json_object *o, unsigned depth_left) {
        switch (json_object_get_type(o)) {
        case json_type_double:
                return isfinite(json_object_get_double(o));
        case json_type_object: {
                if (depth_left == 0)
                        return false;
                json_object_object_foreach(o, key, value) {
                        (void) key;
                        if (!data_valid(value, depth_left - 1))
                                return false;
                }
                return true;
        }
        case json_type_array: {
                size_t n = json_object_array_length(o);
                if (depth_left == 0)
                        return false;
                for (size_t i = 0; i < n; i++)
                        if (!data_valid(json_object_array_get_idx(o, i), depth_left - 1))
                                return false;
                return true;
        }
        default:
                return true;
        }
}

/* Strict UTF-8 (no overlong forms, surrogates or code points above U+10FFFF): the reader
 * validates UTF-8, so what we write must pass. */
static bool utf8_valid(const char *s, size_t len) {
        const unsigned char *p = (const unsigned char *) s, *e = p + len;

        while (p < e) {
                uint32_t c = *p, min;
                size_t k;

                if (c < 0x80) {
                        p++;
                        continue;
                }
                if ((c & 0xE0) == 0xC0)
                        k = 1, c &= 0x1F, min = 0x80;
                else if ((c & 0xF0) == 0xE0)
                        k = 2, c &= 0x0F, min = 0x800;
                else if ((c & 0xF8) == 0xF0)
                        k = 3, c &= 0x07, min = 0x10000;
                else
                        return false;
                if ((size_t) (e - p) <= k)
                        return false;
                for (size_t i = 1; i <= k; i++) {
                        if ((p[i] & 0xC0) != 0x80)
                                return false;
                        c = (c << 6) | (p[i] & 0x3Fu);
                }
                if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
                        return false;
                p += k + 1;
        }
        return true;
}

static int add_field(struct json_object *ev, const char *key, struct json_object *value) {
        if (!value)
                return -ENOMEM;
        if (json_object_object_add(ev, key, value) < 0) {
                json_object_put(value);
                return -ENOMEM;
        }
        return 0;
}

/* Puts the file back to `size` after a failed append. If even that fails, a partial line may
 * remain: refuse further appends so it stays the last line, which the next open cuts. */
static void append_rollback(struct ledger *l, uint64_t size) {
        if (truncate_fd(l->fd, size) < 0)
                l->broken = true;
}

int ledger_append(struct ledger *l, const char *kind, const char *by, struct json_object *data,
                  struct json_object **ret_event) {
        _cleanup_json_ struct json_object *ev = NULL;
        char id[EVENT_ID_LEN + 1], ts[32];
        uint64_t now, seq, le;
        const char *s;
        size_t len, done = 0;
        int r;

        if (!l || !name_valid(kind) || !name_valid(by))
                return -EINVAL;
        if (data && (!json_object_is_type(data, json_type_object) || !data_valid(data, LEDGER_DATA_DEPTH_MAX)))
                return -EINVAL;
        if (l->broken)
                return -EIO;

        now = now_usec(CLOCK_REALTIME);
        r = event_id_new_at(id, now / USEC_PER_MSEC);
        if (r < 0)
                return r;
        format_timestamp_iso(ts, sizeof ts, now);
        seq = l->last_seq + 1;

        ev = json_object_new_object();
        if (!ev)
                return -ENOMEM;
        if ((r = add_field(ev, "v", json_object_new_int(LEDGER_FORMAT_VERSION))) < 0 ||
            (r = add_field(ev, "id", json_object_new_string(id))) < 0 ||
            (r = add_field(ev, "seq", json_object_new_int64((int64_t) seq))) < 0 ||
            (r = add_field(ev, "ts", json_object_new_string(ts))) < 0 ||
            (r = add_field(ev, "kind", json_object_new_string(kind))) < 0 ||
            (r = add_field(ev, "group_id", json_object_new_string(l->group_id))) < 0 ||
            (r = add_field(ev, "by", json_object_new_string(by))) < 0 ||
            (r = add_field(ev, "data", data ? json_object_get(data) : json_object_new_object())) < 0)
                return r;

        s = json_object_to_json_string_length(ev, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
        if (!s)
                return -ENOMEM;
        if (len > LEDGER_LINE_MAX)
                return -E2BIG;
        /* json-c escapes control characters, so a '\n' here would be a json-c bug; check anyway:
         * one event must stay one line. */
        if (memchr(s, '\n', len) || !utf8_valid(s, len))
                return -EINVAL;

        if (l->line_cap < len + 1) {
                char *b = realloc(l->line, len + 1);
                if (!b)
                        return -ENOMEM;
                l->line = b;
                l->line_cap = len + 1;
        }
        memcpy(l->line, s, len);
        l->line[len] = '\n';

        /* One write() of the whole line; with O_APPEND, a short write is continued in place. */
        while (done < len + 1) {
                ssize_t k = write(l->fd, l->line + done, len + 1 - done);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0) {
                        r = k < 0 ? negative_errno() : -EIO;
                        append_rollback(l, l->size);
                        return r;
                }
                done += (size_t) k;
        }

        le = htole64(l->size);
        r = pwrite_full(l->index_fd, &le, sizeof le, INDEX_POS(seq - 1));
        if (r < 0) {
                /* Nobody was told about this event yet (it is not even synced): undo it so the
                 * index and the ledger agree. */
                append_rollback(l, l->size);
                return r;
        }

        l->size += len + 1;
        l->last_seq = seq;
        if (ret_event) {
                *ret_event = ev;
                ev = NULL;
        }
        return 0;
}

int ledger_sync(struct ledger *l) {
        if (!l)
                return -EINVAL;
        if (fdatasync(l->fd) < 0)
                return negative_errno();
        return 0;
}

/* --- reads ------------------------------------------------------------------------------- */

int ledger_read(struct ledger *l, uint64_t seq, struct json_object **ret) {
        _cleanup_free_ char *buf = NULL;
        uint64_t entries[2], start, nl, got;
        const char *why;
        size_t len;
        int r;

        if (!l || !ret)
                return -EINVAL;
        if (seq == 0 || seq > l->last_seq)
                return -ENOENT;

        /* This line's offset and, unless it is the last, the next line's: where this one ends. */
        r = pread_full(l->index_fd, entries, seq < l->last_seq ? 2 * sizeof(uint64_t) : sizeof(uint64_t),
                       INDEX_POS(seq - 1));
        if (r < 0)
                return r == -ENODATA ? -EBADMSG : r;
        start = le64toh(entries[0]);
        nl = (seq < l->last_seq ? le64toh(entries[1]) : l->size) - 1;
        if (start > nl || nl >= l->size || nl - start > LEDGER_LINE_MAX)
                return -EBADMSG; /* the index does not describe this ledger: reopen rebuilds it */
        len = (size_t) (nl - start);

        buf = malloc(len + 1);
        if (!buf)
                return -ENOMEM;
        r = pread_full(l->fd, buf, len + 1, start);
        if (r < 0)
                return r;
        if (buf[len] != '\n')
                return -EBADMSG;
        r = parse_line(l->tok, buf, len, &got, ret, &why);
        if (r < 0)
                return r;
        if (got != seq) {
                json_object_put(*ret);
                *ret = NULL;
                return -EBADMSG;
        }
        return 0;
}

/* The event passed to cb is ours: cb takes a reference (json_object_get) to keep it. */
int ledger_read_range(struct ledger *l, uint64_t after_seq, size_t limit, ledger_event_cb cb, void *userdata) {
        struct line_reader rd = { .end = 0 };
        uint64_t start, count, expected;
        int r, visited = 0;

        if (!l || !cb)
                return -EINVAL;
        if (after_seq >= l->last_seq || limit == 0)
                return 0;
        count = l->last_seq - after_seq;
        if (count > limit)
                count = limit;
        if (count > INT_MAX)
                count = INT_MAX;

        r = index_get(l->index_fd, after_seq, &start);
        if (r < 0)
                return r == -ENODATA ? -EBADMSG : r;
        if (start >= l->size || (start > 0 && after_seq == 0))
                return -EBADMSG;

        rd.fd = l->fd;
        rd.next = start;
        rd.end = l->size;
        for (expected = after_seq + 1; (uint64_t) visited < count; expected++) {
                _cleanup_json_ struct json_object *ev = NULL;
                const char *line, *why;
                uint64_t offset, seq;
                size_t len;

                r = line_reader_next(&rd, &line, &len, &offset);
                if (r == 0 || r == -E2BIG || r == -ENODATA) {
                        r = -EBADMSG;
                        break;
                }
                if (r < 0)
                        break;
                r = parse_line(l->tok, line, len, &seq, &ev, &why);
                if (r < 0)
                        break;
                if (seq != expected) {
                        r = -EBADMSG;
                        break;
                }
                r = cb(ev, userdata);
                if (r < 0)
                        break;
                visited++;
                r = visited;
        }
        line_reader_done(&rd);
        return r;
}

int ledger_tail(struct ledger *l, size_t n, ledger_event_cb cb, void *userdata) {
        if (!l || !cb)
                return -EINVAL;
        if ((uint64_t) n > l->last_seq)
                n = (size_t) l->last_seq;
        return ledger_read_range(l, l->last_seq - n, n, cb, userdata);
}

/* --- background verification ------------------------------------------------------------ */

struct ledger_verify {
        struct line_reader rd;
        uint64_t expected;
};

int ledger_verify_begin(struct ledger *l, struct ledger_verify **ret) {
        struct ledger_verify *v = calloc(1, sizeof *v);

        if (!v)
                return -ENOMEM;
        v->rd = (struct line_reader){ .fd = l->fd, .next = 0, .end = l->size };
        v->expected = 1;
        *ret = v;
        return 0;
}

int ledger_verify_step(struct ledger *l, struct ledger_verify *v, size_t max_lines, struct ledger_recovery *rec) {
        for (size_t i = 0; i < max_lines; i++) {
                const char *line, *why = NULL;
                uint64_t offset, seq;
                size_t len;
                int r = line_reader_next(&v->rd, &line, &len, &offset);

                if (r == 0)
                        return 1;
                if (r == -E2BIG)
                        return report_corrupt(rec, offset, -EBADMSG, "line longer than 1 MiB");
                if (r == -ENODATA)
                        return report_corrupt(rec, offset, -EBADMSG, "no trailing newline");
                if (r < 0)
                        return r;
                r = parse_line(l->tok, line, len, &seq, NULL, &why);
                if (r == -EBADMSG || r == -EPROTONOSUPPORT)
                        return report_corrupt(rec, offset, r, "%s", why);
                if (r < 0)
                        return r;
                if (seq != v->expected)
                        return report_corrupt(rec, offset, -EBADMSG, "seq %" PRIu64 " after %" PRIu64, seq,
                                              v->expected - 1);
                v->expected++;
        }
        return 0;
}

void ledger_verify_free(struct ledger_verify *v) {
        if (!v)
                return;
        line_reader_done(&v->rd);
        free(v);
}
