#include <gtest/gtest.h>

#include "common/migrations.h"
#include "streamer/catalog.h"
#include "tests/support/pg_test_server.h"
#include "tests/support/process.h"

namespace plyr::streamer {
namespace {

std::unique_ptr<Catalog> OpenCatalog(const std::filesystem::path& dir) {
  auto db = SqliteDb::Open(dir / "catalog.db");
  EXPECT_TRUE(db.ok()) << db.status().ToString();
  auto store = OpenSqliteCatalogStore(std::move(*db));
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  if (!store.ok()) return nullptr;
  auto catalog = Catalog::Open(std::move(*store));
  EXPECT_TRUE(catalog.ok()) << catalog.status().ToString();
  return catalog.ok() ? std::move(*catalog) : nullptr;
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
  EXPECT_EQ(*SchemaVersion(**db, kCatalogStoreName), static_cast<int>(CatalogMigrations().size()));
}

// The same behaviour on SQLite and on PostgreSQL.
class CatalogOnEachEngineTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "postgres") {
      url_ = testing::FreshPgDatabase();
      ASSERT_FALSE(url_.empty());
    }
  }

  // A catalog on the same data as the last one: a restarted process, or another instance.
  std::unique_ptr<Catalog> Open() {
    if (GetParam() == "sqlite") return OpenCatalog(dir_.path());
    auto db = PgDb::Open(url_, 2);
    EXPECT_TRUE(db.ok()) << db.status().ToString();
    if (!db.ok()) return nullptr;
    auto store = OpenPgCatalogStore(std::shared_ptr<PgDb>(std::move(*db)));
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    if (!store.ok()) return nullptr;
    auto catalog = Catalog::Open(std::move(*store));
    EXPECT_TRUE(catalog.ok()) << catalog.status().ToString();
    return catalog.ok() ? std::move(*catalog) : nullptr;
  }

  testing::TempDir dir_;
  std::string url_;
};

TEST(CatalogTest, GatesRoundTripByName) {
  for (Gate g : {Gate::kNone, Gate::kSupporters, Gate::kCopyright}) EXPECT_EQ(ParseGate(GateName(g)), g);
  EXPECT_EQ(GateName(Gate::kSupporters), "any");
  EXPECT_FALSE(ParseGate("everyone"));
}

TEST_P(CatalogOnEachEngineTest, RenditionIdsResolveToTheirGatedTrack) {
  auto catalog = Open();
  ASSERT_TRUE(catalog->PutTrack(GatedTrack()).ok());
  auto by_rendition = catalog->FindByAnyFileId("00000000000000bb");
  ASSERT_TRUE(by_rendition);
  EXPECT_EQ(by_rendition->file_id, "00000000000000aa");
  EXPECT_EQ(by_rendition->gate, Gate::kSupporters);
  EXPECT_FALSE(catalog->FindTrack("00000000000000bb"));
}

