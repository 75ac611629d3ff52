#!/usr/bin/env python3
"""Write the fuzzers' seed corpora into tests/fuzz/seeds/<target>/ from the real
test files, plus micro models small enough that a mutated input can still load
end to end. Run once (needs numpy, gguf, safetensors); the seeds are versioned,
so neither the fuzzers nor the tests need Python.

    python3 tests/fuzz/make_seeds.py
"""
import json
import os
import shutil

import gguf
import numpy as np
from safetensors.numpy import save as st_save

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.path.join(ROOT, "tests", "data")
SEEDS = os.path.join(ROOT, "tests", "fuzz", "seeds")
SHARD_SEP = b"\n#SHARD\n"  # fuzz_safetensors: index JSON, separator, shard bytes

# The micro llama the safetensors fuzzer's fixed config.json describes
# (keep in sync with MICRO_CONFIG in tests/fuzz/fuzz_entries.c).
MICRO = dict(hidden=8, heads=2, kv=1, head_dim=4, ffn=16, vocab=16, layers=1)


def out(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def micro_hf_tensors(rng, dtype):
    m = MICRO
    h, q, kv, f, v = m["hidden"], m["heads"] * m["head_dim"], m["kv"] * m["head_dim"], m["ffn"], m["vocab"]
    shapes = {"model.embed_tokens.weight": (v, h), "model.norm.weight": (h,), "lm_head.weight": (v, h)}
    for i in range(m["layers"]):
        p = f"model.layers.{i}."
        shapes.update({p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,),
                       p + "self_attn.q_proj.weight": (q, h), p + "self_attn.k_proj.weight": (kv, h),
                       p + "self_attn.v_proj.weight": (kv, h), p + "self_attn.o_proj.weight": (h, q),
                       p + "mlp.gate_proj.weight": (f, h), p + "mlp.up_proj.weight": (f, h),
                       p + "mlp.down_proj.weight": (h, f)})
    return {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}


