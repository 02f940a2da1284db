#include "streamer/stream_ticket.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <system_error>

#include <boost/system/result.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <sodium.h>

#include "common/comma_list.h"

namespace plyr::streamer {

namespace {

namespace fs = std::filesystem;
using boost::system::error_code;
using boost::system::errc::errc_t;

constexpr std::size_t kMaxTicketBytes = 2048;
constexpr std::size_t kMaxViewerDidBytes = 2048;
constexpr std::size_t kMaxFileIdBytes = 64;
constexpr std::string_view kVersionPrefix = "v1";
constexpr std::string_view kDidPrefix = "did:";
constexpr std::string_view kWildcardFile = "*";
constexpr const char* kKeyFileName = "ticket-signing.key";
constexpr const char* kPublicKeyFileName = "ticket-signing.pub";
// Key files hold 64 hex characters and a newline; anything much larger is not ours.
constexpr std::size_t kMaxKeyFileBytes = 4096;
constexpr int kBase64Variant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;

// sodium_init() is thread-safe and idempotent; the static makes later calls a cheap check.
// Without a working libsodium (no entropy source) we cannot mint or verify safely, so fail hard.
void EnsureSodium() {
  static const bool initialised = sodium_init() >= 0;
  if (!initialised) std::abort();
}

error_code ErrnoError(int err) { return error_code(err, boost::system::system_category()); }
error_code ErrcError(errc_t e) { return boost::system::errc::make_error_code(e); }

const unsigned char* Bytes(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

std::string Base64UrlEncode(const unsigned char* data, std::size_t size) {
  std::string out(sodium_base64_ENCODED_LEN(size, kBase64Variant), '\0');
  sodium_bin2base64(out.data(), out.size(), data, size, kBase64Variant);
  out.resize(std::strlen(out.c_str()));  // the encoded length counts a terminating NUL
  return out;
}

bool IsBase64UrlChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

// Strict decoding, so every byte string has exactly one accepted encoding. libsodium rejects
// padding and non-zero leftover bits, but 1.0.18 reads input bytes as plain (signed) char, so a
// byte >= 0x80 aliases an alphabet character (0xFF decodes as '_'): the alphabet is checked here.
bool Base64UrlDecode(std::string_view text, unsigned char* out, std::size_t out_capacity,
                     std::size_t* out_size) {
  for (char c : text) {
    if (!IsBase64UrlChar(c)) return false;
  }
  return sodium_base642bin(out, out_capacity, text.data(), text.size(), nullptr, out_size, nullptr,
                           kBase64Variant) == 0;
}

bool IsHexDigit(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// Exactly 64 hex characters (either case) into 32 bytes.
boost::system::result<std::array<unsigned char, 32>> ParseHex32(std::string_view hex) {
  if (hex.size() != 64) return ErrcError(errc_t::invalid_argument);
  for (char c : hex) {
    if (!IsHexDigit(c)) return ErrcError(errc_t::illegal_byte_sequence);
  }
  std::array<unsigned char, 32> out{};
  std::size_t size = 0;
  if (sodium_hex2bin(out.data(), out.size(), hex.data(), hex.size(), nullptr, &size, nullptr) != 0 ||
      size != out.size()) {
    return ErrcError(errc_t::illegal_byte_sequence);
  }
  return out;
}

std::string_view TrimTrailingWhitespace(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

Ed25519PublicKey DerivePublicKey(const Ed25519Seed& seed) {
  Ed25519PublicKey public_key{};
  unsigned char secret_key[crypto_sign_SECRETKEYBYTES];
  crypto_sign_seed_keypair(public_key.data(), secret_key, seed.data());
  sodium_memzero(secret_key, sizeof secret_key);
  return public_key;
}

class UniqueFd {
 public:
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }
  // Closes now so the caller sees the error (on some filesystems a failed close means lost data).
  error_code Close() {
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) return ErrnoError(errno);
    return {};
  }

 private:
  int fd_;
};

error_code WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno);
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

// Reads a small regular file. std::nullopt when it does not exist. When `private_file` is set,
// the file must not grant any permission to group or others: a seed that others could read is
// as good as leaked, and we would rather refuse to start than sign with it.
boost::system::result<std::optional<std::string>> ReadSmallFile(const fs::path& path, bool private_file) {
  // O_NONBLOCK so a FIFO planted at the path cannot hang start-up; it is refused below.
  int raw_fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (raw_fd < 0) {
    if (errno == ENOENT) return std::optional<std::string>();
    return ErrnoError(errno);
  }
  UniqueFd fd(raw_fd);
  // fstat on the open descriptor, not stat on the path, so the checks apply to what we read.
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return ErrnoError(errno);
  if (!S_ISREG(st.st_mode)) return ErrcError(errc_t::invalid_argument);
  if (private_file && (st.st_mode & 077) != 0) return ErrcError(errc_t::permission_denied);

  std::string content;
  char buffer[512];
  // Reserved up front so no reallocation leaves an unwiped copy of the seed on the heap.
  content.reserve(kMaxKeyFileBytes + sizeof buffer);
  for (;;) {
    ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      sodium_memzero(buffer, sizeof buffer);
      return ErrnoError(errno);
    }
    if (n == 0) break;
    content.append(buffer, static_cast<std::size_t>(n));
    if (content.size() > kMaxKeyFileBytes) {
      sodium_memzero(content.data(), content.size());
      sodium_memzero(buffer, sizeof buffer);
      return ErrcError(errc_t::invalid_argument);
    }
  }
  sodium_memzero(buffer, sizeof buffer);
  return std::optional<std::string>(std::move(content));
}

// Reads a key file: 64 hex characters, optionally followed by whitespace (editors add newlines).
boost::system::result<std::optional<std::array<unsigned char, 32>>> ReadHexKeyFile(const fs::path& path,
                                                                                   bool private_file) {
  auto content = ReadSmallFile(path, private_file);
  if (!content) return content.error();
  if (!content->has_value()) return std::optional<std::array<unsigned char, 32>>();
  std::string& text = **content;
  auto key = ParseHex32(TrimTrailingWhitespace(text));
  sodium_memzero(text.data(), text.size());
  if (!key) return key.error();
  return std::optional<std::array<unsigned char, 32>>(*key);
}

enum class CreateOutcome { kCreated, kAlreadyExists };

// Creates `path` with exactly `content` and `mode`, never replacing an existing file, and never
// letting a reader see a partial file: the content is written and fsynced under a temporary
// name in the same directory, then hard-linked into place. link() fails with EEXIST instead of
// replacing, which rename() would do silently; that matters when two processes start at once
// on an empty data dir: the loser must load the winner's key, not clobber it.
boost::system::result<CreateOutcome> CreateFileExclusively(const fs::path& path, std::string_view content,
                                                           mode_t mode) {
  unsigned char nonce[8];
  randombytes_buf(nonce, sizeof nonce);
  char nonce_hex[sizeof nonce * 2 + 1];
  sodium_bin2hex(nonce_hex, sizeof nonce_hex, nonce, sizeof nonce);
  const fs::path temp_path = path.parent_path() / ("." + path.filename().string() + ".tmp-" + nonce_hex);

  // O_EXCL with the final mode: the secret is never in a file with broader permissions.
  int raw_fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (raw_fd < 0) return ErrnoError(errno);
  UniqueFd fd(raw_fd);

  error_code ec;
  // The umask may have stripped bits (0644 -> 0600); set the documented mode exactly.
  if (::fchmod(fd.get(), mode) != 0) ec = ErrnoError(errno);
  if (!ec) ec = WriteAll(fd.get(), content);
  if (!ec && ::fsync(fd.get()) != 0) ec = ErrnoError(errno);
  if (!ec) ec = fd.Close();
  if (ec) {
    ::unlink(temp_path.c_str());
    return ec;
  }

  if (::link(temp_path.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp_path.c_str());
    if (err == EEXIST) return CreateOutcome::kAlreadyExists;
    return ErrnoError(err);
  }
  ::unlink(temp_path.c_str());

  // Persist the directory entry too. Best effort: some filesystems refuse fsync on a directory,
  // and the worst case after a crash is a fresh key on next start, which only voids live tickets.
  const fs::path dir = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  return CreateOutcome::kCreated;
}

// Loads the seed, creating the key file when there is none.
boost::system::result<Ed25519Seed> LoadOrCreateSeed(const fs::path& key_path) {
  auto existing = ReadHexKeyFile(key_path, /*private_file=*/true);
  if (!existing) return existing.error();
  if (existing->has_value()) return **existing;

  Ed25519Seed seed{};
  randombytes_buf(seed.data(), seed.size());
  std::string text(seed.size() * 2 + 1, '\0');
  sodium_bin2hex(text.data(), text.size(), seed.data(), seed.size());
  text.back() = '\n';  // replaces the NUL terminator sodium_bin2hex wrote
  auto created = CreateFileExclusively(key_path, text, 0600);
  sodium_memzero(text.data(), text.size());
  if (!created) {
    sodium_memzero(seed.data(), seed.size());
    return created.error();
  }
  if (*created == CreateOutcome::kCreated) return seed;

  // Another process created the key between our read and our link: use theirs.
  sodium_memzero(seed.data(), seed.size());
  auto theirs = ReadHexKeyFile(key_path, /*private_file=*/true);
  if (!theirs) return theirs.error();
  if (!theirs->has_value()) return ErrcError(errc_t::no_such_file_or_directory);  // e.g. a dangling symlink
  return **theirs;
}

// Makes sure the .pub file holds `public_key`. An existing file that disagrees is an error rather
// than something to overwrite: someone may have distributed that key to the streamers, and
// silently replacing it would turn into every ticket failing with no hint why.
error_code EnsurePublicKeyFile(const fs::path& pub_path, const Ed25519PublicKey& public_key) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto existing = ReadHexKeyFile(pub_path, /*private_file=*/false);
    if (!existing) return existing.error();
    if (existing->has_value()) {
      if (**existing != public_key) return ErrcError(errc_t::invalid_argument);
      return {};
    }
    auto created = CreateFileExclusively(pub_path, ToHex(public_key) + "\n", 0644);
    if (!created) return created.error();
    if (*created == CreateOutcome::kCreated) return {};
    // Lost a creation race: loop once more to compare against the winner's file.
  }
  return ErrcError(errc_t::no_such_file_or_directory);
}