TEST_P(CatalogOnEachEngineTest, SurvivesReopenAndReplacesRenditions) {
  {
    auto catalog = Open();
    ASSERT_TRUE(catalog->PutFile(FileRecord{"00000000000000aa", 1234, "audio/flac"}).ok());
    ASSERT_TRUE(catalog->PutTrack(GatedTrack()).ok());
    Track replaced = GatedTrack();
    replaced.renditions.clear();
    replaced.renditions["opus-96"] = Rendition{"00000000000000cc", "audio/ogg"};
    ASSERT_TRUE(catalog->PutTrack(replaced).ok());
  }
  auto catalog = Open();
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

TEST_P(CatalogOnEachEngineTest, RemoveDropsTrackAndRenditionIndex) {
  auto catalog = Open();
  ASSERT_TRUE(catalog->PutTrack(GatedTrack()).ok());
  bool existed = false;
  ASSERT_TRUE(catalog->RemoveTrack("00000000000000aa", &existed).ok());
  EXPECT_TRUE(existed);
  EXPECT_FALSE(catalog->FindByAnyFileId("00000000000000bb"));
  ASSERT_TRUE(catalog->RemoveTrack("00000000000000aa", &existed).ok());
  EXPECT_FALSE(existed);
}

TEST_P(CatalogOnEachEngineTest, RemovingAFileTakesItsTrackAndTheRenditionsNamingIt) {
  auto catalog = Open();
  ASSERT_TRUE(catalog->PutFile(FileRecord{"00000000000000bb", 10, "audio/mpeg"}).ok());
  ASSERT_TRUE(catalog->PutTrack(GatedTrack()).ok());  // aa, with rendition bb
  Track other = GatedTrack();
  other.file_id = "00000000000000cc";
  other.renditions = {{"mp3-128", Rendition{"00000000000000bb", "audio/mpeg"}},
                      {"opus-96", Rendition{"00000000000000dd", "audio/ogg"}}};
  ASSERT_TRUE(catalog->PutTrack(other).ok());

  FileRemoval removal;
  ASSERT_TRUE(catalog->RemoveFile("00000000000000bb", &removal).ok());
  EXPECT_TRUE(removal.tracks_removed.empty());
  EXPECT_EQ(removal.renditions_removed,
            (std::vector<std::string>{"00000000000000aa/mp3-128", "00000000000000cc/mp3-128"}));
  EXPECT_FALSE(catalog->FindFile("00000000000000bb"));
  EXPECT_FALSE(catalog->FindByAnyFileId("00000000000000bb"));
  EXPECT_EQ(catalog->FindTrack("00000000000000cc")->renditions.size(), 1u);

  ASSERT_TRUE(catalog->RemoveFile("00000000000000cc", &removal).ok());
  EXPECT_EQ(removal.tracks_removed, std::vector<std::string>{"00000000000000cc"});
  EXPECT_FALSE(catalog->FindByAnyFileId("00000000000000dd")) << "its renditions go with it";

  // The store holds what the mirror shows.
  auto reopened = Open();
  EXPECT_FALSE(reopened->FindTrack("00000000000000cc"));
  EXPECT_EQ(reopened->FindTrack("00000000000000aa")->renditions.size(), 0u);
}

// Two instances on one database: a change made through one reaches the other's mirror by an
// announcement (what the streamer's listener hands over) or a reload.
TEST_P(CatalogOnEachEngineTest, AnotherInstancesWritesArriveByAnnouncementOrReload) {
  auto writer = Open();
  auto reader = Open();
  ASSERT_TRUE(writer->PutFile(FileRecord{"00000000000000aa", 99, "audio/flac"}).ok());
  ASSERT_TRUE(writer->PutTrack(GatedTrack()).ok());
  EXPECT_FALSE(reader->FindTrack("00000000000000aa"));
  ASSERT_TRUE(reader->ApplyChange("track 00000000000000aa").ok());
  ASSERT_TRUE(reader->ApplyChange("file 00000000000000aa").ok());
  ASSERT_TRUE(reader->FindTrack("00000000000000aa"));
  EXPECT_EQ(reader->FindByAnyFileId("00000000000000bb")->file_id, "00000000000000aa");
  EXPECT_EQ(reader->FindFile("00000000000000aa")->size, 99u);

  bool existed = false;
  ASSERT_TRUE(writer->RemoveTrack("00000000000000aa", &existed).ok());
  ASSERT_TRUE(reader->ApplyChange("track 00000000000000aa").ok());
  EXPECT_FALSE(reader->FindTrack("00000000000000aa"));
  EXPECT_FALSE(reader->FindByAnyFileId("00000000000000bb"));

  ASSERT_TRUE(writer->PutTrack(GatedTrack()).ok());
  ASSERT_TRUE(reader->Reload().ok());
  EXPECT_TRUE(reader->FindByAnyFileId("00000000000000bb"));
  EXPECT_EQ(reader->ApplyChange("nonsense").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(reader->ApplyChange("track ").code(), StatusCode::kInvalidArgument);
}

TEST_P(CatalogOnEachEngineTest, AnotherOwnersFileCannotBeNamed) {
  auto catalog = Open();
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

INSTANTIATE_TEST_SUITE_P(Engines, CatalogOnEachEngineTest, ::testing::Values("sqlite", "postgres"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace plyr::streamer