def bf16_file(tensors):
    """safetensors with BF16 dtype: write as F32, then rewrite header and data."""
    import struct
    hdr, data = {}, b""
    for k, a in sorted(tensors.items()):
        raw = (a.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16).tobytes()
        hdr[k] = {"dtype": "BF16", "shape": list(a.shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(hdr, separators=(",", ":")).encode()
    return struct.pack("<Q", len(h)) + h + data


def header_only(path, keep=16384):
    with open(path, "rb") as f:
        return f.read(keep)


def safetensors_seeds(rng):
    t32 = micro_hf_tensors(rng, np.float32)
    out("fuzz_safetensors", "micro_f32.safetensors", st_save(t32, metadata={"format": "pt"}))
    out("fuzz_safetensors", "micro_f16.safetensors", st_save({k: v.astype(np.float16) for k, v in t32.items()}))
    out("fuzz_safetensors", "micro_bf16.safetensors", bf16_file(t32))
    for name in ("llama3", "mistral", "qwen2", "qwen3"):  # real headers, data cut short
        out("fuzz_safetensors", f"{name}_head.safetensors",
            header_only(os.path.join(DATA, "tiny", name, "model.safetensors")))
    with open(os.path.join(DATA, "tiny", "llama-sharded", "model.safetensors.index.json"), "rb") as f:
        index = f.read()
    out("fuzz_safetensors", "index_real_shards", index)  # names the real shards, copied beside it
    micro_index = json.dumps({"metadata": {}, "weight_map": {k: "s.safetensors" for k in t32}}).encode()
    out("fuzz_safetensors", "index_micro_shard", micro_index + SHARD_SEP + st_save(t32))


def config_seeds():
    for d in sorted(os.listdir(os.path.join(DATA, "tiny"))):
        p = os.path.join(DATA, "tiny", d, "config.json")
        if os.path.exists(p):
            shutil.copy(p, os.path.join(SEEDS, "fuzz_config_json", d + ".json"))


def prune_tokenizer(path, n_vocab=300):
    """A real tokenizer.json cut to its first n_vocab tokens and the merges
    that stay inside them: same pre-tokenizer, post-processor and decoder."""
    with open(path, encoding="utf-8") as f:
        j = json.load(f)
    added = {a["id"] for a in j["added_tokens"]}
    vocab = {k: v for k, v in j["model"]["vocab"].items() if v < n_vocab}
    keep = []
    for m in j["model"]["merges"]:
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        if a in vocab and b in vocab and (a + b) in vocab:
            keep.append(m)
    j["model"]["vocab"] = vocab
    j["model"]["merges"] = keep
    # Added tokens past the cut get ids right after it, so ids stay dense.
    nxt = max(vocab.values()) + 1
    for a in j["added_tokens"]:
        if a["id"] >= n_vocab and a["id"] not in vocab.values():
            a["id"] = nxt
            nxt += 1
    del added
    return json.dumps(j, ensure_ascii=False, separators=(",", ":")).encode()


def tokenizer_seeds():
    for name in ("llama3", "qwen2"):
        out("fuzz_tokenizer_json", f"{name}_pruned.json",
            prune_tokenizer(os.path.join(DATA, "tokenizer", f"{name}.tokenizer.json")))
    texts = set()
    for name in ("llama3", "qwen2", "smollm2"):
        with open(os.path.join(DATA, "tokenizer", f"{name}.cases.json"), encoding="utf-8") as f:
            for c in json.load(f)["cases"]:
                t = c.get("text") if isinstance(c, dict) else None
                if isinstance(t, str) and len(t.encode()) < 512:
                    texts.add(t)
    for i, t in enumerate(sorted(texts)[:64]):
        # First byte picks the tokenizer (even: llama3, odd: qwen2).
        out("fuzz_tokenizer_encode", f"case{i:02d}", bytes([i % 2]) + t.encode())


def micro_gguf(path):
    rng = np.random.default_rng(7)
    h, heads, kv, hd, ffn = 32, 2, 1, 16, 32
    tokens = ["<|endoftext|>", "<|im_start|>", "a", "b", "ab", "\u0120", "\u0120a", "1", "2", "c",
              "d", "e", "f", "g", "h", "i"]
    w = gguf.GGUFWriter(path, "llama")
    w.add_block_count(1)
    w.add_embedding_length(h)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_key_length(hd)
    w.add_value_length(hd)
    w.add_context_length(64)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("llama-bpe")
    w.add_token_list(tokens)
    w.add_token_types([3, 3] + [1] * (len(tokens) - 2))
    w.add_token_merges(["a b", "\u0120 a"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(0)
    Q = gguf.GGMLQuantizationType
    def add(name, shape, qt):
        data = rng.standard_normal(shape).astype(np.float32)
        if qt in (Q.F32,):
            w.add_tensor(name, data)
        elif qt == Q.F16:
            w.add_tensor(name, data.astype(np.float16))
        else:
            w.add_tensor(name, gguf.quants.quantize(data, qt), raw_dtype=qt)
    add("token_embd.weight", (len(tokens), h), Q.Q8_0)
    add("output_norm.weight", (h,), Q.F32)
    add("blk.0.attn_norm.weight", (h,), Q.F32)
    add("blk.0.ffn_norm.weight", (h,), Q.F32)
    add("blk.0.attn_q.weight", (heads * hd, h), Q.Q4_0)
    add("blk.0.attn_k.weight", (kv * hd, h), Q.Q4_1)
    add("blk.0.attn_v.weight", (kv * hd, h), Q.Q5_0)
    add("blk.0.attn_output.weight", (h, heads * hd), Q.Q5_1)
    add("blk.0.ffn_gate.weight", (ffn, h), Q.F16)
    add("blk.0.ffn_up.weight", (ffn, h), Q.Q8_0)
    add("blk.0.ffn_down.weight", (h, ffn), Q.Q4_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def gguf_seeds():
    d = os.path.join(SEEDS, "fuzz_gguf")
    os.makedirs(d, exist_ok=True)
    shutil.copy(os.path.join(DATA, "gguf", "tiny.gguf"), os.path.join(d, "tiny.gguf"))
    micro_gguf(os.path.join(d, "micro_llama.gguf"))


def main():
    if os.path.isdir(SEEDS):
        shutil.rmtree(SEEDS)
    rng = np.random.default_rng(1234)
    os.makedirs(os.path.join(SEEDS, "fuzz_config_json"), exist_ok=True)
    safetensors_seeds(rng)
    config_seeds()
    tokenizer_seeds()
    gguf_seeds()
    for t in sorted(os.listdir(SEEDS)):
        files = os.listdir(os.path.join(SEEDS, t))
        size = sum(os.path.getsize(os.path.join(SEEDS, t, f)) for f in files)
        print(f"{t}: {len(files)} seeds, {size} bytes")


if __name__ == "__main__":
    main()