// Parses an authenticated payload. Only called after the signature verified, so a hostile
// sender cannot reach the JSON parser at all; the checks still hold a minting bug to the format.
std::optional<TicketClaims> ParseClaims(std::string_view payload) {
  boost::system::error_code ec;
  // The error_code overload reports bad input without throwing; default options reject
  // comments, trailing commas, invalid UTF-8 and nesting deeper than 32.
  boost::json::value root = boost::json::parse(payload, ec);
  if (ec) return std::nullopt;

  const boost::json::object* object = root.if_object();
  // Exactly the three v1 keys. An unknown key may be a restriction a newer minter meant us to
  // enforce; ignoring it would grant more than intended, so such payloads are refused.
  if (object == nullptr || object->size() != 3) return std::nullopt;

  const boost::json::value* sub = object->if_contains("sub");
  const boost::json::value* file = object->if_contains("file");
  const boost::json::value* exp = object->if_contains("exp");
  if (sub == nullptr || file == nullptr || exp == nullptr) return std::nullopt;

  const boost::json::string* sub_string = sub->if_string();
  const boost::json::string* file_string = file->if_string();
  // int64 only: a double (2e9) or an integer beyond int64 (parsed as uint64) is refused.
  const std::int64_t* exp_int = exp->if_int64();
  if (sub_string == nullptr || file_string == nullptr || exp_int == nullptr) return std::nullopt;

  std::string_view viewer_did(sub_string->data(), sub_string->size());
  std::string_view file_id(file_string->data(), file_string->size());
  if (!viewer_did.starts_with(kDidPrefix) || viewer_did.size() == kDidPrefix.size() ||
      viewer_did.size() > kMaxViewerDidBytes) {
    return std::nullopt;
  }
  if (file_id.empty() || file_id.size() > kMaxFileIdBytes) return std::nullopt;

  TicketClaims claims;
  claims.viewer_did = std::string(viewer_did);
  claims.file_id = std::string(file_id);
  claims.expires_at = *exp_int;
  return claims;
}

