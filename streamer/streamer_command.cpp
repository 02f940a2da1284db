#include "streamer/streamer_command.h"

#include <ctime>
#include <iostream>
#include <memory>

#include "streamer/stream_ticket.h"

namespace plyr::streamer {

namespace {

struct TicketArgs {
  std::string data_dir = "./data";
  std::string viewer;
  std::string file = "*";
  std::int64_t ttl_seconds = 3600;
};

}  // namespace

void AddTicketCommand(CLI::App& root, const SettingsFile& file, std::function<int()>& action) {
  auto args = std::make_shared<TicketArgs>();
  CLI::App* ticket = root.add_subcommand("ticket", "Stream tickets for gated audio (Ed25519)");
  ticket->require_subcommand(1);

  CLI::App* keygen = ticket->add_subcommand(
      "keygen", "Create the ticket key pair in the data folder (if none exists) and print the public key");
  file.Bind(*keygen, "data", args->data_dir, "Data folder");
  keygen->callback([args, &action] {
    action = [args] {
      auto keys = LoadOrCreateTicketKeys(args->data_dir);
      if (!keys) {
        std::cerr << "ticket keygen: " << keys.status().message() << "\n";
        return keys.status().code() == StatusCode::kInvalidArgument ? 2 : 1;
      }
      std::cout << ToHex(keys->public_key) << "\n";
      return 0;
    };
  });

  CLI::App* mint = ticket->add_subcommand("mint", "Print a signed stream ticket");
  file.Bind(*mint, "data", args->data_dir, "Data folder holding ticket-signing.key");
  mint->add_option("--viewer", args->viewer, "Viewer DID (did:plc:... or did:web:...)")->required();
  mint->add_option("--file", args->file, "File id the ticket grants, or * for any file")->capture_default_str();
  mint->add_option("--ttl", args->ttl_seconds, "Seconds until the ticket expires")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{365} * 86400))
      ->capture_default_str();
  mint->callback([args, &action] {
    action = [args] {
      if (!args->viewer.starts_with("did:")) {
        std::cerr << "ticket mint: --viewer must be a DID\n";
        return 2;
      }
      auto keys = LoadOrCreateTicketKeys(args->data_dir);
      if (!keys) {
        std::cerr << "ticket mint: " << keys.status().message() << "\n";
        return keys.status().code() == StatusCode::kInvalidArgument ? 2 : 1;
      }
      TicketClaims claims{args->viewer, args->file, static_cast<std::int64_t>(std::time(nullptr)) + args->ttl_seconds};
      std::cout << MintTicket(*keys, claims) << "\n";
      return 0;
    };
  });
}

}  // namespace plyr::streamer
