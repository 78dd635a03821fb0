/* Line-by-line verification of a ledger that arrives as a stream of bytes (an archive entry, a
 * copy being made), with the rules ledger_verify_step() applies to an open ledger: every line
 * parses (ledger_parse_line_with), seqs run 1, 2, 3, … and the last line ends in '\n'. Memory is
 * bounded by one maximal line. */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct ledger_check;

int ledger_check_new(struct ledger_check **ret);
void ledger_check_free(struct ledger_check *c);
static inline void ledger_check_freep(struct ledger_check **c) {
        ledger_check_free(*c);
}

/* Feeds the next bytes. 0, or -EBADMSG / -EPROTONOSUPPORT (a line of a newer format) with
 * ledger_check_error() set; every later call returns the same error. */
int ledger_check_feed(struct ledger_check *c, const void *buf, size_t len);
/* The end of the stream: -EBADMSG when bytes without a final '\n' are left. */
int ledger_check_finish(struct ledger_check *c);

uint64_t ledger_check_last_seq(const struct ledger_check *c); /* = the number of events */
uint64_t ledger_check_bytes(const struct ledger_check *c);    /* bytes fed so far */
/* Why the check failed and the byte offset of the bad line; NULL while nothing failed. */
const char *ledger_check_error(const struct ledger_check *c, uint64_t *ret_offset);
