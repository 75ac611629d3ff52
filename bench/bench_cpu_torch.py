#!/usr/bin/env python3
"""Peer of bench_cpu_forward: the same prefill/decode measurements with
transformers on PyTorch (float32, CPU), on the same GGUF model and token ids,
printed as the same JSON lines.

  python3 bench/bench_cpu_torch.py MODEL.gguf [--threads T] [--prefill 256,1024]
                                   [--decode-prompt 256] [--decode-steps 64] [--reps 3]
                                   [--attn sdpa|eager]
"""
import argparse
import json
import os
import time

import torch
from transformers import AutoModelForCausalLM, DynamicCache


def bench_id(i, vocab):
    """Same formula as bench_cpu_forward.c."""
    return 1000 + (i * 7919) % (vocab - 1000)


def time_prefill(model, ids, reps):
    best = float("inf")
    for r in range(reps + 1):  # the first run warms up
        t0 = time.perf_counter()
        model(ids, past_key_values=DynamicCache(), use_cache=True, logits_to_keep=1)
        dt = time.perf_counter() - t0
        if r > 0:
            best = min(best, dt)
    return best


def time_decode(model, ids, n_prompt, steps, reps):
    best = float("inf")
    for r in range(reps + 1):
        cache = DynamicCache()
        model(ids[:, :n_prompt], past_key_values=cache, use_cache=True, logits_to_keep=1)
        t0 = time.perf_counter()
        for i in range(steps):
            model(ids[:, n_prompt + i:n_prompt + i + 1], past_key_values=cache, use_cache=True)
        dt = time.perf_counter() - t0
        if r > 0:
            best = min(best, dt)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--prefill", default="256,1024")
    ap.add_argument("--decode-prompt", type=int, default=256)
    ap.add_argument("--decode-steps", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    threads = torch.get_num_threads()
    d, f = os.path.split(os.path.abspath(a.model))
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32,
                                                 attn_implementation=a.attn).eval()
    vocab = model.config.vocab_size
    pre = [int(x) for x in a.prefill.split(",")]
    max_n = max(pre + [a.decode_prompt + a.decode_steps])
    ids = torch.tensor([[bench_id(i, vocab) for i in range(max_n)]])
    impl = "torch-" + a.attn
    with torch.inference_mode():
        for n in pre:
            s = time_prefill(model, ids[:, :n], a.reps)
            print(json.dumps({"impl": impl, "test": "prefill", "n": n, "threads": threads,
                              "seconds": round(s, 6), "tok_s": round(n / s, 2)}), flush=True)
        s = time_decode(model, ids, a.decode_prompt, a.decode_steps, a.reps)
        print(json.dumps({"impl": impl, "test": "decode", "n": a.decode_steps,
                          "prompt": a.decode_prompt, "threads": threads, "seconds": round(s, 6),
                          "tok_s": round(a.decode_steps / s, 2)}), flush=True)


if __name__ == "__main__":
    main()
