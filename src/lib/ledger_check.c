/* Streaming ledger verification (see ledger_check.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "ledger.h"
#include "ledger_check.h"
#include "macro.h"

struct ledger_check {
        struct json_tokener *tok; /* reused for every line */
        char *line;     /* the incomplete line carried over between feeds */
        size_t len;     /* bytes of it */
        size_t cap;
        uint64_t line_offset; /* file offset of the first byte of `line` */
        uint64_t bytes;
        uint64_t last_seq;
        int error;
        uint64_t error_offset;
        char why[160];
};

int ledger_check_new(struct ledger_check **ret) {
        struct ledger_check *c = calloc(1, sizeof *c);

        if (!c)
                return -ENOMEM;
        c->tok = ledger_tokener_new();
        if (!c->tok) {
                free(c);
                return -ENOMEM;
        }
        *ret = c;
        return 0;
}

void ledger_check_free(struct ledger_check *c) {
        if (!c)
                return;
        json_tokener_free(c->tok);
        free(c->line);
        free(c);
}

static int fail(struct ledger_check *c, int error, uint64_t offset, const char *fmt, ...) _printf_(4, 5);
static int fail(struct ledger_check *c, int error, uint64_t offset, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(c->why, sizeof c->why, fmt, ap);
        va_end(ap);
        c->error = error;
        c->error_offset = offset;
        return error;
}

static int check_line(struct ledger_check *c, const char *line, size_t len, uint64_t offset) {
        const char *why = NULL;
        uint64_t seq = 0;
        int r = ledger_parse_line_with(c->tok, line, len, &seq, NULL, &why);

        if (r == -EBADMSG || r == -EPROTONOSUPPORT)
                return fail(c, r, offset, "%s", why ? why : "invalid line");
        if (r < 0)
                return r;
        if (seq != c->last_seq + 1)
                return fail(c, -EBADMSG, offset, "seq %" PRIu64 " after %" PRIu64, seq, c->last_seq);
        c->last_seq = seq;
        return 0;
}

static int carry(struct ledger_check *c, const char *p, size_t n) {
        if (c->len + n > LEDGER_LINE_MAX)
                return fail(c, -EBADMSG, c->line_offset, "line longer than 1 MiB");
        if (c->len + n > c->cap) {
                size_t cap = c->cap ? c->cap : 4096;
                char *b;
                while (cap < c->len + n)
                        cap *= 2;
                if (cap > LEDGER_LINE_MAX)
                        cap = LEDGER_LINE_MAX;
                b = realloc(c->line, cap);
                if (!b)
                        return -ENOMEM;
                c->line = b;
                c->cap = cap;
        }
        memcpy(c->line + c->len, p, n);
        c->len += n;
        return 0;
}

int ledger_check_feed(struct ledger_check *c, const void *buf, size_t len) {
        const char *p = buf, *end = p + len;
        int r;

        if (c->error)
                return c->error;
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                uint64_t pos = c->bytes + (uint64_t) (p - (const char *) buf);

                if (c->len == 0)
                        c->line_offset = pos;
                if (!nl) {
                        r = carry(c, p, (size_t) (end - p));
                        if (r < 0)
                                return r;
                        break;
                }
                if (c->len > 0) {
                        r = carry(c, p, (size_t) (nl - p));
                        if (r < 0)
                                return r;
                        r = check_line(c, c->line, c->len, c->line_offset);
                        c->len = 0;
                } else
                        r = check_line(c, p, (size_t) (nl - p), pos);
                if (r < 0)
                        return r;
                p = nl + 1;
        }
        c->bytes += len;
        return 0;
}

int ledger_check_finish(struct ledger_check *c) {
        if (c->error)
                return c->error;
        if (c->len > 0)
                return fail(c, -EBADMSG, c->line_offset, "no trailing newline");
        return 0;
}

uint64_t ledger_check_last_seq(const struct ledger_check *c) {
        return c->last_seq;
}

uint64_t ledger_check_bytes(const struct ledger_check *c) {
        return c->bytes;
}

const char *ledger_check_error(const struct ledger_check *c, uint64_t *ret_offset) {
        if (!c->error)
                return NULL;
        if (ret_offset)
                *ret_offset = c->error_offset;
        return c->why;
}
