// core: file helpers on POSIX.
#include "core/file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace rme {
namespace internal {  // mapping_fault.cc: what the SIGBUS handler can name
void register_mapping(const void* data, size_t size, const std::string& path);
void unregister_mapping(const void* data);
}  // namespace internal

Result<std::shared_ptr<MappedFile>> MappedFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io_error(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    ::close(fd);
    return io_error(path + ": cannot stat: " + std::strerror(errno));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    return invalid_argument(path + ": is a directory, expected a file");
  }
  auto file = std::shared_ptr<MappedFile>(new MappedFile());
  file->path_ = path;
  file->size_ = static_cast<size_t>(st.st_size);
  if (file->size_ > 0) {
    void* p = mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      return io_error(path + ": cannot mmap: " + std::strerror(errno));
    }
    file->data_ = static_cast<const uint8_t*>(p);
    internal::register_mapping(file->data_, file->size_, path);
  }
  ::close(fd);
  return file;
}

Status MappedFile::detach(std::vector<std::pair<uint64_t, uint64_t>> holes) {
  if (detached_ || size_ == 0) return Status::Ok();
  const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io_error(path_ + ": cannot reopen: " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || static_cast<size_t>(st.st_size) != size_) {
    ::close(fd);
    return io_error(path_ + ": changed size since it was opened (" + std::to_string(size_) +
                    " -> " + std::to_string(st.st_size) + " bytes)");
  }
  void* p = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    ::close(fd);
    return resource_exhausted(path_ + ": cannot allocate " + std::to_string(size_ >> 20) +
                              " MiB to copy it: " + std::strerror(errno));
  }
  auto* dst = static_cast<uint8_t*>(p);
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  std::sort(holes.begin(), holes.end());
  Status status;
  auto copy = [&](uint64_t from, uint64_t to) {  // [from, to) through the descriptor
    while (status.ok() && from < to) {
      const ssize_t n = ::pread(fd, dst + from, to - from, static_cast<off_t>(from));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        status = io_error(path_ + ": reading it to copy failed at byte " + std::to_string(from) +
                          (n < 0 ? std::string(": ") + std::strerror(errno) : " (file shrank)"));
        return;
      }
      from += static_cast<uint64_t>(n);
    }
  };
  uint64_t at = 0;
  for (const auto& [off, len] : holes) {
    const uint64_t lo = std::max(at, (off + page - 1) / page * page);
    const uint64_t hi = std::min<uint64_t>(size_, (off + len) / page * page);
    if (lo >= hi) continue;  // no whole page inside
    copy(at, lo);
    at = hi;
  }
  copy(at, size_);
  ::close(fd);
  if (status.ok() && mprotect(p, size_, PROT_READ) != 0)
    status = io_error(path_ + ": mprotect: " + std::strerror(errno));
  if (status.ok() && mremap(p, size_, size_, MREMAP_MAYMOVE | MREMAP_FIXED,
                            const_cast<uint8_t*>(data_)) == MAP_FAILED)
    status = io_error(path_ + ": mremap: " + std::strerror(errno));
  if (!status.ok()) {
    munmap(p, size_);
    return status;
  }
  detached_ = true;
  return Status::Ok();
}

void MappedFile::release(uint64_t offset, uint64_t bytes) {
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  if (offset >= size_ || bytes == 0) return;
  const uint64_t end = std::min<uint64_t>(size_, offset + bytes) / page * page;
  const uint64_t begin = (offset + page - 1) / page * page;
  if (end <= begin) return;
  void* p = const_cast<uint8_t*>(data_) + begin;
  munlock(p, end - begin);  // locked pages (fault_in with lock) cannot be dropped
  madvise(p, end - begin, MADV_DONTNEED);
}

Status MappedFile::fault_in(std::vector<std::pair<uint64_t, uint64_t>> holes, bool lock) {
  if (size_ == 0) return Status::Ok();
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  std::sort(holes.begin(), holes.end());
  auto* base = const_cast<uint8_t*>(data_);
  auto range = [&](uint64_t from, uint64_t to) -> Status {  // [from, to), page-aligned from
    if (from >= to) return Status::Ok();
    madvise(base + from, to - from, MADV_WILLNEED);  // a hint: read ahead in large requests
    volatile uint8_t sink = 0;
    for (uint64_t at = from; at < to; at += page) sink = sink + data_[at];
    if (lock && mlock(base + from, to - from) != 0)
      return resource_exhausted(path_ + ": cannot lock " + std::to_string((to - from) >> 20) +
                                " MiB in memory: " + std::strerror(errno) +
                                " (raise the limit: ulimit -l, or LimitMEMLOCK= under systemd)");
    return Status::Ok();
  };
  uint64_t at = 0;
  for (const auto& [off, len] : holes) {
    const uint64_t lo = std::max(at, (off + page - 1) / page * page);
    const uint64_t hi = std::min<uint64_t>(size_, (off + len) / page * page);
    if (lo >= hi) continue;  // no whole page inside
    RME_RETURN_IF_ERROR(range(at, lo));
    at = hi;
  }
  return range(at, size_);
}

