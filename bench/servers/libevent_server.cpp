// SPDX-License-Identifier: Apache-2.0
// libevent: one event_base on its own thread, with the plain event API (no
// bufferevents, whose extra copies would measure evbuffer rather than the
// loop): a persistent EV_READ event per connection that reads and writes
// the bytes back, switching to EV_WRITE only when the send would block.
// A persistent read event on an eventfd breaks the loop.
#include <event2/event.h>
#include <sys/eventfd.h>

#include <cerrno>
#include <cstdint>
#include <stdexcept>
#include <thread>
#include <unordered_set>

#include "servers/echo_server.h"
#include "servers/posix_listen.h"

namespace bench {
namespace {

class LibeventServer final : public EchoServer {
 public:
  ~LibeventServer() override { stop(); }

  int start(int port) override {
    int boundPort = 0;
    listenFd_ = listenLoopback(port, boundPort);
    stopFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    base_ = event_base_new();
    if (base_ == nullptr || stopFd_ < 0) throw std::runtime_error("libevent: event_base_new failed");
    acceptEvent_ = event_new(base_, listenFd_, EV_READ | EV_PERSIST, onAccept, this);
    stopEvent_ = event_new(base_, stopFd_, EV_READ | EV_PERSIST, onStop, this);
    event_add(acceptEvent_, nullptr);
    event_add(stopEvent_, nullptr);
    thread_ = std::thread([this] { event_base_dispatch(base_); });
    return boundPort;
  }

  void stop() override {
    if (thread_.joinable()) {
      const std::uint64_t one = 1;
      while (::write(stopFd_, &one, sizeof one) < 0 && errno == EINTR) {
      }
      thread_.join();
    }
    for (Connection* c : connections_) destroy(c);
    connections_.clear();
    if (acceptEvent_ != nullptr) event_free(acceptEvent_);
    if (stopEvent_ != nullptr) event_free(stopEvent_);
    if (base_ != nullptr) event_base_free(base_);
    if (listenFd_ >= 0) ::close(listenFd_);
    if (stopFd_ >= 0) ::close(stopFd_);
    acceptEvent_ = stopEvent_ = nullptr;
    base_ = nullptr;
    listenFd_ = stopFd_ = -1;
  }

 private:
  struct Connection {
    Connection(LibeventServer* owner, int descriptor) : server(owner), fd(descriptor) {}
    LibeventServer* server;
    int fd;
    event* readEvent = nullptr;
    event* writeEvent = nullptr;
    std::size_t pending = 0;
    std::size_t offset = 0;
    char buffer[kReadBufferSize];
  };

  static void destroy(Connection* c) {
    event_free(c->readEvent);
    event_free(c->writeEvent);
    ::close(c->fd);
    delete c;
  }

  void close(Connection* c) {
    connections_.erase(c);
    destroy(c);
  }

  static void onAccept(evutil_socket_t, short, void* arg) {
    auto& self = *static_cast<LibeventServer*>(arg);
    for (;;) {
      const int fd = ::accept4(self.listenFd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      setNoDelay(fd);
      auto* c = new Connection(&self, fd);
      c->readEvent = event_new(self.base_, fd, EV_READ | EV_PERSIST, onReadable, c);
      c->writeEvent = event_new(self.base_, fd, EV_WRITE | EV_PERSIST, onWritable, c);
      self.connections_.insert(c);
      event_add(c->readEvent, nullptr);
    }
  }

  // Writes what is pending; false when the connection failed.
  static bool flush(Connection* c) {
    while (c->offset < c->pending) {
      const ssize_t n = ::send(c->fd, c->buffer + c->offset, c->pending - c->offset, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
        return false;
      }
      c->offset += static_cast<std::size_t>(n);
    }
    c->pending = c->offset = 0;
    return true;
  }

  static void onReadable(evutil_socket_t fd, short, void* arg) {
    auto* c = static_cast<Connection*>(arg);
    const ssize_t n = ::recv(fd, c->buffer, sizeof c->buffer, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      c->server->close(c);
      return;
    }
    if (n < 0) return;
    c->pending = static_cast<std::size_t>(n);
    c->offset = 0;
    if (!flush(c)) {
      c->server->close(c);
    } else if (c->pending != 0) {  // would block: wait for room, stop reading meanwhile
      event_del(c->readEvent);
      event_add(c->writeEvent, nullptr);
    }
  }

  static void onWritable(evutil_socket_t, short, void* arg) {
    auto* c = static_cast<Connection*>(arg);
    if (!flush(c)) {
      c->server->close(c);
    } else if (c->pending == 0) {
      event_del(c->writeEvent);
      event_add(c->readEvent, nullptr);
    }
  }

  static void onStop(evutil_socket_t, short, void* arg) {
    event_base_loopbreak(static_cast<LibeventServer*>(arg)->base_);
  }

  int listenFd_ = -1;
  int stopFd_ = -1;
  event_base* base_ = nullptr;
  event* acceptEvent_ = nullptr;
  event* stopEvent_ = nullptr;
  std::thread thread_;
  std::unordered_set<Connection*> connections_;  // the loop thread's, then stop()'s
};

}  // namespace

std::unique_ptr<EchoServer> makeLibeventServer() { return std::make_unique<LibeventServer>(); }

}  // namespace bench