// A key file that cannot be used, as the operator must read it: a file of the wrong shape
// (not 64 hex characters, not a regular file, too large) is InvalidArgument, like a bad setting
// (start-up exits with status 2); one that others may read is FailedPrecondition; anything else
// (unreadable, a failed write) Internal.
Status KeyFileFailure(const fs::path& path, const error_code& ec) {
  if (ec == errc_t::invalid_argument || ec == errc_t::illegal_byte_sequence) {
    return Status(StatusCode::kInvalidArgument,
                  path.string() + " is not a key file (64 hex characters and a newline, a regular file)");
  }
  if (ec == errc_t::permission_denied) {
    return Status(StatusCode::kFailedPrecondition,
                  path.string() + ": permission denied, or readable by group or others (make it 0600, owned by "
                                  "the service user)");
  }
  return Status(StatusCode::kInternal, path.string() + ": " + ec.message());
}

TicketVerifier::Outcome Refuse(TicketError error) {
  TicketVerifier::Outcome outcome;
  outcome.ok = false;
  outcome.error = error;
  return outcome;
}

}  // namespace

std::string_view TicketErrorName(TicketError e) {
  switch (e) {
    case TicketError::kMalformed: return "malformed";
    case TicketError::kBadSignature: return "bad_signature";
    case TicketError::kExpired: return "expired";
    case TicketError::kTooLongLived: return "too_long_lived";
    case TicketError::kWrongFile: return "wrong_file";
  }
  return "unknown";
}

