/* E-mail codec (email_codec.h). */

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "email_codec.h"
#include "macro.h"

/* --- a growing byte buffer ------------------------------------------------------------------- */

struct buf {
        char *data;
        size_t len, size;
        bool failed;
};

static void buf_add(struct buf *b, const void *p, size_t n) {
        if (b->failed)
                return;
        if (b->len + n + 1 > b->size) {
                size_t size = MAX(b->size * 2, b->len + n + 64);
                char *grown = realloc(b->data, size);
                if (!grown) {
                        b->failed = true;
                        return;
                }
                b->data = grown;
                b->size = size;
        }
        memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = 0;
}

static void buf_str(struct buf *b, const char *s) {
        buf_add(b, s, strlen(s));
}

static char *buf_steal(struct buf *b, size_t *ret_len) {
        if (b->failed || !b->data) {
                free(b->data);
                if (!b->failed) /* empty */
                        return strdup("");
                return NULL;
        }
        if (ret_len)
                *ret_len = b->len;
        return b->data;
}

/* --- headers ------------------------------------------------------------------------------------ */

struct part {
        const char *headers; /* raw, up to the blank line */
        size_t headers_len;
        const char *body;
        size_t body_len;
};

static void split_part(const char *p, size_t len, struct part *out) {
        *out = (struct part){ .headers = p };
        for (size_t i = 0; i < len; i++) {
                /* A blank line: "\n\n" or "\n\r\n", or a part that starts blank. */
                if ((i == 0 && (p[0] == '\n' || (len > 1 && p[0] == '\r' && p[1] == '\n'))) ||
                    (p[i] == '\n' && i + 1 < len && (p[i + 1] == '\n' || (p[i + 1] == '\r' && i + 2 < len && p[i + 2] == '\n')))) {
                        size_t skip = i == 0 ? (p[0] == '\n' ? 1 : 2) : (p[i + 1] == '\n' ? 2 : 3);
                        out->headers_len = i;
                        out->body = p + i + skip;
                        out->body_len = len - i - skip;
                        return;
                }
        }
        out->headers_len = len;
        out->body = p + len;
}

/* The unfolded value of header `name` (first occurrence), whitespace-trimmed; NULL if absent. */
static char *header_get(const struct part *pt, const char *name) {
        size_t nlen = strlen(name);
        const char *p = pt->headers, *end = pt->headers + pt->headers_len;

        while (p < end) {
                const char *eol = memchr(p, '\n', (size_t) (end - p));
                if (!eol)
                        eol = end;
                if ((size_t) (eol - p) > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
                        struct buf b = {};
                        const char *v = p + nlen + 1;
                        for (;;) {
                                size_t n = (size_t) (eol - v);
                                if (n > 0 && v[n - 1] == '\r')
                                        n--;
                                buf_add(&b, v, n);
                                if (eol >= end || eol + 1 >= end || (eol[1] != ' ' && eol[1] != '\t'))
                                        break;
                                v = eol + 1;
                                eol = memchr(v, '\n', (size_t) (end - v));
                                if (!eol)
                                        eol = end;
                        }
                        char *s = buf_steal(&b, NULL);
                        if (!s)
                                return NULL;
                        /* trim */
                        size_t a = 0, z = strlen(s);
                        while (s[a] == ' ' || s[a] == '\t')
                                a++;
                        while (z > a && (s[z - 1] == ' ' || s[z - 1] == '\t'))
                                z--;
                        memmove(s, s + a, z - a);
                        s[z - a] = 0;
                        return s;
                }
                p = eol + 1;
        }
        return NULL;
}

/* A parameter of a structured header value: boundary="x", charset=utf-8. */
static char *header_param(const char *value, const char *param) {
        size_t plen = strlen(param);

        for (const char *p = strchr(value, ';'); p; p = strchr(p + 1, ';')) {
                const char *q = p + 1;
                while (*q == ' ' || *q == '\t')
                        q++;
                if (strncasecmp(q, param, plen) != 0 || q[plen] != '=')
                        continue;
                q += plen + 1;
                if (*q == '"') {
                        const char *e = strchr(q + 1, '"');
                        return e ? strndup(q + 1, (size_t) (e - q - 1)) : NULL;
                }
                return strndup(q, strcspn(q, "; \t"));
        }
        return NULL;
}

