// tests/core: mapped files and atomic writes.
#include "core/file.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "util/tiny_model.h"

namespace rme {
namespace {

TEST(FileTest, AtomicWriteThenMap) {
  const std::string dir = test::temp_dir("file");
  const std::string p = dir + "/x.bin";
  ASSERT_TRUE(write_file_atomic(p, "hello").ok());
  auto m = MappedFile::open(p);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>((*m)->data()), (*m)->size()), "hello");
  // No temp file is left behind.
  int n = 0;
  for (auto& e : std::filesystem::directory_iterator(dir)) n += e.is_regular_file();
  EXPECT_EQ(n, 1);
}

TEST(FileTest, UncommittedWriterLeavesTargetUntouched) {
  const std::string p = test::temp_dir("file2") + "/y.bin";
  ASSERT_TRUE(write_file_atomic(p, "old").ok());
  {
    auto w = AtomicFileWriter::create(p);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->write("new contents").ok());
  }  // destroyed without commit, as if the process died
  EXPECT_EQ(read_file(p).value(), "old");
}

// Faulting in (serve --load mmap) and pinning (--mlock) leave the bytes as they were, around
// holes too; a lock the memlock limit refuses is an error that says what to raise.
TEST(FileTest, FaultInAndLockKeepTheBytes) {
  const std::string p = test::temp_dir("file3") + "/z.bin";
  std::string bytes(3 * 4096 + 100, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7);
  ASSERT_TRUE(write_file_atomic(p, bytes).ok());
  auto m = MappedFile::open(p).value();
  ASSERT_TRUE(m->fault_in().ok());
  ASSERT_TRUE(m->fault_in({{4096, 4096}, {0, 10}}).ok());
  const Status locked = m->fault_in({{4096, 4096}}, /*lock=*/true);
  if (!locked.ok()) {
    EXPECT_NE(locked.message().find("ulimit -l"), std::string::npos);
  }
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(m->data()), m->size()), bytes);
  ASSERT_TRUE(m->detach().ok());
  EXPECT_TRUE(m->fault_in().ok());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(m->data()), m->size()), bytes);
}

// Renaming over a device, FIFO or directory would replace the node itself (`rme serve
// --trace-out /dev/full` as root once did): such targets are refused, and symbolic links are
// followed to the file they name, which is replaced while the link stays.
TEST(FileTest, AtomicWritesRefuseSpecialFilesAndFollowLinks) {
  const std::string dir = test::temp_dir("atomic_special");
  const std::string fifo = dir + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  for (const std::string& target : {fifo, dir, dir + "/link_to_fifo"}) {
    if (target == dir + "/link_to_fifo") {
      ASSERT_EQ(::symlink("fifo", target.c_str()), 0);
    }
    Status st = write_file_atomic(target, "x");
    EXPECT_FALSE(st.ok()) << target;
    EXPECT_NE(st.message().find("not a regular file"), std::string::npos) << st.message();
  }
  struct stat s {};
  ASSERT_EQ(::lstat(fifo.c_str(), &s), 0);
  EXPECT_TRUE(S_ISFIFO(s.st_mode));  // untouched
  ASSERT_TRUE(write_file_atomic(dir + "/real", "old").ok());
  ASSERT_EQ(::symlink("real", (dir + "/link").c_str()), 0);
  ASSERT_TRUE(write_file_atomic(dir + "/link", "new").ok());
  ASSERT_EQ(::lstat((dir + "/link").c_str(), &s), 0);
  EXPECT_TRUE(S_ISLNK(s.st_mode));
  EXPECT_EQ(read_file(dir + "/real").value(), "new");
  EXPECT_EQ(regular_file_target(dir + "/absent").value(), dir + "/absent");
}

// A command reading a mapped model that is truncated under it exits 1 naming the file, not of
// SIGBUS (`rme perplexity` did); a fault outside any mapped file still dies of the signal.
TEST(FileTest, TruncatedMappingEndsTheProcessCleanly) {
  const std::string path = test::temp_dir("sigbus") + "/model.bin";
  write_file_atomic(path, std::string(5 * 4096, 'x')).ok();
  EXPECT_EXIT(
      {
        exit_cleanly_on_truncated_mappings();
        auto f = MappedFile::open(path).value();
        if (::truncate(path.c_str(), 4096) != 0) std::exit(3);
        volatile uint8_t sink = f->data()[3 * 4096];  // past the new end: SIGBUS
        (void)sink;
        std::exit(4);
      },
      ::testing::ExitedWithCode(1), "model.bin: the file shrank or was rewritten");
  EXPECT_EXIT(
      {
        exit_cleanly_on_truncated_mappings();
        ::raise(SIGBUS);
      },
      ::testing::KilledBySignal(SIGBUS), "");
}

TEST(FileTest, MissingFileIsAnError) {
  auto m = MappedFile::open("/nonexistent/rme/file");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("/nonexistent/rme/file"), std::string::npos);
}

}  // namespace
}  // namespace rme
