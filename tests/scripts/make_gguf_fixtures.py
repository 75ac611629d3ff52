#!/usr/bin/env python3
"""Write the GGUF reader's fixtures (tests/data/gguf/) with gguf-py.

  tiny.gguf           a small qwen3-like file: one tensor per ggml type the
                      reader dequantises (random data quantised by
                      gguf.quants.quantize, or random blocks with sane fp16
                      scales for the K-quants gguf-py cannot quantise), a 3-D
                      tensor, metadata of every GGUF value type (nested array
                      included) and a small byte-level BPE tokenizer.
  tiny.expected.json  what gguf-py reads from tiny.gguf: each tensor's HF-order
                      shape and its dequantised values as float32 bit patterns
                      (gguf.quants.dequantize), the metadata values, and the
                      smallest file size that still holds every tensor.
  model.expected.json slices of the default model's tensors dequantised by
                      gguf-py, and its tokenizer facts (skipped if absent).

The C test (tests/test_gguf.c) compares bit for bit. Run once:
  python3 tests/scripts/make_gguf_fixtures.py [--model PATH.gguf]
"""
import argparse
import json
import os

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q, GGUFValueType as V
from gguf.constants import GGML_QUANT_SIZES

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "data", "gguf")
DEFAULT_GGUF = os.path.expanduser("~/.cache/hubkv/SmolLM2-135M-Instruct.Q4_1.gguf")

QUANTISABLE = [Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0, Q.BF16]
K_QUANTS = [Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K]
# Byte offsets of the fp16 scale fields in each K-quant block (layout from gguf-py).
K_SCALE_FIELDS = {Q.Q2_K: [80, 82], Q.Q3_K: [108], Q.Q4_K: [0, 2], Q.Q5_K: [0, 2], Q.Q6_K: [208]}


def bits(a):
    return [int(x) for x in np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).ravel()]


def k_quant_blocks(rng, qtype, n_blocks):
    """Random K-quant blocks whose fp16 scales are finite, of either sign."""
    _, tsize = GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, tsize), dtype=np.uint8)
    for off in K_SCALE_FIELDS[qtype]:
        scale = (rng.standard_normal(n_blocks) * 0.01).astype(np.float16)
        raw[:, off:off + 2] = scale.view(np.uint8).reshape(n_blocks, 2)
    return raw


def special_f16():
    """Zeros, subnormals, extremes and infinities: the fp16 -> fp32 edge cases."""
    h = np.array([0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x7BFF, 0xFBFF,
                  0x7C00, 0xFC00, 0x3C00, 0xBC00, 0x3555, 0x0200, 0x8200, 0x1234], dtype=np.uint16)
    return h.view(np.float16)


def tiny_tensors(rng):
    """name -> (raw array for GGUFWriter, qtype, HF shape)."""
    out = {}
    x = rng.standard_normal((4, 64)).astype(np.float32)
    out["t.f32"] = (x, Q.F32, x.shape)
    f16 = np.concatenate([special_f16(), rng.standard_normal(48).astype(np.float16)]).reshape(4, 16)
    out["t.f16"] = (f16, Q.F16, f16.shape)
    for qt in QUANTISABLE:
        data = rng.standard_normal((4, 64)).astype(np.float32) * 3
        data[0, :32] = 0.0  # an all-zero block (d = 0)
        out["t." + qt.name.lower()] = (gguf.quants.quantize(data, qt), qt, data.shape)
    for qt in K_QUANTS:
        raw = k_quant_blocks(rng, qt, 2).reshape(2, -1)
        out["t." + qt.name.lower()] = (raw, qt, (2, 256))
    x3 = rng.standard_normal((2, 3, 8)).astype(np.float32)
    out["t.f32_3d"] = (x3, Q.F32, x3.shape)
    # The tensors the config reader looks for (qwen3: q/k norms and q bias; no output.weight: tied).
    out["blk.0.attn_q.bias"] = (np.ones(8, dtype=np.float32), Q.F32, (8,))
    out["blk.0.attn_q_norm.weight"] = (np.ones(4, dtype=np.float32), Q.F32, (4,))
    out["token_embd.weight"] = (np.zeros((12, 8), dtype=np.float32), Q.F32, (12, 8))
    return out


# A byte-level BPE vocabulary: ids 0-1 CONTROL, 2 USER_DEFINED, 3 a CONTROL token
# written in raw text (space not in the byte alphabet: respelled, not added).
TOKENS = ["<|endoftext|>", "<|im_start|>", "<think>", "<ctl x>", "a", "b", "ab", "\u0120", "\u0120a",
          "1", "2", "c"]
TOKEN_TYPES = [3, 3, 4, 3, 1, 1, 1, 1, 1, 1, 1, 1]
MERGES = ["a b", "\u0120 a"]

