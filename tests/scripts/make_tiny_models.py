#!/usr/bin/env python3
"""Write the loader/forward golden data.

Outputs
  tests/data/tiny/<name>/config.json, model.safetensors (or shards + index),
  tests/data/tiny/<name>/reference.json
      tiny random checkpoints of each supported architecture, and what
      transformers (fp32, eager attention) computes with them
  tests/data/default_model_reference.json
      logits slices + greedy continuation of the default GGUF model as
      transformers' GGUF loader dequantises it (skipped with --no-gguf)

The formats are documented in tests/data/tiny/README.md. The GGUF part needs
the `accelerate` package (transformers' GGUF loader requires it). Run once (CPU):
  python3 tests/scripts/make_tiny_models.py [--model PATH.gguf] [--no-gguf]
"""
import argparse
import json
import math
import os
import shutil

import torch
from transformers import (AutoModelForCausalLM, AutoTokenizer, LlamaConfig, MistralConfig,
                          Qwen2Config, Qwen3Config)

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.normpath(os.path.join(HERE, "..", "data"))
TINY = os.path.join(DATA, "tiny")
DEFAULT_GGUF = os.path.expanduser("~/.cache/hubkv/SmolLM2-135M-Instruct.Q4_1.gguf")

COMMON = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
              intermediate_size=128, max_position_embeddings=128, bos_token_id=1,
              eos_token_id=2)

# name -> (config, save dtype, extra save_pretrained kwargs)
MODELS = {
    # llama3 rope scaling with a small original context so it changes the
    # frequencies used at positions 0..23; untied lm_head; bf16 on disk.
    "llama3": (lambda: LlamaConfig(**COMMON, vocab_size=320, rms_norm_eps=1e-5,
                                   tie_word_embeddings=False,
                                   rope_parameters={"rope_type": "llama3", "rope_theta": 50000.0,
                                                    "factor": 8.0, "low_freq_factor": 1.0,
                                                    "high_freq_factor": 4.0,
                                                    "original_max_position_embeddings": 16}),
               torch.bfloat16, {}),
    # f16 on disk.
    "mistral": (lambda: MistralConfig(**COMMON, vocab_size=256, rms_norm_eps=1e-5,
                                      sliding_window=None, tie_word_embeddings=False,
                                      rope_parameters={"rope_type": "default",
                                                       "rope_theta": 10000.0}),
                torch.float16, {}),
    # q/k/v biases, tied embeddings, bf16 on disk.
    "qwen2": (lambda: Qwen2Config(**COMMON, vocab_size=288, rms_norm_eps=1e-6,
                                  tie_word_embeddings=True,
                                  rope_parameters={"rope_type": "default",
                                                   "rope_theta": 1000000.0}),
              torch.bfloat16, {}),
    # q/k RMSNorm, head_dim 32 != hidden/heads = 16, f16 on disk.
    "qwen3": (lambda: Qwen3Config(**COMMON, vocab_size=256, head_dim=32, rms_norm_eps=1e-6,
                                  tie_word_embeddings=False,
                                  rope_parameters={"rope_type": "default",
                                                   "rope_theta": 1000000.0}),
              torch.float16, {}),
    # several shards + model.safetensors.index.json, fp32.
    "llama-sharded": (lambda: LlamaConfig(**COMMON, vocab_size=256, rms_norm_eps=1e-5,
                                          tie_word_embeddings=False),
                      torch.float32, {"max_shard_size": "150KB"}),
}

N_SEQ, SEQ_LEN, N_GREEDY = 2, 16, 8
MIN_MARGIN = 0.01  # smallest top1 - top2 logit gap allowed along a greedy path


def g(x):
    """Float with 9 significant digits (round-trips fp32)."""
    return float("%.9g" % x)


