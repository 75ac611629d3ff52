#!/usr/bin/env python3
"""Write tests/data/tiny/llama3/model-rope-freqs.gguf: the tiny llama3
checkpoint beside it converted as llama.cpp's convert_hf_to_gguf.py converts
Llama 3.1/3.2 (architecture llama, q/k rows permuted for its RoPE layout, the
llama3 rope scaling stored as the per-pair factors of rope_freqs.weight and no
rope.scaling.* keys). test_parity loads it and compares its logits with the
checkpoint's transformers reference.json, so the GGUF path's RoPE factors are
checked against transformers' llama3 scaling. Also two bad files for
test_gguf in tests/data/gguf/: rope_freqs.weight of the wrong length, and one
with a negative factor. Needs torch, safetensors and gguf-py; the C tests do
not. Run once:
  python3 tests/scripts/make_llama3_gguf.py
"""
import json
import math
import os

import numpy as np
import torch
from safetensors.torch import load_file
import gguf
from gguf import GGMLQuantizationType as Q

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "..", "data", "tiny", "llama3")


def permute(w, n_head, n_head_kv):
    """llama.cpp's q/k row order (convert_hf_to_gguf.py LlamaModel.permute)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def rope_factors(cfg):
    """llama.cpp's rope_freqs for rope_type llama3 (generate_extra_tensors)."""
    rs = cfg["rope_parameters"]
    base, dim = rs["rope_theta"], cfg["head_dim"]
    freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    old = rs["original_max_position_embeddings"]
    lo_wl, hi_wl = old / lo, old / hi
    out = []
    for f in freqs.tolist():
        wl = 2 * math.pi / f
        if wl < hi_wl:
            out.append(1.0)
        elif wl > lo_wl:
            out.append(factor)
        else:
            smooth = (old / wl - lo) / (hi - lo)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def main():
    cfg = json.load(open(os.path.join(SRC, "config.json")))
    sd = {k: v.float().numpy() for k, v in load_file(os.path.join(SRC, "model.safetensors")).items()}
    H, KV, L = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["num_hidden_layers"]
    path = os.path.join(SRC, "model-rope-freqs.gguf")
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("hubkv tiny llama3 (rope_freqs)")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(L)
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(H)
    w.add_head_count_kv(KV)
    w.add_rope_freq_base(cfg["rope_parameters"]["rope_theta"])
    w.add_rope_dimension_count(cfg["head_dim"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_vocab_size(cfg["vocab_size"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_BF16)

    def mat(name, a):  # 2-D weights in bf16 (exact: the checkpoint is bf16)
        w.add_tensor(name, gguf.quants.quantize(np.ascontiguousarray(a, dtype=np.float32), Q.BF16), raw_dtype=Q.BF16)

    def vec(name, a):  # norms and factors in f32, as llama.cpp keeps 1-D tensors
        w.add_tensor(name, np.ascontiguousarray(a, dtype=np.float32))

    mat("token_embd.weight", sd["model.embed_tokens.weight"])
    vec("rope_freqs.weight", rope_factors(cfg))
    for i in range(L):
        p = f"model.layers.{i}."
        mat(f"blk.{i}.attn_q.weight", permute(sd[p + "self_attn.q_proj.weight"], H, H))
        mat(f"blk.{i}.attn_k.weight", permute(sd[p + "self_attn.k_proj.weight"], H, KV))
        mat(f"blk.{i}.attn_v.weight", sd[p + "self_attn.v_proj.weight"])
        mat(f"blk.{i}.attn_output.weight", sd[p + "self_attn.o_proj.weight"])
        mat(f"blk.{i}.ffn_gate.weight", sd[p + "mlp.gate_proj.weight"])
        mat(f"blk.{i}.ffn_up.weight", sd[p + "mlp.up_proj.weight"])
        mat(f"blk.{i}.ffn_down.weight", sd[p + "mlp.down_proj.weight"])
        vec(f"blk.{i}.attn_norm.weight", sd[p + "input_layernorm.weight"])
        vec(f"blk.{i}.ffn_norm.weight", sd[p + "post_attention_layernorm.weight"])
    vec("output_norm.weight", sd["model.norm.weight"])
    mat("output.weight", sd["lm_head.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def write_bad(name, factors):
    """Metadata of a tiny llama (head_dim 16) and a bad rope_freqs.weight."""
    path = os.path.join(HERE, "..", "data", "gguf", name)
    w = gguf.GGUFWriter(path, "llama")
    for add, v in [(w.add_context_length, 128), (w.add_embedding_length, 64), (w.add_block_count, 1),
                   (w.add_feed_forward_length, 128), (w.add_head_count, 4), (w.add_head_count_kv, 2),
                   (w.add_rope_dimension_count, 16), (w.add_vocab_size, 32)]:
        add(v)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tensor("token_embd.weight", np.zeros((32, 64), dtype=np.float32))
    w.add_tensor("rope_freqs.weight", np.array(factors, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
    write_bad("rope-freqs-short.gguf", [1.0] * 5)
    write_bad("rope-freqs-negative.gguf", [1.0, 1.0, 1.0, -2.0, 8.0, 8.0, 8.0, 8.0])