META = [  # key, value, GGUF type, array sub-type
    ("test.u8", 200, V.UINT8, None), ("test.i8", -100, V.INT8, None),
    ("test.u16", 60000, V.UINT16, None), ("test.i16", -30000, V.INT16, None),
    ("test.u32", 4000000000, V.UINT32, None), ("test.i32", -2000000000, V.INT32, None),
    ("test.f32", 0.125, V.FLOAT32, None), ("test.bool", True, V.BOOL, None),
    ("test.str", "h\u00e9llo", V.STRING, None), ("test.u64", 2**62 + 1, V.UINT64, None),
    ("test.i64", -(2**62), V.INT64, None), ("test.f64", 2.5, V.FLOAT64, None),
    ("test.big_u64", 2**63 + 5, V.UINT64, None),
    ("test.arr_i16", [1, -2, 3], V.ARRAY, V.INT16), ("test.arr_u32", [7, 4000000000], V.ARRAY, V.UINT32),
    ("test.arr_str", ["x", "", "yz"], V.ARRAY, V.STRING), ("test.arr_f32", [1.5, 2.5], V.ARRAY, V.FLOAT32),
    ("test.nested", [[1, 2], [3]], V.ARRAY, V.ARRAY),
]


def write_tiny():
    rng = np.random.default_rng(20240607)
    path = os.path.join(OUT, "tiny.gguf")
    w = gguf.GGUFWriter(path, "qwen3")
    w.add_block_count(2)
    w.add_embedding_length(8)
    w.add_feed_forward_length(24)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_key_length(4)
    w.add_context_length(128)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(1000000.0)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(TOKENS)
    w.add_token_types(TOKEN_TYPES)
    w.add_token_merges(MERGES)
    w.add_bos_token_id(1)
    w.add_eos_token_id(0)
    w.add_add_bos_token(True)
    for key, val, vt, sub in META:
        w.add_key_value(key, val, vt, sub_type=sub)
    tensors = tiny_tensors(rng)
    for name, (raw, qt, _) in tensors.items():
        w.add_tensor(name, raw, raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def expected_tiny(path):
    r = gguf.GGUFReader(path)
    out = {"file": "tiny.gguf", "tensors": [], "keys": {}}
    end = 0
    for t in r.tensors:
        deq = gguf.quants.dequantize(t.data, t.tensor_type)
        out["tensors"].append({
            "name": t.name, "type": t.tensor_type.name, "type_id": int(t.tensor_type),
            "dims": [int(d) for d in reversed(t.shape.tolist())], "bits": bits(deq)})
        end = max(end, int(t.data_offset) + int(t.n_bytes))
    out["min_valid_size"] = end
    out["file_size"] = os.path.getsize(path)
    for key, *_ in META:
        f = r.fields[key]
        out["keys"][key] = f.contents()
    return out


def expected_model(path):
    r = gguf.GGUFReader(path)
    byname = {t.name: t for t in r.tensors}
    slices = []
    for name in ["token_embd.weight", "blk.0.attn_q.weight", "blk.7.ffn_down.weight",
                 "blk.0.attn_norm.weight", "output_norm.weight"]:
        t = byname[name]
        flat = gguf.quants.dequantize(t.data, t.tensor_type).ravel()
        n = min(256, flat.size)
        for start in sorted({0, (flat.size // 2) // 32 * 32, flat.size - n}):
            slices.append({"tensor": name, "type": t.tensor_type.name,
                           "dims": [int(d) for d in reversed(t.shape.tolist())],
                           "start": start, "bits": bits(flat[start:start + n])})
    f = r.fields
    types = f["tokenizer.ggml.token_type"].contents()
    tok = {
        "n_tokens": len(f["tokenizer.ggml.tokens"].data),
        "n_merges": len(f["tokenizer.ggml.merges"].data),
        "first_merge": f["tokenizer.ggml.merges"].contents(0),
        "last_token": f["tokenizer.ggml.tokens"].contents(-1),
        "control_ids": [i for i, t in enumerate(types) if t == 3],
        "user_defined_ids": [i for i, t in enumerate(types) if t == 4],
        "pre": f["tokenizer.ggml.pre"].contents(),
        "bos": f["tokenizer.ggml.bos_token_id"].contents(),
        "eos": f["tokenizer.ggml.eos_token_id"].contents(),
        "add_bos": bool(f["tokenizer.ggml.add_bos_token"].contents()),
    }
    return {"model": os.path.basename(path), "file_size": os.path.getsize(path), "slices": slices,
            "tokenizer": tok}


def write_json(name, obj):
    with open(os.path.join(OUT, name), "w") as fh:
        json.dump(obj, fh, separators=(",", ":"), ensure_ascii=True)
        fh.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_GGUF, help="the default model's GGUF")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    write_json("tiny.expected.json", expected_tiny(write_tiny()))
    if os.path.exists(args.model):
        write_json("model.expected.json", expected_model(args.model))
    else:
        print(f"skipping model.expected.json: {args.model} not found")


if __name__ == "__main__":
    main()
