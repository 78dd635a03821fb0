/* Shared includes and helpers of the platform codec unit tests. */
#pragma once

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* A heap copy of exactly strlen(s) bytes, no terminator: ASan catches reads past the end. */
static inline char *exact(const char *s, size_t *ret_len) {
        size_t n = strlen(s);
        char *p = malloc(n ? n : 1);
        assert_non_null(p);
        memcpy(p, s, n);
        *ret_len = n;
        return p;
}
