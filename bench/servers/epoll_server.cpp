// SPDX-License-Identifier: Apache-2.0
// The baseline: a hand-written, single-threaded, level-triggered epoll loop.
// Per round trip it costs what an echo server must: one recv, one send and
// a share of one epoll_wait.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>

#include "servers/echo_server.h"
#include "servers/posix_listen.h"

namespace bench {
namespace {

class EpollServer final : public EchoServer {
 public:
  ~EpollServer() override { stop(); }

  int start(int port) override {
    int boundPort = 0;
    listenFd_ = listenLoopback(port, boundPort);
    epollFd_ = ::epoll_create1(EPOLL_CLOEXEC);
    stopFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (epollFd_ < 0 || stopFd_ < 0) throw std::system_error(errno, std::generic_category(), "epoll server");
    watch(listenFd_, EPOLLIN, &listenFd_);
    watch(stopFd_, EPOLLIN, &stopFd_);
    thread_ = std::thread([this] { run(); });
    return boundPort;
  }

  void stop() override {
    if (!thread_.joinable()) return;
    const std::uint64_t one = 1;
    while (::write(stopFd_, &one, sizeof one) < 0 && errno == EINTR) {
    }
    thread_.join();
    for (auto& entry : connections_) {
      ::close(entry.first);
      delete entry.second;
    }
    connections_.clear();
    ::close(listenFd_);
    ::close(epollFd_);
    ::close(stopFd_);
  }

 private:
  struct Connection {
    explicit Connection(int descriptor) : fd(descriptor) {}
    int fd;
    std::size_t pending = 0;  // bytes of buffer not yet written back
    std::size_t offset = 0;
    char buffer[kReadBufferSize];
  };

  void watch(int fd, std::uint32_t events, void* tag) {
    epoll_event event{};
    event.events = events;
    event.data.ptr = tag;
    if (::epoll_ctl(epollFd_, EPOLL_CTL_ADD, fd, &event) != 0)
      throw std::system_error(errno, std::generic_category(), "epoll_ctl");
  }

  void modify(Connection& c, std::uint32_t events) {
    epoll_event event{};
    event.events = events;
    event.data.ptr = &c;
    ::epoll_ctl(epollFd_, EPOLL_CTL_MOD, c.fd, &event);
  }

  void close(Connection* c) {
    ::close(c->fd);  // also leaves the epoll set
    connections_.erase(c->fd);
    delete c;
  }

  void acceptAll() {
    for (;;) {
      const int fd = ::accept4(listenFd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;  // EAGAIN, or a transient error: level-triggered, it comes back
      setNoDelay(fd);
      auto* c = new Connection(fd);
      connections_[fd] = c;
      watch(fd, EPOLLIN, c);
    }
  }

  // Writes what is pending; false when the connection failed.
  bool flush(Connection& c) {
    while (c.offset < c.pending) {
      const ssize_t n = ::send(c.fd, c.buffer + c.offset, c.pending - c.offset, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          modify(c, EPOLLOUT);  // stop reading until the echo is out
          return true;
        }
        return false;
      }
      c.offset += static_cast<std::size_t>(n);
    }
    c.pending = c.offset = 0;
    return true;
  }

  void onReadable(Connection& c) {
    const ssize_t n = ::recv(c.fd, c.buffer, sizeof c.buffer, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      close(&c);
      return;
    }
    if (n < 0) return;
    c.pending = static_cast<std::size_t>(n);
    c.offset = 0;
    if (!flush(c)) close(&c);
  }

  void onWritable(Connection& c) {
    if (!flush(c)) {
      close(&c);
    } else if (c.pending == 0) {
      modify(c, EPOLLIN);
    }
  }

  void run() {
    epoll_event events[256];
    for (;;) {
      const int count = ::epoll_wait(epollFd_, events, 256, -1);
      if (count < 0) {
        if (errno == EINTR) continue;
        return;
      }
      for (int i = 0; i < count; ++i) {
        void* tag = events[i].data.ptr;
        if (tag == &stopFd_) return;
        if (tag == &listenFd_) {
          acceptAll();
          continue;
        }
        auto& c = *static_cast<Connection*>(tag);
        if (c.pending != 0) {
          onWritable(c);
        } else {
          onReadable(c);
        }
      }
    }
  }

  int listenFd_ = -1;
  int epollFd_ = -1;
  int stopFd_ = -1;
  std::thread thread_;
  std::unordered_map<int, Connection*> connections_;  // touched by the loop thread, then by stop()
};

}  // namespace

std::unique_ptr<EchoServer> makeEpollServer() { return std::make_unique<EpollServer>(); }

}  // namespace bench
