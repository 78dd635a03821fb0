/* The web UI's files (src/gateway/webui/), compiled into the gateway at build time by
 * src/gateway/webui-embed.sh, so the page needs nothing at run time but the binary. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* One embedded file; the table is the generated webui-files.c. */
struct webui_file {
        const char *name;         /* "index.html", "app.js", … (no directories) */
        const char *content_type; /* with "; charset=utf-8" for text */
        const unsigned char *data;
        size_t len;
};

extern const struct webui_file webui_files[];
extern const size_t webui_files_count;

/* Finds the file called name (as in /ui/<name>; "index.html" for /). On success *data points
 * at len bytes that live as long as the program, and *content_type names their type. Returns
 * false, leaving the outputs alone, for any other name. */
bool webui_lookup(const char *name, const unsigned char **data, size_t *len, const char **content_type);
