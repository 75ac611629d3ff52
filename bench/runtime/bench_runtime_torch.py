#!/usr/bin/env python3
"""PyTorch baseline for the libhubkv kernels, kvpress-style (max_pool1d, where,
topk, gather), on the same shapes as bench_runtime.cu, then runs that binary
in the same job and prints the speed-up ratios.

Usage: bench_runtime_torch.py PATH/TO/bench_runtime [keep_fraction=0.2]
"""
import re
import subprocess
import sys

import torch
import torch.nn.functional as F


def time_ms(fn, iters=10):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return sorted(times)[len(times) // 2]


def refine(s, beta, r):  # s: (L, H, N) fp32
    L, H, N = s.shape
    pooled = F.max_pool1d(s.view(L * H, 1, N), 5, stride=1, padding=2).view(L, H, N)
    q = torch.where(s == pooled, s, 0.5 * s)
    return s + r * r * (beta[..., None] * q - s)


def bench_select(L, H, N, keep):
    s = torch.rand(L, H, N, device="cuda")
    beta = 0.8 + 0.4 * torch.rand(L, H, device="cuda")
    k = int(keep * N)
    out = {}
    out["refine"] = time_ms(lambda: refine(s, beta, 1 - keep))
    out["refine+topk"] = time_ms(lambda: refine(s, beta, 1 - keep).topk(k, dim=-1).indices.sort(dim=-1))
    return out


def bench_compact(L, H, N, d, keep):
    k = torch.randn(H, N, d, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(H, N, d, device="cuda", dtype=torch.bfloat16)
    kk = int(keep * N)
    idx = torch.rand(H, N, device="cuda").topk(kk, dim=-1).indices.sort(dim=-1).values
    gi = idx[..., None].expand(-1, -1, d)

    def run():
        for _ in range(L):  # one layer buffer reused, as in bench_runtime.cu
            k.gather(1, gi)
            v.gather(1, gi)

    ms = time_ms(run)
    gbs = L * H * kk * (2 * 2 * d * 2) / (ms * 1e-3) / 1e9
    return ms, gbs


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "/tmp/build-gpu/runtime-lib/bench_runtime"
    keep = float(sys.argv[2]) if len(sys.argv) > 2 else 0.2
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, keep {keep}")
    torch_ms = {}
    for L, H, N in [(32, 8, 131072), (8, 32, 32768)]:
        t = bench_select(L, H, N, keep)
        shape = f"{L}x{H}x{N}"
        gb = L * H * N * 4 / 1e9
        for name, ms in t.items():
            torch_ms[f"{name}_{shape}"] = ms
            print(f"torch  {name:24s} {shape:14s} {ms:9.3f} ms  {gb / (ms * 1e-3):8.1f} GB/s (one read of scores)")
        ms, gbs = bench_compact(L, H, N, 128, keep)
        torch_ms[f"compact_{shape}xd128"] = ms
        print(f"torch  {'compact (gather)':24s} {shape:14s} {ms:9.3f} ms  {gbs:8.1f} GB/s")
        torch.cuda.empty_cache()
    res = subprocess.run([binary, str(keep)], capture_output=True, text=True, check=True).stdout
    print(res, end="")
    hubkv = {m[1]: (float(m[2]), float(m[3])) for m in re.finditer(r"RESULT (\S+) (\S+) (\S+)", res)}
    memcpy_gbs = hubkv.get("memcpy_d2d_1GiB", (0, 0))[1]
    print("\nratios (PyTorch time / hubkv time):")
    for name, ms in torch_ms.items():
        for cand in ([name, "fused_" + name.replace("+", "_")] if "+" in name else [name]):
            if cand in hubkv:
                hk_ms, hk_gbs = hubkv[cand]
                extra = f", {100 * hk_gbs / memcpy_gbs:.0f}% of D2D memcpy" if name.startswith("compact") and memcpy_gbs else ""
                print(f"  {cand:40s} {ms / hk_ms:7.1f}x  (hubkv {hk_ms:.3f} ms, {hk_gbs:.0f} GB/s{extra})")
    # The goals: refine + select >= 10x PyTorch (best hubkv variant),
    # compaction >= 80% of the measured D2D copy bandwidth.
    missed = 0
    print("\ngoals:")
    for L, H, N in [(32, 8, 131072), (8, 32, 32768)]:
        shape = f"{L}x{H}x{N}"
        t_torch = torch_ms[f"refine+topk_{shape}"]
        t_hk = min(hubkv[c][0] for c in (f"refine+topk_{shape}", f"fused_refine_topk_{shape}") if c in hubkv)
        ok = t_torch / t_hk >= 10
        missed += not ok
        print(f"  refine+select {shape:14s} {t_torch / t_hk:6.1f}x PyTorch (goal >= 10x): {'met' if ok else 'MISSED'}")
        gbs = hubkv[f"compact_{shape}xd128"][1]
        frac = gbs / memcpy_gbs if memcpy_gbs else 0
        ok = frac >= 0.8
        missed += not ok
        print(f"  compaction    {shape:14s} {100 * frac:5.0f}% of {memcpy_gbs:.0f} GB/s D2D copy (goal >= 80%): {'met' if ok else 'MISSED'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
