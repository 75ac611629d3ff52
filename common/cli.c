/* Command-line argument checks and failure messages for the tools. */
#include "hubkv_cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static const char *tool = "hubkv";

void hkc_tool(const char *name) { tool = name; }

void hkc_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", tool);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

void hkc_bad(const char *flag, const char *expected, const char *got) {
    hkc_die("%s: expected %s, got '%s'", flag, expected, got);
}

long hkc_long(const char *flag, const char *v, long lo, long hi) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v || x < lo || x > hi)
        hkc_die("%s: expected an integer in [%ld, %ld], got '%s'", flag, lo, hi, v);
    return x;
}

double hkc_double(const char *flag, const char *v, double lo, double hi) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || *end || end == v || !(x >= lo && x <= hi))
        hkc_die("%s: expected a number in [%g, %g], got '%s'", flag, lo, hi, v);
    return x;
}