/* --- decoding ----------------------------------------------------------------------------------- */

static int hexval(int c) {
        return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static void decode_qp(struct buf *out, const char *s, size_t n, bool header) {
        for (size_t i = 0; i < n; i++) {
                if (s[i] == '=' && i + 2 < n + 0 && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
                        char c = (char) (hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
                        buf_add(out, &c, 1);
                        i += 2;
                } else if (s[i] == '=' && !header) {
                        /* soft line break: "=\r\n" or "=\n" */
                        size_t j = i + 1;
                        if (j < n && s[j] == '\r')
                                j++;
                        if (j < n && s[j] == '\n')
                                i = j;
                        else
                                buf_add(out, "=", 1);
                } else if (header && s[i] == '_')
                        buf_add(out, " ", 1);
                else
                        buf_add(out, &s[i], 1);
        }
}

static void decode_base64(struct buf *out, const char *s, size_t n) {
        static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        uint32_t acc = 0;
        int bits = 0;

        for (size_t i = 0; i < n; i++) {
                const char *p = s[i] ? strchr(alphabet, s[i]) : NULL;
                if (s[i] == '=')
                        break;
                if (!p)
                        continue; /* line breaks, whitespace */
                acc = (acc << 6) | (uint32_t) (p - alphabet);
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        char c = (char) ((acc >> bits) & 0xff);
                        buf_add(out, &c, 1);
                }
        }
}

/* Latin-1 to UTF-8 for the charsets that are not UTF-8; invalid UTF-8 bytes become U+FFFD. */
static void to_utf8(struct buf *out, const char *s, size_t n, bool latin1) {
        for (size_t i = 0; i < n;) {
                unsigned char c = (unsigned char) s[i];
                if (c < 0x80) {
                        buf_add(out, &s[i++], 1);
                        continue;
                }
                if (latin1) {
                        char two[2] = { (char) (0xC0 | (c >> 6)), (char) (0x80 | (c & 0x3F)) };
                        buf_add(out, two, 2);
                        i++;
                        continue;
                }
                size_t len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
                bool ok = len > 0 && i + len <= n;
                for (size_t k = 1; ok && k < len; k++)
                        ok = ((unsigned char) s[i + k] & 0xC0) == 0x80;
                if (ok) {
                        buf_add(out, &s[i], len);
                        i += len;
                } else {
                        buf_add(out, "\xEF\xBF\xBD", 3);
                        i++;
                }
        }
}

static bool charset_latin1(const char *cs) {
        return cs && (strcasecmp(cs, "iso-8859-1") == 0 || strcasecmp(cs, "latin1") == 0 ||
                      strcasecmp(cs, "windows-1252") == 0 || strcasecmp(cs, "iso-8859-15") == 0);
}

/* RFC 2047 encoded words in a header (utf-8 and latin-1; others left as they are). */
static char *decode_words(const char *v) {
        struct buf b = {};
        const char *p = v;

        while (*p) {
                const char *start = strstr(p, "=?");
                if (!start) {
                        to_utf8(&b, p, strlen(p), false);
                        break;
                }
                const char *q1 = strchr(start + 2, '?');
                const char *q2 = q1 ? strchr(q1 + 1, '?') : NULL;
                const char *end = q2 ? strstr(q2 + 1, "?=") : NULL;
                if (!end || q2 - q1 != 2) {
                        to_utf8(&b, p, (size_t) (start + 2 - p), false);
                        p = start + 2;
                        continue;
                }
                /* Whitespace between two encoded words is dropped. */
                bool between = true;
                for (const char *w = p; w < start; w++)
                        if (*w != ' ' && *w != '\t')
                                between = false;
                if (!(between && p != v))
                        to_utf8(&b, p, (size_t) (start - p), false);
                _cleanup_free_ char *cs = strndup(start + 2, (size_t) (q1 - start - 2));
                struct buf raw = {};
                if (toupper((unsigned char) q1[1]) == 'B')
                        decode_base64(&raw, q2 + 1, (size_t) (end - q2 - 1));
                else
                        decode_qp(&raw, q2 + 1, (size_t) (end - q2 - 1), true);
                if (raw.data)
                        to_utf8(&b, raw.data, raw.len, charset_latin1(cs));
                free(raw.data);
                p = end + 2;
        }
        return buf_steal(&b, NULL);
}

/* The first text/plain body of a part, decoded to UTF-8; depth bounds nested multiparts. */
static int find_text(const struct part *pt, unsigned depth, char **ret) {
        _cleanup_free_ char *ctype = header_get(pt, "Content-Type"), *cte = header_get(pt, "Content-Transfer-Encoding");
        _cleanup_free_ char *charset = NULL, *boundary = NULL;

        if (ctype && strncasecmp(ctype, "multipart/", 10) == 0) {
                size_t blen;
                const char *p, *end = pt->body + pt->body_len;

                boundary = header_param(ctype, "boundary");
                if (!boundary || depth >= 4 || (blen = strlen(boundary)) == 0 || blen > 70)
                        return -EBADMSG;
                /* Parts lie between "--boundary" lines. */
                p = pt->body;
                for (;;) {
                        const char *d = NULL;
                        for (const char *s = p; s + 2 + blen <= end; s++)
                                if ((s == pt->body || s[-1] == '\n') && s[0] == '-' && s[1] == '-' &&
                                    memcmp(s + 2, boundary, blen) == 0) {
                                        d = s;
                                        break;
                                }
                        if (!d)
                                return 0;
                        if (p != pt->body) {
                                struct part sub;
                                size_t n = (size_t) (d - p);
                                split_part(p, n, &sub);
                                int r = find_text(&sub, depth + 1, ret);
                                if (r != 0)
                                        return r;
                        }
                        d += 2 + blen;
                        if (d + 2 <= end && d[0] == '-' && d[1] == '-')
                                return 0;
                        const char *nl = memchr(d, '\n', (size_t) (end - d));
                        if (!nl)
                                return 0;
                        p = nl + 1;
                }
        }
        if (ctype && strncasecmp(ctype, "text/plain", 10) != 0)
                return 0;
        charset = ctype ? header_param(ctype, "charset") : NULL;
        struct buf raw = {}, out = {};
        if (cte && strcasecmp(cte, "quoted-printable") == 0)
                decode_qp(&raw, pt->body, pt->body_len, false);
        else if (cte && strcasecmp(cte, "base64") == 0)
                decode_base64(&raw, pt->body, pt->body_len);
        else
                buf_add(&raw, pt->body, pt->body_len);
        if (raw.failed) {
                free(raw.data);
                return -ENOMEM;
        }
        if (raw.data) {
                /* CRLF to LF; other controls but tab dropped. */
                size_t k = 0;
                for (size_t i = 0; i < raw.len; i++)
                        if (!((unsigned char) raw.data[i] < 0x20 && raw.data[i] != '\n' && raw.data[i] != '\t'))
                                raw.data[k++] = raw.data[i];
                to_utf8(&out, raw.data, k, charset_latin1(charset));
        }
        free(raw.data);
        *ret = buf_steal(&out, NULL);
        return *ret ? 1 : -ENOMEM;
}

/* Drops a trailing quotation ("> …" lines and the "On … wrote:" line above them) and a
 * signature ("-- " line), then trailing blank lines. */
static void strip_tail(char *s) {
        size_t n = strlen(s);
        char *sig = strstr(s, "\n-- \n");

        if (strncmp(s, "-- \n", 4) == 0)
                sig = s - 1;
        if (sig) {
                n = (size_t) (sig - s) + 1;
                s[n] = 0;
        }
        for (;;) {
                while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\t'))
                        s[--n] = 0;
                char *line = memrchr(s, '\n', n);
                line = line ? line + 1 : s;
                size_t llen = (size_t) (s + n - line);
                if (llen > 0 && line[0] == '>')
                        n = (size_t) (line - s);
                else if (llen >= 6 && strcmp(line + llen - 6, "wrote:") == 0 && line != s)
                        n = (size_t) (line - s);
                else
                        break;
                s[n] = 0;
        }
}

bool email_address_valid(const char *s) {
        const char *at;
        size_t n = s ? strlen(s) : 0;

        if (n < 3 || n > 254)
                return false;
        at = strchr(s, '@');
        if (!at || at == s || !at[1] || strchr(at + 1, '@'))
                return false;
        for (const char *p = s; *p; p++)
                if ((unsigned char) *p <= 0x20 || *p == 0x7f || strchr("<>\"(),;:[]\\", *p))
                        return false;
        return true;
}

/* "Name <a@b>", "a@b", "\"Name\" <a@b>" → address (lower-cased) and display name. */
static int parse_from(const char *v, char **ret_addr, char **ret_name) {
        const char *lt = strrchr(v, '<'), *gt = lt ? strchr(lt, '>') : NULL;
        _cleanup_free_ char *addr = NULL, *name = NULL;

        if (lt && gt) {
                addr = strndup(lt + 1, (size_t) (gt - lt - 1));
                size_t a = 0, z = (size_t) (lt - v);
                while (a < z && (v[a] == ' ' || v[a] == '"'))
                        a++;
                while (z > a && (v[z - 1] == ' ' || v[z - 1] == '"'))
                        z--;
                if (z > a)
                        name = decode_words(strndupa(v + a, z - a));
        } else
                addr = strdup(v);
        if (!addr)
                return -ENOMEM;
        for (char *p = addr; *p; p++)
                *p = (char) tolower((unsigned char) *p);
        if (!email_address_valid(addr))
                return -EBADMSG;
        *ret_addr = addr;
        *ret_name = name;
        addr = name = NULL;
        return 0;
}

/* "<local@domain>", printable, no spaces. */
static bool message_id_valid(const char *s) {
        size_t n = s ? strlen(s) : 0;

        if (n < 5 || n > PLATFORM_FIELD_MAX || s[0] != '<' || s[n - 1] != '>' || !memchr(s, '@', n))
                return false;
        for (size_t i = 1; i + 1 < n; i++)
                if ((unsigned char) s[i] <= 0x20 || s[i] == 0x7f || s[i] == '<' || s[i] == '>')
                        return false;
        return true;
}

int email_parse(const char *raw, size_t len, const char *fallback_id, struct platform_message *ret) {
        _cleanup_free_ char *from = NULL, *mid = NULL, *subject = NULL, *auto_submitted = NULL, *text = NULL;
        _cleanup_free_ char *addr = NULL, *name = NULL, *return_path = NULL;
        struct platform_message m = {};
        struct part pt;
        int r;

        if (!raw || len == 0 || len > EMAIL_MESSAGE_MAX || memchr(raw, 0, len))
                return -EBADMSG;
        split_part(raw, len, &pt);
        if (!pt.body_len && pt.body == raw + len && pt.headers_len == len)
                return -EBADMSG; /* no blank line: not a message */
        from = header_get(&pt, "From");
        if (!from)
                return -EBADMSG;
        r = parse_from(from, &addr, &name);
        if (r < 0)
                return r;
        /* RFC 3834: never answer automatic mail; RFC 5321: nor bounces (null reverse path). */
        auto_submitted = header_get(&pt, "Auto-Submitted");
        return_path = header_get(&pt, "Return-Path");
        if ((auto_submitted && strcasecmp(auto_submitted, "no") != 0) || streq(return_path, "<>") ||
            strncasecmp(addr, "mailer-daemon@", 14) == 0)
                return 0;
        mid = header_get(&pt, "Message-ID");
        if (mid && !message_id_valid(mid))
                mid = mfree(mid);
        if (!mid && !fallback_id)
                return -EBADMSG;
        r = find_text(&pt, 0, &text);
        if (r <= 0)
                return r;
        strip_tail(text);
        if (!*text || strlen(text) > PLATFORM_TEXT_MAX)
                return *text ? -EBADMSG : 0;
        subject = header_get(&pt, "Subject");
        if (subject) {
                char *d = decode_words(subject);
                if (!d)
                        return -ENOMEM;
                free(subject);
                subject = d;
                for (char *p = subject; *p; p++)
                        if ((unsigned char) *p < 0x20)
                                *p = ' ';
                if (strlen(subject) > PLATFORM_FIELD_MAX)
                        subject[PLATFORM_FIELD_MAX] = 0; /* may cut a UTF-8 sequence; the builder re-encodes */
        }
        m.id = strdup(mid ? mid : fallback_id);
        m.sender = strdup(addr);
        m.conversation = strdup(addr);
        m.thread = mid ? strdup(mid) : NULL;
        if (!m.id || !m.sender || !m.conversation || (mid && !m.thread)) {
                platform_message_done(&m);
                return -ENOMEM;
        }
        m.sender_name = name;
        m.subject = subject;
        m.text = text;
        name = subject = text = NULL;
        *ret = m;
        return 1;
}

static bool header_value_ok(const char *s) {
        return !s || !strpbrk(s, "\r\n");
}

/* A header value with non-ASCII as one RFC 2047 base64 word per <= 45 input bytes. */
static void add_encoded_header(struct buf *b, const char *name, const char *value) {
        static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        bool ascii = true;
        size_t n = strlen(value);

        for (const char *p = value; *p; p++)
                if ((unsigned char) *p >= 0x80)
                        ascii = false;
        buf_str(b, name);
        buf_str(b, ": ");
        if (ascii) {
                buf_str(b, value);
                buf_str(b, "\r\n");
                return;
        }
        for (size_t i = 0; i < n;) {
                size_t take = MIN((size_t) 45, n - i);
                /* Do not split a UTF-8 sequence between words. */
                while (i + take < n && take > 1 && ((unsigned char) value[i + take] & 0xC0) == 0x80)
                        take--;
                buf_str(b, i ? "\r\n =?utf-8?B?" : "=?utf-8?B?");
                for (size_t k = 0; k < take; k += 3) {
                        uint32_t v = (uint32_t) (unsigned char) value[i + k] << 16;
                        size_t rem = take - k;
                        if (rem > 1)
                                v |= (uint32_t) (unsigned char) value[i + k + 1] << 8;
                        if (rem > 2)
                                v |= (unsigned char) value[i + k + 2];
                        char out[4] = { alphabet[(v >> 18) & 63], alphabet[(v >> 12) & 63], rem > 1 ? alphabet[(v >> 6) & 63] : '=',
                                        rem > 2 ? alphabet[v & 63] : '=' };
                        buf_add(b, out, 4);
                }
                buf_str(b, "?=");
                i += take;
        }
        buf_str(b, "\r\n");
}

/* Quoted-printable (RFC 2045): lines of at most 76 characters, CRLF line ends. */
static void add_qp_body(struct buf *b, const char *s, size_t n) {
        static const char hex[] = "0123456789ABCDEF";
        size_t col = 0;

        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) s[i];
                char enc[3];
                size_t w;

                if (c == '\n') {
                        buf_str(b, "\r\n");
                        col = 0;
                        continue;
                }
                if (c == '\r')
                        continue;
                bool trailing_ws = (c == ' ' || c == '\t') && (i + 1 == n || s[i + 1] == '\n' || s[i + 1] == '\r');
                if ((c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !trailing_ws)) {
                        enc[0] = (char) c;
                        w = 1;
                } else {
                        enc[0] = '=';
                        enc[1] = hex[c >> 4];
                        enc[2] = hex[c & 15];
                        w = 3;
                }
                if (col + w > 75) {
                        buf_str(b, "=\r\n");
                        col = 0;
                }
                /* A line starting with "." would be dot-stuffed by SMTP; curl does that, but
                 * "From " at a line start is mangled by some mailboxes: encode both. */
                if (col == 0 && (c == '.' || (c == 'F' && n - i >= 5 && strncmp(s + i, "From ", 5) == 0))) {
                        enc[0] = '=';
                        enc[1] = hex[c >> 4];
                        enc[2] = hex[c & 15];
                        w = 3;
                }
                buf_add(b, enc, w);
                col += w;
        }
        buf_str(b, "\r\n");
}

