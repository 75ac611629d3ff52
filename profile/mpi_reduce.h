/* hubkv-profile under MPI: which rank am I, one GPU per rank, and the final
 * reduction of the statistics (sums and counts add exactly). Built with
 * HUBKV_MPI; otherwise, and when not started by an MPI launcher, every call
 * acts as a single rank of one. */
#ifndef HKP_MPI_REDUCE_H
#define HKP_MPI_REDUCE_H

#include "stats_file.h"

typedef struct {
    int active;      /* MPI_Init was called (launched by mpirun/srun) */
    int rank, size;  /* in MPI_COMM_WORLD; 0 and 1 without MPI */
    int local_rank;  /* among the ranks of this node (GPU choice) */
} hkp_mpi;

/* MPI_Init only when an MPI launcher started us (its environment variables
 * are set): a plain run never touches MPI. */
void hkp_mpi_init(int *argc, char ***argv, hkp_mpi *w);
/* MPI_Finalize when active. Call only when every rank gets here. */
void hkp_mpi_finalize(const hkp_mpi *w);

/* 1 if every rank passes ok != 0 (a collective). */
int hkp_mpi_all_ok(const hkp_mpi *w, int ok);
/* Rank 0's value, on every rank. */
uint64_t hkp_mpi_bcast_u64(const hkp_mpi *w, uint64_t v);

/* Makes GPU local_rank % device count current for this thread and for the
 * OpenMP worker threads (their copies would otherwise open a context on
 * GPU 0). Returns the device, or -1 (no CUDA, or nothing to choose). */
int hkp_mpi_pick_device(const hkp_mpi *w, hkm_err *err);

/* Sums s's count, tokens and every sum array over the ranks into rank 0's
 * s (the other ranks' s is left as it was). Shapes must agree. */
hkm_status hkp_mpi_reduce_stats(const hkp_mpi *w, hkp_stats *s, hkm_err *err);

#endif
