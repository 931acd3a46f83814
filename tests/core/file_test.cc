// tests/core: mapped files and atomic writes.
#include "core/file.h"

#include <gtest/gtest.h>

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

TEST(FileTest, MissingFileIsAnError) {
  auto m = MappedFile::open("/nonexistent/rme/file");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("/nonexistent/rme/file"), std::string::npos);
}

}  // namespace
}  // namespace rme
