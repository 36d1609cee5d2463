// SPDX-License-Identifier: Apache-2.0
// The evchan task server: an acceptor task and one task per connection,
// written with plain blocking-looking calls (accept, readSome, writeAll);
// every wait suspends the task, not the worker thread.  It stops as the
// canonical server does (docs/servers.md): the acceptor cancelled, then
// the connections, a TaskGroup, cancelled and joined, then shutdown().
#include <evchan/evchan.h>

#include <memory>

#include "servers/echo_server.h"

namespace bench {
namespace {

class EvchanTaskServer final : public EchoServer {
 public:
  EvchanTaskServer(int threads, evchan::Backend backend, bool monitor)
      : threads_(threads), backend_(backend), monitor_(monitor) {}
  ~EvchanTaskServer() override { stop(); }

  int start(int port) override {
    evchan::EventChannel::Options options;
    options.initialThreads = threads_;
    options.backend = backend_;
    if (!monitor_) options.stuckWorkerGrace = evchan::Duration::zero();
    channel_ = evchan::EventChannel::create(options);
    listener_ = evchan::TcpListener::listen({"127.0.0.1", port}, kListenBacklog);
    connections_ = std::make_unique<evchan::TaskGroup>(*channel_);
    acceptor_ = channel_->spawn([this] { acceptLoop(); });
    return listener_.port();
  }

  void stop() override {
    if (!channel_) return;
    const evchan::ThreadPoolStats stats = channel_->poolStats();
    note_ = "evchan pool: " + std::to_string(stats.initial) + " initial, " + std::to_string(stats.peak) +
            " peak worker threads";
    // Stop accepting, then end every connection (the load generator is
    // done with them: no grace period), then shut down: nothing is left.
    acceptor_.cancel();
    try {
      acceptor_.join();
    } catch (const evchan::SystemError&) {  // its operation_canceled
    }
    listener_.close();
    connections_->cancel();
    connections_->join();
    connections_.reset();
    channel_->shutdown();
    channel_.reset();
  }

  std::string note() const override { return note_; }

 private:
  void acceptLoop() {
    for (;;) {
      std::error_code ec;
      evchan::TcpSocket connection = listener_.accept(ec);
      if (ec) return;  // cancelled
      connections_->spawn(serve, std::move(connection));
    }
  }

  static void serve(evchan::TcpSocket socket) {
    char buffer[kReadBufferSize];
    std::error_code ec;
    // As every other server: without it, echoing a long message in 4 KiB
    // pieces meets Nagle and the client's delayed ACK (40 ms a message).
    socket.setNoDelay(true, ec);
    for (;;) {
      const std::size_t n = socket.readSome(buffer, sizeof buffer, ec);
      if (ec) return;
      socket.writeAll(buffer, n, ec);
      if (ec) return;
    }
  }

  const int threads_;
  const evchan::Backend backend_;
  const bool monitor_;  // the stuck-worker monitor (EventChannelOptions::stuckWorkerGrace)
  std::unique_ptr<evchan::EventChannel> channel_;
  std::unique_ptr<evchan::TaskGroup> connections_;  // before the channel goes
  evchan::TaskHandle acceptor_;
  evchan::TcpListener listener_;
  std::string note_;
};

}  // namespace

std::unique_ptr<EchoServer> makeEvchanTaskServer(int threads, const std::string& backendName, bool monitor) {
  evchan::Backend backend = evchan::Backend::Default;
  evchan::backendFromName(backendName, backend);
  return std::make_unique<EvchanTaskServer>(threads, backend, monitor);
}

}  // namespace bench
