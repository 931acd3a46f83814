// kernels: the 16-row interleaved layout of Q4_0 / Q8_0 / K-quant matrices (WeightLayout::kRows16)
// — made once at load so that AVX-512 VNNI decode and prefill read weights in the order vpdpbusd
// wants; of F16 matrices on AVX-512 (16 rows' element per vector, no horizontal sums); and of
// BF16 matrices for the opt-in bf16 products (vdpbf16ps: a pair per lane).
//
// Why: vpdpbusd multiplies 4 bytes per 32-bit lane. Rows stored one after another make decode
// gather 16 rows' blocks and reduce across lanes (about 80 instructions per 16 rows x 32 columns)
// and make prefill transpose every group again on each call. Interleaved, the same 16 x 32 block
// is 4 (Q4_0) or 8 (Q8_0) straight 64-byte loads whose lane r is row r: ~35 instructions, one
// linear stream. ik_llama.cpp's `-rtr` (Q4_0_R8 and kin) repacks for the same reason.
//
// Layout: a group of 16 full rows keeps its blocks (32 elements; K-quants' super-blocks of 256)
// in column order, and block b of the group holds the 16 rows' block b field by field, in the
// order of ggml's block struct (Q6_K: low quant bits, high bits, scales, d). A field of 4n
// bytes becomes n 64-byte vectors, vector m lane r = row r's field bytes 4m .. 4m + 3; a 2-byte
// field (an f16 scale) 16 f16s, row r at r. F16's block is one element (a 2-byte field), BF16's
// a pair (one 4-byte field). Q8_0's quants are stored with their sign bit flipped
// (w + 128 as unsigned bytes, what vpdpbusd takes). So a block of 16 rows is a byte permutation
// of theirs: a matrix keeps its size, group g sits at g x 16 x row_bytes, and the last n_out % 16
// rows stay rows after the groups.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/kernel_config.h"
#include "tensor/dtype.h"

namespace rme {

constexpr int kInterleaveRows = 16;

// Whether matrices of `t` have an interleaved form (Q4_0, Q8_0, Q4_K, Q5_K, Q6_K; F16, block one
// element; BF16, whose block is a pair of elements: n_in even).
bool interleavable(DType t);
// Whether matmul under `cfg` reads interleaved matrices of `t` faster than rows (AVX-512 VNNI,
// int8 on; K-quants only in the batch-invariant mode; F16 on AVX-512; BF16 under the bf16
// products): the loader interleaves only then
// (model/interleave_weights.h). Any config runs an interleaved matrix correctly, the others by
// restoring rows first (slow: tests only).
bool interleave_helps(const KernelConfig& cfg, DType t);

// out (the same byte count as the n_rows rows at `rows`) = the interleaved form. Not in place. n_in
// a multiple of the type's block.
void interleave_rows16(DType t, const uint8_t* rows, int64_t n_rows, int64_t n_in, uint8_t* out);
// The inverse for rows [r0, r1) of an interleaved matrix of n_rows rows: writes those rows, row
// after row, to `rows` ((r1 - r0) x row_bytes). r0 a multiple of 16.
void deinterleave_rows16(DType t, const uint8_t* packed, int64_t n_rows, int64_t n_in, int64_t r0,
                         int64_t r1, uint8_t* rows);

}  // namespace rme
