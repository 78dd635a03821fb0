/* What the provider wire formats share (see llm_wire.h): the reply buffer and its clean-up,
 * error codes, URLs and small JSON helpers. */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "llm_wire.h"
#include "macro.h"
#include "proto.h"

static const char *const error_names[_LLM_ERR_MAX] = {
        [LLM_OK] = "ok",
        [LLM_ERR_AUTH] = "auth",
        [LLM_ERR_NOT_FOUND] = "not_found",
        [LLM_ERR_CONTEXT] = "context_too_long",
        [LLM_ERR_BAD_REQUEST] = "bad_request",
        [LLM_ERR_RATE_LIMITED] = "rate_limited",
        [LLM_ERR_SERVER] = "server_error",
        [LLM_ERR_TIMEOUT] = "timeout",
        [LLM_ERR_UNREACHABLE] = "unreachable",
        [LLM_ERR_STREAM_CUT] = "stream_cut",
        [LLM_ERR_BAD_RESPONSE] = "bad_response",
        [LLM_ERR_CONFIG] = "config",
        [LLM_ERR_CANCELLED] = "cancelled",
        [LLM_ERR_INTERNAL] = "internal",
};

const char *llm_error_code_to_string(enum llm_error_code c) {
        return (size_t) c < ELEMENTSOF(error_names) && error_names[c] ? error_names[c] : "internal";
}

bool llm_error_retryable(enum llm_error_code c) {
        /* A timeout already took the whole [providers.NAME] timeout: trying again would multiply
         * the wait for a server that does not answer. */
        return c == LLM_ERR_RATE_LIMITED || c == LLM_ERR_SERVER || c == LLM_ERR_UNREACHABLE ||
               c == LLM_ERR_STREAM_CUT;
}

void llm_http_done(struct llm_http *h) {
        free(h->url);
        free(h->body);
        for (size_t i = 0; i < LLM_HEADERS_MAX; i++)
                free(h->headers[i]);
        *h = (struct llm_http){};
}

int llm_header(struct llm_http *h, const char *fmt, ...) {
        va_list ap;
        size_t i;
        int r;

        for (i = 0; i < LLM_HEADERS_MAX && h->headers[i]; i++)
                ;
        if (i == LLM_HEADERS_MAX)
                return -E2BIG;
        va_start(ap, fmt);
        r = vasprintf(&h->headers[i], fmt, ap);
        va_end(ap);
        if (r < 0) {
                h->headers[i] = NULL;
                return -ENOMEM;
        }
        return 0;
}

void llm_reply_done(struct llm_reply *r) {
        free(r->text);
        *r = (struct llm_reply){};
}

int llm_reply_append(struct llm_reply *r, const char *s, size_t len) {
        /* Raw bytes are kept (a character may come in two pieces) and cleaned up once, at the
         * end; a few bytes past the limit tell the clean-up that there was more. */
        size_t room = LLM_REPLY_MAX + 4 - r->text_len;

        if (len > room) {
                r->truncated = true;
                len = room;
        }
        if (len == 0)
                return 0;
        if (r->text_len + len + 1 > r->text_cap) {
                size_t cap = r->text_cap ? r->text_cap : 1024;
                char *n;
                while (cap < r->text_len + len + 1)
                        cap *= 2;
                n = realloc(r->text, cap);
                if (!n)
                        return -ENOMEM;
                r->text = n;
                r->text_cap = cap;
        }
        memcpy(r->text + r->text_len, s, len);
        r->text_len += len;
        r->text[r->text_len] = 0;
        return 0;
}

/* Decodes one UTF-8 character at p (n bytes left); 0 for an invalid sequence. The rules are
 * messages.c's text_is_clean(): no overlong forms, surrogates or code points past U+10FFFF. */
static size_t utf8_decode(const unsigned char *p, size_t n, unsigned *ret) {
        unsigned c = p[0], cp, need;

        if (c < 0x80) {
                *ret = c;
                return 1;
        }
        if (c >= 0xc2 && c <= 0xdf)
                need = 1, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
                need = 2, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
                need = 3, cp = c & 0x07;
        else
                return 0;
        if (n < need + 1)
                return 0;
        for (unsigned i = 1; i <= need; i++) {
                if ((p[i] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (p[i] & 0x3f);
        }
        if ((need == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)))
                return 0;
        *ret = cp;
        return need + 1;
}

const char *llm_reply_text(struct llm_reply *r) {
        static const char note[] = "\n[reply truncated]";
        const size_t limit = LLM_REPLY_MAX - (sizeof note - 1);
        const unsigned char *in = (const unsigned char *) (r->text ? r->text : "");
        size_t n = r->text_len, o = 0, start, end;
        bool cut = r->truncated;
        char *out;

        out = malloc(LLM_REPLY_MAX + 1);
        if (!out)
                return NULL;
        for (size_t i = 0; i < n;) {
                unsigned cp;
                size_t k = utf8_decode(in + i, n - i, &cp), w;

                if (k == 0) {
                        /* U+FFFD for a byte that starts no valid character. */
                        k = 1;
                        cp = 0xfffd;
                }
                if ((cp < 0x20 && cp != '\t' && cp != '\n') || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f)) {
                        i += k;
                        continue;
                }
                w = cp == 0xfffd && k == 1 ? 3 : k;
                if (o + w > limit) {
                        cut = true;
                        break;
                }
                if (cp == 0xfffd && k == 1)
                        memcpy(out + o, "\xEF\xBF\xBD", 3);
                else
                        memcpy(out + o, in + i, k);
                o += w;
                i += k;
        }
        /* Models often begin or end with blank lines; a chat message should not. */
        for (start = 0; start < o && (out[start] == ' ' || out[start] == '\n' || out[start] == '\t'); start++)
                ;
        for (end = o; end > start && (out[end - 1] == ' ' || out[end - 1] == '\n' || out[end - 1] == '\t'); end--)
                ;
        memmove(out, out + start, end - start);
        o = end - start;
        if (cut && o > 0) {
                memcpy(out + o, note, sizeof note - 1);
                o += sizeof note - 1;
        }
        out[o] = 0;
        free(r->text);
        r->text = out;
        r->text_len = o;
        r->text_cap = LLM_REPLY_MAX + 1;
        r->truncated = cut;
        return out;
}

