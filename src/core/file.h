// core: read-only memory-mapped files, whole-file reads and atomic writes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace rme {

// A read-only mapping of a whole file. Owns the mapping; movable, not copyable. Immutable after
// open, so safe to share across threads. Fails (Status) if the file cannot be opened or mapped.
class MappedFile {
 public:
  static Result<std::shared_ptr<MappedFile>> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

  // Swaps the file mapping for private anonymous memory holding the same bytes at the same
  // addresses (read again through a new descriptor), except the whole pages inside `holes`
  // ([offset, offset + bytes) ranges nothing reads through this mapping, e.g. experts an
  // ExpertStore serves), which stay untouched zero pages. Afterwards changes to the file cannot
  // reach the process: a truncated mapped file would otherwise kill it with SIGBUS on the next
  // touch. Costs memory for what is copied. Fails (the mapping unchanged) if the file's size
  // changed since open() or a read fails. Not thread-safe: call before anyone reads the data.
  Status detach(std::vector<std::pair<uint64_t, uint64_t>> holes = {});
  bool detached() const { return detached_; }
  // Reads every page outside `holes` (as detach takes them) so the first request does not fault
  // them in from disk, and with lock pins them in memory (mlock: never paged out under memory
  // pressure). Fails when locking exceeds the process's memlock limit. Not thread-safe with
  // detach().
  Status fault_in(std::vector<std::pair<uint64_t, uint64_t>> holes = {}, bool lock = false);
  // Gives back the memory of the whole pages inside [offset, offset + bytes), which nothing reads
  // through this mapping any more (a matrix the loader rewrote into memory of its own): pages of
  // the file are dropped from the process, a detached copy's are freed (a later read would see
  // the file again, or zeros once detached). Best effort: a failure only keeps the memory. Not
  // thread-safe with readers of that range.
  void release(uint64_t offset, uint64_t bytes);

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool detached_ = false;
};

// Makes a SIGBUS from touching a MappedFile's pages that its file no longer has (the file was
// truncated or rewritten in place while mapped) end the process with exit status 1 and a line
// naming the file, instead of a signal death; any other SIGBUS keeps the default action. For
// commands that read mapped models for a long time (generate, perplexity, profile, moefy,
// training); a server instead detaches its mappings (MappedFile::detach). Idempotent; the
// mapping registry it reads is kept by MappedFile whether or not this was called.
void exit_cleanly_on_truncated_mappings();

Result<std::string> read_file(const std::string& path);
bool file_exists(const std::string& path);
bool is_directory(const std::string& path);

// The file a write to `path` replaces: `path` itself, or the file its symbolic links lead to
// (the links are kept). An error when that is not a regular file (a device such as /dev/full, a
// directory, a FIFO or socket: renaming over it would replace the node itself) or a component
// cannot be read. Commands that write at exit check their output paths with it at start.
Result<std::string> regular_file_target(const std::string& path);

// Writes a file so that a crash leaves either the old or the new contents: write to a temp file
// beside it, fsync, rename over the target, fsync the directory. The target is resolved by
// regular_file_target (create() fails for a device, directory, FIFO or socket); every write,
// fsync, close and rename error is returned.
class AtomicFileWriter {
 public:
  static Result<std::unique_ptr<AtomicFileWriter>> create(const std::string& path);
  ~AtomicFileWriter();  // removes the temp file unless commit() succeeded
  Status write(const void* data, size_t n);
  Status write(std::string_view s) { return write(s.data(), s.size()); }
  Status pad_to(uint64_t alignment);  // zero bytes up to a multiple of alignment
  uint64_t offset() const { return offset_; }
  Status commit();

 private:
  AtomicFileWriter() = default;
  std::string path_, tmp_path_;
  int fd_ = -1;
  uint64_t offset_ = 0;
  bool committed_ = false;
};

Status write_file_atomic(const std::string& path, std::string_view contents);

}  // namespace rme
