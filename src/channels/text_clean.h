/* Text from a platform made fit for the ledger: valid UTF-8 (each invalid byte becomes U+FFFD),
 * no control characters but tab and newline (CR LF and lone CR become LF, the rest are
 * dropped, C1 controls included), cut at max bytes on a character boundary. */
#pragma once

#include <stddef.h>

/* Returns 0 with *ret newly allocated (possibly empty), or -ENOMEM. */
int text_clean(const char *in, size_t len, size_t max, char **ret);
