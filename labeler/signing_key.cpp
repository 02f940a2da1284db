#include "labeler/signing_key.h"

#include <sys/stat.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <vector>

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serializer.hpp>
#include <boost/json/value.hpp>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <secp256k1.h>
#include <sodium.h>

#include "common/file_util.h"

namespace plyr::labeler {

namespace {

namespace fs = std::filesystem;
using boost::system::error_code;

constexpr std::size_t kScalarBytes = 32;
constexpr std::size_t kDigestBytes = 32;
constexpr std::size_t kCompressedBytes = 33;
constexpr std::size_t kSignatureBytes = 64;
constexpr std::size_t kHalfSignature = kSignatureBytes / 2;
// Multicodec varints: secp256k1-pub (0xe7) and p256-pub (0x1200).
constexpr std::string_view kK256Prefix = "\xe7\x01";
constexpr std::string_view kP256Prefix = "\x80\x24";
constexpr std::string_view kDidKeyPrefix = "did:key:z";
// Prefix + 33-byte point is 35 bytes, about 48 base58 characters; anything far longer is not a key
// and is refused before the quadratic base58 decode.
constexpr std::size_t kMaxDidKeyLength = 128;
// A key file holds one short JSON object; anything much larger is not ours.
constexpr std::size_t kMaxKeyFileBytes = 4096;
constexpr std::string_view kBase58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

// The order n of P-256, big-endian; a private scalar must be in [1, n-1].
constexpr std::array<unsigned char, kScalarBytes> kP256Order = {
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};

// sodium_init() is thread-safe and idempotent. Without an entropy source no key can be made or
// context blinded safely, so fail hard rather than run with a predictable key.
void EnsureSodium() {
  static const bool initialised = sodium_init() >= 0;
  if (!initialised) std::abort();
}

const unsigned char* Bytes(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

// A private scalar; every copy wipes itself when it goes away.
class Scalar {
 public:
  Scalar() = default;
  Scalar(const Scalar&) = default;
  Scalar& operator=(const Scalar&) = default;
  ~Scalar() { sodium_memzero(bytes_.data(), bytes_.size()); }

  unsigned char* data() { return bytes_.data(); }
  const unsigned char* data() const { return bytes_.data(); }

  std::string Hex() const {
    std::string out(2 * kScalarBytes + 1, '\0');
    sodium_bin2hex(out.data(), out.size(), bytes_.data(), bytes_.size());
    out.resize(2 * kScalarBytes);
    return out;
  }

 private:
  std::array<unsigned char, kScalarBytes> bytes_{};
};

// Wipes a string holding key material when the scope ends, however it ends.
class WipeOnExit {
 public:
  explicit WipeOnExit(std::string* s) : s_(s) {}
  ~WipeOnExit() { sodium_memzero(s_->data(), s_->size()); }
  WipeOnExit(const WipeOnExit&) = delete;
  WipeOnExit& operator=(const WipeOnExit&) = delete;

 private:
  std::string* s_;
};

// A stack arena for Boost.JSON documents that hold the hex key, wiped on destruction. Declare it
// before the resource and the document so it outlives both.
class SecretArena {
 public:
  SecretArena() = default;
  ~SecretArena() { sodium_memzero(bytes_, sizeof bytes_); }
  SecretArena(const SecretArena&) = delete;
  SecretArena& operator=(const SecretArena&) = delete;
  unsigned char* data() { return bytes_; }
  std::size_t size() const { return sizeof bytes_; }

 private:
  alignas(std::max_align_t) unsigned char bytes_[1024];
};

std::array<unsigned char, kDigestBytes> Sha256(std::string_view message) {
  std::array<unsigned char, kDigestBytes> digest{};
  unsigned int size = 0;
  // EVP_Digest with the built-in SHA-256 fails only on allocation failure.
  if (EVP_Digest(message.data(), message.size(), digest.data(), &size, EVP_sha256(), nullptr) != 1) {
    std::abort();
  }
  return digest;
}

// --- secp256k1 (libsecp256k1) ---

// One context for the process, blinded once with random data against side channels. After that it
// is only read, which libsecp256k1 allows from any number of threads. Never destroyed, so no
// static-destruction ordering can pull it away from a late signer.
const secp256k1_context* K256Context() {
  static const secp256k1_context* const context = [] {
    EnsureSodium();
    secp256k1_context* ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
    if (ctx == nullptr) std::abort();
    unsigned char seed[32];
    randombytes_buf(seed, sizeof seed);
    const int ok = secp256k1_context_randomize(ctx, seed);
    sodium_memzero(seed, sizeof seed);
    if (!ok) std::abort();
    return ctx;
  }();
  return context;
}

bool K256ScalarValid(const Scalar& s) { return secp256k1_ec_seckey_verify(K256Context(), s.data()) == 1; }

class K256Key final : public SigningKey {
 public:
  // Use Create(); public only for make_unique.
  K256Key(const Scalar& secret, std::string public_key) : secret_(secret), public_key_(std::move(public_key)) {}

  static std::unique_ptr<SigningKey> Create(const Scalar& secret) {
    secp256k1_pubkey pubkey;
    if (!secp256k1_ec_pubkey_create(K256Context(), &pubkey, secret.data())) return nullptr;
    std::string compressed(kCompressedBytes, '\0');
    std::size_t size = compressed.size();
    secp256k1_ec_pubkey_serialize(K256Context(), reinterpret_cast<unsigned char*>(compressed.data()), &size,
                                  &pubkey, SECP256K1_EC_COMPRESSED);
    return std::make_unique<K256Key>(secret, std::move(compressed));
  }

  Curve curve() const override { return Curve::kK256; }

  std::string Sign(std::string_view message) const override {
    const auto digest = Sha256(message);
    secp256k1_ecdsa_signature sig;
    // The default nonce function is RFC 6979, and libsecp256k1 always emits low-S.
    if (!secp256k1_ecdsa_sign(K256Context(), &sig, digest.data(), secret_.data(), nullptr, nullptr)) return {};
    std::string out(kSignatureBytes, '\0');
    secp256k1_ecdsa_signature_serialize_compact(K256Context(), reinterpret_cast<unsigned char*>(out.data()), &sig);
    return out;
  }

  std::string PublicKeyCompressed() const override { return public_key_; }

 protected:
  std::string PrivateKeyHex() const override { return secret_.Hex(); }

 private:
  Scalar secret_;
  std::string public_key_;
};

bool VerifyK256(std::string_view point, const std::array<unsigned char, kDigestBytes>& digest,
                std::string_view signature) {
  secp256k1_pubkey pubkey;
  if (!secp256k1_ec_pubkey_parse(K256Context(), &pubkey, Bytes(point), point.size())) return false;
  secp256k1_ecdsa_signature sig;
  if (!secp256k1_ecdsa_signature_parse_compact(K256Context(), &sig, Bytes(signature))) return false;
  // secp256k1_ecdsa_verify refuses high-S signatures itself, which is the ATProto rule.
  return secp256k1_ecdsa_verify(K256Context(), &sig, digest.data(), &pubkey) == 1;
}

// --- P-256 (OpenSSL 3) ---

template <auto Fn>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    Fn(p);
  }
};
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BN_clear_free>>;
using BnCtxPtr = std::unique_ptr<BN_CTX, Deleter<BN_CTX_free>>;
using EcPointPtr = std::unique_ptr<EC_POINT, Deleter<EC_POINT_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, Deleter<ECDSA_SIG_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX_free>>;
using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, Deleter<OSSL_PARAM_BLD_free>>;
using ParamPtr = std::unique_ptr<OSSL_PARAM, Deleter<OSSL_PARAM_free>>;
// OPENSSL_free is a macro, so it cannot be a Deleter argument.
struct OpenSslFree {
  void operator()(unsigned char* p) const { OPENSSL_free(p); }
};

// The curve, its order n and n/2, made once and afterwards only read (safe across threads).
struct P256Curve {
  EC_GROUP* group = nullptr;
  BIGNUM* order = nullptr;
  BIGNUM* half_order = nullptr;
};

const P256Curve& P256() {
  static const P256Curve curve = [] {
    P256Curve c;
    c.group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    if (c.group == nullptr) std::abort();
    c.order = BN_dup(EC_GROUP_get0_order(c.group));
    c.half_order = BN_new();
    if (c.order == nullptr || c.half_order == nullptr || !BN_rshift1(c.half_order, c.order)) std::abort();
    return c;
  }();
  return curve;
}

// 1 <= s < n, compared as a big-endian subtraction over every byte so the time does not depend on
// where the scalar first differs from n.
bool P256ScalarValid(const Scalar& s) {
  int borrow = 0;
  unsigned char any = 0;
  for (std::size_t i = kScalarBytes; i-- > 0;) {
    const int diff = int{s.data()[i]} - int{kP256Order[i]} - borrow;
    borrow = (diff >> 8) & 1;
    any |= s.data()[i];
  }
  return borrow == 1 && any != 0;
}

// Builds an EVP_PKEY from the curve name, the encoded public point and optionally the private scalar.
PkeyPtr P256Pkey(std::string_view point, const BIGNUM* private_scalar) {
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bld ||
      !OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, SN_X9_62_prime256v1, 0) ||
      !OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()) ||
      (private_scalar != nullptr &&
       !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PRIV_KEY, private_scalar))) {
    return nullptr;
  }
  ParamPtr params(OSSL_PARAM_BLD_to_param(bld.get()));
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) <= 0) return nullptr;
  EVP_PKEY* pkey = nullptr;
  const int selection = private_scalar != nullptr ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY;
  if (EVP_PKEY_fromdata(ctx.get(), &pkey, selection, params.get()) <= 0) return nullptr;
  return PkeyPtr(pkey);
}

