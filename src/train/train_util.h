// train: pieces every training loop shares — corpus domains and deterministic batches, thread
// setup, atomic archive saves, the progress line.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "core/hash.h"
#include "core/status.h"
#include "formats/text_corpus.h"

namespace rme {

// [batch, seq_len + 1] windows drawn by domain weight: a pure function of (seed, step, micro), so
// a resumed run sees the same data.
torch::Tensor sample_batch(const std::vector<Domain>& domains, uint64_t seed, int step, int micro,
                           int batch, int seq_len);

// Validation windows [n, seq_len + 1] from the start of a shard, at most max_tokens tokens.
torch::Tensor valid_windows(const TokenShard& s, int seq_len, int64_t max_tokens);

// torch intra-op threads 1, OpenBLAS threads n (measured faster than torch's pool on top).
void configure_threads(int n);

// Log tables kept in checkpoints, so a resumed run writes the whole history to its CSVs:
// [rows, cols] float64 and back (rows shorter than cols are padded with NaN).
torch::Tensor rows_to_tensor(const std::vector<std::vector<double>>& rows, size_t cols);
std::vector<std::vector<double>> tensor_to_rows(const torch::Tensor& t);

// The only ways training code saves and loads libtorch archives: no libtorch error escapes as
// an exception or an abort. save: through core's AtomicFileWriter (temp file beside path, fsync,
// rename, directory fsync); a failed write (disk full, file size limit) returns an error, removes
// the temp file and leaves the previous file intact. load: an unreadable archive is kCorrupt.
Status save_archive_atomic(torch::serialize::OutputArchive& a, const std::string& path);
Status load_archive(torch::serialize::InputArchive& a, const std::string& path);

// "<what> step s/n | <extra> | <rate> | elapsed | ETA" on stderr: redrawn on a terminal, else a
// line every 5 s and at the last step (never one line per step in a log). first_step: where a
// resumed run started (the ETA counts only this run's steps).
void progress_line(const char* what, int step, int steps, const std::string& extra,
                   double units_per_s, const char* unit, double elapsed, int first_step = 0);

}  // namespace rme
