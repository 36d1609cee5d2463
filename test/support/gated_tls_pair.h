// SPDX-License-Identifier: Apache-2.0
// A TlsStream client whose writes the test can hold back, facing a raw
// OpenSSL server (RawTlsPeer), and the handshake between them
// (tls_adversarial_test, tls_output_race_test).
#ifndef EVCHAN_TEST_SUPPORT_GATED_TLS_PAIR_H
#define EVCHAN_TEST_SUPPORT_GATED_TLS_PAIR_H

#include <cppunit/extensions/HelperMacros.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>

#include <evchan/duration.h>
#include <evchan/tcp_socket.h>
#include <evchan/tls.h>

#include "support/diagnostics.h"
#include "support/loopback.h"
#include "support/raw_tls_peer.h"
#include "support/slowdown.h"

namespace evchan::test {

/// A TcpSocket whose writes the test can hold back, as if its send buffer
/// were full and the peer not reading: while the gate is closed a write
/// waits until it opens.  Counts every write, and those that found the
/// gate closed.
class GatedWriteStream : public evchan::Stream {
 public:
  explicit GatedWriteStream(TcpSocket socket) : socket_(std::move(socket)) {}
  using evchan::Stream::readSome;
  using evchan::Stream::writeSome;
  std::size_t readSome(void* buffer, std::size_t size, std::error_code& ec) noexcept override {
    return socket_.readSome(buffer, size, ec);
  }
  std::size_t writeSome(const void* buffer, std::size_t size, std::error_code& ec) noexcept override {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      ++writes_;
      if (!open_) ++held_;
      changed_.notify_all();  // for waitHeld()
      changed_.wait(lock, [this] { return open_; });
    }
    return socket_.writeSome(buffer, size, ec);
  }
  void close() noexcept override {
    setGate(true);
    socket_.close();
  }
  bool isOpen() const noexcept override { return socket_.isOpen(); }

  void setGate(bool open) {
    std::lock_guard<std::mutex> lock(mutex_);
    open_ = open;
    if (open) changed_.notify_all();
  }
  int writes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return writes_;
  }
  int held() {
    std::lock_guard<std::mutex> lock(mutex_);
    return held_;
  }
  /// Waits (generously) until `count` writes have found the gate closed.
  bool waitHeld(int count) {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_for(lock, generous(std::chrono::seconds(10)), [&] { return held_ >= count; });
  }

 private:
  TcpSocket socket_;
  std::mutex mutex_;
  std::condition_variable changed_;
  bool open_ = true;
  int writes_ = 0;
  int held_ = 0;
};

/// The client's handshake against `server` on a thread of its own; the
/// client's error, and the server's OpenSSL result in `serverResult`.
inline std::error_code handshakeWithRawServer(TlsStream& client, RawTlsPeer& server, int& serverResult) {
  std::thread peer([&] { serverResult = server.handshake(); });
  std::error_code ec;
  client.handshake("localhost", ec);
  if (ec) client.close();  // a server waiting for the rest of the handshake sees the end
  peer.join();
  return ec;
}

/// handshakeWithRawServer() that must succeed on both sides.
inline void handshakeWithRawServer(TlsStream& client, RawTlsPeer& server) {
  int serverResult = 0;
  ASSERT_NO_ERROR(handshakeWithRawServer(client, server, serverResult));
  CPPUNIT_ASSERT_EQUAL(1, serverResult);
}

/// The client reads past the TLS 1.3 session tickets the server sent after
/// its handshake (a byte of data after them shows they are all in), so its
/// next read parks.
inline void readPastSessionTickets(TlsStream& client, RawTlsPeer& server) {
  CPPUNIT_ASSERT(server.write("!"));
  char byte = 0;
  client.readExactly(&byte, 1);
  CPPUNIT_ASSERT_EQUAL('!', byte);
}

/// A TLS client over a GatedWriteStream and a raw OpenSSL server at the
/// other end (TLS `maxVersion` at most, 0 for any), both sockets with
/// `timeout`; not handshaken yet.
struct GatedTlsPair {
  GatedTlsPair(const TlsContext& clientContext, Duration timeout, int maxVersion = 0)
      : tcp(timedPair(timeout)),
        client(clientContext, gatedClientSocket()),
        server(tcp.server, RawTlsPeer::Role::server, maxVersion) {}

  /// The client writes `text`, and the raw server reads just that (its
  /// keys agree with the client's).
  void clientWritesAndServerReads(const std::string& text) {
    client.writeAll(text.data(), text.size());
    std::error_code ec;
    std::string got;
    while (got.size() < text.size() && !ec) got += server.readSome(ec);
    ASSERT_NO_ERROR(ec);
    CPPUNIT_ASSERT_EQUAL(text, got);
  }

  ConnectedPair tcp;  // the server's socket stays here; the client's moves into `gate`
  GatedWriteStream* gate = nullptr;
  TlsStream client;
  RawTlsPeer server;

 private:
  static ConnectedPair timedPair(Duration timeout) {
    ConnectedPair pair = connectPair();
    pair.client.setTimeout(timeout);
    pair.server.setTimeout(timeout);
    return pair;
  }
  std::unique_ptr<evchan::Stream> gatedClientSocket() {
    auto gated = std::make_unique<GatedWriteStream>(std::move(tcp.client));
    gate = gated.get();
    return gated;
  }
};

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_GATED_TLS_PAIR_H
