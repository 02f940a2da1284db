// The streamer's load edges, against a running `plyr-core serve streamer` (bench/edges/run.sh
// starts it):
//   idle   N keep-alive connections, each after one answered request, held open at once: the
//          server's resident memory per connection (and the kernel's socket memory beside it),
//          whether all are still open after a pause, and how fast a new request is answered
//          meanwhile;
//   flood  requests for a gated track with no ticket, a malformed ticket and a well-formed one
//          with a bad signature, and the anchor, a public 1 KiB range: the server's CPU per
//          request of each (from /proc/PID/stat), as a ratio to the anchor's.
// Plain blocking sockets and poll; loopback only.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  int port = 0;
  int pid = 0;
  int idle = 10000;
  int flood = 20000;
  int connections = 4;
  std::string public_id;
  std::string gated_id;
};

int Connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<unsigned short>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// Sends `request` and reads one answer (headers plus Content-Length bytes); returns the status,
// or 0 when the connection failed.
int Exchange(int fd, const std::string& request, std::string& buffer) {
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) return 0;
  buffer.clear();
  char chunk[16384];
  std::size_t header_end = std::string::npos;
  std::size_t length = 0;
  for (;;) {
    if (header_end != std::string::npos && buffer.size() >= header_end + 4 + length) break;
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return 0;
    buffer.append(chunk, static_cast<std::size_t>(n));
    if (header_end == std::string::npos && (header_end = buffer.find("\r\n\r\n")) != std::string::npos) {
      const std::size_t at = buffer.find("Content-Length: ");
      length = at < header_end ? std::strtoul(buffer.c_str() + at + 16, nullptr, 10) : 0;
    }
  }
  return buffer.size() > 12 ? std::atoi(buffer.c_str() + 9) : 0;
}

long RssKib(int pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return 0;
}

