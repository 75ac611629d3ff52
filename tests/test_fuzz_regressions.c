/* Replays every fuzz reproducer (tests/data/fuzz-regressions/<target>/) and
 * every seed (tests/fuzz/seeds/<target>/) through the fuzzers' own entry
 * points (the HDF5 readers too where runtime-lib and profile/ are built), so
 * a crash once found stays fixed. Built in the normal and the
 * ASan+UBSan test builds; a broken invariant aborts the test.
 * usage: test_fuzz_regressions DIR...   (each DIR holds one folder per target) */
#include "fuzz/fuzz_entries.h"
#include "test_util.h"

#include <dirent.h>
#include <string.h>

/* Entries linked only where runtime-lib and profile/ are built. */
static fz_entry entry_by_name(const char *target) {
#ifdef HUBKV_FUZZ_H5
    if (!strcmp(target, "fuzz_profile")) return fz_profile;
    if (!strcmp(target, "fuzz_calib")) return fz_calib;
    if (!strcmp(target, "fuzz_stats")) return fz_stats;
#endif
    return fz_entry_by_name(target);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int replay_file(fz_entry fn, const char *path) {
    size_t len = 0;
    char *buf = test_slurp(path, &len);
    if (!buf) return 0;
    fprintf(stderr, "replay %s (%zu bytes)\n", path, len);
    fn((const uint8_t *)buf, len); /* aborts on a broken invariant; ASan reports memory errors */
    free(buf);
    return 1;
}

/* Files of dir/target in name order (stable output). */
static int replay_target(const char *dir, const char *target) {
    fz_entry fn = entry_by_name(target);
    CHECK(fn != NULL, "%s/%s: no fuzz entry named '%s'", dir, target, target);
    if (!fn) return 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, target);
    DIR *d = opendir(path);
    if (!d) return 0;
    char *names[4096];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 4096)
        if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    int done = 0;
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s/%s", dir, target, names[i]);
        done += replay_file(fn, path);
        free(names[i]);
    }
    return done;
}

int main(int argc, char **argv) {
    static const char *const targets[] = {"fuzz_gguf", "fuzz_safetensors", "fuzz_config_json",
                                          "fuzz_tokenizer_json", "fuzz_tokenizer_encode"
#ifdef HUBKV_FUZZ_H5
                                          , "fuzz_profile", "fuzz_calib", "fuzz_stats"
#endif
    };
    int total = 0;
    for (int a = 1; a < argc; a++) {
        DIR *d = opendir(argv[a]);
        CHECK(d != NULL, "cannot open %s", argv[a]);
        if (!d) continue;
        closedir(d);
        for (size_t t = 0; t < sizeof targets / sizeof *targets; t++) total += replay_target(argv[a], targets[t]);
    }
    CHECK(total > 0, "no inputs replayed (expected the seed corpora at least)");
    printf("replayed %d inputs\n", total);
    return test_summary("test_fuzz_regressions");
}