TicketKeyPair GenerateTicketKeyPair() {
  EnsureSodium();
  TicketKeyPair keys;
  randombytes_buf(keys.seed.data(), keys.seed.size());
  keys.public_key = DerivePublicKey(keys.seed);
  return keys;
}

StatusOr<TicketKeyPair> LoadOrCreateTicketKeys(const std::filesystem::path& data_dir) {
  EnsureSodium();
  std::error_code dir_ec;
  fs::create_directories(data_dir, dir_ec);
  if (dir_ec) return Status(StatusCode::kInternal, "cannot create " + data_dir.string() + ": " + dir_ec.message());

  const fs::path key_path = data_dir / kKeyFileName;
  auto seed = LoadOrCreateSeed(key_path);
  if (!seed) return KeyFileFailure(key_path, seed.error());

  TicketKeyPair keys;
  keys.seed = *seed;
  sodium_memzero(seed->data(), seed->size());
  keys.public_key = DerivePublicKey(keys.seed);
  const fs::path pub_path = data_dir / kPublicKeyFileName;
  if (error_code ec = EnsurePublicKeyFile(pub_path, keys.public_key)) {
    if (ec == errc_t::invalid_argument) {
      return Status(StatusCode::kInvalidArgument, pub_path.string() + " holds another public key than " +
                                                      key_path.string() + " makes; remove the wrong one");
    }
    return KeyFileFailure(pub_path, ec);
  }
  return keys;
}

