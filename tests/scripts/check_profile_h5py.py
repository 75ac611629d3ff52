#!/usr/bin/env python3
"""Reads the round-trip profile written by test_runtime_profile with h5py and
compares every value with the same formulas the C test used (keep the two in
sync). Run on the CPU machine after ctest:
    python3 tests/scripts/check_profile_h5py.py BUILD/tests/runtime_roundtrip.h5 [BUILD/tests/test_runtime_profile]
With the test binary it also goes the other way for /gate: writes a trained
gate's state dict into a copy with h5py (as a Python gate trainer would) and
checks that libhubkv reads the same shapes and float32 values
(test_runtime_profile --dump-gate). Exits non-zero on any mismatch."""
import os
import shutil
import subprocess
import sys
import tempfile

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


GATE_DIMS = dict(r=3, D=5, G=2, S=4)


def gate_state_dict(r, D, G, S):
    """A Fast KVzip-style gate layer (docs/profile-format.md, /gate), with the
    unit axes of k_base (H, 1, S, r) and b (H, 1, G) that the format drops."""
    rng = np.random.default_rng(7)
    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)
    return {"q_proj_weight": f32(H * G * r, D), "q_proj_bias": f32(H * G * r), "k_proj_weight": f32(H * r, D),
            "q_norm_weight": f32(r), "k_norm_weight": f32(r), "k_base": f32(H, 1, S, r)[:, 0],
            "b": f32(H, 1, G)[:, 0]}


def gate_h5py_to_c(path, binary, layer=2):
    """h5py writes /gate/layer_<layer>/*; the C library must read them back."""
    fails = 0
    dims = GATE_DIMS
    tensors = gate_state_dict(**dims)
    want_gate = f"gate {dims['D']} {H} {dims['G']} {dims['r']} {dims['S']}"
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "gate.h5")
        shutil.copyfile(path, copy)
        with h5py.File(copy, "r+") as f:
            grp = f.require_group(f"/gate/layer_{layer}")
            for name, w in tensors.items():
                ds = grp.create_dataset(name, data=w, dtype="<f4")
                ds.attrs["units"] = "1"
                ds.attrs["description"] = "sink-attention gate weight"
        for name, w in tensors.items():
            res = subprocess.run([binary, "--dump-gate", copy, str(layer), name], capture_output=True, text=True)
            if res.returncode != 0:
                print(f"/gate/layer_{layer}/{name}: libhubkv failed: {res.stderr.strip()}")
                fails += 1
                continue
            lines = res.stdout.split("\n")
            if lines[0] != want_gate:  # hubkv_profile_gate_weights' view of the layer
                print(f"/gate/layer_{layer}: libhubkv assembled {lines[0]!r}; expected {want_gate!r} (d_model H G r S)")
                fails += 1
            shape = tuple(int(x) for x in lines[1].split()[1:])
            got = np.array([float(x) for x in lines[2:] if x], dtype=np.float32)
            if shape != w.shape or got.size != w.size or not np.array_equal(got, w.ravel()):
                print(f"/gate/layer_{layer}/{name}: libhubkv read shape {shape}, {got.size} values; "
                      f"expected {w.shape} bit-equal to what h5py wrote")
                fails += 1
    print(f"gate written by h5py, read by libhubkv ({len(tensors)} tensors): {'OK' if not fails else f'{fails} mismatches'}")
    return 1 if fails else 0


if __name__ == "__main__":
    rc = main(sys.argv[1] if len(sys.argv) > 1 else "runtime_roundtrip.h5")
    if len(sys.argv) > 2:
        rc |= gate_h5py_to_c(sys.argv[1], sys.argv[2])
    sys.exit(rc)
