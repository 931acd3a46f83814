// model: TypeChoice, the storage type a writer gives each matrix — one dtype for all, or one of
// llama.cpp's "_M" mixes of K-quants (q4_k_m, q5_k_m).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"
#include "model/weights.h"
#include "tensor/dtype.h"

namespace rme {

// A value; cheap to copy. Implicitly built from an optional dtype (one type for every matrix,
// nullopt keeping each tensor's stored type), so callers that only ever ask for one type pass it.
struct TypeChoice {
  std::optional<DType> base;  // the type most matrices get; nullopt: keep
  // q4_k_m / q5_k_m: as llama.cpp's recipe of that name, Q6_K for the output matrix, and for
  // attn_v and ffn_down (routed experts' and the shared expert's down slices included) in the
  // first and last eighth of the layers and every third layer between; `base` elsewhere.
  bool medium = false;

  TypeChoice() = default;
  TypeChoice(std::optional<DType> t) : base(t) {}  // NOLINT(google-explicit-constructor)
  TypeChoice(std::nullopt_t) {}                    // NOLINT(google-explicit-constructor)
  TypeChoice(DType t) : base(t) {}                 // NOLINT(google-explicit-constructor)

  // f32, f16, bf16, q8_0, q4_0, q4_k, q5_k, q6_k, q4_k_m, q5_k_m (case-insensitive).
  static Result<TypeChoice> parse(std::string_view name);
  static const char* names();  // that list, for help and error text
  std::string name() const;    // "q4_k_m", "q8_0", "keep"

  // The type for matrix `id` of a model with n_layer layers, stored now as `stored`, before the
  // row-length fallback (dtype_for_row) that the writer applies.
  DType pick(const WeightId& id, int n_layer, DType stored) const;
};

}  // namespace rme
