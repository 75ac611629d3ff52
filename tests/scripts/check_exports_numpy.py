#!/usr/bin/env python3
"""Reads hubkv-solve's exports with numpy and checks them against the profile
(h5py): LU-KV prune ratios = 1 - /budgets/keep, KVzip head scores = mean keep
over the 99 ratios, DuoAttention tsv = keep at the given ratio. Run by hand on
a CPU machine (not in CI):
  check_exports_numpy.py PROFILE LUKV.npy KVZIP.npy DUO.tsv DUO_RATIO_PERCENT"""
import sys

import h5py
import numpy as np


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    prof, lukv, kvzip, duo, ratio = sys.argv[1:5] + [int(sys.argv[5])]
    with h5py.File(prof, "r") as f:
        keep = f["/budgets/keep"][...]
        L, H = f.attrs["model_n_layers"], f.attrs["model_n_kv_heads"]
    prune = np.load(lukv)
    assert prune.dtype == np.float32 and prune.shape == (99, L, H), (prune.dtype, prune.shape)
    assert np.array_equal(prune, (1.0 - keep).astype(np.float32)), np.abs(prune - (1 - keep)).max()
    score = np.load(kvzip)
    assert score.dtype == np.float32 and score.shape == (L, H), (score.dtype, score.shape)
    assert np.allclose(score, keep.astype(np.float64).mean(axis=0), atol=1e-6), np.abs(score - keep.mean(0)).max()
    tsv = np.loadtxt(duo, delimiter="\t", ndmin=2)
    assert tsv.shape == (L, H) and np.all((tsv >= 0) & (tsv <= 1)), tsv.shape
    assert np.allclose(tsv, keep[ratio - 1], atol=1e-7), np.abs(tsv - keep[ratio - 1]).max()
    # numpy writes a file the C reader must accept: round trip the other way.
    np.save(lukv + ".np.npy", prune)
    print(f"OK: {prof}: LU-KV {prune.shape}, KVzip {score.shape}, DuoAttention {tsv.shape} match the profile")


if __name__ == "__main__":
    main()
