#!/usr/bin/env python3
"""GPU benchmark, hubkv vs transformers (sdpa, bf16, inference_mode), on the
same random-initialised models: the Llama-3.2-1B shape and the default model's
(SmolLM2-135M) shape. Builds each model with transformers, saves it as
safetensors under /tmp, runs hubkv_bench_gpu on it, times transformers, and
prints ratios, TFLOP/s vs the measured GEMM rate, decode vs HBM roofline and
peak memory. usage: bench_peer.py --hubkv PATH/hubkv_bench_gpu"""
import argparse, os, subprocess, sys, time

import torch
from transformers import AutoConfig, AutoModelForCausalLM

SHAPES = {
    "llama-3.2-1b": dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32,
                         num_key_value_heads=8, intermediate_size=8192, vocab_size=128256,
                         tie_word_embeddings=True, rope_theta=500000.0, max_position_embeddings=131072,
                         rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                       "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}),
    "smollm2-135m": dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, intermediate_size=1536, vocab_size=49152,
                         tie_word_embeddings=True, rope_theta=100000.0, max_position_embeddings=40960),
}
PREFILL = [2048, 8192, 32768]
DECODE_CTX = 8192


def build(name, shape):
    path = f"/tmp/hubkv-bench-{name}"
    if not os.path.exists(os.path.join(path, "model.safetensors")):
        cfg = AutoConfig.for_model("llama", **shape, rms_norm_eps=1e-5)
        torch.manual_seed(0)
        m = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
        m.save_pretrained(path, safe_serialization=True)
    return path


def run_hubkv(exe, path, prefill, chunk):
    cmd = [exe, path, "--decode", str(DECODE_CTX), "--chunk", str(chunk)]
    for n in prefill:
        cmd += ["--prefill", str(n)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    print(out.stdout + out.stderr)
    if out.returncode:
        return None
    return {k: float(v) for k, v in (l.split() for l in out.stdout.splitlines() if len(l.split()) == 2)}


@torch.inference_mode()
def run_hf(path, prefill):
    m = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16,
                                             attn_implementation="sdpa").cuda().eval()
    V = m.config.vocab_size
    res = {}
    for n in prefill:
        ids = torch.randint(0, V, (1, n), device="cuda")
        try:
            torch.cuda.reset_peak_memory_stats()
            m(ids, logits_to_keep=1)
            torch.cuda.synchronize()
            t = time.time()
            m(ids, logits_to_keep=1)
            torch.cuda.synchronize()
            res[f"prefill_{n}_tok_s"] = n / (time.time() - t)
            res[f"peak_{n}"] = torch.cuda.max_memory_allocated()
        except torch.OutOfMemoryError:
            print(f"transformers: out of memory at {n}")
            torch.cuda.empty_cache()
    ids = torch.randint(0, V, (1, DECODE_CTX), device="cuda")
    out = m(ids, use_cache=True, logits_to_keep=1)
    past, tok = out.past_key_values, out.logits[:, -1:].argmax(-1)
    torch.cuda.synchronize()
    t, steps = time.time(), 32
    for _ in range(steps):
        out = m(tok, past_key_values=past, use_cache=True)
        past, tok = out.past_key_values, out.logits[:, -1:].argmax(-1)
    torch.cuda.synchronize()
    res["decode_tok_s"] = steps / (time.time() - t)
    res["peak_bytes"] = torch.cuda.max_memory_allocated()
    del m
    torch.cuda.empty_cache()
    return res


@torch.inference_mode()
def run_hf_eager_attn(path, lengths):
    """transformers eager attention with output_attentions=True: what a user
    without hubkv runs to get attention probabilities."""
    m = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16,
                                             attn_implementation="eager").cuda().eval()
    res = {}
    for n in lengths:
        ids = torch.randint(0, m.config.vocab_size, (1, n), device="cuda")
        try:
            out = m(ids, output_attentions=True, logits_to_keep=1)
            del out
            torch.cuda.synchronize()
            t = time.time()
            out = m(ids, output_attentions=True, logits_to_keep=1)
            torch.cuda.synchronize()
            res[n] = n / (time.time() - t)
            del out
        except torch.OutOfMemoryError:
            print(f"transformers eager output_attentions: out of memory at {n}")
        torch.cuda.empty_cache()
    del m
    torch.cuda.empty_cache()
    return res


