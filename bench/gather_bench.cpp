// SPDX-License-Identifier: Apache-2.0
// gather_bench: a three-part message (header, body, trailer) written over
// loopback TCP three ways, in one run, with a reader thread draining the
// other end:
//   * gather:  one writeAll() over the three pieces (one sendmsg);
//   * 3 calls: three writeAll() calls, one per piece (three sends);
//   * copy:    the pieces copied into one buffer, then one writeAll().
// TCP_NODELAY is on (what a request/response protocol sets), so three
// calls mean three segments where the kernel cannot coalesce them.
//
//   gather_bench [--seconds S] [--rounds N] [--bodies B1,B2,...]
//
// Each way runs S seconds per round (default 0.3), the ways interleaved,
// N rounds (default 5); the best round of each way is reported, as
// messages a second and as a ratio to the gather write.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <evchan/evchan.h>

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kHeader = 16;
constexpr std::size_t kTrailer = 4;

struct Options {
  double seconds = 0.3;
  int rounds = 5;
  std::vector<std::size_t> bodies{64, 1024, 16384};
};

enum class Way { Gather, ThreeCalls, Copy };
const char* const kWayNames[] = {"gather", "3 calls", "copy"};

[[noreturn]] void usage() {
  std::fprintf(stderr, "usage: gather_bench [--seconds S] [--rounds N] [--bodies B1,B2,...]\n");
  std::exit(2);
}

std::vector<std::size_t> parseList(const char* text) {
  std::vector<std::size_t> values;
  for (const char* at = text; *at != '\0';) {
    char* end = nullptr;
    const unsigned long long value = std::strtoull(at, &end, 10);
    if (end == at || value == 0) usage();
    values.push_back(static_cast<std::size_t>(value));
    at = *end == ',' ? end + 1 : end;
    if (*end != ',' && *end != '\0') usage();
  }
  return values;
}

Options parse(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) usage();
    if (arg == "--seconds") {
      options.seconds = std::atof(argv[++i]);
    } else if (arg == "--rounds") {
      options.rounds = std::atoi(argv[++i]);
    } else if (arg == "--bodies") {
      options.bodies = parseList(argv[++i]);
    } else {
      usage();
    }
  }
  if (options.seconds <= 0 || options.rounds <= 0 || options.bodies.empty()) usage();
  return options;
}

std::string loadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  if (!(in >> one >> five >> fifteen)) return "unknown";
  return one + " " + five + " " + fifteen;
}

// Writes messages one way for `seconds`; returns messages a second.
double run(evchan::TcpSocket& socket, Way way, std::size_t bodySize, double seconds) {
  std::vector<char> header(kHeader, 'h'), body(bodySize, 'b'), trailer(kTrailer, 't');
  std::vector<char> joined(kHeader + bodySize + kTrailer);
  const evchan::ConstBuffer pieces[] = {
      {header.data(), header.size()}, {body.data(), body.size()}, {trailer.data(), trailer.size()}};
  const Clock::time_point start = Clock::now();
  const Clock::time_point end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::uint64_t messages = 0;
  Clock::time_point now = start;
  while (now < end) {
    for (int i = 0; i < 64; ++i) {
      switch (way) {
        case Way::Gather: socket.writeAll(pieces, 3); break;
        case Way::ThreeCalls:
          for (const evchan::ConstBuffer& piece : pieces) socket.writeAll(piece.data, piece.size);
          break;
        case Way::Copy: {
          char* at = joined.data();
          for (const evchan::ConstBuffer& piece : pieces) {
            std::memcpy(at, piece.data, piece.size);
            at += piece.size;
          }
          socket.writeAll(joined.data(), joined.size());
          break;
        }
      }
    }
    messages += 64;
    now = Clock::now();
  }
  return static_cast<double>(messages) / std::chrono::duration<double>(now - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = parse(argc, argv);
  evchan::TcpListener listener = evchan::TcpListener::listen({"127.0.0.1", 0});
  evchan::TcpSocket writer = evchan::TcpSocket::connect(evchan::Endpoint{"127.0.0.1", listener.port()});
  evchan::TcpSocket reader = listener.accept();
  writer.setNoDelay(true);
  std::atomic<std::uint64_t> drained{0};
  std::thread drain([&] {
    std::vector<char> buffer(256 * 1024);
    std::error_code ec;
    for (;;) {
      const std::size_t n = reader.readSome(buffer.data(), buffer.size(), ec);
      if (ec) return;
      drained.fetch_add(n, std::memory_order_relaxed);
    }
  });

  std::printf("gather_bench: header %zu B + body + trailer %zu B over loopback TCP (TCP_NODELAY), a reader thread\n"
              "draining; best of %d rounds of %.2f s per way; load average at start: %s\n",
              kHeader, kTrailer, options.rounds, options.seconds, loadAverage().c_str());
  std::printf("%8s %14s %14s %14s %12s %10s\n", "body B", "gather msg/s", "3 calls msg/s", "copy msg/s",
              "3 calls/gat", "copy/gat");
  for (std::size_t body : options.bodies) {
    double best[3] = {0, 0, 0};
    for (int round = 0; round < options.rounds; ++round) {
      for (Way way : {Way::Gather, Way::ThreeCalls, Way::Copy}) {
        const double rate = run(writer, way, body, options.seconds);
        best[static_cast<int>(way)] = std::max(best[static_cast<int>(way)], rate);
      }
    }
    std::printf("%8zu %14.0f %14.0f %14.0f %12.2f %10.2f\n", body, best[0], best[1], best[2], best[1] / best[0],
                best[2] / best[0]);
  }
  std::printf("(ratios: messages a second relative to the gather write; below 1 is slower than gather;\n"
              " ways: %s = one writeAll over 3 pieces, %s = 3 writeAll calls, %s = memcpy + 1 writeAll)\n",
              kWayNames[0], kWayNames[1], kWayNames[2]);
  writer.close();
  drain.join();
  return 0;
}