StatusOr<Ed25519PublicKey> ParsePublicKeyHex(std::string_view hex) {
  EnsureSodium();
  auto bytes = ParseHex32(hex);
  if (!bytes) return Status(StatusCode::kInvalidArgument, "a public key is 64 hex characters");
  // Refuse points no real key can be (small order, non-canonical, off the curve) here, where
  // the configuration error can be reported, instead of every ticket failing later.
  if (crypto_core_ed25519_is_valid_point(bytes->data()) != 1) {
    return Status(StatusCode::kInvalidArgument, "not an Ed25519 public key (not a point of the curve)");
  }
  return *bytes;
}

std::string ToHex(const Ed25519PublicKey& key) {
  std::string out(key.size() * 2 + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), key.data(), key.size());
  out.pop_back();  // sodium_bin2hex's NUL terminator
  return out;
}

std::string MintTicket(const TicketKeyPair& keys, const TicketClaims& claims) {
  EnsureSodium();
  // boost::json::object keeps insertion order and serialize() emits no whitespace, which gives
  // the documented compact {"sub":...,"file":...,"exp":...} (the same bytes as Python's
  // json.dumps(..., separators=(",", ":")) for ASCII values).
  boost::json::object payload;
  payload.emplace("sub", claims.viewer_did);
  payload.emplace("file", claims.file_id);
  payload.emplace("exp", claims.expires_at);
  const std::string json = boost::json::serialize(payload);

  std::string ticket = std::string(kVersionPrefix) + ".";
  ticket += Base64UrlEncode(Bytes(json), json.size());

  // The secret key is always derived from the seed, never assembled from keys.public_key: signing
  // with a mismatched public key can leak the secret scalar.
  unsigned char public_key[crypto_sign_PUBLICKEYBYTES];
  unsigned char secret_key[crypto_sign_SECRETKEYBYTES];
  crypto_sign_seed_keypair(public_key, secret_key, keys.seed.data());
  unsigned char signature[crypto_sign_BYTES];
  crypto_sign_detached(signature, nullptr, Bytes(ticket), ticket.size(), secret_key);
  sodium_memzero(secret_key, sizeof secret_key);

  ticket += ".";
  ticket += Base64UrlEncode(signature, sizeof signature);
  return ticket;
}

TicketVerifier::TicketVerifier(const Ed25519PublicKey& public_key, std::int64_t max_ttl_seconds)
    : TicketVerifier(std::vector<Ed25519PublicKey>{public_key}, max_ttl_seconds) {}

TicketVerifier::TicketVerifier(std::vector<Ed25519PublicKey> public_keys, std::int64_t max_ttl_seconds)
    : public_keys_(std::move(public_keys)), max_ttl_seconds_(max_ttl_seconds) {
  EnsureSodium();
}

StatusOr<std::vector<Ed25519PublicKey>> ParsePublicKeyList(std::string_view list) {
  std::vector<Ed25519PublicKey> keys;
  for (std::string_view item : SplitCommaList(list)) {
    auto key = ParsePublicKeyHex(item);
    if (!key.ok()) return Status(StatusCode::kInvalidArgument, "key " + std::to_string(keys.size() + 1) + ": " + key.status().message());
    keys.push_back(*key);
  }
  if (keys.empty()) return Status(StatusCode::kInvalidArgument, "no public key given");
  return keys;
}

