/* Migrations: bringing a file that format_survey() found older than this Conclave writes to
 * the current format. Each migration step turns version N into N+1; a file goes through every
 * step up to the current version in memory and is then replaced atomically (written and synced
 * under a temporary name, renamed over the old one). The original content of a JSON file is
 * first kept, synced, as "FILE.pre-v<current>", so a crash at any point leaves either the old
 * file or the new one, and going back to the older Conclave means putting those copies back.
 * The ledger index is not copied: it is derived, and its migration only adds a header.
 * The ledger itself is never migrated: lines keep the version they were written in. */
#pragma once

#include <stddef.h>

#include "formats.h"

/* Migrates one file (f->path relative to home) from f->version to the current version.
 * 0 on success (also when it is already current), -EINVAL for a kind that is never migrated
 * (the ledger) or a version without a migration path, -EBADMSG when its content does not have
 * the shape its version promises (nothing is changed then), -errno from the file system.
 * *ret_kept (optional) receives the relative path of the copy of the original, or NULL. */
int migrate_file(const char *home, const struct format_file *f, char **ret_kept);
