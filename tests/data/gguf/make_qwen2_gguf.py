#!/usr/bin/python3
"""Writes a tiny random Qwen2 model (q/k/v biases, untied output, a byte-level BPE vocabulary with
tokenizer.ggml.pre = qwen2) as GGUF with llama.cpp's own gguf-py writer, for rme's tests (see
README.md). Usage: make_qwen2_gguf.py LLAMA_CPP_DIR OUT.gguf. Needs numpy (Debian's
python3-numpy); deterministic."""
import sys

import numpy as np

sys.path.insert(0, sys.argv[1] + "/gguf-py")
import gguf  # noqa: E402

D, F, LAYERS, HEADS, KV_HEADS = 64, 128, 2, 4, 2
HD = D // HEADS


def byte_chars():
    """GPT-2's printable stand-ins for the 256 byte values, in byte order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, cs))
    return [chr(table[b]) for b in range(256)]


def main(out):
    rng = np.random.RandomState(20261130)
    merges = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a"]
    tokens = byte_chars() + ["Ġt", "he", "Ġthe", "in", "Ġa", "<|endoftext|>"]
    types = [gguf.TokenType.NORMAL] * (len(tokens) - 1) + [gguf.TokenType.CONTROL]
    V = len(tokens)
    w = gguf.GGUFWriter(out, "qwen2")
    w.add_context_length(256)
    w.add_embedding_length(D)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(F)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(1000000.0)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(V - 1)
    w.add_eos_token_id(V - 1)
    w.add_add_bos_token(False)

    def mat(rows, cols, scale):
        return (rng.standard_normal((rows, cols)) * scale).astype(np.float16)

    def vec(n, scale, base=0.0):
        return (base + rng.standard_normal(n) * scale).astype(np.float32)

    s = 0.5 / np.sqrt(D)
    w.add_tensor("token_embd.weight", mat(V, D, 1.0))
    for l in range(LAYERS):
        p = "blk.%d." % l
        w.add_tensor(p + "attn_norm.weight", vec(D, 0.1, 1.0))
        w.add_tensor(p + "attn_q.weight", mat(HEADS * HD, D, s))
        w.add_tensor(p + "attn_q.bias", vec(HEADS * HD, 0.5))
        w.add_tensor(p + "attn_k.weight", mat(KV_HEADS * HD, D, s))
        w.add_tensor(p + "attn_k.bias", vec(KV_HEADS * HD, 0.5))
        w.add_tensor(p + "attn_v.weight", mat(KV_HEADS * HD, D, s))
        w.add_tensor(p + "attn_v.bias", vec(KV_HEADS * HD, 0.5))
        w.add_tensor(p + "attn_output.weight", mat(D, HEADS * HD, s))
        w.add_tensor(p + "ffn_norm.weight", vec(D, 0.1, 1.0))
        w.add_tensor(p + "ffn_gate.weight", mat(F, D, s))
        w.add_tensor(p + "ffn_up.weight", mat(F, D, s))
        w.add_tensor(p + "ffn_down.weight", mat(D, F, 0.5 / np.sqrt(F)))
    w.add_tensor("output_norm.weight", vec(D, 0.1, 1.0))
    w.add_tensor("output.weight", mat(V, D, s))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main(sys.argv[2])
