#include "common/aws_sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <ctime>
#include <map>

namespace plyr::aws {

namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";

std::string Hex(const unsigned char* bytes, std::size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(size * 2, '\0');
  for (std::size_t i = 0; i < size; ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 0xf];
  }
  return out;
}

std::string Hmac(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), mac, &size);
  return std::string(reinterpret_cast<const char*>(mac), size);
}

char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// Trims the value and collapses each run of spaces inside it to one.
std::string CanonicalValue(std::string_view value) {
  std::string out;
  bool in_space = false;
  for (char c : value) {
    if (c == ' ' || c == '\t') {
      in_space = !out.empty();
      continue;
    }
    if (in_space) out += ' ';
    in_space = false;
    out += c;
  }
  return out;
}

// "20150830/us-east-1/s3/aws4_request".
std::string CredentialScope(std::string_view amz_date, const Scope& scope) {
  return std::string(amz_date.substr(0, 8)) + "/" + scope.region + "/" + scope.service + "/aws4_request";
}

std::string CanonicalQuery(const NameValues& query) {
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(query.size());
  for (const auto& [name, value] : query) encoded.emplace_back(UriEncode(name, false), UriEncode(value, false));
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [name, value] : encoded) {
    if (!out.empty()) out += '&';
    out += name;
    out += '=';
    out += value;
  }
  return out;
}

// Lower-case name → the values of that name joined with ',', sorted by name.
std::map<std::string, std::string> CanonicalHeaders(const NameValues& headers) {
  std::map<std::string, std::string> out;
  for (const auto& [name, value] : headers) {
    std::string lower(name);
    std::transform(lower.begin(), lower.end(), lower.begin(), Lower);
    auto [it, inserted] = out.try_emplace(lower, CanonicalValue(value));
    if (!inserted) it->second += "," + CanonicalValue(value);
  }
  return out;
}

std::string SignedHeaderNames(const std::map<std::string, std::string>& headers) {
  std::string out;
  for (const auto& [name, value] : headers) {
    if (!out.empty()) out += ';';
    out += name;
  }
  return out;
}

}  // namespace

std::string AmzDate(std::int64_t unix_seconds) {
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char out[32];
  std::strftime(out, sizeof out, "%Y%m%dT%H%M%SZ", &tm);
  return out;
}

std::string UriEncode(std::string_view text, bool keep_slash) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    const bool unreserved = (byte >= 'A' && byte <= 'Z') || (byte >= 'a' && byte <= 'z') ||
                            (byte >= '0' && byte <= '9') || byte == '-' || byte == '.' || byte == '_' || byte == '~';
    if (unreserved || (keep_slash && byte == '/')) {
      out += c;
    } else {
      out += '%';
      out += kDigits[byte >> 4];
      out += kDigits[byte & 0xf];
    }
  }
  return out;
}

std::string Sha256Hex(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &size, EVP_sha256(), nullptr);
  return Hex(digest, size);
}

std::string CanonicalRequest(const SignableRequest& request) {
  const auto headers = CanonicalHeaders(request.headers);
  std::string out = request.method + "\n" + UriEncode(request.path.empty() ? "/" : request.path, true) + "\n" +
                    CanonicalQuery(request.query) + "\n";
  for (const auto& [name, value] : headers) out += name + ":" + value + "\n";
  out += "\n" + SignedHeaderNames(headers) + "\n" + request.payload_sha256;
  return out;
}

std::string StringToSign(std::string_view canonical_request, std::string_view amz_date, const Scope& scope) {
  return std::string(kAlgorithm) + "\n" + std::string(amz_date) + "\n" + CredentialScope(amz_date, scope) + "\n" +
         Sha256Hex(canonical_request);
}

std::string Signature(std::string_view secret, std::string_view amz_date, const Scope& scope,
                      std::string_view string_to_sign) {
  const std::string date_key = Hmac("AWS4" + std::string(secret), amz_date.substr(0, 8));
  const std::string region_key = Hmac(date_key, scope.region);
  const std::string service_key = Hmac(region_key, scope.service);
  const std::string signing_key = Hmac(service_key, "aws4_request");
  const std::string mac = Hmac(signing_key, string_to_sign);
  return Hex(reinterpret_cast<const unsigned char*>(mac.data()), mac.size());
}

NameValues SignHeaders(SignableRequest request, const Credentials& credentials, const Scope& scope,
                       std::int64_t unix_seconds) {
  const std::string amz_date = AmzDate(unix_seconds);
  NameValues added = {{"x-amz-date", amz_date}};
  if (!credentials.session_token.empty()) added.emplace_back("x-amz-security-token", credentials.session_token);
  request.headers.insert(request.headers.end(), added.begin(), added.end());
  const std::string signature = Signature(credentials.secret_access_key, amz_date, scope,
                                          StringToSign(CanonicalRequest(request), amz_date, scope));
  added.emplace_back("authorization", std::string(kAlgorithm) + " Credential=" + credentials.access_key_id + "/" +
                                          CredentialScope(amz_date, scope) +
                                          ", SignedHeaders=" + SignedHeaderNames(CanonicalHeaders(request.headers)) +
                                          ", Signature=" + signature);
  return added;
}

std::string PresignedQuery(std::string_view method, std::string_view host, std::string_view path,
                           const NameValues& extra_query, const Credentials& credentials, const Scope& scope,
                           std::int64_t unix_seconds, int expires_seconds) {
  const std::string amz_date = AmzDate(unix_seconds);
  SignableRequest request;
  request.method = std::string(method);
  request.path = std::string(path);
  request.query = extra_query;
  request.query.emplace_back("X-Amz-Algorithm", std::string(kAlgorithm));
  request.query.emplace_back("X-Amz-Credential", credentials.access_key_id + "/" + CredentialScope(amz_date, scope));
  request.query.emplace_back("X-Amz-Date", amz_date);
  request.query.emplace_back("X-Amz-Expires", std::to_string(std::clamp(expires_seconds, 1, 604800)));
  if (!credentials.session_token.empty()) request.query.emplace_back("X-Amz-Security-Token", credentials.session_token);
  request.query.emplace_back("X-Amz-SignedHeaders", "host");
  request.headers = {{"host", std::string(host)}};
  request.payload_sha256 = std::string(kUnsignedPayload);
  const std::string signature = Signature(credentials.secret_access_key, amz_date, scope,
                                          StringToSign(CanonicalRequest(request), amz_date, scope));
  return CanonicalQuery(request.query) + "&X-Amz-Signature=" + signature;
}

}  // namespace plyr::aws
