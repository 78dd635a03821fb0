/* Who may talk through a channel, and the actor id of a platform user (channel_policy.h). */

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "channel_policy.h"
#include "macro.h"

bool channel_policy_allowed(const struct config_channel *ch, const char *user) {
        if (!ch || !user || !*user)
                return false;
        for (size_t i = 0; i < ch->n_allowed_users; i++)
                if (streq(ch->allowed_users[i], "*") || strcasecmp(ch->allowed_users[i], user) == 0)
                        return true;
        return false;
}

static uint32_t fnv1a(const char *s, unsigned salt) {
        uint32_t h = 2166136261u ^ salt;
        for (; *s; s++)
                h = (h ^ (unsigned char) *s) * 16777619u;
        return h;
}

void channel_policy_actor_id(const char *channel, const char *user, unsigned salt, char *buf, size_t size) {
        size_t max = MIN(size - 1, (size_t) CHANNEL_ACTOR_ID_MAX), n = 0;
        bool changed = salt > 0;
        char raw[2 * CHANNEL_ACTOR_ID_MAX + 2];

        snprintf(raw, sizeof raw, "%s-%s", channel, user);
        if (strlen(channel) + 1 + strlen(user) >= sizeof raw)
                changed = true;
        for (const char *p = raw; *p && n < max; p++) {
                char c = *p;
                if (isalnum((unsigned char) c) && !(c & 0x80)) {
                        if (isupper((unsigned char) c)) {
                                c = (char) tolower((unsigned char) c);
                                changed = true;
                        }
                } else if (c != '-' && c != '_') {
                        c = '_';
                        changed = true;
                }
                buf[n++] = c;
        }
        if (strlen(raw) > n)
                changed = true;
        if (changed) {
                /* Room for "-" and 8 hex digits, replacing the end if need be. */
                if (n > max - 9)
                        n = max - 9;
                snprintf(buf + n, size - n, "-%08x", fnv1a(user, salt));
                return;
        }
        buf[n] = 0;
}

static bool is_id_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* "@id" at p, not followed by more of an id. */
static bool at_id(const char *p, const char *id, size_t n) {
        return p[0] == '@' && strncasecmp(p + 1, id, n) == 0 && !is_id_char(p[1 + n]);
}

bool channel_policy_addresses(const char *text, const char *id) {
        size_t n = id ? strlen(id) : 0;

        if (!text || n == 0)
                return false;
        text += strspn(text, " \t");
        if (at_id(text, id, n))
                return true;
        return strncasecmp(text, id, n) == 0 && (text[n] == ':' || text[n] == ',');
}

bool channel_policy_mentions(const char *text, const char *id) {
        size_t n = id ? strlen(id) : 0;

        if (channel_policy_addresses(text, id))
                return true;
        for (const char *p = text; n > 0 && p && (p = strchr(p, '@')); p++)
                if ((p == text || !is_id_char(p[-1])) && at_id(p, id, n))
                        return true;
        return false;
}
