#include <gtest/gtest.h>

#include "common/migrations.h"
#include "streamer/catalog.h"
#include "tests/support/process.h"

namespace plyr::streamer {
namespace {

std::unique_ptr<Catalog> OpenCatalog(const std::filesystem::path& dir) {
  auto db = SqliteDb::Open(dir / "catalog.db");
  EXPECT_TRUE(db.ok()) << db.status().ToString();
  auto catalog = Catalog::Open(std::move(*db));
  EXPECT_TRUE(catalog.ok()) << catalog.status().ToString();
  return std::move(*catalog);
}

Track GatedTrack() {
  Track t;
  t.file_id = "00000000000000aa";
  t.owner_did = "did:plc:artist";
  t.gate = Gate::kSupporters;
  t.content_type = "audio/flac";
  t.renditions["mp3-128"] = Rendition{"00000000000000bb", "audio/mpeg"};
  return t;
}

TEST(CatalogTest, ADatabaseOfABuildBeforeMigrationsIsAdoptedWithItsRows) {
  testing::TempDir dir;
  {
    // The schema as builds before migrations made it, with a file in it.
    auto db = SqliteDb::Open(dir.path() / "catalog.db");
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Run("CREATE TABLE files (file_id TEXT PRIMARY KEY, size INTEGER NOT NULL, "
                           "content_type TEXT NOT NULL, created_at INTEGER NOT NULL DEFAULT (unixepoch()))")
                    .ok());
    ASSERT_TRUE((*db)->Run("INSERT INTO files (file_id, size, content_type) VALUES ('0123456789abcdef', 7, 'audio/mpeg')")
                    .ok());
  }
  auto catalog = OpenCatalog(dir.path());
  ASSERT_NE(catalog, nullptr);
  auto file = catalog->FindFile("0123456789abcdef");
  ASSERT_TRUE(file.has_value());
  EXPECT_EQ(file->size, 7u);
  auto db = SqliteDb::Open(dir.path() / "catalog.db");
  ASSERT_TRUE(db.ok());
  EXPECT_EQ(*SchemaVersion(**db, kCatalogStoreName), 1);
}

TEST(CatalogTest, GatesRoundTripByName) {
  for (Gate g : {Gate::kNone, Gate::kSupporters, Gate::kCopyright}) EXPECT_EQ(ParseGate(GateName(g)), g);
  EXPECT_EQ(GateName(Gate::kSupporters), "any");
  EXPECT_FALSE(ParseGate("everyone"));
}

TEST(CatalogTest, RenditionIdsResolveToTheirGatedTrack) {
  testing::TempDir dir;
  auto catalog = OpenCatalog(dir.path());
  ASSERT_TRUE(catalog->PutTrack(GatedTrack()).ok());
  auto by_rendition = catalog->FindByAnyFileId("00000000000000bb");
  ASSERT_TRUE(by_rendition);
  EXPECT_EQ(by_rendition->file_id, "00000000000000aa");
  EXPECT_EQ(by_rendition->gate, Gate::kSupporters);
  EXPECT_FALSE(catalog->FindTrack("00000000000000bb"));
}

TEST(CatalogTest, SurvivesReopenAndReplacesRenditions) {
  testing::TempDir dir;
  {
    auto catalog = OpenCatalog(dir.path());
    ASSERT_TRUE(catalog->PutFile(FileRecord{"00000000000000aa", 1234, "audio/flac"}).ok());
    ASSERT_TRUE(catalog->PutTrack(GatedTrack()).ok());
    Track replaced = GatedTrack();
    replaced.renditions.clear();
    replaced.renditions["opus-96"] = Rendition{"00000000000000cc", "audio/ogg"};
    ASSERT_TRUE(catalog->PutTrack(replaced).ok());
  }
  auto catalog = OpenCatalog(dir.path());
  auto track = catalog->FindTrack("00000000000000aa");
  ASSERT_TRUE(track);
  EXPECT_EQ(track->renditions.size(), 1u);
  EXPECT_TRUE(track->renditions.contains("opus-96"));
  EXPECT_FALSE(catalog->FindByAnyFileId("00000000000000bb"));
  EXPECT_TRUE(catalog->FindByAnyFileId("00000000000000cc"));
  auto file = catalog->FindFile("00000000000000aa");
  ASSERT_TRUE(file);
  EXPECT_EQ(file->size, 1234u);
}

TEST(CatalogTest, RemoveDropsTrackAndRenditionIndex) {
  testing::TempDir dir;
  auto catalog = OpenCatalog(dir.path());
  ASSERT_TRUE(catalog->PutTrack(GatedTrack()).ok());
  bool existed = false;
  ASSERT_TRUE(catalog->RemoveTrack("00000000000000aa", &existed).ok());
  EXPECT_TRUE(existed);
  EXPECT_FALSE(catalog->FindByAnyFileId("00000000000000bb"));
  ASSERT_TRUE(catalog->RemoveTrack("00000000000000aa", &existed).ok());
  EXPECT_FALSE(existed);
}

}  // namespace
TEST(CatalogTest, AnotherOwnersFileCannotBeNamed) {
  testing::TempDir dir;
  auto catalog = OpenCatalog(dir.path());
  ASSERT_TRUE(catalog->PutTrack(GatedTrack()).ok());  // aa, with rendition bb

  Track thief;
  thief.file_id = "00000000000000dd";
  thief.owner_did = "did:plc:someone-else";
  thief.gate = Gate::kNone;
  thief.content_type = "audio/flac";
  for (const char* taken : {"00000000000000aa", "00000000000000bb"}) {
    thief.renditions = {{"mp3-128", Rendition{taken, "audio/mpeg"}}};
    const Status refused = catalog->PutTrack(thief);
    EXPECT_EQ(refused.code(), StatusCode::kFailedPrecondition) << taken;
    EXPECT_NE(refused.message().find("00000000000000aa"), std::string::npos) << refused.message();
  }
  EXPECT_FALSE(catalog->FindTrack("00000000000000dd")) << "nothing of a refused track is recorded";

  // A track whose own file is another track's rendition: refused too.
  Track over = thief;
  over.file_id = "00000000000000bb";
  over.renditions.clear();
  EXPECT_EQ(catalog->PutTrack(over).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(catalog->FindByAnyFileId("00000000000000bb")->file_id, "00000000000000aa");

  // The owner may move its renditions around, name its own file as one, and share files between
  // its own tracks (an upload of the same recording encodes to the same bytes).
  Track same = GatedTrack();
  same.renditions["lossless"] = Rendition{"00000000000000aa", "audio/flac"};
  EXPECT_TRUE(catalog->PutTrack(same).ok());
  Track again = GatedTrack();
  again.file_id = "00000000000000ff";
  EXPECT_TRUE(catalog->PutTrack(again).ok());
  thief.renditions = {{"mp3-128", Rendition{"00000000000000ee", "audio/mpeg"}}};
  EXPECT_TRUE(catalog->PutTrack(thief).ok());
}

}  // namespace plyr::streamer
