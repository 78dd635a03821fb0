/* Reading API keys (see llm_key.h). */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "fileio.h"
#include "llm_key.h"
#include "llm_wire.h"
#include "macro.h"
#include "paths.h"

static char *key_path(const struct config_provider *p) {
        const char *creds = getenv("CREDENTIALS_DIRECTORY");
        _cleanup_free_ char *home = NULL;
        char *path = NULL;

        if (p->api_key_file) {
                if (strncmp(p->api_key_file, "credential:", 11) == 0)
                        return creds ? path_join(creds, p->api_key_file + 11) : NULL;
                if (p->api_key_file[0] == '/')
                        return strdup(p->api_key_file);
                home = paths_home();
                return home ? path_join(home, p->api_key_file) : NULL;
        }
        if (!creds || asprintf(&path, "%s/provider-%s", creds, p->name) < 0)
                return NULL;
        if (access(path, F_OK) < 0)
                return mfree(path);
        return path;
}

int llm_api_key_read(const struct config_provider *p, char **ret, char **ret_where) {
        _cleanup_free_ char *path = key_path(p), *text = NULL;
        size_t len, start = 0;
        int r;

        *ret = NULL;
        if (ret_where)
                *ret_where = NULL;
        if (!path) {
                if (p->api_key_file)
                        /* "credential:" without $CREDENTIALS_DIRECTORY, or no HOME */
                        return strncmp(p->api_key_file, "credential:", 11) == 0 ? -ENOENT : -ENOMEM;
                return 0;
        }
        if (ret_where) {
                *ret_where = strdup(path);
                if (!*ret_where)
                        return -ENOMEM;
        }
        r = read_file_bounded(path, LLM_KEY_MAX, &text, &len);
        if (r < 0)
                return r == -EFBIG ? -EBADMSG : r;
        while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' ' || text[len - 1] == '\t'))
                text[--len] = 0;
        while (start < len && (text[start] == ' ' || text[start] == '\t'))
                start++;
        if (start == len)
                return -ENODATA;
        /* It goes into an HTTP header: one line of visible characters, nothing that could end
         * the header or start another. */
        for (size_t i = start; i < len; i++)
                if ((unsigned char) text[i] <= 0x20 || (unsigned char) text[i] == 0x7f)
                        return -EBADMSG;
        *ret = strdup(text + start);
        return *ret ? 0 : -ENOMEM;
}
