#include "common/object_store_settings.h"

namespace plyr {

void BindObjectStoreSettings(CLI::App& command, const SettingsFile& file, ObjectStoreSettings& s) {
  file.Bind(command, "storage.s3.endpoint", s.endpoint,
            "S3-compatible store for the blobs (https://<account>.r2.cloudflarestorage.com, http://127.0.0.1:9000); "
            "empty: blobs stay in the data folder");
  file.Bind(command, "storage.s3.bucket", s.bucket, "Bucket holding the blobs");
  file.Bind(command, "storage.s3.region", s.region, "The bucket's region (R2: auto)");
  file.Bind(command, "storage.s3.access_key_id", s.access_key_id, "Access key id for the bucket");
  file.BindSecret(command, "storage.s3.secret_access_key", s.secret_access_key, "Secret access key for the bucket");
  file.Bind(command, "storage.s3.prefix", s.prefix,
            "Key prefix of everything plyr-core stores in the bucket (e.g. plyr/); each service adds its name");
  file.Bind(command, "storage.s3.timeout_ms", s.timeout_ms,
            "A request to the store (an upload included) must finish within this; a proxied read must progress")
      ->check(SettingsFile::NonNegative());
}

StatusOr<std::optional<S3Settings>> CheckObjectStoreSettings(const ObjectStoreSettings& s, HttpClient& http) {
  if (s.endpoint.empty()) return std::optional<S3Settings>();
  if (s.timeout_ms < 1000) {
    return Status(StatusCode::kInvalidArgument,
                  "storage.s3.timeout_ms: must be at least 1000, not " + std::to_string(s.timeout_ms));
  }
  S3Settings store{s.endpoint, s.bucket, s.region, aws::Credentials{s.access_key_id, s.secret_access_key, ""},
                   std::chrono::milliseconds(s.timeout_ms)};
  if (auto checked = S3Client::Create(http, store); !checked.ok()) {
    return Status(StatusCode::kInvalidArgument, "storage.s3: " + checked.status().message());
  }
  return std::optional<S3Settings>(std::move(store));
}

}  // namespace plyr
