// echo_demo: an echo server on a free loopback port and a set of client
// threads that push a known byte stream through it and verify every byte.
//
//   echo_demo [--connections N] [--megabytes M]
//
// Exits 0 when every byte came back intact, 1 on a mismatch or error.
#include <evchan/evchan.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr std::size_t kChunk = 64 * 1024;

// The byte at stream position `i` of connection `c`: both sides can compute
// it, so the client checks what comes back without keeping a copy.
unsigned char patternByte(std::size_t c, std::uint64_t i) {
  return static_cast<unsigned char>((i * 7 + c * 13 + (i >> 11)) & 0xff);
}

// Serves one connection: echoes until the client shuts down its side.
void echo(evchan::TcpSocket socket) {
  std::vector<char> buffer(kChunk);
  std::error_code ec;
  for (;;) {
    const std::size_t n = socket.readSome(buffer.data(), buffer.size(), ec);
    if (ec) break;  // end_of_stream once the client is done
    socket.writeAll(buffer.data(), n, ec);
    if (ec) break;
  }
}

// One client: sends `total` bytes in chunks and checks each echoed chunk.
bool runClient(int port, std::size_t index, std::uint64_t total) {
  try {
    evchan::TcpSocket socket = evchan::TcpSocket::connect({"127.0.0.1", port}, std::chrono::seconds(5));
    socket.setNoDelay(true);
    std::vector<unsigned char> out(kChunk), in(kChunk);
    for (std::uint64_t sent = 0; sent < total;) {
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, total - sent));
      for (std::size_t i = 0; i < n; ++i) out[i] = patternByte(index, sent + i);
      socket.writeAll(out.data(), n);
      socket.readExactly(in.data(), n);
      if (std::memcmp(in.data(), out.data(), n) != 0) {
        std::fprintf(stderr, "connection %zu: echoed bytes differ near offset %llu\n", index,
                     static_cast<unsigned long long>(sent));
        return false;
      }
      sent += n;
    }
    socket.shutdownWrite();
    return true;
  } catch (const evchan::SystemError& e) {
    std::fprintf(stderr, "connection %zu: %s\n", index, e.what());
    return false;
  }
}

bool parsePositive(const char* text, long& value) {
  char* end = nullptr;
  value = std::strtol(text, &end, 10);
  return end != text && *end == '\0' && value > 0;
}

}  // namespace

int main(int argc, char** argv) {
  long connections = 8, megabytes = 8;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    long* target = arg == "--connections" ? &connections : arg == "--megabytes" ? &megabytes : nullptr;
    if (target == nullptr || i + 1 == argc || !parsePositive(argv[++i], *target)) {
      std::fprintf(stderr, "usage: %s [--connections N] [--megabytes M-per-connection]\n", argv[0]);
      return 2;
    }
  }

  try {
    evchan::TcpListener listener = evchan::TcpListener::listen({"127.0.0.1", 0});
    std::printf("echo server listening on %s\n", listener.localAddress().toString().c_str());

    // A client that never connects must not leave the acceptor waiting forever.
    listener.setTimeout(std::chrono::seconds(10));
    std::atomic<int> failures{0};
    std::vector<std::thread> servers;
    std::thread acceptor([&] {
      try {
        for (long i = 0; i < connections; ++i) servers.emplace_back(echo, listener.accept());
      } catch (const evchan::SystemError& e) {
        std::fprintf(stderr, "acceptor: %s\n", e.what());
        ++failures;
      }
    });

    const std::uint64_t perConnection = static_cast<std::uint64_t>(megabytes) << 20;
    const auto started = std::chrono::steady_clock::now();
    std::vector<std::thread> clients;
    for (long i = 0; i < connections; ++i) {
      clients.emplace_back([&, i] {
        if (!runClient(listener.port(), static_cast<std::size_t>(i), perConnection)) ++failures;
      });
    }
    for (std::thread& t : clients) t.join();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    acceptor.join();
    for (std::thread& t : servers) t.join();

    const double megabytesMoved = 2.0 * static_cast<double>(perConnection * connections) / (1 << 20);
    std::printf("%ld connections, %.0f MiB echoed (sent and received), %.3f s, %.1f MiB/s, %s\n", connections,
                megabytesMoved, seconds, megabytesMoved / seconds,
                failures == 0 ? "every byte verified" : "MISMATCH");
    return failures == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "echo_demo: %s\n", e.what());
    return 1;
  }
}
