/* libFuzzer's entry point, implemented by each target in fuzz/; fuzz/replay.c calls it for the
 * files of a corpus so plain `make check` (gcc, no libFuzzer) runs every committed input. */
#pragma once

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
