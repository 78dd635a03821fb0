/* Incremental parsers for streamed HTTP bodies: Server-Sent Events (OpenAI, Anthropic) and
 * newline-delimited JSON (Ollama). Bytes go in as they arrive, split anywhere (even inside a
 * "\r\n"); complete events come out through a callback. Every line and every event is bounded,
 * so a peer that never sends a newline costs at most the bound, then an error. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

enum stream_format {
        STREAM_SSE,    /* text/event-stream (WHATWG HTML, "server-sent events") */
        STREAM_NDJSON, /* one JSON value per line; blank lines are skipped */
};

/* One complete event. SSE: event is the "event:" field ("message" when absent) and data the
 * "data:" lines joined with '\n'. NDJSON: event is NULL and data one line without its end.
 * data is NUL-terminated at data[len]. A negative return stops parsing; stream_parser_feed()
 * returns it. */
typedef int (*stream_event_fn)(const char *event, const char *data, size_t len, void *userdata);

struct stream_parser {
        enum stream_format format;
        size_t max_line;  /* longest line accepted (without its end) */
        size_t max_event; /* SSE: most data bytes in one event */
        stream_event_fn on_event;
        void *userdata;

        char *line; /* the line being read */
        size_t line_len, line_cap;
        bool after_cr; /* the last byte was '\r': a '\n' right after it ends nothing more */
        bool failed;
        char *data; /* SSE: data of the event being read */
        size_t data_len, data_cap;
        bool has_data;
        char event[64];
        size_t events; /* dispatched so far */
};

#define STREAM_LINE_MAX_DEFAULT (256u * 1024u)

void stream_parser_init(struct stream_parser *p, enum stream_format format, size_t max_line, size_t max_event,
                        stream_event_fn on_event, void *userdata);
void stream_parser_done(struct stream_parser *p);

/* Feeds bytes. 0, or -EMSGSIZE (a line or event over its bound), -ENOMEM, -EBADMSG (a NUL
 * byte), or what on_event returned. After an error every later call fails the same way. */
int stream_parser_feed(struct stream_parser *p, const char *buf, size_t len);

/* The body ended. NDJSON: a last line without '\n' is still an event. SSE: an event not ended
 * by a blank line is dropped, as the SSE rules say. Returns like stream_parser_feed(). */
int stream_parser_finish(struct stream_parser *p);

/* Bytes held for an unfinished line (true: the body stopped in the middle of something). */
bool stream_parser_pending(const struct stream_parser *p);
