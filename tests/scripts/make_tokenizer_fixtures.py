#!/usr/bin/env python3
"""Write the tokenizer golden data under tests/data/tokenizer/.

Outputs
  llama3.tokenizer.json   small Llama-3-style byte-level BPE (trained here)
  qwen2.tokenizer.json    small Qwen2-style byte-level BPE (trained here)
  llama3.cases.json, qwen2.cases.json, smollm2.cases.json
                          input strings with the ids HF produces for them

The expected ids come from HF `tokenizers` (trained fixtures) and from
transformers' GGUF loader (the default SmolLM2 model, whose 2 MB tokenizer is
not committed: the C test loads the .gguf itself), with SmolLM2's own
pre-tokenizer restored (see SMOLLM_PRE). Run once:
  python3 tests/scripts/make_tokenizer_fixtures.py [--model PATH.gguf]
"""
import argparse
import glob
import gzip
import json
import os
import random
import unicodedata

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "data", "tokenizer")
DEFAULT_GGUF = os.path.expanduser("~/.cache/hubkv/SmolLM2-135M-Instruct.Q4_1.gguf")

# The split patterns of the real Llama-3 and Qwen2 tokenizer.json files.
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
                 r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

VOCAB = 3000
N_RANDOM = 60


def corpus_files():
    """reST sources of the kernel docs if installed, else any text docs."""
    files = sorted(glob.glob("/usr/share/doc/linux-doc-6.1/html/_sources/**/*.txt", recursive=True))
    if not files:
        pats = ["*.rst", "*.rst.gz", "*.txt", "*.md", "README*"]
        files = sorted({f for p in pats for f in glob.glob("/usr/share/doc/**/" + p, recursive=True)})
    return [f for f in files if os.path.isfile(f)]


def read_text(path):
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            return f.read().decode("utf-8")
    except (UnicodeDecodeError, OSError, EOFError):
        return None


def corpus(limit=3_000_000):
    texts, total = [], 0
    for f in corpus_files():
        t = read_text(f)
        if not t:
            continue
        texts.append(t)
        total += len(t)
        if total >= limit:
            break
    return texts


def long_rest_text():
    for f in sorted(glob.glob("/usr/share/doc/**/*.rst*", recursive=True)):
        t = read_text(f)
        if t and len(t) > 4000:
            return t[:4000]
    return ("Title\n=====\n\n.. note::\n   A *note* with ``code`` and a link_.\n\n" * 60)[:4000]


AWKWARD = [
    "",
    "Hello world",
    "héllo naïve café résumé Ångström",
    "日本語のテキストと中文字符",
    "emoji 😀 family 👨‍👩‍👧‍👦 flag 🇫🇷🇯🇵 thumbs 👍🏽",
    "مرحبا بالعالم",
    "q\u0307 z\u0323\u0301 combining marks",
    "e\u0301 (not NFC)",
    "  two leading spaces",
    "tabs\tand\t\ttabs",
    "line1\nline2\n\nline4\r\nwindows\r\n",
    "trailing spaces   ",
    "   ",
    "\n\n\n",
    " a lone space before words",
    "a\u00a0nbsp and\u3000ideographic space",
    "1234567 3.14159 1,000,000 and 42nd",
    "x² ½ ٣ digits",
    "it's They'll I'M we'VE don'T she'd",
    "def f(x):\n    return x**2  # square\n\nprint(f(3))\n",
    "int main(void) { printf(\"%d\\n\", a[i] != b); }",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "text<|endoftext|>more",
    "<|begin_of_text|>Hello<|eot_id|>",
    "<|im_start|><|im_start|>",
    "a <|im_end|> b",
]


# Characters the random strings draw from: every class the split patterns treat
# differently (letters of several scripts, marks, numbers, punctuation,
# apostrophes, each kind of whitespace, emoji and joiners).
RANDOM_POOL = (list("abcXYZ019'\"!?.,;:-_()[]{}<>|/\\#*+=~`@$%^&") +
               [" ", " ", " ", "\t", "\n", "\r", "\r\n", "\u00a0", "\u3000", "\u2009", "\u0085"] +
               list("éÅßçñøЖжλΩअकि日本中文한글مرحبا٣٤²½\u0301\u0323\u0307\u200d\ufe0f") +
               ["😀", "👍🏽", "🇫🇷", "👨\u200d👩", "'s", "'LL", "'t", "<|im_end|>", "<|eot_id|>"])


def random_texts(n=60, seed=1234):
    rng = random.Random(seed)
    return ["".join(rng.choice(RANDOM_POOL) for _ in range(rng.randint(1, 40))) for _ in range(n)]


def texts_for(norm_nfc):
    out = list(AWKWARD) + [long_rest_text()] + random_texts(N_RANDOM)
    if norm_nfc:  # the C tokenizer does not normalise: keep texts NFC already changes nothing
        out = [t for t in out if unicodedata.normalize("NFC", t) == t]
    return out


def cases_from(encode, decode, texts):
    cases = []
    for t in texts:
        ids = encode(t, False)
        cases.append({"text": t, "ids": ids, "ids_bos": encode(t, True),
                      "roundtrip": decode(ids) == t})
    return cases


