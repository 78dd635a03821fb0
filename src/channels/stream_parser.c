/* SSE and NDJSON parsing, incremental and bounded (see stream_parser.h). The SSE rules are the
 * WHATWG HTML ones: lines end with "\r\n", "\n" or "\r"; ":" starts a comment; "field: value"
 * loses one leading space of the value; "data" lines accumulate; a blank line dispatches. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "stream_parser.h"

void stream_parser_init(struct stream_parser *p, enum stream_format format, size_t max_line, size_t max_event,
                        stream_event_fn on_event, void *userdata) {
        *p = (struct stream_parser){
                .format = format,
                .max_line = max_line ? max_line : STREAM_LINE_MAX_DEFAULT,
                .max_event = max_event ? max_event : STREAM_LINE_MAX_DEFAULT,
                .on_event = on_event,
                .userdata = userdata,
        };
}

void stream_parser_done(struct stream_parser *p) {
        free(p->line);
        free(p->data);
        p->line = p->data = NULL;
        p->line_len = p->line_cap = p->data_len = p->data_cap = 0;
}

static int grow(char **buf, size_t *cap, size_t need) {
        size_t n;
        char *b;

        if (need <= *cap)
                return 0;
        n = *cap ? *cap : 256;
        while (n < need)
                n *= 2;
        b = realloc(*buf, n);
        if (!b)
                return -ENOMEM;
        *buf = b;
        *cap = n;
        return 0;
}

static void sse_reset_event(struct stream_parser *p) {
        p->data_len = 0;
        p->has_data = false;
        p->event[0] = 0;
}

static int sse_dispatch(struct stream_parser *p) {
        int r;

        if (!p->has_data) {
                sse_reset_event(p);
                return 0;
        }
        /* The data buffer ends with the '\n' its last line added: not part of the data. */
        if (p->data_len > 0)
                p->data_len--;
        p->data[p->data_len] = 0;
        p->events++;
        r = p->on_event(*p->event ? p->event : "message", p->data, p->data_len, p->userdata);
        sse_reset_event(p);
        return r;
}

static int sse_line(struct stream_parser *p, const char *line, size_t len) {
        const char *colon, *value;
        size_t field_len, value_len;
        int r;

        if (len == 0)
                return sse_dispatch(p);
        if (line[0] == ':')
                return 0; /* comment (keep-alives are sent this way) */
        colon = memchr(line, ':', len);
        field_len = colon ? (size_t) (colon - line) : len;
        value = colon ? colon + 1 : line + len;
        value_len = (size_t) (line + len - value);
        if (value_len > 0 && value[0] == ' ')
                value++, value_len--;

        if (field_len == 4 && memcmp(line, "data", 4) == 0) {
                if (p->data_len + value_len + 1 > p->max_event)
                        return -EMSGSIZE;
                r = grow(&p->data, &p->data_cap, p->data_len + value_len + 2);
                if (r < 0)
                        return r;
                memcpy(p->data + p->data_len, value, value_len);
                p->data_len += value_len;
                p->data[p->data_len++] = '\n';
                p->has_data = true;
        } else if (field_len == 5 && memcmp(line, "event", 5) == 0) {
                if (value_len >= sizeof p->event)
                        return -EMSGSIZE;
                memcpy(p->event, value, value_len);
                p->event[value_len] = 0;
        }
        /* "id", "retry" and unknown fields: nothing we use. */
        return 0;
}

static int ndjson_line(struct stream_parser *p, char *line, size_t len) {
        size_t start = 0;

        while (start < len && (line[start] == ' ' || line[start] == '\t'))
                start++;
        if (start == len)
                return 0;
        p->events++;
        return p->on_event(NULL, line + start, len - start, p->userdata);
}

static int end_line(struct stream_parser *p) {
        int r;

        r = grow(&p->line, &p->line_cap, p->line_len + 1);
        if (r < 0)
                return r;
        p->line[p->line_len] = 0;
        /* A UTF-8 byte order mark may start the stream; it is not part of the first line. */
        if (p->events == 0 && !p->has_data && p->line_len >= 3 && memcmp(p->line, "\xEF\xBB\xBF", 3) == 0) {
                memmove(p->line, p->line + 3, p->line_len - 3 + 1);
                p->line_len -= 3;
        }
        r = p->format == STREAM_SSE ? sse_line(p, p->line, p->line_len) : ndjson_line(p, p->line, p->line_len);
        p->line_len = 0;
        return r;
}

int stream_parser_feed(struct stream_parser *p, const char *buf, size_t len) {
        size_t i = 0;
        int r;

        if (p->failed)
                return -EPROTO;
        while (i < len) {
                size_t run = i;

                if (p->after_cr) {
                        p->after_cr = false;
                        if (buf[i] == '\n') {
                                i++;
                                continue;
                        }
                }
                /* The longest run of ordinary bytes, copied at once. */
                while (run < len && buf[run] != '\n' && buf[run] != '\r' && buf[run] != 0)
                        run++;
                if (run > i) {
                        size_t n = run - i;
                        if (p->line_len + n > p->max_line) {
                                p->failed = true;
                                return -EMSGSIZE;
                        }
                        r = grow(&p->line, &p->line_cap, p->line_len + n + 1);
                        if (r < 0) {
                                p->failed = true;
                                return r;
                        }
                        memcpy(p->line + p->line_len, buf + i, n);
                        p->line_len += n;
                        i = run;
                }
                if (i == len)
                        break;
                if (buf[i] == 0) {
                        p->failed = true;
                        return -EBADMSG;
                }
                p->after_cr = buf[i] == '\r';
                i++;
                r = end_line(p);
                if (r < 0) {
                        p->failed = true;
                        return r;
                }
        }
        return 0;
}

int stream_parser_finish(struct stream_parser *p) {
        int r = 0;

        if (p->failed)
                return -EPROTO;
        if (p->format == STREAM_NDJSON && p->line_len > 0)
                r = end_line(p);
        if (r < 0)
                p->failed = true;
        return r;
}

bool stream_parser_pending(const struct stream_parser *p) {
        return p->line_len > 0 || p->has_data;
}
