/* Command-line helpers shared by the tools (hubkv-synth, hubkv-profile,
 * hubkv-solve, hubkv-generate): a bad argument prints "<tool>: <message>" on
 * stderr and exits with status 2. For tool main()s only: library code never
 * exits. */
#ifndef HUBKV_CLI_H
#define HUBKV_CLI_H

/* The name the messages start with (call first in main). */
void hkc_tool(const char *name);

/* Prints "<tool>: " + the printf-style message and exits 2. */
void hkc_die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* "<flag>: expected <expected>, got '<got>'" and exit 2. */
void hkc_bad(const char *flag, const char *expected, const char *got) __attribute__((noreturn));

/* v as a whole decimal integer / number in [lo, hi], else hkc_bad. */
long hkc_long(const char *flag, const char *v, long lo, long hi);
double hkc_double(const char *flag, const char *v, double lo, double hi);

#endif
