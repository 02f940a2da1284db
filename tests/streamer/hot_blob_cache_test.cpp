#include "streamer/hot_blob_cache.h"

#include <fstream>

#include <gtest/gtest.h>

#include "tests/support/process.h"

namespace plyr::streamer {
namespace {

// A blob file as the store names them (the id need not be the content's hash here).
void PutCopy(const BlobStore& blobs, const std::string& id, std::size_t size) {
  std::filesystem::create_directories(blobs.PathFor(id).parent_path());
  std::ofstream(blobs.PathFor(id)) << std::string(size, 'x');
}

TEST(HotBlobCacheTest, KeepsTheMostRecentlyServedWithinTheBudget) {
  testing::TempDir dir;
  auto blobs = BlobStore::Open(dir.path() / "blobs");
  ASSERT_TRUE(blobs.ok());
  HotBlobCache cache(**blobs, 8000);
  const std::string a = "000000000000000a", b = "000000000000000b", c = "000000000000000c";
  for (const auto& id : {a, b, c}) {
    ASSERT_TRUE(cache.BeginFill(id, 1000));
    EXPECT_FALSE(cache.BeginFill(id, 1000)) << "one fetch at a time";
    PutCopy(**blobs, id, 1000);
  }
  EXPECT_FALSE(cache.BeginFill("000000000000000d", 1001)) << "beyond an eighth of the budget";
  EXPECT_TRUE(cache.EndFill(a, 1000, true).empty());
  EXPECT_TRUE(cache.EndFill(b, 1000, true).empty());
  EXPECT_TRUE(cache.EndFill(c, 1000, false).empty()) << "a failed fetch is not indexed";
  ASSERT_NE(cache.Find(a), nullptr);  // a is now the most recent
  EXPECT_EQ(cache.Find(c), nullptr);
  EXPECT_EQ(cache.bytes(), 2000u);

  // Seven more of 1000 bytes: 9000 > 8000, so the least recently served (b) goes first.
  std::vector<std::string> evicted;
  for (int i = 0; i < 7; ++i) {
    const std::string id = "00000000000001" + std::string(1, static_cast<char>('0' + i)) + "0";
    ASSERT_TRUE(cache.BeginFill(id, 1000));
    PutCopy(**blobs, id, 1000);
    auto out = cache.EndFill(id, 1000, true);
    evicted.insert(evicted.end(), out.begin(), out.end());
  }
  EXPECT_EQ(evicted, std::vector<std::string>{b});
  EXPECT_EQ(cache.bytes(), 8000u);
  cache.Forget(a);
  EXPECT_EQ(cache.Find(a), nullptr);
  EXPECT_EQ(cache.entries(), 7u);

  // A restart indexes what the folder holds, and trims it to the budget.
  HotBlobCache reloaded(**blobs, 5000);
  const auto over = reloaded.Load();
  EXPECT_EQ(reloaded.bytes(), 5000u);
  EXPECT_EQ(over.size(), 5u) << "10 copies on disk (a and b included), 5 000 bytes kept";
}

}  // namespace
}  // namespace plyr::streamer
