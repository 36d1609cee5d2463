// SPDX-License-Identifier: Apache-2.0
// The evchan server: an EventChannel on one backend.  Each connection keeps
// one ReadEvent and one WriteEvent; the read's callback posts a write of
// the bytes read, the write's callback posts the rest (a partial write) or
// re-posts the read.  One AcceptEvent takes each new connection, starts
// its read and re-posts itself.
#include <sys/select.h>

#include <evchan/evchan.h>

#include <cstdio>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_set>

#include "servers/echo_server.h"

namespace bench {
namespace {

class EvchanServer final : public EchoServer {
 public:
  EvchanServer(evchan::Backend backend, int threads) : backend_(backend), threads_(threads) {}
  ~EvchanServer() override { stop(); }

  int start(int port) override {
    evchan::EventChannel::Options options;
    options.backend = backend_;
    options.initialThreads = threads_;
    channel_ = evchan::EventChannel::create(options);
    listener_ = evchan::TcpListener::listen({"127.0.0.1", port}, kListenBacklog);
    accept_ = std::make_unique<evchan::AcceptEvent>(listener_);
    accept_->setCallback([this](evchan::Event& event) { onAccept(event); });
    channel_->post(*accept_);
    return listener_.port();
  }

  void stop() override {
    if (!channel_) return;
    const evchan::ThreadPoolStats stats = channel_->poolStats();
    note_ = "evchan pool: " + std::to_string(stats.initial) + " initial, " + std::to_string(stats.peak) +
            " peak worker threads";
    // Cancels the pending reads and the accept; their callbacks (run before
    // shutdown() returns) delete the connections.
    channel_->shutdown();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (Connection* c : connections_) delete c;  // none expected; nothing of theirs is in flight
      connections_.clear();
    }
    accept_.reset();
    listener_.close();
    channel_.reset();
  }

  std::string cannotServe(int connections) const override {
    // select() watches descriptors below FD_SETSIZE only; the driver's
    // process holds a client and a server descriptor per connection.
    if (backend_ == evchan::Backend::Select && 2 * connections + 64 > FD_SETSIZE) {
      return "select watches only descriptors < FD_SETSIZE (" + std::to_string(FD_SETSIZE) + "); " +
             std::to_string(connections) + " connections need about " + std::to_string(2 * connections) +
             " in this process";
    }
    return {};
  }

  std::string note() const override { return note_; }

 private:
  struct Connection {
    explicit Connection(EvchanServer& owner, evchan::TcpSocket&& s)
        : server(owner), socket(std::move(s)), read(socket, buffer, sizeof buffer), write(socket, buffer, 0) {}

    EvchanServer& server;
    evchan::TcpSocket socket;
    char buffer[kReadBufferSize];
    evchan::ReadEvent read;
    evchan::WriteEvent write;
    std::size_t pending = 0;  // bytes read, to be written back
    std::size_t written = 0;
  };

  void onAccept(evchan::Event& event) {
    if (event.error()) {
      if (event.error() != std::errc::operation_canceled) {
        std::fprintf(stderr, "evchan server: accept: %s\n", event.error().message().c_str());
      }
      return;  // shut down (or the listener failed): no more accepts
    }
    auto* c = new Connection(*this, accept_->takeSocket());
    std::error_code ec;
    c->socket.setNoDelay(true, ec);
    c->read.setCallback([c](evchan::Event& e) { c->server.onRead(*c, e); });
    c->write.setCallback([c](evchan::Event& e) { c->server.onWrite(*c, e); });
    {
      std::lock_guard<std::mutex> lock(mutex_);
      connections_.insert(c);
    }
    channel_->post(c->read, ec);
    if (ec) drop(c);
    channel_->post(*accept_, ec);
  }

  void onRead(Connection& c, evchan::Event&) {
    if (c.read.error()) {  // end_of_stream when the client leaves; canceled at shutdown
      drop(&c);
      return;
    }
    c.pending = c.read.bytesTransferred();
    c.written = 0;
    c.write.setBuffer(c.buffer, c.pending);
    std::error_code ec;
    channel_->post(c.write, ec);
    if (ec) drop(&c);
  }

  void onWrite(Connection& c, evchan::Event&) {
    if (c.write.error()) {
      drop(&c);
      return;
    }
    c.written += c.write.bytesTransferred();
    std::error_code ec;
    if (c.written < c.pending) {
      c.write.setBuffer(c.buffer + c.written, c.pending - c.written);
      channel_->post(c.write, ec);
    } else {
      channel_->post(c.read, ec);
    }
    if (ec) drop(&c);
  }

  // Called when nothing of the connection is in flight (from its own
  // completion callback, or after a failed post).
  void drop(Connection* c) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      connections_.erase(c);
    }
    delete c;
  }

  const evchan::Backend backend_;
  const int threads_;
  std::unique_ptr<evchan::EventChannel> channel_;
  evchan::TcpListener listener_;
  std::unique_ptr<evchan::AcceptEvent> accept_;
  std::mutex mutex_;
  std::unordered_set<Connection*> connections_;
  std::string note_;
};

}  // namespace

std::unique_ptr<EchoServer> makeEvchanServer(const std::string& backendName, int threads) {
  evchan::Backend backend;
  if (!evchan::backendFromName(backendName, backend)) throw std::invalid_argument("unknown evchan backend " + backendName);
  return std::make_unique<EvchanServer>(backend, threads);
}

}  // namespace bench
