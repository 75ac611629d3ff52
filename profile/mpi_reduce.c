/* hubkv-profile's MPI layer (mpi_reduce.h): launcher detection, a GPU per
 * rank, and MPI_Reduce(MPI_SUM) of the statistics onto rank 0. */
#include "mpi_reduce.h"
#include "hkm_internal.h"

#include <stdlib.h>
#include <string.h>

#ifdef HUBKV_MPI
#include <mpi.h>
#endif
#ifdef HUBKV_HAVE_CUDA
#include <cuda_runtime_api.h>
#include <omp.h>
#endif

/* ---------------------------------------------------------------- ranks */

/* Set by Open MPI's mpirun, MPICH's hydra, PMIx launchers (srun, prterun). */
static int launched_by_mpi(void) {
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

void hkp_mpi_init(int *argc, char ***argv, hkp_mpi *w) {
    *w = (hkp_mpi){.size = 1};
#ifdef HUBKV_MPI
    if (!launched_by_mpi()) return;
    MPI_Init(argc, argv);
    w->active = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &w->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &w->size);
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, w->rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &w->local_rank);
    MPI_Comm_free(&node);
#else
    (void)argc; (void)argv; (void)launched_by_mpi;
#endif
}

void hkp_mpi_finalize(const hkp_mpi *w) {
#ifdef HUBKV_MPI
    if (w->active) MPI_Finalize();
#else
    (void)w;
#endif
}

int hkp_mpi_all_ok(const hkp_mpi *w, int ok) {
    int all = ok != 0;
#ifdef HUBKV_MPI
    if (w->active) MPI_Allreduce(MPI_IN_PLACE, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
#else
    (void)w;
#endif
    return all;
}

uint64_t hkp_mpi_bcast_u64(const hkp_mpi *w, uint64_t v) {
#ifdef HUBKV_MPI
    if (w->active) MPI_Bcast(&v, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
#else
    (void)w;
#endif
    return v;
}

/* ---------------------------------------------------------------- GPU */

int hkp_mpi_pick_device(const hkp_mpi *w, hkm_err *err) {
#ifdef HUBKV_HAVE_CUDA
    int n = 0;
    if (w->size < 2 || cudaGetDeviceCount(&n) != cudaSuccess || n < 2) return -1;
    int dev = w->local_rank % n, bad = 0;
    // The OpenMP pool's threads persist between parallel regions, so the
    // device set here stays theirs in profile_run.c's loops.
#pragma omp parallel reduction(| : bad)
    bad |= cudaSetDevice(dev) != cudaSuccess;
    if (bad || cudaSetDevice(dev) != cudaSuccess) {
        hkm_fail(err, HKM_ERR_IO, "rank %d: cudaSetDevice(%d) failed: expected a usable GPU %d of %d",
                 w->rank, dev, dev, n);
        return -2;
    }
    return dev;
#else
    (void)w; (void)err;
    return -1;
#endif
}

/* ---------------------------------------------------------------- reduce */

#ifdef HUBKV_MPI
/* x (n) summed onto rank 0, in slices that fit MPI's int counts. */
static int reduce_sum(const hkp_mpi *w, double *x, size_t n) {
    const size_t slice = (size_t)1 << 28;
    for (size_t at = 0; at < n; at += slice) {
        int m = (int)(n - at < slice ? n - at : slice);
        void *send = w->rank == 0 ? MPI_IN_PLACE : (void *)(x + at);
        if (MPI_Reduce(send, x + at, m, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD) != MPI_SUCCESS) return -1;
    }
    return 0;
}
#endif

hkm_status hkp_mpi_reduce_stats(const hkp_mpi *w, hkp_stats *s, hkm_err *err) {
#ifdef HUBKV_MPI
    if (!w->active || w->size < 2) return HKM_OK;
    int shape[3] = {s->L, s->KV, s->G}, lo[3], hi[3];
    MPI_Allreduce(shape, lo, 3, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(shape, hi, 3, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (memcmp(lo, hi, sizeof lo))
        return hkm_fail(err, HKM_ERR_SHAPE, "MPI reduce: ranks hold L/KV/G from %d/%d/%d to %d/%d/%d: "
                        "expected one shape (same model and --grid on every rank)",
                        lo[0], lo[1], lo[2], hi[0], hi[1], hi[2]);
    size_t nb = (size_t)s->NB, nsel = nb * (s->S + 1) * s->L * s->KV;
    size_t norc = nb * s->L * s->KV * s->G, nloss = norc * s->S;
    struct { double *x; size_t n; } arr[] = {
        {s->count, nb}, {s->tokens, nb}, {s->loss_sum, nloss}, {s->loss_sq, nloss},
        {s->orc_sum, norc}, {s->orc_sq, norc}, {s->ent_sum, nsel}, {s->top_sum, nsel}};
    for (size_t i = 0; i < sizeof arr / sizeof *arr; i++)
        if (reduce_sum(w, arr[i].x, arr[i].n))
            return hkm_fail(err, HKM_ERR_IO, "MPI_Reduce of the statistics failed (array %zu)", i);
    return HKM_OK;
#else
    (void)w; (void)s; (void)err;
    return HKM_OK;
#endif
}
