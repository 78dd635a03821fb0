/* The table of channel kinds (channel_kinds.h) and lookup by name (channel.h). */

#include <stddef.h>

#include "channel.h"

#define CHANNEL_KIND(n) extern const struct channel_kind channel_kind_##n;
#include "channel_kinds.h"
#undef CHANNEL_KIND

static const struct channel_kind *const channel_kinds[] = {
#define CHANNEL_KIND(n) &channel_kind_##n,
#include "channel_kinds.h"
#undef CHANNEL_KIND
        NULL,
};

const struct channel_kind *channel_kind_find(const char *name) {
        for (size_t i = 0; channel_kinds[i]; i++)
                if (streq(channel_kinds[i]->name, name))
                        return channel_kinds[i];
        return NULL;
}
