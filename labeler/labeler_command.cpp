#include "labeler/labeler_command.h"

#include <iostream>
#include <memory>

#include "labeler/label_store.h"
#include "labeler/labeler_service.h"
#include "labeler/signing_key.h"

namespace plyr::labeler {

namespace {

struct LabelerArgs {
  std::string data_dir = "./data";
  std::string curve = "k256";
  std::string signing_key;
};

}  // namespace

void AddLabelerCommand(CLI::App& root, const SettingsFile& file, std::function<int()>& action) {
  auto args = std::make_shared<LabelerArgs>();
  CLI::App* labeler = root.add_subcommand("labeler", "The labeler's signing key and identity");
  labeler->require_subcommand(1);

  CLI::App* keygen = labeler->add_subcommand(
      "keygen", "Create the labeler's signing key in <data>/labeler/signing-key.json and print its did:key");
  file.Bind(*keygen, "data", args->data_dir, "Data folder");
  keygen->add_option("--curve", args->curve, "k256 (secp256k1) or p256 (NIST P-256)")
      ->check(CLI::IsMember({"k256", "p256"}))
      ->capture_default_str();
  keygen->callback([args, &action] {
    action = [args] {
      const auto path = LabelerKeyPath(args->data_dir);
      std::error_code ec;
      if (std::filesystem::symlink_status(path, ec).type() != std::filesystem::file_type::not_found) {
        std::cerr << "labeler keygen: " << path.string()
                  << " already exists; a labeler's key is its identity, so it is never replaced here\n";
        return 1;
      }
      std::filesystem::create_directories(path.parent_path(), ec);
      auto key = SigningKey::Generate(*ParseCurve(args->curve));
      if (!key) {
        std::cerr << "labeler keygen: the crypto library failed to generate a key\n";
        return 1;
      }
      if (Status saved = key->Save(path); !saved.ok()) {
        std::cerr << "labeler keygen: " << saved.message() << "\n";
        return 1;
      }
      std::cout << key->DidKey() << "\n";
      return 0;
    };
  });

  CLI::App* did = labeler->add_subcommand(
      "did", "Print the labeler's public key as a did:key and as the Multikey for a DID document");
  file.Bind(*did, "data", args->data_dir, "Data folder");
  file.BindSecret(*did, "labeler.signing_key", args->signing_key, "Hex of a 32-byte secp256k1 private key");
  did->callback([args, &action] {
    action = [args] {
      auto key = LoadLabelerKey(args->data_dir, args->signing_key, false);
      if (!key.ok()) {
        std::cerr << "labeler did: " << key.status().message() << "\n";
        return 1;
      }
      std::cout << "did:key: " << (*key)->DidKey() << "\n"
                << "multikey: " << (*key)->Multikey() << "\n"
                << "curve: " << CurveName((*key)->curve()) << "\n";
      return 0;
    };
  });

  CLI::App* resign = labeler->add_subcommand(
      "resign",
      "Re-sign every stored label with the current signing key, after a key rotation (stop the labeler first; "
      "docs/labeler.md)");
  file.Bind(*resign, "data", args->data_dir, "Data folder");
  file.BindSecret(*resign, "labeler.signing_key", args->signing_key, "Hex of a 32-byte secp256k1 private key");
  resign->callback([args, &action] {
    action = [args] {
      auto key = LoadLabelerKey(args->data_dir, args->signing_key, false);
      if (!key.ok()) {
        std::cerr << "labeler resign: " << key.status().message() << "\n";
        return 1;
      }
      const auto log = std::filesystem::path(args->data_dir) / "labeler" / "labels.db";
      std::error_code ec;
      if (!std::filesystem::exists(log, ec)) {
        std::cerr << "labeler resign: no label log at " << log.string() << "\n";
        return 1;
      }
      auto resigned = LabelStore::ResignAll(log, **key);
      if (!resigned.ok()) {
        std::cerr << "labeler resign: " << resigned.status().message() << "\n";
        return 1;
      }
      std::cout << "re-signed " << *resigned << " labels with " << (*key)->DidKey() << "\n";
      return 0;
    };
  });
}

}  // namespace plyr::labeler
