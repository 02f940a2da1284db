#include <fstream>

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "common/blob_store.h"
#include "tests/support/process.h"

namespace plyr {
namespace {

// Writes `parts` into a new blob on a private io_context and commits it.
StatusOr<BlobInfo> Store(BlobStore& store, const std::vector<std::string>& parts, bool commit = true) {
  asio::io_context ctx;
  auto writer = store.Begin(ctx.get_executor());
  EXPECT_TRUE(writer);
  auto fut = asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<bool> {
        for (const auto& p : parts) {
          const std::span<const char> bytes(p.data(), p.size());
          Status written = co_await (*writer)->Write(bytes);
          EXPECT_TRUE(written.ok()) << written.ToString();
          if (!written.ok()) co_return false;
        }
        co_return true;
      },
      asio::use_future);
  ctx.run();
  EXPECT_TRUE(fut.get());
  if (!commit) return Status(StatusCode::kCancelled, "not committed");
  return (*writer)->Commit();
}

TEST(BlobStoreTest, IdIsTheSha256Prefix) {
  testing::TempDir dir;
  auto store = BlobStore::Open(dir.path());
  ASSERT_TRUE(store);
  auto info = Store(**store, {"hello ", "world"});
  ASSERT_TRUE(info);
  // sha256("hello world") = b94d27b9934d3e08...
  EXPECT_EQ(info->file_id, "b94d27b9934d3e08");
  EXPECT_EQ(info->size, 11u);
  EXPECT_TRUE((*store)->Contains("b94d27b9934d3e08"));
  auto blob = (*store)->OpenForRead("b94d27b9934d3e08");
  ASSERT_TRUE(blob);
  EXPECT_EQ(blob->size, 11u);
}

TEST(BlobStoreTest, SameBytesTwiceIsIdempotent) {
  testing::TempDir dir;
  auto store = BlobStore::Open(dir.path());
  auto a = Store(**store, {"same bytes"});
  auto b = Store(**store, {"same ", "bytes"});
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->file_id, b->file_id);
}

TEST(BlobStoreTest, UncommittedWriterLeavesNothing) {
  testing::TempDir dir;
  auto store = BlobStore::Open(dir.path());
  EXPECT_FALSE(Store(**store, {"abandoned"}, /*commit=*/false));
  EXPECT_TRUE(std::filesystem::is_empty(dir.path() / ".tmp"));
}

TEST(BlobStoreTest, OpenRemovesLeftoverTemporaries) {
  testing::TempDir dir;
  std::filesystem::create_directories(dir.path() / ".tmp");
  std::ofstream(dir.path() / ".tmp" / "upload-crashed") << "half a file";
  auto store = BlobStore::Open(dir.path());
  ASSERT_TRUE(store);
  EXPECT_TRUE(std::filesystem::is_empty(dir.path() / ".tmp"));
}

TEST(BlobStoreTest, InvalidIdsNeverReachTheFilesystem) {
  for (std::string_view id : {"", "../../etc/passwd", "0123456789ABCDEF", "0123456789abcde", "0123456789abcdef0",
                              "0123456789abcd/f", "0123456789abcd\0f"}) {
    EXPECT_FALSE(BlobStore::IsValidId(id)) << id;
  }
  EXPECT_TRUE(BlobStore::IsValidId("0123456789abcdef"));
  testing::TempDir dir;
  auto store = BlobStore::Open(dir.path());
  EXPECT_EQ((*store)->OpenForRead("../../../etc/pas").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*store)->OpenForRead("0123456789abcdef").status().code(), StatusCode::kNotFound);
  EXPECT_EQ((*store)->Remove("0123456789abcdef").code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace plyr