def flops_per_token(s, n):
    d, L, H, ff, V = s["hidden_size"], s["num_hidden_layers"], s["num_attention_heads"], s["intermediate_size"], s["vocab_size"]
    kv = s["num_key_value_heads"] * d // H
    mats = L * (d * d * 2 + 2 * d * kv + 3 * d * ff)
    attn = L * 2 * d * n  # causal: QK and PV, half of n keys on average, 2 flops
    return 2 * mats + attn


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hubkv", required=True)
    # hubkv's prefill chunk: by default the longest prompt, so that, like
    # transformers, each prompt goes through in one call (--chunk 8192 gives
    # the chunked numbers: 32K prefill ~4% slower, less scratch memory)
    ap.add_argument("--chunk", type=int, default=max(PREFILL))
    ap.add_argument("--shape", action="append", choices=list(SHAPES), help="default: all")
    a = ap.parse_args()
    for name, shape in SHAPES.items():
        if a.shape and name not in a.shape:
            continue
        print(f"\n##### {name} (hubkv prefill chunk {a.chunk})")
        path = build(name, shape)
        h = run_hubkv(a.hubkv, path, PREFILL, a.chunk) or {}
        t = run_hf(path, PREFILL)
        e = run_hf_eager_attn(path, PREFILL[:2])
        rate = h.get("gemm_bf16_tflops", float("nan"))
        for n in PREFILL:
            k = f"prefill_{n}_tok_s"
            hv, tv = h.get(k), t.get(k)
            tf = hv * flops_per_token(shape, n) / 1e12 if hv else float("nan")
            print(f"{name} prefill {n}: hubkv {hv} tok/s, transformers {tv} tok/s, ratio "
                  f"{(hv / tv) if hv and tv else float('nan'):.2f}, hubkv {tf:.1f} TFLOP/s "
                  f"({tf / rate * 100:.0f}% of measured GEMM {rate:.0f})")
        for n in PREFILL:
            hv, cv, ev = h.get(f"prefill_{n}_tok_s"), h.get(f"prefill_cap_{n}_tok_s"), e.get(n)
            if hv and cv:
                print(f"{name} capture stats of 64 rows @ {n}: hubkv {cv:.0f} tok/s, overhead "
                      f"{(hv / cv - 1) * 100:.1f}% (goal <= 10%); transformers eager "
                      f"output_attentions {ev and round(ev)} tok/s, hubkv "
                      f"{(cv / ev) if ev else float('nan'):.1f}x faster (goal >= 3x)")
        hv, tv = h.get("decode_tok_s"), t.get("decode_tok_s")
        roof = h.get("copy_gbps", float("nan")) * 1e9 / (h.get("weights_bytes", 0) + h.get("kv_bytes_per_token_at_ctx", 0) or float("nan"))
        print(f"{name} decode @ {DECODE_CTX}: hubkv {hv} tok/s, transformers {tv} tok/s, ratio "
              f"{(hv / tv) if hv and tv else float('nan'):.2f}; roofline {roof:.0f} tok/s, hubkv at "
              f"{(hv / roof * 100) if hv else float('nan'):.0f}%")
        gv = h.get("decode_greedy_tok_s")
        print(f"{name} greedy decode @ {DECODE_CTX} (token id picked on the device): hubkv {gv} "
              f"tok/s, at {(gv / roof * 100) if gv else float('nan'):.0f}% of the roofline")
        print(f"{name} peak memory: hubkv {h.get('peak_bytes', 0) / 2**30:.2f} GiB, transformers "
              f"{t.get('peak_bytes', 0) / 2**30:.2f} GiB")


if __name__ == "__main__":
    sys.exit(main())