def train(pattern, specials, norm):
    tok = Tokenizer(models.BPE())
    if norm:
        tok.normalizer = norm
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, min_frequency=2, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    return tok


# A vocab word no merge sequence reaches (real Llama-3 has such tokens): only
# ignore_merges maps the pre-token " zyzzyva" to it, so it tests that flag.
PROBE_WORD = "zyzzyva"
PROBE_TEXT = "a zyzzyva here, zyzzyva again"


def make_llama3():
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]
    tok = train(LLAMA3_PATTERN, specials, None)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                                       special_tokens=[("<|begin_of_text|>", bos)])
    j = json.loads(tok.to_str())
    j["model"]["ignore_merges"] = True
    j["model"]["vocab"]["\u0120" + PROBE_WORD] = len(j["model"]["vocab"])
    # The older "a b" merge format (the Qwen2 fixture keeps the newer [a, b] pairs).
    j["model"]["merges"] = [m if isinstance(m, str) else " ".join(m) for m in j["model"]["merges"]]
    tok = Tokenizer.from_str(json.dumps(j))
    return tok, j


def make_qwen2():
    tok = train(QWEN2_PATTERN, [], normalizers.NFC())
    # Added after training, as in Qwen2: ids past model.vocab.
    tok.add_special_tokens(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    j = json.loads(tok.to_str())
    j["model"]["merges"] = [m.split(" ") if isinstance(m, str) else m for m in j["model"]["merges"]]
    return Tokenizer.from_str(json.dumps(j)), j


def write_json(name, obj, compact=False):
    path = os.path.join(OUT, name)
    with open(path, "w", encoding="utf-8") as f:
        if compact:
            json.dump(obj, f, ensure_ascii=False, separators=(",", ":"))
        else:
            json.dump(obj, f, ensure_ascii=True, indent=1)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def trained_fixture(name, tok, j, nfc):
    write_json(f"{name}.tokenizer.json", j, compact=True)
    texts = texts_for(nfc)
    probe = PROBE_TEXT if j["model"].get("ignore_merges") else ""
    if probe:
        texts.append(probe)
    enc = lambda t, special: tok.encode(t, add_special_tokens=special).ids
    dec = lambda ids: tok.decode(ids, skip_special_tokens=False)
    named = {t: tok.token_to_id(t) for t in ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>",
                                              "<|endoftext|>", "<|im_start|>", "<|im_end|>"]
             if tok.token_to_id(t) is not None}
    write_json(f"{name}.cases.json", {
        "tokenizer": f"{name}.tokenizer.json",
        "vocab_size": tok.get_vocab_size(with_added_tokens=True),
        "token_ids": named,
        "ignore_merges_probe": probe,
        "cases": cases_from(enc, dec, texts),
    })


# transformers' GGUF converter gives tokenizer.ggml.pre=smollm a plain
# ByteLevel(use_regex=True) pre-tokenizer, but SmolLM2's own tokenizer.json
# (what the model was trained with) and llama.cpp's "smollm" split digits
# first: Sequence[Digits(individual_digits=True), ByteLevel(use_regex=True)].
# The two differ next to numbers (" ½", "\r\n9"), so the expected ids use the
# model's own pre-tokenizer; where transformers' GGUF ids differ they are kept
# as "transformers_gguf_ids" for reference.
SMOLLM_PRE = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                      pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])


def smollm2_fixture(gguf_path):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(os.path.dirname(gguf_path), gguf_file=os.path.basename(gguf_path))
    plain = [tok(t, add_special_tokens=False)["input_ids"] for t in texts_for(False)]
    tok.backend_tokenizer.pre_tokenizer = SMOLLM_PRE
    enc = lambda t, special: tok(t, add_special_tokens=special)["input_ids"]
    dec = lambda ids: tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    named = {t: tok.convert_tokens_to_ids(t) for t in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]}
    cases = cases_from(enc, dec, texts_for(False))
    for c, p in zip(cases, plain):
        if c["ids"] != p:
            c["transformers_gguf_ids"] = p
    print(f"smollm2: {sum('transformers_gguf_ids' in c for c in cases)} of {len(cases)} texts tokenize "
          "differently under transformers' GGUF pre-tokenizer")
    write_json("smollm2.cases.json", {
        "gguf": os.path.basename(gguf_path),
        "pre_tokenizer": "Sequence[Digits(individual_digits=True), ByteLevel(use_regex=True)]",
        "vocab_size": len(tok.get_vocab()),
        "bos_id": tok.bos_token_id,
        "eos_id": tok.eos_token_id,
        "token_ids": named,
        "cases": cases,
    })


def main():
    global OUT, N_RANDOM
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_GGUF, help="the default model's GGUF")
    ap.add_argument("--out", default=OUT, help="output folder (a scratch one for --random)")
    ap.add_argument("--random", type=int, default=60, help="random strings per tokenizer")
    args = ap.parse_args()
    OUT, N_RANDOM = args.out, args.random
    os.makedirs(OUT, exist_ok=True)
    trained_fixture("llama3", *make_llama3(), nfc=False)
    trained_fixture("qwen2", *make_qwen2(), nfc=True)
    if os.path.exists(args.model):
        smollm2_fixture(args.model)
    else:
        print(f"skipping smollm2.cases.json: {args.model} not found")


if __name__ == "__main__":
    main()