class P256Key final : public SigningKey {
 public:
  // Use Create(); public only for make_unique.
  P256Key(const Scalar& secret, std::string public_key, PkeyPtr pkey)
      : secret_(secret), public_key_(std::move(public_key)), pkey_(std::move(pkey)) {}

  static std::unique_ptr<SigningKey> Create(const Scalar& secret) {
    const P256Curve& curve = P256();
    BnPtr d(BN_secure_new());
    BnCtxPtr bn_ctx(BN_CTX_new());
    EcPointPtr point(EC_POINT_new(curve.group));
    if (!d || !bn_ctx || !point || BN_bin2bn(secret.data(), kScalarBytes, d.get()) == nullptr ||
        !EC_POINT_mul(curve.group, point.get(), d.get(), nullptr, nullptr, bn_ctx.get())) {
      ERR_clear_error();
      return nullptr;
    }
    std::string compressed(kCompressedBytes, '\0');
    if (EC_POINT_point2oct(curve.group, point.get(), POINT_CONVERSION_COMPRESSED,
                           reinterpret_cast<unsigned char*>(compressed.data()), compressed.size(),
                           bn_ctx.get()) != kCompressedBytes) {
      ERR_clear_error();
      return nullptr;
    }
    PkeyPtr pkey = P256Pkey(compressed, d.get());
    if (!pkey) {
      ERR_clear_error();
      return nullptr;
    }
    return std::make_unique<P256Key>(secret, std::move(compressed), std::move(pkey));
  }