def randomize(model, gen):
    """Weights whose mistakes show: O(1) activations, norms != 1, biases != 0."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(0.5 + torch.rand(p.shape, generator=gen))
            elif name.endswith(".bias"):
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=gen))
            else:  # linear (out, in)
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[1]))


def tensor_checks(model):
    """Sum, shape and a few entries of some tensors, as loaded in fp32."""
    sd = model.state_dict()
    names = ["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
             "model.layers.1.self_attn.k_proj.weight", "model.layers.1.mlp.down_proj.weight",
             "model.layers.0.input_layernorm.weight", "model.norm.weight", "lm_head.weight"]
    for extra in ["model.layers.0.self_attn.q_proj.bias", "model.layers.1.self_attn.v_proj.bias",
                  "model.layers.0.self_attn.q_norm.weight", "model.layers.1.self_attn.k_norm.weight"]:
        if extra in sd:
            names.append(extra)
    out = []
    for n in names:
        t = sd[n].detach().float()
        flat = t.reshape(-1)
        idx = sorted({0, 1, flat.numel() // 2, flat.numel() - 1})
        out.append({"name": n, "shape": list(t.shape), "sum": g(t.double().sum().item()),
                    "index": idx, "values": [g(flat[i].item()) for i in idx]})
    return out


def resolved_config(c):
    """The config as transformers resolved it (defaults applied), hkm_config names."""
    rp = c.rope_parameters
    eos = c.eos_token_id[0] if isinstance(c.eos_token_id, list) else c.eos_token_id
    return {"arch": c.model_type, "n_layers": c.num_hidden_layers, "d_model": c.hidden_size,
            "n_heads": c.num_attention_heads, "n_kv_heads": c.num_key_value_heads,
            "head_dim": getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads, "d_ff": c.intermediate_size, "vocab_size": c.vocab_size,
            "max_pos": c.max_position_embeddings, "rms_eps": c.rms_norm_eps,
            "rope_theta": rp["rope_theta"], "rope_type": rp["rope_type"],
            "rope_factor": rp.get("factor", 1.0), "rope_low_freq_factor": rp.get("low_freq_factor", 1.0),
            "rope_high_freq_factor": rp.get("high_freq_factor", 1.0),
            "rope_orig_max_pos": rp.get("original_max_position_embeddings", c.max_position_embeddings),
            "tie_embeddings": bool(c.tie_word_embeddings),
            "bos_id": -1 if c.bos_token_id is None else c.bos_token_id,
            "eos_id": -1 if eos is None else eos}


def greedy(model, ids):
    """Greedy continuation (EOS does not stop it) + top1-top2 margin per step."""
    toks, margins = [], []
    seq = torch.tensor([ids])
    with torch.no_grad():
        out = model.generate(seq, do_sample=False, max_new_tokens=N_GREEDY, min_new_tokens=N_GREEDY,
                             eos_token_id=None, pad_token_id=0, output_scores=True,
                             return_dict_in_generate=True)
    toks = out.sequences[0, len(ids):].tolist()
    for s in out.scores:
        top = torch.topk(s[0].float(), 2).values
        margins.append(g((top[0] - top[1]).item()))
    return toks, margins


def make_tiny(name, seed):
    """Reseed (deterministically) until no greedy step is a near tie."""
    for attempt in range(20):
        if make_tiny_seed(name, seed + 100 * attempt) >= MIN_MARGIN:
            return
    raise RuntimeError(f"{name}: no seed without a greedy near-tie")


def make_tiny_seed(name, seed):
    mk, dtype, save_kw = MODELS[name]
    cfg = mk()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").float()
    randomize(model, gen)
    if cfg.tie_word_embeddings:
        model.tie_weights()
    d = os.path.join(TINY, name)
    shutil.rmtree(d, ignore_errors=True)
    model.to(dtype).save_pretrained(d, **save_kw)
    for extra in ["generation_config.json"]:
        p = os.path.join(d, extra)
        if os.path.exists(p):
            os.remove(p)
    # The reference is what transformers computes from the files on disk.
    ref_model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32,
                                                     attn_implementation="eager").eval()
    vocab = cfg.vocab_size
    ids = torch.randint(3, vocab, (N_SEQ, SEQ_LEN), generator=gen)
    ids[:, 0] = cfg.bos_token_id
    with torch.no_grad():
        logits = ref_model(ids).logits.float()  # (N_SEQ, SEQ_LEN, vocab)
    ref = {"name": name, "architecture": cfg.architectures[0] if cfg.architectures else None,
           "torch_dtype_on_disk": str(dtype).replace("torch.", ""),
           "vocab_size": vocab, "ids": ids.tolist(),
           "logits": [[[g(v) for v in row] for row in seq] for seq in logits.tolist()],
           "greedy": [], "greedy_margin": [], "checks": tensor_checks(ref_model),
           "resolved": resolved_config(ref_model.config)}
    for s in range(N_SEQ):
        toks, margins = greedy(ref_model, ids[s].tolist())
        ref["greedy"].append(toks)
        ref["greedy_margin"].append(margins)
    ref["seed"] = seed
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump(ref, f, separators=(",", ":"))
    files = sorted(os.listdir(d))
    margin = min(min(m) for m in ref["greedy_margin"])
    print(name, "seed", seed, "margin", margin, files,
          sum(os.path.getsize(os.path.join(d, x)) for x in files), "bytes")
    return margin


# ---------------------------------------------------------------- default GGUF model

PROMPTS = ["The capital of France is",
           "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
           "<|im_start|>user\nName three primary colors.<|im_end|>\n<|im_start|>assistant\n"]


def make_gguf_reference(path):
    d, f = os.path.split(path)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    vocab = model.config.vocab_size
    fixed = list(range(0, vocab, 384))
    prompts = []
    for text in PROMPTS:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].float()
            gen = model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=16,
                                 min_new_tokens=16, eos_token_id=None, pad_token_id=0)
        n = len(ids)
        rows = []
        for pos in sorted({0, n // 2, n - 1}):
            top = torch.topk(logits[pos], 128).indices.tolist()
            sel = sorted(set(top) | set(fixed))
            rows.append({"pos": pos, "ids": sel, "values": [g(logits[pos, i].item()) for i in sel],
                         "argmax": int(torch.argmax(logits[pos]).item())})
        prompts.append({"text": text, "ids": ids, "logits": rows,
                        "greedy": gen[0, n:].tolist()})
    sd = model.state_dict()
    checks = {}
    for name in ["model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight"]:
        t = sd[name].float()
        checks[name] = {"shape": list(t.shape), "rows": [0, 1, 32, 33],
                        "values": [[g(v) for v in t[r, :8].tolist()] for r in [0, 1, 32, 33]],
                        "sum": g(t.double().sum().item())}
    for name in ["model.embed_tokens.weight", "model.layers.0.input_layernorm.weight",
                 "model.layers.29.mlp.down_proj.weight", "model.norm.weight"]:
        t = sd[name].float()
        checks[name] = {"shape": list(t.shape), "rows": [0, t.shape[0] - 1] if t.dim() == 2 else [],
                        "values": ([[g(v) for v in t[r, :8].tolist()] for r in [0, t.shape[0] - 1]]
                                   if t.dim() == 2 else [[g(v) for v in t[:8].tolist()]]),
                        "sum": g(t.double().sum().item())}
    out = {"model": f, "vocab_size": vocab, "fixed_ids_stride": 384, "prompts": prompts,
           "gguf_checks": checks}
    p = os.path.join(DATA, "default_model_reference.json")
    with open(p, "w") as fh:
        json.dump(out, fh, separators=(",", ":"))
    print(p, os.path.getsize(p), "bytes")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=DEFAULT_GGUF)
    ap.add_argument("--no-gguf", action="store_true")
    ap.add_argument("--only", nargs="*", default=None)
    a = ap.parse_args()
    torch.set_num_threads(2)
    for i, name in enumerate(MODELS):
        if a.only is None or name in a.only:
            make_tiny(name, 1234 + i)
    if not a.no_gguf and (a.only is None or "gguf" in a.only):
        make_gguf_reference(a.model)


if __name__ == "__main__":
    main()