char *email_build(const struct email_reply *r, size_t *ret_len) {
        struct buf b = {};
        char date[64];
        struct tm tm;
        _cleanup_free_ char *subject = NULL;

        if (!email_address_valid(r->from) || !email_address_valid(r->to) || !message_id_valid(r->message_id) ||
            (r->in_reply_to && !message_id_valid(r->in_reply_to)) || !header_value_ok(r->subject))
                return NULL;
        if (!r->subject || !*r->subject)
                subject = strdup("Re: your message");
        else if (strncasecmp(r->subject, "Re:", 3) == 0)
                subject = strdup(r->subject);
        else if (asprintf(&subject, "Re: %s", r->subject) < 0)
                subject = NULL;
        if (!subject || !gmtime_r(&r->date, &tm) || strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm) == 0)
                return NULL;
        buf_str(&b, "From: <");
        buf_str(&b, r->from);
        buf_str(&b, ">\r\nTo: <");
        buf_str(&b, r->to);
        buf_str(&b, ">\r\n");
        add_encoded_header(&b, "Subject", subject);
        buf_str(&b, "Date: ");
        buf_str(&b, date);
        buf_str(&b, "\r\nMessage-ID: ");
        buf_str(&b, r->message_id);
        buf_str(&b, "\r\n");
        if (r->in_reply_to) {
                buf_str(&b, "In-Reply-To: ");
                buf_str(&b, r->in_reply_to);
                buf_str(&b, "\r\nReferences: ");
                buf_str(&b, r->in_reply_to);
                buf_str(&b, "\r\n");
        }
        /* RFC 3834: our answers are generated, so other robots do not answer them. */
        buf_str(&b, "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
                    "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n");
        add_qp_body(&b, r->text, r->text_len);
        return buf_steal(&b, ret_len);
}