  Curve curve() const override { return Curve::kP256; }

  std::string Sign(std::string_view message) const override {
    std::string out = SignDigest(Sha256(message));
    if (out.empty()) ERR_clear_error();
    return out;
  }

  std::string PublicKeyCompressed() const override { return public_key_; }

 protected:
  std::string PrivateKeyHex() const override { return secret_.Hex(); }

 private:
  // OpenSSL 3.0 has no RFC 6979 (3.2 added it), so the nonce is random; ATProto does not require
  // deterministic nonces. It does require low S, which OpenSSL does not produce on its own.
  std::string SignDigest(const std::array<unsigned char, kDigestBytes>& digest) const {
    // A context per call: an EVP_PKEY may be shared between threads, a context may not.
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey_.get(), nullptr));
    if (!ctx || EVP_PKEY_sign_init(ctx.get()) <= 0 || EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_sha256()) <= 0) {
      return {};
    }
    unsigned char der[128];  // a P-256 DER signature is at most 72 bytes
    std::size_t der_size = sizeof der;
    if (EVP_PKEY_sign(ctx.get(), der, &der_size, digest.data(), digest.size()) <= 0) return {};
    const unsigned char* p = der;
    EcdsaSigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der_size)));
    if (!sig) return {};
    const BIGNUM* r = nullptr;
    const BIGNUM* s = nullptr;
    ECDSA_SIG_get0(sig.get(), &r, &s);
    const P256Curve& curve = P256();
    BnPtr low_s;
    if (BN_cmp(s, curve.half_order) > 0) {
      low_s.reset(BN_new());
      if (!low_s || !BN_sub(low_s.get(), curve.order, s)) return {};
      s = low_s.get();
    }
    std::string out(kSignatureBytes, '\0');
    auto* bytes = reinterpret_cast<unsigned char*>(out.data());
    if (BN_bn2binpad(r, bytes, kHalfSignature) != kHalfSignature ||
        BN_bn2binpad(s, bytes + kHalfSignature, kHalfSignature) != kHalfSignature) {
      return {};
    }
    return out;
  }

  Scalar secret_;
  std::string public_key_;
  PkeyPtr pkey_;
};

