// SPDX-License-Identifier: Apache-2.0
// Loopback helpers shared by the socket suites.
#ifndef EVCHAN_TEST_SUPPORT_LOOPBACK_H
#define EVCHAN_TEST_SUPPORT_LOOPBACK_H

#include <cstddef>
#include <cstdint>
#include <string>

#include <evchan/tcp_listener.h>
#include <evchan/tcp_socket.h>

namespace evchan::test {

/// True when the machine can listen on and connect to ::1.
bool ipv6LoopbackAvailable();

/// A client and the server side of one loopback connection.
struct ConnectedPair {
  TcpSocket client;
  TcpSocket server;
};

/// Listens on `host` port 0, connects a client and accepts it.
ConnectedPair connectPair(const std::string& host = "127.0.0.1");

/// A loopback port that was free a moment ago, to listen on: the kernel
/// picks one and the listener is closed again.  Another process may take
/// it meanwhile; for a port that must refuse connections, see
/// RefusingPort (host_socket.h).
int unusedPort();

/// Fills `size` bytes with a pattern that depends on the stream position
/// `offset`, so a lost, duplicated or reordered byte changes the checksum.
void fillPattern(void* buffer, std::size_t size, std::uint64_t offset);

/// FNV-1a over a stream: feed chunks in order, starting from kChecksumSeed.
inline constexpr std::uint64_t kChecksumSeed = 1469598103934665603ull;
std::uint64_t checksum(std::uint64_t state, const void* data, std::size_t size);

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_LOOPBACK_H
