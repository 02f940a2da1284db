// The per-request work of a gated range request, without the network: Range parsing and
// stream-ticket verification (Ed25519). The anchor is a bare Ed25519 verify of a message of the
// same length (libsodium): a first-seen ticket should cost about that, a repeated one far less.
#include <ctime>

#include <benchmark/benchmark.h>
#include <sodium.h>

#include "streamer/byte_range.h"
#include "streamer/stream_ticket.h"

namespace {

using namespace plyr::streamer;

void BM_ResolveSingleRange(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(ResolveRange("bytes=1048576-1114111", 4 << 20));
}
BENCHMARK(BM_ResolveSingleRange);

void BM_ResolveEightRanges(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(ResolveRange("bytes=0-1,10-20,30-40,50-60,70-80,90-100,200-300,-5", 4 << 20));
  }
}
BENCHMARK(BM_ResolveEightRanges);

void BM_VerifyTicket(benchmark::State& state) {
  auto keys = GenerateTicketKeyPair();
  const std::int64_t now = std::time(nullptr);
  const std::string ticket = MintTicket(keys, {"did:plc:viewer", "0123456789abcdef", now + 600});
  TicketVerifier verifier(keys.public_key, 86400);
  for (auto _ : state) benchmark::DoNotOptimize(verifier.Verify(ticket, "0123456789abcdef", now));
}
BENCHMARK(BM_VerifyTicket);  // the repeat requests of one playback: the signature is remembered

void BM_VerifyTicketFirstSight(benchmark::State& state) {
  auto keys = GenerateTicketKeyPair();
  const std::int64_t now = std::time(nullptr);
  const std::string ticket = MintTicket(keys, {"did:plc:viewer", "0123456789abcdef", now + 600});
  for (auto _ : state) {
    state.PauseTiming();
    TicketVerifier verifier(keys.public_key, 86400);
    state.ResumeTiming();
    benchmark::DoNotOptimize(verifier.Verify(ticket, "0123456789abcdef", now));
  }
}
BENCHMARK(BM_VerifyTicketFirstSight);

// Anchor: libsodium's Ed25519 verify alone, over a message of the same length.
void BM_AnchorEd25519Verify(benchmark::State& state) {
  auto keys = GenerateTicketKeyPair();
  unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
  crypto_sign_seed_keypair(pk, sk, keys.seed.data());
  const std::string message(110, 'm');
  unsigned char sig[crypto_sign_BYTES];
  crypto_sign_detached(sig, nullptr, reinterpret_cast<const unsigned char*>(message.data()), message.size(), sk);
  for (auto _ : state) {
    benchmark::DoNotOptimize(crypto_sign_verify_detached(
        sig, reinterpret_cast<const unsigned char*>(message.data()), message.size(), pk));
  }
}
BENCHMARK(BM_AnchorEd25519Verify);

}  // namespace

BENCHMARK_MAIN();
