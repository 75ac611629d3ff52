#!/usr/bin/env python3
"""Reads the round-trip profile written by test_runtime_profile with h5py and
compares every value with the same formulas the C test used (keep the two in
sync). Run on the CPU machine after ctest:
    python3 tests/scripts/check_profile_h5py.py BUILD/tests/runtime_roundtrip.h5
Exits non-zero on the first mismatch."""
import sys

import h5py
import numpy as np

L, H, G, R = 4, 2, 11, 99


def expected():
    grid = (np.arange(G) / (G - 1)).astype(np.float32)
    lh = np.arange(L)[:, None] + 0.5 * np.arange(H)[None, :]
    loss = ((1.0 + lh)[..., None] * (1.0 - grid) ** 2).astype(np.float32)
    sel = (np.arange(L)[:, None] + 0.25 * np.arange(H)[None, :]).astype(np.float32)
    beta = (0.8 + 0.05 * (np.arange(L)[:, None] * H + np.arange(H)[None, :])).astype(np.float32)
    u = 1.0 - (np.arange(R) + 1) / 100.0
    uni = np.broadcast_to(u[:, None, None], (R, L, H)).astype(np.float32)
    keep = np.clip(u[:, None, None] + 0.01 * (np.arange(L)[:, None] - np.arange(H)[None, :]), 0, 1).astype(np.float32)
    gate = (0.5 * np.arange(6)).reshape(2, 3).astype(np.float32)
    return {"/curves/grid": grid, "/curves/loss": loss, "/heads/selectivity": sel, "/heads/beta": beta,
            "/budgets/ratios": ((np.arange(R) + 1) / 100.0).astype(np.float32), "/budgets/keep": keep,
            "/baselines/uniform": uni, "/gate/layer_1/w": gate}


def main(path):
    fails = 0
    with h5py.File(path, "r") as f:
        a = f.attrs
        want_attrs = {"format": "hubkv-profile", "format_version_major": 1, "format_version_minor": 0,
                      "model_architecture": "llama", "model_n_layers": L, "model_n_heads": 4, "model_n_kv_heads": H,
                      "model_head_dim": 8, "model_vocab": 100, "model_hash": 0x0123456789ABCDEF,
                      "scorer_name": "expected_attention", "scorer_params": '{"window": 64}',
                      "calib_dataset": "wikitext", "calib_n_contexts": 16, "calib_context_len": 4096,
                      "calib_n_sink": 4, "calib_n_recent": 16, "producer": "test_runtime_profile"}
        for k, v in want_attrs.items():
            got = a[k]
            got = got.decode() if isinstance(got, bytes) else got
            if got != v:
                print(f"attribute {k}: {got!r} != {v!r}")
                fails += 1
        for k in ("created", "producer_version"):
            if k not in a:
                print(f"attribute {k} missing")
                fails += 1
        for name, want in expected().items():
            ds = f[name]
            got = ds[...]
            if ds.dtype != np.float32 or got.shape != want.shape:
                print(f"{name}: dtype {ds.dtype} shape {got.shape}; expected float32 {want.shape}")
                fails += 1
            elif not np.allclose(got, want, rtol=1e-6, atol=1e-7):
                print(f"{name}: max abs diff {np.abs(got - want).max()}")
                fails += 1
            if "units" not in ds.attrs or "description" not in ds.attrs:
                print(f"{name}: lacks units/description")
                fails += 1
        if "/baselines/pyramidkv" in f:
            print("/baselines/pyramidkv should be absent")
            fails += 1
    print(f"{path}: {'OK' if not fails else f'{fails} mismatches'}")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "runtime_roundtrip.h5"))