MappedFile::~MappedFile() {
  internal::unregister_mapping(data_);
  if (data_ != nullptr) munmap(const_cast<uint8_t*>(data_), size_);
}

Result<std::string> read_file(const std::string& path) {
  if (is_directory(path)) return invalid_argument(path + ": is a directory, expected a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return io_error(path + ": cannot open: " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

Result<std::string> regular_file_target(const std::string& path) {
  std::string p = path;
  for (int hops = 0; hops < 40; ++hops) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) {
      if (errno == ENOENT) return p;  // a new file
      return io_error(path + ": cannot stat: " + std::strerror(errno));
    }
    if (S_ISREG(st.st_mode)) return p;
    if (!S_ISLNK(st.st_mode)) {
      const char* kind = S_ISDIR(st.st_mode)                          ? "a directory"
                         : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                         : S_ISFIFO(st.st_mode)                       ? "a FIFO"
                         : S_ISSOCK(st.st_mode)                       ? "a socket"
                                                                      : "not a file";
      return invalid_argument(path + ": is " + std::string(kind) +
                              ", not a regular file (files are written whole, then renamed into "
                              "place; give a file path)");
    }
    std::string target(static_cast<size_t>(st.st_size > 0 ? st.st_size : 4096) + 1, '\0');
    const ssize_t n = ::readlink(p.c_str(), target.data(), target.size());
    if (n < 0) return io_error(path + ": cannot read link: " + std::strerror(errno));
    target.resize(static_cast<size_t>(n));
    if (target.front() != '/' && p.find('/') != std::string::npos)
      target = p.substr(0, p.rfind('/') + 1) + target;
    p = target;
  }
  return io_error(path + ": too many levels of symbolic links");
}

Result<std::unique_ptr<AtomicFileWriter>> AtomicFileWriter::create(const std::string& path) {
  RME_ASSIGN_OR_RETURN(std::string target, regular_file_target(path));
  auto w = std::unique_ptr<AtomicFileWriter>(new AtomicFileWriter());
  w->path_ = target;
  w->tmp_path_ = target + ".tmp." + std::to_string(getpid());
  w->fd_ = ::open(w->tmp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (w->fd_ < 0) return io_error(w->tmp_path_ + ": cannot create: " + std::strerror(errno));
  return w;
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_path_.c_str());
}

Status AtomicFileWriter::write(const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t k = ::write(fd_, p, n);
    if (k < 0) {
      if (errno == EINTR) continue;
      return io_error(tmp_path_ + ": write failed: " + std::strerror(errno));
    }
    p += k;
    n -= static_cast<size_t>(k);
    offset_ += static_cast<uint64_t>(k);
  }
  return Status::Ok();
}

Status AtomicFileWriter::pad_to(uint64_t alignment) {
  static const char kZeros[4096] = {};
  uint64_t pad = (alignment - offset_ % alignment) % alignment;
  while (pad > 0) {
    uint64_t k = pad < sizeof(kZeros) ? pad : sizeof(kZeros);
    RME_RETURN_IF_ERROR(write(kZeros, k));
    pad -= k;
  }
  return Status::Ok();
}

Status AtomicFileWriter::commit() {
  if (fsync(fd_) != 0) return io_error(tmp_path_ + ": fsync failed: " + std::strerror(errno));
  const int closed = ::close(fd_);
  fd_ = -1;
  if (closed != 0) return io_error(tmp_path_ + ": close failed: " + std::strerror(errno));
  if (::rename(tmp_path_.c_str(), path_.c_str()) != 0)
    return io_error(path_ + ": rename failed: " + std::strerror(errno));
  committed_ = true;
  std::string dir = ".";
  if (auto slash = path_.rfind('/'); slash != std::string::npos) dir = path_.substr(0, slash + 1);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    ::close(dfd);
  }
  return Status::Ok();
}

Status write_file_atomic(const std::string& path, std::string_view contents) {
  RME_ASSIGN_OR_RETURN(auto w, AtomicFileWriter::create(path));
  RME_RETURN_IF_ERROR(w->write(contents));
  return w->commit();
}

}  // namespace rme
