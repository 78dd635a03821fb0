/* IRC message syntax helpers (irc_proto.h). */

#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "irc_proto.h"
#include "macro.h"

int irc_parse(char *line, struct irc_message *m) {
        char *p = line;

        *m = (struct irc_message){};
        if (*p == '@') {
                p = strchr(p, ' ');
                if (!p)
                        return -EINVAL;
                while (*p == ' ')
                        p++;
        }
        if (*p == ':') {
                m->prefix = ++p;
                p = strchr(p, ' ');
                if (!p)
                        return -EINVAL;
                *p++ = 0;
                while (*p == ' ')
                        p++;
        }
        if (!*p)
                return -EINVAL;
        m->command = p;
        p = strchr(p, ' ');
        while (p) {
                *p++ = 0;
                while (*p == ' ')
                        p++;
                if (!*p)
                        break;
                if (*p == ':' || m->n_params == IRC_PARAMS_MAX - 1) {
                        m->params[m->n_params++] = *p == ':' ? p + 1 : p;
                        break;
                }
                m->params[m->n_params++] = p;
                p = strchr(p, ' ');
        }
        return 0;
}

void irc_prefix_nick(const char *prefix, char *buf, size_t size) {
        size_t n = prefix ? strcspn(prefix, "!@") : 0;

        if (n == 0 || n >= size) {
                if (size > 0)
                        *buf = 0;
                return;
        }
        memcpy(buf, prefix, n);
        buf[n] = 0;
}

static char fold(char c) {
        if (c >= 'A' && c <= 'Z')
                return (char) (c - 'A' + 'a');
        switch (c) {
        case '[':
                return '{';
        case ']':
                return '}';
        case '\\':
                return '|';
        case '~':
                return '^';
        default:
                return c;
        }
}

void irc_casefold(char *s) {
        for (; s && *s; s++)
                *s = fold(*s);
}

bool irc_nick_equal(const char *a, const char *b) {
        if (!a || !b)
                return false;
        for (; *a && *b; a++, b++)
                if (fold(*a) != fold(*b))
                        return false;
        return *a == *b;
}

bool irc_valid_nick(const char *s) {
        size_t n = s ? strlen(s) : 0;

        if (n == 0 || n > 30 || isdigit((unsigned char) *s) || *s == '-')
                return false;
        for (; *s; s++)
                if (!isalnum((unsigned char) *s) && !strchr("[]\\`_^{|}-", *s))
                        return false;
        return true;
}

bool irc_valid_channel(const char *s) {
        size_t n = s ? strlen(s) : 0;

        if (n < 2 || n > 50 || !strchr("#&+!", *s))
                return false;
        for (s++; *s; s++)
                if (*s == ' ' || *s == ',' || *s == 7 || (unsigned char) *s < 0x20)
                        return false;
        return true;
}

void irc_strip_formatting(char *s) {
        char *out = s;

        for (char *p = s; p && *p;) {
                switch (*p) {
                case 0x02: case 0x0f: case 0x11: case 0x16: case 0x1d: case 0x1e: case 0x1f:
                        p++;
                        break;
                case 0x03:
                        /* ^C, up to two digits, optionally a comma and up to two more. */
                        p++;
                        if (isdigit((unsigned char) *p)) {
                                p++;
                                if (isdigit((unsigned char) *p))
                                        p++;
                                if (*p == ',' && isdigit((unsigned char) p[1])) {
                                        p += 2;
                                        if (isdigit((unsigned char) *p))
                                                p++;
                                }
                        }
                        break;
                default:
                        *out++ = *p++;
                }
        }
        if (out)
                *out = 0;
}

int irc_split_text(const char *text, size_t max, irc_piece_fn fn, void *userdata) {
        int count = 0;

        if (max < 8)
                return -EINVAL;
        if (!text)
                return 0;
        while (*text) {
                size_t line = strcspn(text, "\r\n"), n;

                while (line > 0) {
                        if (line <= max)
                                n = line;
                        else {
                                /* The last space that fits, or failing that a character boundary. */
                                n = max;
                                while (n > max / 2 && text[n] != ' ')
                                        n--;
                                if (text[n] != ' ') {
                                        n = max;
                                        while (n > 0 && ((unsigned char) text[n] & 0xc0) == 0x80)
                                                n--;
                                }
                        }
                        if (n == 0)
                                n = MIN(line, max); /* not UTF-8: cut anyway */
                        {
                                size_t len = n;
                                while (len > 0 && text[len - 1] == ' ' && line > n)
                                        len--; /* no trailing space at a cut */
                                if (len > 0) {
                                        if (fn) {
                                                int r = fn(text, len, userdata);
                                                if (r < 0)
                                                        return r;
                                        }
                                        count++;
                                }
                        }
                        text += n;
                        line -= n;
                        if (line > 0 && *text == ' ') {
                                /* the space we cut at */
                                text++;
                                line--;
                        }
                }
                while (*text == '\r' || *text == '\n')
                        text++;
        }
        return count;
}