bool VerifyP256Digest(std::string_view point, const std::array<unsigned char, kDigestBytes>& digest,
                      std::string_view signature) {
  const P256Curve& curve = P256();
  BnPtr r(BN_bin2bn(Bytes(signature), kHalfSignature, nullptr));
  BnPtr s(BN_bin2bn(Bytes(signature) + kHalfSignature, kHalfSignature, nullptr));
  if (!r || !s) return false;
  // OpenSSL accepts either S; ATProto accepts only the low one, like the reference verifiers.
  if (BN_is_zero(r.get()) || BN_is_zero(s.get()) || BN_cmp(r.get(), curve.order) >= 0 ||
      BN_cmp(s.get(), curve.half_order) > 0) {
    return false;
  }
  EcdsaSigPtr sig(ECDSA_SIG_new());
  if (!sig || !ECDSA_SIG_set0(sig.get(), r.get(), s.get())) return false;
  r.release();  // now owned by sig
  s.release();
  unsigned char* der = nullptr;
  const int der_size = i2d_ECDSA_SIG(sig.get(), &der);
  if (der_size <= 0) return false;
  const std::unique_ptr<unsigned char, OpenSslFree> der_owner(der);

  PkeyPtr pkey = P256Pkey(point, nullptr);  // also checks that the point is on the curve
  if (!pkey) return false;
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey.get(), nullptr));
  if (!ctx || EVP_PKEY_verify_init(ctx.get()) <= 0) return false;
  return EVP_PKEY_verify(ctx.get(), der, static_cast<std::size_t>(der_size), digest.data(), digest.size()) == 1;
}

bool VerifyP256(std::string_view point, const std::array<unsigned char, kDigestBytes>& digest,
                std::string_view signature) {
  const bool ok = VerifyP256Digest(point, digest, signature);
  // Leave no stale entries in this thread's OpenSSL error queue for TLS code to misread later.
  if (!ok) ERR_clear_error();
  return ok;
}

// --- construction ---

bool ScalarValid(Curve curve, const Scalar& s) {
  return curve == Curve::kK256 ? K256ScalarValid(s) : P256ScalarValid(s);
}

std::unique_ptr<SigningKey> MakeKey(Curve curve, const Scalar& secret) {
  return curve == Curve::kK256 ? K256Key::Create(secret) : P256Key::Create(secret);
}

}  // namespace

std::string_view CurveName(Curve curve) { return curve == Curve::kK256 ? "k256" : "p256"; }

StatusOr<Curve> ParseCurve(std::string_view name) {
  if (name == "k256") return Curve::kK256;
  if (name == "p256") return Curve::kP256;
  return Status(StatusCode::kInvalidArgument, "unknown curve (expected \"k256\" or \"p256\")");
}

std::unique_ptr<SigningKey> SigningKey::Generate(Curve curve) {
  EnsureSodium();
  Scalar secret;
  // Out-of-range draws are astronomically rare (about 2^-32 for P-256); just draw again.
  do {
    randombytes_buf(secret.data(), kScalarBytes);
  } while (!ScalarValid(curve, secret));
  return MakeKey(curve, secret);
}