static int cmp_u32(const void *a, const void *b) {
        uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
        return x < y ? -1 : x > y;
}

int imap_parse_search(const char *data, size_t len, uint32_t min_uid, uint32_t **ret, size_t *ret_n) {
        uint32_t *v = NULL;
        size_t n = 0;
        const char *p = data, *end = data + len;

        while (p < end) {
                const char *eol = memchr(p, '\n', (size_t) (end - p));
                if (!eol)
                        eol = end;
                if (eol - p >= 8 && strncasecmp(p, "* SEARCH", 8) == 0) {
                        const char *q = p + 8;
                        while (q < eol) {
                                while (q < eol && (*q == ' ' || *q == '\r'))
                                        q++;
                                if (q >= eol)
                                        break;
                                uint64_t uid = 0;
                                const char *s = q;
                                while (q < eol && *q >= '0' && *q <= '9' && uid <= UINT32_MAX)
                                        uid = uid * 10 + (uint64_t) (*q++ - '0');
                                if (q == s || uid == 0 || uid > UINT32_MAX || (q < eol && *q != ' ' && *q != '\r')) {
                                        free(v);
                                        return -EBADMSG;
                                }
                                if (uid < min_uid)
                                        continue;
                                uint32_t *grown = reallocarray(v, n + 1, sizeof *v);
                                if (!grown) {
                                        free(v);
                                        return -ENOMEM;
                                }
                                v = grown;
                                v[n++] = (uint32_t) uid;
                        }
                }
                p = eol + 1;
        }
        if (n > 1)
                qsort(v, n, sizeof *v, cmp_u32);
        *ret = v;
        *ret_n = n;
        return 0;
}

int imap_parse_uidvalidity(const char *data, size_t len, uint32_t *ret) {
        static const char key[] = "[UIDVALIDITY ";

        for (size_t i = 0; i + sizeof key - 1 < len; i++)
                if (strncasecmp(data + i, key, sizeof key - 1) == 0) {
                        uint64_t v = 0;
                        size_t j = i + sizeof key - 1, s = j;
                        while (j < len && data[j] >= '0' && data[j] <= '9' && v <= UINT32_MAX)
                                v = v * 10 + (uint64_t) (data[j++] - '0');
                        if (j == s || j >= len || data[j] != ']' || v == 0 || v > UINT32_MAX)
                                return -EBADMSG;
                        *ret = (uint32_t) v;
                        return 0;
                }
        return -ENOENT;
}
