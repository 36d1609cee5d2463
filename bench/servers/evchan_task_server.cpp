// SPDX-License-Identifier: Apache-2.0
// The evchan task server: an acceptor task and one task per connection,
// written with plain blocking-looking calls (accept, readSome, writeAll);
// every wait suspends the task, not the worker thread.  It stops as the
// canonical server does (docs/servers.md): the acceptor cancelled, then
// the connections, a TaskGroup, cancelled and joined, then shutdown().
//
// Sharded, it runs a one-worker channel per CPU it may use, and the
// acceptor deals the connections out to them in turn: each connection's
// task, its socket's readiness and its wake-ups stay on one worker, as
// they would with a poller per worker.
#include <evchan/evchan.h>

#include <sched.h>

#include <memory>
#include <vector>

#include "servers/echo_server.h"

namespace bench {
namespace {

// The CPUs this thread may run on (its workers inherit the affinity).
int cpusAllowed() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  return CPU_COUNT(&set) > 0 ? CPU_COUNT(&set) : 1;
}

class EvchanTaskServer final : public EchoServer {
 public:
  EvchanTaskServer(int threads, evchan::Backend backend, bool monitor, bool sharded)
      : threads_(threads), backend_(backend), monitor_(monitor), sharded_(sharded) {}
  ~EvchanTaskServer() override { stop(); }

  int start(int port) override {
    evchan::EventChannel::Options options;
    options.initialThreads = sharded_ ? 1 : threads_;
    options.backend = backend_;
    if (!monitor_) options.stuckWorkerGrace = evchan::Duration::zero();
    const int shards = sharded_ ? cpusAllowed() : 1;
    for (int i = 0; i < shards; ++i) {
      shards_.push_back({evchan::EventChannel::create(options), nullptr});
      shards_.back().connections = std::make_unique<evchan::TaskGroup>(*shards_.back().channel);
    }
    listener_ = evchan::TcpListener::listen({"127.0.0.1", port}, kListenBacklog);
    acceptor_ = shards_.front().channel->spawn([this] { acceptLoop(); });
    return listener_.port();
  }

  void stop() override {
    if (shards_.empty()) return;
    int initial = 0, peak = 0;
    for (const Shard& shard : shards_) {
      const evchan::ThreadPoolStats stats = shard.channel->poolStats();
      initial += stats.initial;
      peak += stats.peak;
    }
    // Sharded, the sums over the channels.
    note_ = "evchan pool: " + std::to_string(initial) + " initial, " + std::to_string(peak) + " peak worker threads";
    // Stop accepting, then end every connection (the load generator is
    // done with them: no grace period), then shut down: nothing is left.
    acceptor_.cancel();
    try {
      acceptor_.join();
    } catch (const evchan::SystemError&) {  // its operation_canceled
    }
    listener_.close();
    for (Shard& shard : shards_) shard.connections->cancel();
    for (Shard& shard : shards_) {
      shard.connections->join();
      shard.connections.reset();
      shard.channel->shutdown();
    }
    shards_.clear();
  }

  std::string note() const override { return note_; }

 private:
  struct Shard {
    std::unique_ptr<evchan::EventChannel> channel;
    std::unique_ptr<evchan::TaskGroup> connections;  // before the channel goes
  };

  void acceptLoop() {
    std::size_t next = 0;
    for (;;) {
      std::error_code ec;
      evchan::TcpSocket connection = listener_.accept(ec);
      if (ec) return;  // cancelled
      shards_[next].connections->spawn(serve, std::move(connection));
      next = (next + 1) % shards_.size();
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
  const bool sharded_;  // a one-worker channel per CPU
  std::vector<Shard> shards_;
  evchan::TaskHandle acceptor_;
  evchan::TcpListener listener_;
  std::string note_;
};

}  // namespace

namespace {

evchan::Backend backendNamed(const std::string& name) {
  evchan::Backend backend = evchan::Backend::Default;
  evchan::backendFromName(name, backend);
  return backend;
}

}  // namespace

std::unique_ptr<EchoServer> makeEvchanTaskServer(int threads, const std::string& backendName, bool monitor) {
  return std::make_unique<EvchanTaskServer>(threads, backendNamed(backendName), monitor, false);
}

std::unique_ptr<EchoServer> makeEvchanShardedTaskServer(const std::string& backendName) {
  return std::make_unique<EvchanTaskServer>(1, backendNamed(backendName), true, true);
}

}  // namespace bench