StatusOr<std::unique_ptr<SigningKey>> SigningKey::FromHex(Curve curve, std::string_view hex) {
  // Messages never echo the input: it is a private key.
  if (hex.size() != 2 * kScalarBytes) {
    return Status(StatusCode::kInvalidArgument, "private key must be 64 hex characters (32 bytes)");
  }
  Scalar secret;
  std::size_t size = 0;
  const char* end = nullptr;
  // sodium_hex2bin runs in constant time, unlike a table-driven decoder.
  if (sodium_hex2bin(secret.data(), kScalarBytes, hex.data(), hex.size(), nullptr, &size, &end) != 0 ||
      size != kScalarBytes || end != hex.data() + hex.size()) {
    return Status(StatusCode::kInvalidArgument, "private key is not hexadecimal");
  }
  if (!ScalarValid(curve, secret)) {
    return Status(StatusCode::kInvalidArgument,
                  "private key is not a valid " + std::string(CurveName(curve)) + " scalar (zero or >= n)");
  }
  auto key = MakeKey(curve, secret);
  if (!key) return Status(StatusCode::kInternal, "cannot construct the signing key (crypto library failure)");
  return key;
}

StatusOr<std::unique_ptr<SigningKey>> SigningKey::Load(const fs::path& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT) {
      return Status(StatusCode::kNotFound, "signing key file " + path.string() + " does not exist");
    }
    return Status(StatusCode::kInternal, "cannot stat " + path.string() + ": " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    return Status(StatusCode::kInvalidArgument, path.string() + " is not a regular file");
  }
  if ((st.st_mode & 077) != 0) {
    return Status(StatusCode::kFailedPrecondition,
                  "signing key file " + path.string() + " is accessible by group or others; chmod 600 it");
  }
  auto text = ReadSmallFile(path, kMaxKeyFileBytes);
  if (!text.ok()) return text.status();
  const WipeOnExit wipe_text(&*text);

  SecretArena arena;
  boost::json::monotonic_resource resource(arena.data(), arena.size());
  error_code ec;
  const boost::json::value doc = boost::json::parse(*text, ec, &resource);
  const boost::json::object* obj = ec ? nullptr : doc.if_object();
  if (obj == nullptr) {
    return Status(StatusCode::kInvalidArgument, "signing key file " + path.string() + " is not a JSON object");
  }
  const boost::json::value* curve_value = obj->if_contains("curve");
  const boost::json::value* key_value = obj->if_contains("private_key");
  if (curve_value == nullptr || !curve_value->is_string() || key_value == nullptr || !key_value->is_string()) {
    return Status(StatusCode::kInvalidArgument,
                  "signing key file " + path.string() + " needs string fields \"curve\" and \"private_key\"");
  }
  const auto curve = ParseCurve(curve_value->get_string());
  if (!curve) {
    return Status(StatusCode::kInvalidArgument,
                  "signing key file " + path.string() + " names an unknown curve (expected \"k256\" or \"p256\")");
  }
  auto key = FromHex(*curve, key_value->get_string());
  if (!key.ok()) {
    return Status(key.status().code(), "signing key file " + path.string() + ": " + key.status().message());
  }
  return key;
}

Status SigningKey::Save(const fs::path& path) const {
  // Checked first so a key is never silently replaced; two processes racing to create the same
  // key file is not a case this service has (one labeler owns its data directory).
  struct stat st{};
  if (::lstat(path.c_str(), &st) == 0) {
    return Status(StatusCode::kAlreadyExists,
                  "signing key file " + path.string() + " already exists; refusing to replace it");
  }
  if (errno != ENOENT) {
    const int err = errno;
    return Status(StatusCode::kInternal, "cannot stat " + path.string() + ": " + std::strerror(err));
  }
  if (path.has_parent_path()) {
    std::error_code fec;
    fs::create_directories(path.parent_path(), fec);
    if (fec) {
      return Status(StatusCode::kInternal, "cannot create " + path.parent_path().string() + ": " + fec.message());
    }
  }

  std::string hex = PrivateKeyHex();
  const WipeOnExit wipe_hex(&hex);
  SecretArena arena;
  char out[256];  // the document is about 100 bytes
  std::size_t size = 0;
  {
    boost::json::monotonic_resource resource(arena.data(), arena.size());
    boost::json::object doc(&resource);
    doc["curve"] = CurveName(curve());
    doc["private_key"] = hex;
    boost::json::serializer serializer;
    serializer.reset(&doc);
    // Serialize into the stack buffer, so no heap copy of the key outlives this function.
    size = serializer.read(out, sizeof out - 1).size();
    if (!serializer.done()) std::abort();  // cannot happen: the document has a fixed small size
    out[size++] = '\n';
  }
  Status written = WriteFileAtomically(path, std::string_view(out, size), 0600);
  sodium_memzero(out, sizeof out);
  return written;
}

