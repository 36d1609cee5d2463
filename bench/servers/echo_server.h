// SPDX-License-Identifier: Apache-2.0
// The interface every echo server of bench/echo_bench implements.
//
// A server listens on 127.0.0.1, serves from its own thread(s) and echoes
// every byte it reads back to the same connection until the peer closes.
#ifndef EVCHAN_BENCH_SERVERS_ECHO_SERVER_H
#define EVCHAN_BENCH_SERVERS_ECHO_SERVER_H

#include <cstddef>
#include <memory>
#include <string>

namespace bench {

/// Listen backlog of every server: large enough that the load generator's
/// 1000 connects never overflow the accept queue (a dropped SYN costs a
/// one-second retransmit).
constexpr int kListenBacklog = 4096;

/// Bytes one server-side read asks for.
constexpr std::size_t kReadBufferSize = 4096;

class EchoServer {
 public:
  virtual ~EchoServer() = default;

  /// Starts listening on 127.0.0.1:`port` (0: the kernel picks) and serving
  /// in the server's own thread(s).  Returns the port it listens on.
  /// Throws std::exception on failure.
  virtual int start(int port) = 0;

  /// Stops serving, closes every connection and joins the server's threads.
  /// Idempotent; the destructor calls it too.
  virtual void stop() = 0;

  /// Why this server cannot take `connections` connections at once, or ""
  /// when it can (the select backend: descriptors beyond FD_SETSIZE).
  virtual std::string cannotServe(int connections) const {
    (void)connections;
    return {};
  }

  /// Anything worth printing after a run (e.g. the evchan pool's size);
  /// "" for nothing.
  virtual std::string note() const { return {}; }
};

// The servers.  The optional peers exist only where configure found their
// library (BENCH_HAVE_LIBUV, BENCH_HAVE_LIBEVENT, BENCH_HAVE_ASIO).
std::unique_ptr<EchoServer> makeEpollServer();
/// `backend` is the name evchan::backendName() reports ("epoll", "poll",
/// "select", "apr_pollset"); `threads` is EventChannelOptions::initialThreads
/// (0: evchan's default, one per CPU).
std::unique_ptr<EchoServer> makeEvchanServer(const std::string& backend, int threads);
/// Tasks: an acceptor task and a task per connection (readSome/writeAll),
/// on the named backend ("default": Backend::Default); `monitor` false
/// turns the stuck-worker monitor off, to measure what it costs.
std::unique_ptr<EchoServer> makeEvchanTaskServer(int threads, const std::string& backend = "default",
                                                 bool monitor = true);
/// The task server sharded: a one-worker channel per CPU this thread may
/// use, the connections dealt out to them in turn.
std::unique_ptr<EchoServer> makeEvchanShardedTaskServer(const std::string& backend = "default");
std::unique_ptr<EchoServer> makeLibuvServer();
std::unique_ptr<EchoServer> makeLibeventServer();
std::unique_ptr<EchoServer> makeAsioServer();

}  // namespace bench

#endif  // EVCHAN_BENCH_SERVERS_ECHO_SERVER_H
