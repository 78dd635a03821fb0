/* Shared pieces of the platform codecs (platform.h). */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "platform.h"

void platform_message_done(struct platform_message *m) {
        free(m->id);
        free(m->sender);
        free(m->sender_name);
        free(m->conversation);
        free(m->thread);
        free(m->reply_to);
        free(m->subject);
        free(m->text);
        *m = (struct platform_message){};
}

void platform_messages_free(struct platform_message *v, size_t n) {
        for (size_t i = 0; i < n; i++)
                platform_message_done(&v[i]);
        free(v);
}

int platform_messages_push(struct platform_message **v, size_t *n, struct platform_message *m) {
        struct platform_message *grown = reallocarray(*v, *n + 1, sizeof **v);

        if (!grown)
                return -ENOMEM;
        *v = grown;
        grown[(*n)++] = *m;
        *m = (struct platform_message){};
        return 0;
}

void platform_error_from_status(struct platform_error *e, long status) {
        *e = (struct platform_error){ .status = status };
        snprintf(e->code, sizeof e->code, "%ld", status);
        e->retryable = status == 429 || status >= 500 || status == 0;
}

int platform_json_parse(const char *body, size_t len, struct json_object **ret) {
        struct json_tokener *tok;
        struct json_object *o;

        *ret = NULL;
        if (!body || len == 0 || len > PLATFORM_TEXT_MAX * 16 || memchr(body, 0, len))
                return -EBADMSG;
        tok = json_tokener_new_ex(64);
        if (!tok)
                return -ENOMEM;
        o = json_tokener_parse_ex(tok, body, (int) len);
        if (o && json_tokener_get_parse_end(tok) < len) {
                /* Only whitespace may follow the value. */
                for (size_t i = json_tokener_get_parse_end(tok); i < len; i++)
                        if (!strchr(" \t\r\n", body[i])) {
                                json_object_put(o);
                                o = NULL;
                                break;
                        }
        }
        json_tokener_free(tok);
        if (!o)
                return -EBADMSG;
        *ret = o;
        return 0;
}

const char *platform_json_string(struct json_object *obj, const char *key) {
        struct json_object *v;

        if (!obj || !json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

struct json_object *platform_json_object(struct json_object *obj, const char *key) {
        struct json_object *v;

        if (!obj || !json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_object))
                return NULL;
        return v;
}

struct json_object *platform_json_array(struct json_object *obj, const char *key) {
        struct json_object *v;

        if (!obj || !json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_array))
                return NULL;
        return v;
}

bool platform_json_int(struct json_object *obj, const char *key, int64_t *ret) {
        struct json_object *v;

        if (!obj || !json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_int))
                return false;
        errno = 0;
        *ret = json_object_get_int64(v);
        return errno == 0;
}

int platform_strdup_field(const char *s, size_t max, char **ret) {
        size_t n;

        *ret = NULL;
        if (!s)
                return -EBADMSG;
        n = strnlen(s, max + 1);
        if (n == 0 || n > max)
                return -EBADMSG;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f)
                        return -EBADMSG;
        *ret = strndup(s, n);
        return *ret ? 0 : -ENOMEM;
}

/* Length of the UTF-8 sequence starting at p (1 for a stray byte), and its UTF-16 units. */
static size_t utf8_step(const unsigned char *p, size_t left, size_t *units16) {
        size_t n = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3 : (*p & 0xF8) == 0xF0 ? 4 : 1;

        if (n > left)
                n = 1;
        for (size_t i = 1; i < n; i++)
                if ((p[i] & 0xC0) != 0x80) {
                        n = 1;
                        break;
                }
        *units16 = n == 4 ? 2 : 1;
        return n;
}

size_t platform_text_units(const char *text, size_t len, bool utf16) {
        size_t units = 0, u16;

        for (size_t i = 0; i < len;) {
                i += utf8_step((const unsigned char *) text + i, len - i, &u16);
                units += utf16 ? u16 : 1;
        }
        return units;
}

int platform_chunk_text(const char *text, size_t len, size_t limit, bool utf16, size_t **ret_lengths) {
        size_t *lengths = NULL, n = 0, start = 0;

        if (limit < 2)
                return -EINVAL;
        do {
                size_t i = start, units = 0, brk_nl = 0, brk_sp = 0, end;

                /* Walk up to limit units; remember the last newline and space. */
                while (i < len) {
                        size_t u16, step = utf8_step((const unsigned char *) text + i, len - i, &u16);
                        size_t add = utf16 ? u16 : 1;
                        if (units + add > limit)
                                break;
                        units += add;
                        i += step;
                        if (text[i - 1] == '\n')
                                brk_nl = i;
                        else if (text[i - 1] == ' ')
                                brk_sp = i;
                }
                end = i;
                if (end < len) {
                        /* Break at a newline or space in the second half of the piece, else hard. */
                        size_t half = start + (end - start) / 2;
                        if (brk_nl > half)
                                end = brk_nl;
                        else if (brk_sp > half)
                                end = brk_sp;
                }
                size_t *grown = reallocarray(lengths, n + 1, sizeof *lengths);
                if (!grown) {
                        free(lengths);
                        return -ENOMEM;
                }
                lengths = grown;
                lengths[n++] = end - start;
                start = end;
        } while (start < len);
        *ret_lengths = lengths;
        return (int) MIN(n, (size_t) 0x7fffffff);
}
