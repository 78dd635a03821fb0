/* Helpers shared by the platform drivers (platform_driver.h). */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "platform_driver.h"

void platform_delivery_failed(struct channel_delivery *d, int error, const struct platform_error *err) {
        char detail[CHANNEL_ERROR_MAX + 512];
        struct channel_delivery_result r = {};

        if (error < 0 && error != -EREMOTEIO) {
                snprintf(detail, sizeof detail, "%s", strerror(-error));
                r.error = error;
                r.permanent = false;
        } else {
                snprintf(detail, sizeof detail, "%s %s: %s", err->status ? "HTTP" : "", err->code, err->description);
                r.error = err->retryable ? -EAGAIN : -EREMOTEIO;
                r.permanent = !err->retryable;
                r.retry_after_usec = err->retry_after_usec;
        }
        r.detail = detail[0] == ' ' ? detail + 1 : detail;
        channel_delivery_done(d, &r);
}

static bool id_char_plain(char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == ':' ||
               c == '@' || c == '-';
}

char *platform_id_encode(const char *id, size_t max) {
        static const char hex[] = "0123456789ABCDEF";
        size_t n = 0;
        char *out;

        for (const char *p = id; *p; p++)
                n += id_char_plain(*p) ? 1 : 3;
        if (n == 0 || n > max)
                return NULL;
        out = malloc(n + 1);
        if (!out)
                return NULL;
        n = 0;
        for (const unsigned char *p = (const unsigned char *) id; *p; p++)
                if (id_char_plain((char) *p))
                        out[n++] = (char) *p;
                else {
                        out[n++] = '_';
                        out[n++] = hex[*p >> 4];
                        out[n++] = hex[*p & 15];
                }
        out[n] = 0;
        return out;
}

static int hexv(char c) {
        return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

char *platform_id_decode(const char *id) {
        size_t n = strlen(id), k = 0;
        char *out = malloc(n + 1);

        if (!out)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                if (id[i] != '_') {
                        out[k++] = id[i];
                        continue;
                }
                if (i + 2 >= n + 0 || hexv(id[i + 1]) < 0 || hexv(id[i + 2]) < 0 || (hexv(id[i + 1]) == 0 && hexv(id[i + 2]) == 0)) {
                        free(out);
                        return NULL;
                }
                out[k++] = (char) (hexv(id[i + 1]) * 16 + hexv(id[i + 2]));
                i += 2;
        }
        out[k] = 0;
        return out;
}

uint64_t platform_backoff_usec(unsigned failures, uint64_t retry_after_usec) {
        uint64_t d = USEC_PER_SEC << MIN(failures, 6u);

        if (d > 60 * USEC_PER_SEC)
                d = 60 * USEC_PER_SEC;
        return retry_after_usec ? retry_after_usec : d;
}

unsigned platform_parts_done(const struct platform_parts *p, const char *delivery_id, const char **ret_first_id) {
        for (size_t i = 0; i < PLATFORM_PARTS_MAX; i++)
                if (streq(p->e[i].delivery_id, delivery_id)) {
                        *ret_first_id = p->e[i].first_id;
                        return p->e[i].done;
                }
        *ret_first_id = NULL;
        return 0;
}

void platform_parts_set(struct platform_parts *p, const char *delivery_id, unsigned done, const char *first_id) {
        size_t slot = PLATFORM_PARTS_MAX;
        char *id, *first;

        for (size_t i = 0; i < PLATFORM_PARTS_MAX; i++)
                if (streq(p->e[i].delivery_id, delivery_id))
                        slot = i;
        if (slot == PLATFORM_PARTS_MAX) {
                slot = p->next;
                p->next = (p->next + 1) % PLATFORM_PARTS_MAX;
        }
        id = strdup(delivery_id);
        first = first_id ? strdup(first_id) : NULL;
        if (!id || (first_id && !first)) {
                free(id);
                free(first);
                return; /* forgetting only costs a duplicate part on retry */
        }
        free(p->e[slot].delivery_id);
        free(p->e[slot].first_id);
        p->e[slot].delivery_id = id;
        p->e[slot].first_id = first;
        p->e[slot].done = done;
}

void platform_parts_forget(struct platform_parts *p, const char *delivery_id) {
        for (size_t i = 0; i < PLATFORM_PARTS_MAX; i++)
                if (streq(p->e[i].delivery_id, delivery_id)) {
                        free(p->e[i].delivery_id);
                        free(p->e[i].first_id);
                        p->e[i].delivery_id = p->e[i].first_id = NULL;
                        p->e[i].done = 0;
                }
}

void platform_parts_clear(struct platform_parts *p) {
        for (size_t i = 0; i < PLATFORM_PARTS_MAX; i++) {
                free(p->e[i].delivery_id);
                free(p->e[i].first_id);
        }
        *p = (struct platform_parts){};
}

bool platform_url_is_loopback(const char *url) {
        const char *host = url ? strstr(url, "://") : NULL;
        size_t n;

        if (!host)
                return false;
        host += 3;
        if (strchr(host, '@') && strchr(host, '@') < host + strcspn(host, "/"))
                host = strchr(host, '@') + 1;
        if (strncmp(host, "[::1]", 5) == 0)
                return true;
        n = strcspn(host, ":/?#");
        if ((n == 9 && strncasecmp(host, "localhost", 9) == 0) || (n >= 4 && strncmp(host, "127.", 4) == 0))
                return true;
        return false;
}

int platform_check_base_url(struct channel_check *chk, const char *key, const char *url) {
        if (strncmp(url, "https://", 8) == 0 && url[8])
                return 0;
        if (strncmp(url, "http://", 7) == 0 && platform_url_is_loopback(url))
                return 0;
        channel_check_error(chk, key, "\"%s\" is not an https:// URL (plain http:// is only allowed to localhost)", url);
        return -EINVAL;
}