std::string SigningKey::Multikey() const {
  std::string prefixed(curve() == Curve::kK256 ? kK256Prefix : kP256Prefix);
  prefixed += PublicKeyCompressed();
  return "z" + Base58Encode(prefixed);
}

bool VerifyWithDidKey(std::string_view did_key, std::string_view message, std::string_view signature) {
  if (signature.size() != kSignatureBytes || did_key.size() > kMaxDidKeyLength ||
      !did_key.starts_with(kDidKeyPrefix)) {
    return false;
  }
  const auto decoded = Base58Decode(did_key.substr(kDidKeyPrefix.size()));
  if (!decoded || decoded->size() != kK256Prefix.size() + kCompressedBytes) return false;
  const std::string_view prefixed = *decoded;
  const std::string_view point = prefixed.substr(2);
  if (prefixed.starts_with(kK256Prefix)) return VerifyK256(point, Sha256(message), signature);
  if (prefixed.starts_with(kP256Prefix)) return VerifyP256(point, Sha256(message), signature);
  return false;
}

std::string Base58Encode(std::string_view bytes) {
  std::size_t zeros = 0;
  while (zeros < bytes.size() && bytes[zeros] == '\0') ++zeros;
  // Base-58 digits, least significant first; each input byte multiplies the number by 256.
  std::vector<unsigned char> digits;
  digits.reserve(bytes.size() * 138 / 100 + 1);  // log(256) / log(58) < 1.38
  for (std::size_t i = zeros; i < bytes.size(); ++i) {
    unsigned carry = static_cast<unsigned char>(bytes[i]);
    for (auto& d : digits) {
      carry += static_cast<unsigned>(d) << 8;
      d = static_cast<unsigned char>(carry % 58);
      carry /= 58;
    }
    while (carry != 0) {
      digits.push_back(static_cast<unsigned char>(carry % 58));
      carry /= 58;
    }
  }
  // Each leading zero byte is written as '1' (the zero digit), as Bitcoin's base58 does.
  std::string out(zeros, kBase58Alphabet[0]);
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) out += kBase58Alphabet[*it];
  return out;
}

StatusOr<std::string> Base58Decode(std::string_view text) {
  std::size_t ones = 0;
  while (ones < text.size() && text[ones] == kBase58Alphabet[0]) ++ones;
  // Base-256 digits, least significant first.
  std::vector<unsigned char> bytes;
  bytes.reserve(text.size() * 733 / 1000 + 1);  // log(58) / log(256) < 0.733
  for (std::size_t i = ones; i < text.size(); ++i) {
    const auto pos = kBase58Alphabet.find(text[i]);
    if (pos == std::string_view::npos) return Status(StatusCode::kInvalidArgument, "not base58btc");
    unsigned carry = static_cast<unsigned>(pos);
    for (auto& b : bytes) {
      carry += static_cast<unsigned>(b) * 58;
      b = static_cast<unsigned char>(carry & 0xff);
      carry >>= 8;
    }
    while (carry != 0) {
      bytes.push_back(static_cast<unsigned char>(carry & 0xff));
      carry >>= 8;
    }
  }
  std::string out(ones, '\0');
  for (auto it = bytes.rbegin(); it != bytes.rend(); ++it) out += static_cast<char>(*it);
  return out;
}

}  // namespace plyr::labeler
