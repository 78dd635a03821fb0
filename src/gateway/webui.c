/* Lookup of the web UI's embedded files (webui.h); the bytes are in the generated
 * webui-files.c. */

#include <string.h>

#include "webui.h"

bool webui_lookup(const char *name, const unsigned char **data, size_t *len, const char **content_type) {
        if (!name)
                return false;
        /* A handful of files: a linear scan is the simplest correct thing. */
        for (size_t i = 0; i < webui_files_count; i++) {
                const struct webui_file *f = &webui_files[i];
                if (strcmp(f->name, name) != 0)
                        continue;
                *data = f->data;
                *len = f->len;
                *content_type = f->content_type;
                return true;
        }
        return false;
}
