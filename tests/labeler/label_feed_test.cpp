#include "labeler/label_feed.h"

#include <gtest/gtest.h>

#include "labeler/label_cbor.h"
#include "labeler/ws_frame.h"

namespace plyr::labeler {
namespace {

// A commit of labels with seqs first..last; the cbor bytes only need to differ per label here.
std::vector<StoredLabel> Commit(std::int64_t first, std::int64_t last) {
  std::vector<StoredLabel> labels;
  for (std::int64_t seq = first; seq <= last; ++seq) {
    StoredLabel stored;
    stored.seq = seq;
    stored.cbor = "\xa1\x61v\x63" + std::to_string(100 + seq);  // {"v": "1NN"}
    labels.push_back(stored);
  }
  return labels;
}

std::string FrameOf(std::int64_t seq) {
  return EncodeWsFrame(WsOpcode::kBinary, EncodeLabelsFrame(seq, Commit(seq, seq).front().cbor));
}

// What a subscriber at `after` would send, as one string, and the seq it would end at.
std::string Sent(const std::vector<FrameSpan>& spans, std::int64_t* last) {
  std::string bytes;
  for (const auto& span : spans) {
    bytes += span.bytes();
    *last = span.last_seq();
  }
  return bytes;
}

TEST(LabelFeed, ACommitIsOneRunAndASubscriberGetsExactlyTheFramesAfterItsPosition) {
  LabelFeed feed(100, 10);
  feed.Publish(Commit(11, 13));
  feed.Publish(Commit(14, 15));
  EXPECT_EQ(feed.head(), 15);

  std::vector<FrameSpan> spans;
  ASSERT_TRUE(feed.FramesAfter(10, 100, spans));
  ASSERT_EQ(spans.size(), 2u);  // one buffer per commit
  EXPECT_EQ(spans[0].count(), 3u);
  std::int64_t last = 0;
  EXPECT_EQ(Sent(spans, &last), FrameOf(11) + FrameOf(12) + FrameOf(13) + FrameOf(14) + FrameOf(15));
  EXPECT_EQ(last, 15);

  // From the middle of a commit: its tail, then the next commit.
  spans.clear();
  ASSERT_TRUE(feed.FramesAfter(12, 100, spans));
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(spans[0].first_seq(), 13);
  EXPECT_EQ(Sent(spans, &last), FrameOf(13) + FrameOf(14) + FrameOf(15));

  // At the head: nothing, and still inside the window.
  spans.clear();
  EXPECT_TRUE(feed.FramesAfter(15, 100, spans));
  EXPECT_TRUE(spans.empty());
}

TEST(LabelFeed, AtMostMaxFramesAreHandedOutEvenInsideOneRun) {
  LabelFeed feed(100, 0);
  feed.Publish(Commit(1, 5));
  std::vector<FrameSpan> spans;
  ASSERT_TRUE(feed.FramesAfter(1, 2, spans));
  std::int64_t last = 0;
  EXPECT_EQ(Sent(spans, &last), FrameOf(2) + FrameOf(3));
  EXPECT_EQ(last, 3);
}

TEST(LabelFeed, OldRunsLeaveTheWindowWholeAndTheirReadersAreSentToTheLog) {
  LabelFeed feed(3, 0);
  feed.Publish(Commit(1, 2));
  feed.Publish(Commit(3, 4));
  feed.Publish(Commit(5, 6));  // 6 held; dropping 1-2 still leaves 4 >= 3, dropping 3-4 would not
  std::vector<FrameSpan> spans;
  EXPECT_FALSE(feed.FramesAfter(0, 100, spans));
  EXPECT_FALSE(feed.FramesAfter(1, 100, spans));
  EXPECT_TRUE(spans.empty());
  ASSERT_TRUE(feed.FramesAfter(2, 100, spans));
  std::int64_t last = 0;
  EXPECT_EQ(Sent(spans, &last), FrameOf(3) + FrameOf(4) + FrameOf(5) + FrameOf(6));
}

TEST(LabelFeed, AFeedStartedOnAnOldLogSendsEarlierLabelsToTheLog) {
  LabelFeed feed(100, 40);  // labels 1..40 exist only in the log
  std::vector<FrameSpan> spans;
  EXPECT_FALSE(feed.FramesAfter(39, 100, spans));
  EXPECT_TRUE(feed.FramesAfter(40, 100, spans));
  feed.Publish(Commit(41, 41));
  ASSERT_TRUE(feed.FramesAfter(40, 100, spans));
  std::int64_t last = 0;
  EXPECT_EQ(Sent(spans, &last), FrameOf(41));
}

}  // namespace
}  // namespace plyr::labeler
