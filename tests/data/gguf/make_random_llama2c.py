#!/usr/bin/env python3
"""Writes a small random Llama model in llama2.c's legacy (v0) format, with every matrix width a
multiple of 32 so llama.cpp's llama-quantize can make Q8_0/Q4_0 files of it. With --k: widths
of 256 (what K-quants need), one layer, and a 32-token vocabulary, also written as a llama2.c
tokenizer.bin to OUT.tok. Input for the GGUF fixtures in this folder (see README.md); standard
library only, deterministic."""
import math
import random
import struct
import sys

DIM, HIDDEN, LAYERS, HEADS, KV_HEADS, VOCAB, SEQ = 64, 128, 2, 4, 2, 512, 128


def write_tokenizer(path):
    toks = [b"<unk>", b"\n<s>\n", b"\n</s>\n"] + [bytes([c]) for c in b" abcdefghijklmnopqrstuvwxyz.,"]
    with open(path, "wb") as f:
        f.write(struct.pack("i", max(len(t) for t in toks)))
        for i, t in enumerate(toks):
            f.write(struct.pack("fi", 0.0 if i < 3 else -float(i), len(t)))
            f.write(t)


def main(path):
    rng = random.Random(20261130)
    head = DIM // HEADS
    kv_dim = KV_HEADS * head

    def mat(n, scale):
        return [rng.gauss(0.0, scale) for _ in range(n)]

    def norm(n):
        return [1.0 + rng.gauss(0.0, 0.1) for _ in range(n)]

    s = 1.0 / math.sqrt(DIM)
    parts = [mat(VOCAB * DIM, 1.0)]
    parts += [norm(LAYERS * DIM)]
    parts += [mat(LAYERS * DIM * DIM, s), mat(LAYERS * kv_dim * DIM, s), mat(LAYERS * kv_dim * DIM, s)]
    parts += [mat(LAYERS * DIM * DIM, s)]
    parts += [norm(LAYERS * DIM)]
    parts += [mat(LAYERS * HIDDEN * DIM, s), mat(LAYERS * DIM * HIDDEN, 1.0 / math.sqrt(HIDDEN)),
              mat(LAYERS * HIDDEN * DIM, s)]
    parts += [norm(DIM)]
    parts += [[0.0] * (SEQ * head // 2), [0.0] * (SEQ * head // 2)]  # unused RoPE tables
    parts += [mat(VOCAB * DIM, s)]  # classifier (negative vocab_size: untied)
    with open(path, "wb") as f:
        f.write(struct.pack("7i", DIM, HIDDEN, LAYERS, HEADS, KV_HEADS, -VOCAB, SEQ))
        for p in parts:
            f.write(struct.pack("%df" % len(p), *p))


if __name__ == "__main__":
    if "--k" in sys.argv:
        DIM, HIDDEN, LAYERS, HEADS, KV_HEADS, VOCAB, SEQ = 256, 256, 1, 4, 1, 32, 128
        write_tokenizer(sys.argv[1] + ".tok")
    main(sys.argv[1])
