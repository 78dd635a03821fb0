/* Clocks and time formatting. */
#pragma once

#include <stddef.h>
#include <stdint.h>

uint64_t now_usec(int clock_id);
/* "2026-11-22T14:36:41.123Z" into buf (at least 32 bytes). */
char *format_timestamp_iso(char *buf, size_t size, uint64_t realtime_usec);
/* "2h 3min 4s", "850ms" into buf. */
char *format_timespan(char *buf, size_t size, uint64_t usec);
