/* Profile statistics: per-length-bucket sums (and sums of squares) of loss
 * curves and selectivity over contexts, so shards add exactly. Written as an
 * HDF5 file (docs/stats-format.md) that hubkv-solve reads; also the
 * checkpoint of a running hubkv-profile. */
#ifndef HKP_STATS_FILE_H
#define HKP_STATS_FILE_H

#include "curves.h"
#include "scorers.h"

#include <stdint.h>

#define HKP_STATS_FORMAT "hubkv-stats"
#define HKP_STATS_VERSION 1
#define HKP_N_BUCKETS 8
extern const int32_t HKP_BUCKET_EDGES[HKP_N_BUCKETS + 1];

typedef struct {
    int L, KV, G, NB, S;     /* layers, kv heads, grid points, buckets, scorers */
    double *count;           /* (NB) contexts */
    double *tokens;          /* (NB) context tokens */
    double *loss_sum;        /* (NB, S, L, KV, G) */
    double *loss_sq;         /* (NB, S, L, KV, G) */
    double *orc_sum;         /* (NB, L, KV, G) oracle-metric loss (oracle ranking) */
    double *orc_sq;          /* (NB, L, KV, G) */
    double *ent_sum;         /* (NB, S + 1, L, KV) normalised entropy; index S = oracle */
    double *top_sum;         /* (NB, S + 1, L, KV) top-1% mass */
    /* run metadata */
    uint64_t fingerprint;    /* hash of the arguments that shape the sums */
    uint64_t calib_hash;     /* calibration set content hash */
    int64_t next;            /* next position in this run's context list */
    int64_t n_contexts;      /* contexts this run processes in all */
    int32_t complete;        /* 1 when next == n_contexts */
    int32_t shard_i, shard_n;
    int32_t kvzip;           /* KVzip computed (else its sums stay 0) */
    int32_t sink, recent, snap_window, snap_kernel, snap_max, oracle_wo;
    char model[512];
    char calib[512];
    char split[16];
} hkp_stats;

hkm_status hkp_stats_init(hkp_stats *s, int L, int KV, int G, hkm_err *err);
void hkp_stats_free(hkp_stats *s);
int hkp_stats_bucket(int n_tokens);

/* Adds one context's curves and selectivity (cur: sc (S, L, KV, G),
 * orc (L, KV, G), ent/top (S + 1, L, KV)). */
void hkp_stats_add(hkp_stats *s, int n_tokens, const double *cur, const double *orc,
                   const double *ent, const double *top);

/* Writes path.tmp and renames it over path: the sums, the means, std, the
 * optimality gap and beta derived from them, and the metadata. */
hkm_status hkp_stats_write(const hkp_stats *s, const char *path, hkm_err *err);
/* Reads and validates a stats file; s is initialised by the call. */
hkm_status hkp_stats_read(const char *path, hkp_stats *s, hkm_err *err);
/* dst += src after checking they describe the same grid, model, calibration
 * set and parameters. */
hkm_status hkp_stats_merge(hkp_stats *dst, const hkp_stats *src, const char *src_path, hkm_err *err);

#endif