std::optional<TicketClaims> TicketVerifier::VerifySignature(std::string_view ticket, TicketError* error) const {
  *error = TicketError::kMalformed;
  // Bound all work before looking at the content.
  if (ticket.size() > kMaxTicketBytes) return std::nullopt;

  // Exactly three dot-separated parts.
  const std::size_t first_dot = ticket.find('.');
  if (first_dot == std::string_view::npos) return std::nullopt;
  const std::size_t second_dot = ticket.find('.', first_dot + 1);
  if (second_dot == std::string_view::npos) return std::nullopt;
  if (ticket.find('.', second_dot + 1) != std::string_view::npos) return std::nullopt;

  const std::string_view version = ticket.substr(0, first_dot);
  const std::string_view payload_b64 = ticket.substr(first_dot + 1, second_dot - first_dot - 1);
  const std::string_view signature_b64 = ticket.substr(second_dot + 1);
  if (version != kVersionPrefix || payload_b64.empty()) return std::nullopt;

  unsigned char signature[crypto_sign_BYTES];
  std::size_t signature_size = 0;
  if (!Base64UrlDecode(signature_b64, signature, sizeof signature, &signature_size) ||
      signature_size != sizeof signature) {
    return std::nullopt;
  }

  // The signature covers the ticket text up to the second dot ("v1." + payload_b64), so nothing
  // derived from the payload is trusted, or even parsed, before this succeeds.
  const std::string_view signed_part = ticket.substr(0, second_dot);
  bool verified = false;
  for (const auto& key : public_keys_) {
    if (crypto_sign_verify_detached(signature, Bytes(signed_part), signed_part.size(), key.data()) == 0) {
      verified = true;
      break;
    }
  }
  if (!verified) {
    *error = TicketError::kBadSignature;
    return std::nullopt;
  }

  std::string payload(payload_b64.size() * 3 / 4 + 1, '\0');
  std::size_t payload_size = 0;
  if (!Base64UrlDecode(payload_b64, reinterpret_cast<unsigned char*>(payload.data()), payload.size(),
                       &payload_size)) {
    return std::nullopt;
  }
  payload.resize(payload_size);
  return ParseClaims(payload);
}

std::size_t TicketVerifier::remembered_forgeries() const {
  std::lock_guard lock(cache_mutex_);
  return forged_.size();
}

TicketVerifier::Outcome TicketVerifier::Verify(std::string_view ticket, std::string_view file_id,
                                               std::int64_t now) const {
  // A player fetches one track as many range requests with the same ticket: remember tickets
  // whose signature verified, so the repeats cost a hash lookup instead of an Ed25519 verify.
  // Only the signature check is remembered; expiry and file are checked on every call.
  std::optional<TicketClaims> claims;
  if (ticket.size() <= kMaxTicketBytes) {
    std::lock_guard lock(cache_mutex_);
    if (auto it = verified_.find(std::string(ticket)); it != verified_.end()) {
      claims = it->second;
    } else if (forged_.contains(std::string(ticket))) {
      return Refuse(TicketError::kBadSignature);
    }
  }
  if (!claims) {
    TicketError error = TicketError::kMalformed;
    claims = VerifySignature(ticket, &error);
    if (!claims) {
      if (error == TicketError::kBadSignature) {
        std::lock_guard lock(cache_mutex_);
        if (forged_.size() >= kRefusedCacheEntries) forged_.clear();  // bounded, like verified_
        forged_.emplace(ticket);
      }
      return Refuse(error);
    }
    std::lock_guard lock(cache_mutex_);
    if (verified_.size() >= kVerifiedCacheEntries) verified_.clear();  // bounded; refills as players return
    verified_.emplace(std::string(ticket), *claims);
  }

  if (claims->expires_at <= now) return Refuse(TicketError::kExpired);
  // exp > now here, so the difference is positive and below 2^64: computing it unsigned is exact
  // and cannot overflow the way `now + max_ttl` could for hostile or extreme values.
  const std::uint64_t lifetime =
      static_cast<std::uint64_t>(claims->expires_at) - static_cast<std::uint64_t>(now);
  if (max_ttl_seconds_ < 0 || lifetime > static_cast<std::uint64_t>(max_ttl_seconds_)) {
    return Refuse(TicketError::kTooLongLived);
  }

  if (claims->file_id != kWildcardFile && claims->file_id != file_id) return Refuse(TicketError::kWrongFile);

  Outcome outcome;
  outcome.ok = true;
  outcome.claims = std::move(*claims);
  return outcome;
}

}  // namespace plyr::streamer
