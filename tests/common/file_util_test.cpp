#include "common/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <filesystem>

#include <gtest/gtest.h>

#include "common/service_env.h"
#include "tests/support/process.h"

namespace plyr {
namespace {

TEST(FileUtilTest, ErrorsAreCodedByWhatTheCallerCanDo) {
  EXPECT_EQ(FileError("x", ENOENT).code(), StatusCode::kNotFound);
  EXPECT_EQ(FileError("x", EEXIST).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(FileError("x", ENOSPC).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(FileError("x", EFBIG).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(FileError("x", EDQUOT).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(FileError("x", EIO).code(), StatusCode::kInternal);
  const Status status = FileError("cannot write blob", ENOSPC);
  EXPECT_EQ(status.message(), "cannot write blob: No space left on device");
}

TEST(FileUtilTest, OpenNamesTheMissingFile) {
  testing::TempDir dir;
  auto fd = OpenFile(dir.path() / "absent", O_RDONLY);
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.status().code(), StatusCode::kNotFound);
  EXPECT_NE(fd.status().message().find("absent"), std::string::npos) << fd.status().message();
}

TEST(FileUtilTest, WriteAtomicallyThenReadBack) {
  testing::TempDir dir;
  const auto path = dir.path() / "secret";
  ASSERT_TRUE(WriteFileAtomically(path, "hello\n", 0600).ok());
  struct stat st{};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto text = ReadSmallFile(path);
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  EXPECT_EQ(*text, "hello\n");
  // No temporary file is left beside it.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
}

TEST(FileUtilTest, ReadRefusesAFileOverItsLimit) {
  testing::TempDir dir;
  const auto path = dir.path() / "big";
  ASSERT_TRUE(WriteFileAtomically(path, std::string(5000, 'x'), 0644).ok());
  auto text = ReadSmallFile(path, 4096);
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(text.status().message().find("larger than 4096 bytes"), std::string::npos) << text.status().message();
}

TEST(FileUtilTest, WriteIntoAMissingFolderFailsWithoutAFile) {
  testing::TempDir dir;
  const Status written = WriteFileAtomically(dir.path() / "no-such-folder" / "f", "x", 0644);
  ASSERT_FALSE(written.ok());
  EXPECT_EQ(written.code(), StatusCode::kNotFound);
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "no-such-folder"));
}

TEST(ParseListenAddressTest, ReadsBothFamiliesAndSaysWhatIsWrong) {
  auto v4 = ParseListenAddress("127.0.0.1:8410");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->port(), 8410);
  auto v6 = ParseListenAddress("[::1]:0");
  ASSERT_TRUE(v6.ok());
  EXPECT_TRUE(v6->address().is_v6());
  for (const char* bad : {"127.0.0.1", "127.0.0.1:", "localhost:80", "127.0.0.1:65536", "127.0.0.1:8x"}) {
    auto parsed = ParseListenAddress(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(parsed.status().message().find(bad), std::string::npos) << parsed.status().message();
  }
}

}  // namespace
}  // namespace plyr
