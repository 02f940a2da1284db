// A running plyr-core labeler (the real binary on an OS-chosen loopback port) and helpers to emit
// labels, query them and check what comes back against the published key.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include "labeler/label.h"
#include "labeler/label_cbor.h"
#include "labeler/signing_key.h"
#include "tests/support/process.h"
#include "tests/support/test_http_client.h"
#include "tests/support/test_ws_client.h"

namespace plyr::testing {

inline constexpr const char* kLabelerDid = "did:plc:ar7c4by46qjdydhdevvrndac";

inline std::string PostUri(int n) {
  return "at://did:plc:ewvi7nxzyoun6zhxrhs64oiz/fm.plyr.track/" + std::to_string(n);
}

// Decodes standard base64 with or without padding (the test's own, via OpenSSL's decoder).
std::string DecodeBase64(std::string text);

// A label as queryLabels returns it, read back into the struct (sig decoded).
labeler::Label LabelFromQueryJson(const boost::json::object& object);

// Reads #labels frames until `count` arrived (or a timeout); returns their seqs, and the frames.
std::vector<std::int64_t> ReadSeqs(WsClient& ws, std::size_t count, std::vector<std::string>* frames = nullptr,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(20));

// The subscribeLabels target, from `cursor` when given.
inline std::string Subscribe(std::optional<std::int64_t> cursor = std::nullopt) {
  return "/xrpc/com.atproto.label.subscribeLabels" + (cursor ? "?cursor=" + std::to_string(*cursor) : "");
}

class LabelerTest : public ::testing::Test {
 protected:
  void SetUp() override { Start({}); }

  void Start(std::vector<std::string> extra) {
    process_ = std::make_unique<PlyrProcess>(dir_.path() / "data");
    std::vector<std::string> args = {"labeler", "--labeler-did", kLabelerDid, "--http-drain-timeout-ms", "2000"};
    args.insert(args.end(), extra.begin(), extra.end());
    ASSERT_TRUE(process_->StartServe(args)) << process_->log();
    port_ = process_->port("labeler");
    token_ = process_->admin_token();
  }

  void Restart(std::vector<std::string> extra = {}) {
    process_->Stop();
    Start(std::move(extra));
  }

  Headers Admin() const { return {{"Authorization", "Bearer " + token_}, {"Content-Type", "application/json"}}; }

  // Emits labels ({"uri","val",...} objects) and returns the stored {seq,label} entries.
  boost::json::array Emit(const boost::json::array& labels) {
    auto r = Fetch(port_, "POST", "/v1/labels", Admin(),
                   boost::json::serialize(boost::json::object{{"labels", labels}}));
    EXPECT_EQ(r.status, 200) << r.body;
    if (r.status != 200) return {};
    return boost::json::parse(r.body).as_object().at("labels").as_array();
  }

  // Emits `count` labels "spam" on PostUri(first..first+count-1); returns the last seq.
  std::int64_t EmitMany(int first, int count) {
    boost::json::array labels;
    for (int i = 0; i < count; ++i) labels.push_back(boost::json::object{{"uri", PostUri(first + i)}, {"val", "spam"}});
    auto stored = Emit(labels);
    return stored.empty() ? 0 : stored.back().as_object().at("seq").to_number<std::int64_t>();
  }

  // The labeler's did:key, as the key command prints it for this data folder.
  std::string DidKey() {
    std::string out;
    EXPECT_EQ(PlyrProcess::RunToCompletion({"labeler", "did", "--data", process_->data_dir().string()}, &out), 0)
        << out;
    const std::string label = "did:key: ";
    auto at = out.find(label);
    return at == std::string::npos ? "" : out.substr(at + label.size(), out.find('\n', at) - at - label.size());
  }

  TempDir dir_;
  std::unique_ptr<PlyrProcess> process_;
  unsigned short port_ = 0;
  std::string token_;
};

}  // namespace plyr::testing
