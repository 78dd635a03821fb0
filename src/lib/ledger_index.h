/* The file format of a ledger's offset index, groups/<id>/state/ledger.idx (derived from the
 * ledger, rebuilt when missing or unusable):
 *   bytes 0-7    magic "CNCLIDX\n"
 *   bytes 8-11   format version, little-endian u32 (LEDGER_INDEX_FORMAT_VERSION)
 *   bytes 12-15  zero (reserved)
 *   then one little-endian u64 per event: the byte offset of seq 1, 2, 3, … in ledger.jsonl.
 * Version 0 is what Conclave 0.1.0 wrote: the entries alone, from byte 0 (the first is always
 * 0, so a header, whose magic is not zero, cannot be mistaken for one; 0.1.0 reading a version
 * 1 index finds its first entry non-zero and rebuilds it). */
#pragma once

#include <stdint.h>

#define LEDGER_INDEX_FORMAT_VERSION 1
#define LEDGER_INDEX_MAGIC "CNCLIDX\n"
#define LEDGER_INDEX_HEADER_SIZE 16u

/* The header of the current version. */
void ledger_index_header_init(uint8_t header[LEDGER_INDEX_HEADER_SIZE]);

/* The version an index file is in: 0 and *ret for a version-0 index (also an empty file),
 * the header's version otherwise; -EBADMSG when it is neither (garbage: rebuilt on open),
 * -errno when it cannot be read. */
int ledger_index_file_version(const char *path, unsigned *ret);

/* Rewrites a version-0 index as version 1 (the header followed by the same entries): a new
 * file written and synced next to it, then renamed over it. -EBADMSG if it is not version 0. */
int ledger_index_migrate_v0(const char *path);
