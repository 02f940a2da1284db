// A real browser's <audio> element plays a file through the streamer: headless Chromium loads a
// page whose audio element points at /audio/{id} (with a ticket for a gated track) and reports
// the media events it saw.
#include <cmath>
#include <cstdint>
#include <fstream>
#include <regex>

#include "tests/streamer/streamer_fixture.h"

namespace plyr::testing {
namespace {

// Two seconds of a 440 Hz tone as 16-bit mono PCM WAV.
std::string ToneWav() {
  const std::uint32_t rate = 44100, samples = rate * 2;
  auto u32 = [](std::uint32_t v) { return std::string{char(v), char(v >> 8), char(v >> 16), char(v >> 24)}; };
  auto u16 = [](std::uint16_t v) { return std::string{char(v), char(v >> 8)}; };
  std::string pcm;
  for (std::uint32_t i = 0; i < samples; ++i) {
    pcm += u16(static_cast<std::uint16_t>(static_cast<std::int16_t>(8000 * std::sin(2 * M_PI * 440 * i / rate))));
  }
  return "RIFF" + u32(36 + pcm.size()) + "WAVEfmt " + u32(16) + u16(1) + u16(1) + u32(rate) + u32(rate * 2) +
         u16(2) + u16(16) + "data" + u32(pcm.size()) + pcm;
}

class BrowserPlaybackTest : public StreamerTest {
 protected:
  // Loads a page with <audio src=url> in headless Chromium; returns the events it recorded.
  std::string PlayInBrowser(const std::string& url) {
    const auto page = dir_.path() / "page.html";
    std::ofstream(page) << "<html><body><div id=\"out\">events:</div><script>\n"
                           "const out = document.getElementById('out');\n"
                           "const a = new Audio('" << url << "');\n"
                           "a.muted = true;\n"
                           "for (const ev of ['loadedmetadata','playing','timeupdate','error'])\n"
                           "  a.addEventListener(ev, () => { out.textContent += ' ' + ev + '@' + a.currentTime.toFixed(2)"
                           " + '/' + a.duration.toFixed(2) + (a.error ? ':' + a.error.code : ''); });\n"
                           "a.play().catch(e => { out.textContent += ' rejected'; });\n"
                           "</script></body></html>\n";
    std::string output;
    PlyrProcess::RunCommand({"/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                             "--no-first-run", "--disable-background-networking", "--disable-component-update",
                             "--disable-sync", "--user-data-dir=" + (dir_.path() / "chrome").string(),
                             "--autoplay-policy=no-user-gesture-required", "--virtual-time-budget=10000",
                             "--dump-dom", "file://" + page.string()},
                            &output, std::chrono::seconds(60));
    std::smatch m;
    if (std::regex_search(output, m, std::regex("<div id=\"out\">([^<]*)"))) return m[1];
    return "no page output: " + output.substr(0, 2000);
  }
};

TEST_F(BrowserPlaybackTest, AudioElementPlaysPublicAndGatedTracks) {
  ASSERT_TRUE(std::filesystem::exists("/usr/bin/chromium")) << "scripts/install-deps.sh installs chromium";
  const std::string wav = ToneWav();
  const std::string id = Upload(wav, "audio/wav");
  ASSERT_EQ(PutTrack(id, R"({"owner_did":"did:plc:artist","gate":"copyright"})").status, 200);
  const std::string base = "http://127.0.0.1:" + std::to_string(port_) + "/audio/" + id;

  std::string events = PlayInBrowser(base + "?ticket=" + Ticket(kFan, id));
  EXPECT_NE(events.find("loadedmetadata@0.00/2.00"), std::string::npos) << events;
  EXPECT_NE(events.find("playing"), std::string::npos) << events;
  EXPECT_TRUE(std::regex_search(events, std::regex("timeupdate@(?!0\\.00)"))) << events;

  // Without a ticket the element gets a 401 and reports a media error; nothing plays.
  events = PlayInBrowser(base);
  EXPECT_NE(events.find("error"), std::string::npos) << events;
  EXPECT_EQ(events.find("playing"), std::string::npos) << events;
}

}  // namespace
}  // namespace plyr::testing