const struct llm_wire *llm_wire_for_kind(const char *kind) {
        if (streq(kind, "openai"))
                return &llm_wire_openai;
        if (streq(kind, "anthropic"))
                return &llm_wire_anthropic;
        if (streq(kind, "ollama"))
                return &llm_wire_ollama;
        return NULL;
}

const char *llm_base_url(const struct config_provider *p) {
        if (p->base_url)
                return p->base_url;
        if (streq(p->kind, "anthropic"))
                return "https://api.anthropic.com";
        if (streq(p->kind, "ollama"))
                return "http://localhost:11434";
        return "https://api.openai.com/v1";
}

char *llm_url(const struct config_provider *p, const char *path) {
        const char *base = llm_base_url(p);
        size_t n = strlen(base);
        char *url;

        while (n > 0 && base[n - 1] == '/')
                n--;
        if (asprintf(&url, "%.*s%s", (int) n, base, path) < 0)
                return NULL;
        return url;
}

struct json_object *llm_json_parse(const char *data, size_t len) {
        struct json_tokener *tok;
        struct json_object *o;

        if (len > INT32_MAX)
                return NULL;
        tok = json_tokener_new_ex(64);
        if (!tok)
                return NULL;
        o = json_tokener_parse_ex(tok, data, (int) len);
        /* One complete value and nothing after it but white space. */
        if (o) {
                size_t end = json_tokener_get_parse_end(tok);
                while (end < len && (data[end] == ' ' || data[end] == '\t' || data[end] == '\r' || data[end] == '\n'))
                        end++;
                if (end != len) {
                        json_object_put(o);
                        o = NULL;
                }
        }
        json_tokener_free(tok);
        return o;
}

const char *llm_json_str(struct json_object *o, const char *key) {
        struct json_object *v;

        if (!o || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v) ||
            !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

struct json_object *llm_chat_messages(const struct llm_request *req) {
        struct json_object *messages = json_object_new_array();

        if (!messages)
                return NULL;
        if (req->system && *req->system) {
                struct json_object *m = json_object_new_object();
                json_object_object_add(m, "role", json_object_new_string("system"));
                json_object_object_add(m, "content", json_object_new_string(req->system));
                json_object_array_add(messages, m);
        }
        for (size_t i = 0; i < req->n_messages; i++) {
                struct json_object *m = json_object_new_object();
                json_object_object_add(m, "role", json_object_new_string(req->messages[i].role));
                json_object_object_add(m, "content", json_object_new_string(req->messages[i].content));
                json_object_array_add(messages, m);
        }
        return messages;
}

int llm_json_body(struct json_object *body, struct llm_http *ret) {
        const char *text = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);

        if (!text)
                return -ENOMEM;
        ret->body = strdup(text);
        if (!ret->body)
                return -ENOMEM;
        ret->body_len = strlen(ret->body);
        return 0;
}

bool llm_message_is_context_error(const char *m) {
        static const char *const phrases[] = {
                "context length", "context_length", "context window", "prompt is too long", "too many tokens",
                "maximum context", "input is too long", "exceeds the context",
        };

        if (!m)
                return false;
        for (size_t i = 0; i < ELEMENTSOF(phrases); i++)
                if (strcasestr(m, phrases[i]))
                        return true;
        return false;
}

void llm_error_generic(long status, const char *body, size_t len, struct llm_failure *ret) {
        _cleanup_json_ struct json_object *o = llm_json_parse(body, len);
        struct json_object *err = NULL;
        const char *message = NULL;

        *ret = (struct llm_failure){ .status = status };
        if (o && json_object_object_get_ex(o, "error", &err)) {
                message = json_object_is_type(err, json_type_string) ? json_object_get_string(err)
                                                                       : llm_json_str(err, "message");
        }
        if (message)
                snprintf(ret->message, sizeof ret->message, "%s", message);
        else if (len > 0 && !o)
                /* Not JSON (a proxy's HTML page): its first bytes say more than nothing. */
                snprintf(ret->message, sizeof ret->message, "%.*s", (int) MIN(len, (size_t) 160), body);

        if (status == 401 || status == 403)
                ret->code = LLM_ERR_AUTH;
        else if (status == 404)
                ret->code = LLM_ERR_NOT_FOUND;
        else if (status == 429)
                ret->code = LLM_ERR_RATE_LIMITED;
        else if (status == 408)
                ret->code = LLM_ERR_TIMEOUT;
        else if (status == 413 || llm_message_is_context_error(message))
                ret->code = LLM_ERR_CONTEXT;
        else if (status >= 500)
                ret->code = LLM_ERR_SERVER;
        else if (status >= 400)
                ret->code = LLM_ERR_BAD_REQUEST;
        else
                ret->code = LLM_ERR_BAD_RESPONSE; /* 1xx/3xx: nothing we can use */
        /* Control characters from a provider's message must not reach the journal raw. */
        for (char *c = ret->message; *c; c++)
                if ((unsigned char) *c < 0x20)
                        *c = ' ';
}
