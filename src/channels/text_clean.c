/* Cleaning platform text for the ledger (text_clean.h). */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "text_clean.h"

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 when invalid; *cp its code point. */
static size_t utf8_sequence(const unsigned char *p, size_t n, uint32_t *cp) {
        size_t need;
        uint32_t c = p[0];

        if (c < 0x80) {
                *cp = c;
                return 1;
        }
        if (c >= 0xc2 && c <= 0xdf)
                need = 1, c &= 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
                need = 2, c &= 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
                need = 3, c &= 0x07;
        else
                return 0;
        if (need >= n)
                return 0;
        for (size_t i = 1; i <= need; i++) {
                if ((p[i] & 0xc0) != 0x80)
                        return 0;
                c = (c << 6) | (p[i] & 0x3f);
        }
        if ((need == 2 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) || (need == 3 && (c < 0x10000 || c > 0x10ffff)))
                return 0;
        *cp = c;
        return need + 1;
}

int text_clean(const char *in, size_t len, size_t max, char **ret) {
        const unsigned char *p = (const unsigned char *) in;
        /* Each input byte yields at most 3 output bytes (U+FFFD). */
        size_t cap = (len < max ? len : max) * 3 + 4, o = 0;
        char *out = malloc(cap);

        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < len;) {
                uint32_t cp;
                size_t n = utf8_sequence(p + i, len - i, &cp);
                const char *add;
                size_t add_len;

                if (n == 0) {
                        add = "\xef\xbf\xbd";
                        add_len = 3;
                        n = 1;
                } else if (cp == '\r') {
                        /* CR LF and lone CR are both line ends. */
                        if (i + 1 < len && p[i + 1] == '\n')
                                n = 2;
                        add = "\n";
                        add_len = 1;
                } else if ((cp < 0x20 && cp != '\t' && cp != '\n') || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f)) {
                        i += n;
                        continue;
                } else {
                        add = (const char *) p + i;
                        add_len = n;
                }
                if (o + add_len > max || o + add_len + 1 > cap)
                        break;
                memcpy(out + o, add, add_len);
                o += add_len;
                i += n;
        }
        out[o] = 0;
        *ret = out;
        return 0;
}
