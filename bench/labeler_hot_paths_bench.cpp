// The per-label work of the labeler, without the network or the disk.
//
// The anchor is BM_SignLabel: what emitting one label costs at minimum on one core (DAG-CBOR of the
// unsigned label, SHA-256 + ECDSA k256 with low-S, DAG-CBOR of the signed label). The end-to-end
// emit rate of bench/labeler/run.sh is reported as a ratio to it. The other benchmarks split the
// anchor into its parts and cover the per-label work after signing: the stream frame (once per
// label, shared by every subscriber) and the JSON of the emit answer and of queryLabels.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include <benchmark/benchmark.h>
#include <boost/json/serialize.hpp>

#include "labeler/label.h"
#include "labeler/label_cbor.h"
#include "labeler/signing_key.h"

namespace {

using namespace plyr::labeler;

// A typical label: a post URI of a real-looking account, a short value, millisecond cts. Its
// encoding is about the size of the design note's test vector (about 140 bytes unsigned).
Label TypicalLabel() {
  Label label;
  label.src = "did:plc:ar7c4by46qjdydhdevvrndac";
  label.uri = "at://did:plc:ewvi7nxzyoun6zhxrhs64oiz/app.bsky.feed.post/3l3pte3p2e325";
  label.val = "spam";
  label.cts = "2026-11-25T12:00:00.000Z";
  return label;
}

std::unique_ptr<SigningKey> KeyOrDie(Curve curve) {
  auto key = SigningKey::Generate(curve);
  if (!key) std::abort();  // only on a crypto library failure: no figure would mean anything
  return key;
}

// Everything Emit() does per label before the log: encode, sign, encode with `sig`.
void SignLabelOn(benchmark::State& state, Curve curve) {
  auto key = KeyOrDie(curve);
  Label label = TypicalLabel();
  for (auto _ : state) {
    label.sig = key->Sign(EncodeUnsignedLabel(label));
    std::string cbor = EncodeSignedLabel(label);
    benchmark::DoNotOptimize(cbor);
  }
  state.counters["labels_per_s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// The anchor (k256 is the labeler's default curve).
void BM_SignLabel(benchmark::State& state) { SignLabelOn(state, Curve::kK256); }
BENCHMARK(BM_SignLabel);

void BM_SignLabelP256(benchmark::State& state) { SignLabelOn(state, Curve::kP256); }
BENCHMARK(BM_SignLabelP256);

// The parts of the anchor, so a change in it can be located.
void BM_EncodeUnsignedLabel(benchmark::State& state) {
  const Label label = TypicalLabel();
  for (auto _ : state) benchmark::DoNotOptimize(EncodeUnsignedLabel(label));
}
BENCHMARK(BM_EncodeUnsignedLabel);

void BM_EncodeSignedLabel(benchmark::State& state) {
  Label label = TypicalLabel();
  label.sig = std::string(64, '\x5a');
  for (auto _ : state) benchmark::DoNotOptimize(EncodeSignedLabel(label));
}
BENCHMARK(BM_EncodeSignedLabel);

void SignOnlyOn(benchmark::State& state, Curve curve) {
  auto key = KeyOrDie(curve);
  const std::string message = EncodeUnsignedLabel(TypicalLabel());
  for (auto _ : state) benchmark::DoNotOptimize(key->Sign(message));
}
void BM_SignDigestK256(benchmark::State& state) { SignOnlyOn(state, Curve::kK256); }
BENCHMARK(BM_SignDigestK256);
void BM_SignDigestP256(benchmark::State& state) { SignOnlyOn(state, Curve::kP256); }
BENCHMARK(BM_SignDigestP256);

// After signing: the subscribeLabels frame, built once per label (LabelFeed::Publish) and again
// per label on replay from the log.
void BM_EncodeLabelsFrame(benchmark::State& state) {
  Label label = TypicalLabel();
  label.sig = std::string(64, '\x5a');
  const std::string cbor = EncodeSignedLabel(label);
  std::int64_t seq = 1'234'567;
  for (auto _ : state) benchmark::DoNotOptimize(EncodeLabelsFrame(seq++, cbor));
}
BENCHMARK(BM_EncodeLabelsFrame);

// The label in the emit answer and in queryLabels: the JSON object and its text.
void BM_LabelToJsonSerialize(benchmark::State& state) {
  Label label = TypicalLabel();
  label.sig = std::string(64, '\x5a');
  for (auto _ : state) benchmark::DoNotOptimize(boost::json::serialize(LabelToJson(label)));
}
BENCHMARK(BM_LabelToJsonSerialize);

}  // namespace

BENCHMARK_MAIN();
