// The signer against AWS's published Signature Version 4 examples: the general test suite
// (service "service", 2015-08-30) and the S3 examples of "Authenticating Requests (AWS Signature
// Version 4)" (examplebucket, 2013-05-24). A signature is a function of every step, so each
// expected value checks the canonical request, the string to sign and the key derivation.
#include "common/aws_sigv4.h"

#include <gtest/gtest.h>

namespace plyr::aws {
namespace {

// 2015-08-30T12:36:00Z and 2013-05-24T00:00:00Z.
constexpr std::int64_t kSuiteTime = 1440938160;
constexpr std::int64_t kS3Time = 1369353600;

const Credentials kSuiteCredentials{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
const Scope kSuiteScope{"us-east-1", "service"};
const Credentials kS3Credentials{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
const Scope kS3Scope{"us-east-1", "s3"};

std::string Authorization(const NameValues& added) {
  for (const auto& [name, value] : added) {
    if (name == "authorization") return value;
  }
  return {};
}

std::string SignatureOf(const std::string& authorization) {
  const auto at = authorization.find("Signature=");
  return at == std::string::npos ? std::string() : authorization.substr(at + 10);
}

SignableRequest SuiteRequest(std::string method, std::string path, NameValues query = {}, NameValues headers = {},
                             std::string_view body = {}) {
  SignableRequest r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.query = std::move(query);
  r.headers = {{"Host", "example.amazonaws.com"}};
  r.headers.insert(r.headers.end(), headers.begin(), headers.end());
  r.payload_sha256 = Sha256Hex(body);
  return r;
}

TEST(AwsSigV4Test, GetVanillaGivesTheDocumentedHeaderAndCanonicalRequest) {
  const SignableRequest r = SuiteRequest("GET", "/");
  const NameValues added = SignHeaders(r, kSuiteCredentials, kSuiteScope, kSuiteTime);
  ASSERT_EQ(added.size(), 2u);
  EXPECT_EQ(added[0], (std::pair<std::string, std::string>{"x-amz-date", "20150830T123600Z"}));
  EXPECT_EQ(Authorization(added),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            "SignedHeaders=host;x-amz-date, "
            "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  SignableRequest dated = r;
  dated.headers.emplace_back("X-Amz-Date", "20150830T123600Z");
  EXPECT_EQ(CanonicalRequest(dated),
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(AwsSigV4Test, TheGeneralSuiteVectors) {
  struct Vector {
    const char* name;
    SignableRequest request;
    const char* signature;
  };
  const Vector vectors[] = {
      {"post-vanilla", SuiteRequest("POST", "/"), "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
      {"get-vanilla-query-order-key-case", SuiteRequest("GET", "/", {{"Param2", "value2"}, {"Param1", "value1"}}),
       "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
      {"get-vanilla-query-order-key", SuiteRequest("GET", "/", {{"Param1", "value2"}, {"Param1", "Value1"}}),
       "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1"},
      {"get-unreserved", SuiteRequest("GET", "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"),
       "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"},
      {"get-vanilla-utf8-query", SuiteRequest("GET", "/", {{"\xe1\x88\xb4", "bar"}}),
       "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"},
      {"post-vanilla-empty-query-value", SuiteRequest("POST", "/", {{"Param1", "value1"}}),
       "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"},
      {"get-header-value-trim",
       SuiteRequest("GET", "/", {}, {{"My-Header1", " value1"}, {"My-Header2", " \"a   b   c\""}}),
       "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"},
      {"post-x-www-form-urlencoded-parameters",
       SuiteRequest("POST", "/", {}, {{"Content-Type", "application/x-www-form-urlencoded; charset=utf8"}},
                    "Param1=value1"),
       "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe"},
  };
  for (const Vector& v : vectors) {
    EXPECT_EQ(SignatureOf(Authorization(SignHeaders(v.request, kSuiteCredentials, kSuiteScope, kSuiteTime))),
              v.signature)
        << v.name;
  }
}

TEST(AwsSigV4Test, TemporaryCredentialsSignTheSecurityToken) {
  // post-sts-header-before: the token is a signed header.
  Credentials temporary = kSuiteCredentials;
  temporary.session_token =
      "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthA"
      "x7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAk"
      "iY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";
  const NameValues added = SignHeaders(SuiteRequest("POST", "/"), temporary, kSuiteScope, kSuiteTime);
  ASSERT_EQ(added.size(), 3u);
  EXPECT_EQ(added[1].first, "x-amz-security-token");
  EXPECT_EQ(Authorization(added),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            "SignedHeaders=host;x-amz-date;x-amz-security-token, "
            "Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead");
}

SignableRequest S3Request(std::string method, std::string path, NameValues query, NameValues headers,
                          std::string payload_sha256) {
  SignableRequest r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.query = std::move(query);
  r.headers = {{"Host", "examplebucket.s3.amazonaws.com"}, {"x-amz-content-sha256", payload_sha256}};
  r.headers.insert(r.headers.end(), headers.begin(), headers.end());
  r.payload_sha256 = std::move(payload_sha256);
  return r;
}

TEST(AwsSigV4Test, TheS3Examples) {
  const std::string empty(kEmptyPayloadSha256);
  EXPECT_EQ(Authorization(SignHeaders(S3Request("GET", "/test.txt", {}, {{"Range", "bytes=0-9"}}, empty),
                                      kS3Credentials, kS3Scope, kS3Time)),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  // A key with a character to encode ('$'), signed with its body.
  const std::string body_hash = Sha256Hex("Welcome to Amazon S3.");
  EXPECT_EQ(body_hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  const SignableRequest put =
      S3Request("PUT", "/test$file.text", {},
                {{"Date", "Fri, 24 May 2013 00:00:00 GMT"}, {"x-amz-storage-class", "REDUCED_REDUNDANCY"}}, body_hash);
  EXPECT_EQ(SignatureOf(Authorization(SignHeaders(put, kS3Credentials, kS3Scope, kS3Time))),
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
  // A query name without a value is signed as "lifecycle=".
  EXPECT_EQ(SignatureOf(Authorization(
                SignHeaders(S3Request("GET", "/", {{"lifecycle", ""}}, {}, empty), kS3Credentials, kS3Scope, kS3Time))),
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
  EXPECT_EQ(SignatureOf(Authorization(SignHeaders(S3Request("GET", "/", {{"max-keys", "2"}, {"prefix", "J"}}, {}, empty),
                                                  kS3Credentials, kS3Scope, kS3Time))),
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST(AwsSigV4Test, ThePresignedUrlExample) {
  EXPECT_EQ(PresignedQuery("GET", "examplebucket.s3.amazonaws.com", "/test.txt", {}, kS3Credentials, kS3Scope, kS3Time,
                           86400),
            "X-Amz-Algorithm=AWS4-HMAC-SHA256"
            "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
            "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
            "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
}

TEST(AwsSigV4Test, EncodingAndTime) {
  EXPECT_EQ(UriEncode("/a b/c+d$é~", true), "/a%20b/c%2Bd%24%C3%A9~");
  EXPECT_EQ(UriEncode("a/b", false), "a%2Fb");
  EXPECT_EQ(AmzDate(0), "19700101T000000Z");
  EXPECT_EQ(AmzDate(1709251199), "20240229T235959Z");
  // A path is never normalised: "a//b" and "a/./b" are keys of their own.
  SignableRequest r = S3Request("GET", "/b//k/./x", {}, {}, std::string(kEmptyPayloadSha256));
  EXPECT_EQ(CanonicalRequest(r).substr(0, 14), "GET\n/b//k/./x\n");
}

}  // namespace
}  // namespace plyr::aws
