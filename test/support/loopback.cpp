// SPDX-License-Identifier: Apache-2.0
// Loopback helpers shared by the socket suites.
#include "support/loopback.h"

namespace evchan::test {

bool ipv6LoopbackAvailable() {
  std::error_code ec;
  TcpListener listener = TcpListener::listen({"::1", 0}, 1, ec);
  if (ec) return false;
  TcpSocket client = TcpSocket::connect({"::1", listener.port()}, std::chrono::seconds(2), ec);
  return !ec;
}

ConnectedPair connectPair(const std::string& host) {
  TcpListener listener = TcpListener::listen({host, 0});
  ConnectedPair pair;
  // The kernel completes the handshake from the backlog, so connecting
  // before accepting works on one thread.
  pair.client = TcpSocket::connect({host, listener.port()}, std::chrono::seconds(5));
  listener.setTimeout(std::chrono::seconds(5));
  pair.server = listener.accept();
  return pair;
}

int unusedPort() {
  TcpListener listener = TcpListener::listen({"127.0.0.1", 0});
  const int port = listener.port();
  listener.close();
  return port;
}

void fillPattern(void* buffer, std::size_t size, std::uint64_t offset) {
  auto* bytes = static_cast<unsigned char*>(buffer);
  for (std::size_t i = 0; i < size; ++i) {
    const std::uint64_t position = offset + i;
    bytes[i] = static_cast<unsigned char>((position * 131) ^ (position >> 13));
  }
}

std::uint64_t checksum(std::uint64_t state, const void* data, std::size_t size) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < size; ++i) {
    state ^= bytes[i];
    state *= 1099511628211ull;
  }
  return state;
}

}  // namespace evchan::test