// The process's user + system CPU, in seconds.
double CpuSeconds(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::string skip;
  for (int i = 0; i < 11; ++i) fields >> skip;  // state .. cmajflt
  double utime = 0, stime = 0;
  fields >> utime >> stime;
  return (utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// Kernel memory of every TCP socket on the host, in KiB (/proc/net/sockstat "mem", in pages).
long TcpKernelKib() {
  std::ifstream sockstat("/proc/net/sockstat");
  std::string line;
  while (std::getline(sockstat, line)) {
    if (line.rfind("TCP:", 0) != 0) continue;
    const std::size_t at = line.find(" mem ");
    if (at != std::string::npos) return std::atol(line.c_str() + at + 5) * (::sysconf(_SC_PAGESIZE) / 1024);
  }
  return 0;
}

std::string Get(const std::string& target, const std::string& extra = {}) {
  return "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra + "\r\n";
}

void Idle(const Options& o) {
  const long rss_before = RssKib(o.pid);
  const long kernel_before = TcpKernelKib();
  std::vector<int> fds;
  fds.reserve(static_cast<std::size_t>(o.idle));
  std::string buffer;
  const std::string request = Get("/audio/" + o.public_id, "Range: bytes=0-1023\r\n");
  const auto open_start = Clock::now();
  int refused = 0;
  for (int i = 0; i < o.idle; ++i) {
    const int fd = Connect(o.port);
    if (fd < 0 || Exchange(fd, request, buffer) != 206) {
      ++refused;
      if (fd >= 0) ::close(fd);
      continue;
    }
    fds.push_back(fd);
  }
  const double open_s = std::chrono::duration<double>(Clock::now() - open_start).count();
  std::this_thread::sleep_for(std::chrono::seconds(5));
  const long rss_held = RssKib(o.pid);
  const long kernel_held = TcpKernelKib();

  // A new client meanwhile: the median of 200 fresh connections, one request each.
  std::vector<double> fresh;
  for (int i = 0; i < 200; ++i) {
    const auto start = Clock::now();
    const int fd = Connect(o.port);
    const int status = fd >= 0 ? Exchange(fd, request, buffer) : 0;
    if (fd >= 0) ::close(fd);
    if (status == 206) fresh.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  std::sort(fresh.begin(), fresh.end());

  // Every held connection still open, and still serving: one more request on each.
  int alive = 0;
  for (int fd : fds) alive += Exchange(fd, request, buffer) == 206 ? 1 : 0;
  for (int fd : fds) ::close(fd);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const long rss_after = RssKib(o.pid);
  // A second round of as many: the memory the first freed is reused, not added to.
  std::vector<int> again;
  for (int i = 0; i < o.idle; ++i) {
    const int fd = Connect(o.port);
    if (fd >= 0 && Exchange(fd, request, buffer) == 206) {
      again.push_back(fd);
    } else if (fd >= 0) {
      ::close(fd);
    }
  }
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const long rss_second = RssKib(o.pid);
  for (int fd : again) ::close(fd);

  const double n = static_cast<double>(fds.size());
  std::printf("idle connections held: %zu of %d (%d refused), opened in %.2f s\n", fds.size(), o.idle, refused, open_s);
  std::printf("server VmRSS: %.1f MiB before, %.1f MiB holding them, %.1f MiB after closing, %.1f MiB holding %zu "
              "again\n",
              rss_before / 1024.0, rss_held / 1024.0, rss_after / 1024.0, rss_second / 1024.0, again.size());
  std::printf("server memory per idle connection: %.0f bytes\n", n > 0 ? (rss_held - rss_before) * 1024.0 / n : 0.0);
  std::printf("kernel TCP buffer memory per connection (both ends, host-wide /proc/net/sockstat): %.0f bytes\n",
              n > 0 ? (kernel_held - kernel_before) * 1024.0 / n : 0.0);
  std::printf("still serving after 5 s idle: %d of %zu\n", alive, fds.size());
  if (!fresh.empty()) {
    std::printf("a new connection's request meanwhile: p50 %.3f ms, p99 %.3f ms (%zu of 200)\n",
                fresh[fresh.size() / 2], fresh[fresh.size() * 99 / 100], fresh.size());
  }
}

// `count` requests (`requests` in turn) over `connections` keep-alive connections; returns the server CPU-seconds
// spent, and adds the answers whose status was not `expect` to `wrong`.
double Flood(const Options& o, const std::vector<std::string>& requests, int count, int* wrong, int expect) {
  const double cpu_before = CpuSeconds(o.pid);
  std::vector<std::thread> threads;
  std::vector<int> wrongs(static_cast<std::size_t>(o.connections), 0);
  for (int c = 0; c < o.connections; ++c) {
    threads.emplace_back([&, c] {
      int fd = Connect(o.port);
      std::string buffer;
      for (int i = c; i < count; i += o.connections) {
        const std::string& request = requests[static_cast<std::size_t>(i) % requests.size()];
        const int status = fd >= 0 ? Exchange(fd, request, buffer) : 0;
        if (status != expect) ++wrongs[static_cast<std::size_t>(c)];
        // A refusal may close the connection (it does not here); reconnect if so.
        if (status == 0 || buffer.find("Connection: close") != std::string::npos) {
          if (fd >= 0) ::close(fd);
          fd = Connect(o.port);
        }
      }
      if (fd >= 0) ::close(fd);
    });
  }
  for (auto& t : threads) t.join();
  for (int w : wrongs) *wrong += w;
  return CpuSeconds(o.pid) - cpu_before;
}

// base64url without padding.
std::string Base64Url(const unsigned char* data, std::size_t size) {
  std::string out(sodium_base64_encoded_len(size, sodium_base64_VARIANT_URLSAFE_NO_PADDING), '\0');
  sodium_bin2base64(out.data(), out.size(), data, size, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  out.resize(std::strlen(out.c_str()));
  return out;
}

void FloodAll(const Options& o) {
  // A forged ticket: well-formed, for any file, signed by a key the streamer does not know, so
  // that refusing it takes a whole Ed25519 verification (a signature of zeros is refused sooner).
  const std::string claims = R"({"sub":"did:plc:attacker","file":"*","exp":4102444800})";
  const std::string signed_part =
      "v1." + Base64Url(reinterpret_cast<const unsigned char*>(claims.data()), claims.size());
  unsigned char public_key[crypto_sign_PUBLICKEYBYTES], secret_key[crypto_sign_SECRETKEYBYTES];
  unsigned char signature[crypto_sign_BYTES];
  crypto_sign_keypair(public_key, secret_key);
  crypto_sign_detached(signature, nullptr, reinterpret_cast<const unsigned char*>(signed_part.data()),
                       signed_part.size(), secret_key);
  const std::string bad_signature = signed_part + "." + Base64Url(signature, sizeof signature);
  struct Case {
    const char* name;
    std::vector<std::string> requests;  // sent in turn
    int expect;
  };
  std::vector<Case> cases = {
      {"public track, 1 KiB range (anchor)", {Get("/audio/" + o.public_id, "Range: bytes=0-1023\r\n")}, 206},
      {"gated, no ticket", {Get("/audio/" + o.gated_id)}, 401},
      {"gated, malformed ticket", {Get("/audio/" + o.gated_id, "Authorization: Bearer v1.not-a-ticket\r\n")}, 401},
      {"gated, one forged ticket repeated",
       {Get("/audio/" + o.gated_id, "Authorization: Bearer " + bad_signature + "\r\n")}, 401},
  };
  // Warm-up: connections, caches.
  int ignored = 0;
  for (const auto& c : cases) Flood(o, c.requests, 500, &ignored, c.expect);
  // Forged tickets each new (an attacker who signs every one): the verification cannot be skipped.
  std::vector<std::string> fresh_forgeries;
  fresh_forgeries.reserve(static_cast<std::size_t>(o.flood));
  for (int i = 0; i < o.flood; ++i) {
    const std::string c = R"({"sub":"did:plc:attacker","file":"*","exp":)" + std::to_string(4102444800 + i) + "}";
    const std::string part = "v1." + Base64Url(reinterpret_cast<const unsigned char*>(c.data()), c.size());
    crypto_sign_detached(signature, nullptr, reinterpret_cast<const unsigned char*>(part.data()), part.size(),
                         secret_key);
    fresh_forgeries.push_back(Get("/audio/" + o.gated_id, "Authorization: Bearer " + part + "." +
                                                           Base64Url(signature, sizeof signature) + "\r\n"));
  }
  cases.push_back({"gated, forged tickets, each one new", std::move(fresh_forgeries), 401});
  // Rounds interleave the cases, so a slow moment of the machine touches all of them; each
  // figure is the median of its rounds.
  constexpr int kRounds = 5;
  std::vector<std::vector<double>> us(cases.size()), rate(cases.size());
  std::vector<int> wrong(cases.size(), 0);
  for (int round = 0; round < kRounds; ++round) {
    for (std::size_t i = 0; i < cases.size(); ++i) {
      const auto start = Clock::now();
      const double cpu = Flood(o, cases[i].requests, o.flood, &wrong[i], cases[i].expect);
      const double wall = std::chrono::duration<double>(Clock::now() - start).count();
      us[i].push_back(cpu * 1e6 / o.flood);
      rate[i].push_back(o.flood / wall);
    }
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::printf("\n%d rounds of %d requests per case over %d keep-alive connections; medians\n", kRounds, o.flood,
              o.connections);
  std::printf("%-38s %14s %8s %10s %s\n", "requests", "server CPU/req", "ratio", "req/s", "unexpected answers");
  const double anchor_us = median(us[0]);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    std::printf("%-38s %11.1f µs %7.2fx %10.0f %d\n", cases[i].name, median(us[i]), median(us[i]) / anchor_us,
                median(rate[i]), wrong[i]);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::string phases = "idle,flood";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--port") o.port = std::atoi(value.c_str());
    else if (flag == "--pid") o.pid = std::atoi(value.c_str());
    else if (flag == "--idle") o.idle = std::atoi(value.c_str());
    else if (flag == "--flood") o.flood = std::atoi(value.c_str());
    else if (flag == "--connections") o.connections = std::atoi(value.c_str());
    else if (flag == "--public") o.public_id = value;
    else if (flag == "--gated") o.gated_id = value;
    else if (flag == "--phases") phases = value;
  }
  if (o.port == 0 || o.pid == 0 || o.public_id.empty() || o.gated_id.empty()) {
    std::fprintf(stderr,
                 "usage: streamer_edges --port P --pid PID --public FILE_ID --gated FILE_ID [--idle N] [--flood N] "
                 "[--connections N] [--phases idle,flood]\n");
    return 2;
  }
  if (rlimit limit{}; ::getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
  if (sodium_init() < 0) return 1;
  if (phases.find("idle") != std::string::npos) Idle(o);
  if (phases.find("flood") != std::string::npos) FloodAll(o);
  return 0;
}
