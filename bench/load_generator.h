// SPDX-License-Identifier: Apache-2.0
// The load generator of echo_bench and growth_bench: N connections in a
// closed loop on one epoll thread (POSIX sockets, Linux epoll).
#ifndef EVCHAN_BENCH_LOAD_GENERATOR_H
#define EVCHAN_BENCH_LOAD_GENERATOR_H

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <functional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace bench {

/// What one load generator run measured.
struct LoadResult {
  double roundTripsPerSecond = 0;
  std::uint64_t roundTrips = 0;
  double serverCpuSeconds = 0;  // CPU time of every thread but the load generator's
  double clientCpuSeconds = 0;  // the load generator's own
  double seconds = 0;           // the measured interval
  std::string error;            // non-empty: the server misbehaved
};

/// A CPU clock (CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID) in seconds.
inline double cpuSeconds(clockid_t clock) {
  timespec t{};
  ::clock_gettime(clock, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

/// A closed-loop load generator: a single-threaded, level-triggered epoll
/// loop on the calling thread with N connections to 127.0.0.1:port, each
/// sending a message and waiting for its whole echo (checked) before
/// sending the next.
class LoadGenerator {
 public:
  LoadGenerator(int port, int connections, std::size_t messageSize)
      : port_(port), connections_(connections), size_(messageSize) {}
  ~LoadGenerator() {
    for (Client& c : clients_) {
      if (c.fd >= 0) ::close(c.fd);
    }
    if (epollFd_ >= 0) ::close(epollFd_);
  }
  LoadGenerator(const LoadGenerator&) = delete;
  LoadGenerator& operator=(const LoadGenerator&) = delete;

  /// Connects, runs the warm-up, then measures for `measureSeconds`.
  /// `onMeasure`, when set, is called as the measured interval starts
  /// (growth_bench tells the server's process to read its CPU clock).
  LoadResult run(double warmupSeconds, double measureSeconds, const std::function<void()>& onMeasure = {}) {
    // Named while it drives a server, so that per-thread profiles (perf
    // stat --per-thread, top -H) tell it from the server's threads, which
    // started earlier and keep the process's name.
    char name[16] = {};
    ::pthread_getname_np(::pthread_self(), name, sizeof name);
    ::pthread_setname_np(::pthread_self(), "loadgen");
    LoadResult result;
    try {
      connectAll();
      result = loop(warmupSeconds, measureSeconds, onMeasure);
    } catch (const std::exception& e) {
      result.error = e.what();
    }
    ::pthread_setname_np(::pthread_self(), name);
    return result;
  }

 private:
  struct Client {
    int fd = -1;
    std::uint64_t sequence = 0;
    std::size_t sent = 0;      // of the current message
    std::size_t received = 0;  // of its echo
    std::vector<unsigned char> out;
    std::vector<unsigned char> in;
  };

  [[noreturn]] static void fail(const std::string& what) { throw std::runtime_error(what); }
  [[noreturn]] static void failErrno(const std::string& what) {
    throw std::system_error(errno, std::generic_category(), what);
  }

  void connectAll() {
    epollFd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epollFd_ < 0) failErrno("epoll_create1");
    clients_.resize(static_cast<std::size_t>(connections_));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port_));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (std::size_t i = 0; i < clients_.size(); ++i) {
      Client& c = clients_[i];
      c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (c.fd < 0) failErrno("client socket");
      // Blocking connect: on loopback it completes as soon as the kernel
      // queues the connection for accept (the backlog is large enough).
      if (::connect(c.fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) failErrno("client connect");
      const int one = 1;
      ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      ::fcntl(c.fd, F_SETFL, ::fcntl(c.fd, F_GETFL) | O_NONBLOCK);
      c.out.resize(size_);
      c.in.resize(size_);
      for (std::size_t b = 0; b < size_; ++b) c.out[b] = static_cast<unsigned char>(i * 31 + b * 7);
      epoll_event event{};
      event.events = EPOLLIN;
      event.data.ptr = &c;
      if (::epoll_ctl(epollFd_, EPOLL_CTL_ADD, c.fd, &event) != 0) failErrno("epoll_ctl");
    }
  }

  // Sends (the rest of) the client's current message.
  void send(Client& c) {
    while (c.sent < size_) {
      const ssize_t n = ::send(c.fd, c.out.data() + c.sent, size_ - c.sent, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          watch(c, EPOLLIN | EPOLLOUT);  // rare: finish when there is room
          return;
        }
        failErrno("client send");
      }
      c.sent += static_cast<std::size_t>(n);
    }
  }

  void watch(Client& c, std::uint32_t events) {
    epoll_event event{};
    event.events = events;
    event.data.ptr = &c;
    ::epoll_ctl(epollFd_, EPOLL_CTL_MOD, c.fd, &event);
  }

  void startMessage(Client& c) {
    ++c.sequence;
    std::memcpy(c.out.data(), &c.sequence, sizeof c.sequence);  // every message differs
    c.sent = c.received = 0;
    send(c);
  }

  // True when a whole echo arrived (and was checked).
  bool receive(Client& c) {
    const ssize_t n = ::recv(c.fd, c.in.data() + c.received, size_ - c.received, 0);
    if (n == 0) fail("the server closed a connection");
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return false;
      failErrno("client recv");
    }
    c.received += static_cast<std::size_t>(n);
    if (c.received < size_) return false;
    if (c.sent < size_ || std::memcmp(c.in.data(), c.out.data(), size_) != 0) fail("the echo differs from the message");
    return true;
  }

  LoadResult loop(double warmupSeconds, double measureSeconds, const std::function<void()>& onMeasure) {
    using Clock = std::chrono::steady_clock;
    for (Client& c : clients_) startMessage(c);
    std::vector<epoll_event> events(1024);
    const auto toDuration = [](double s) {
      return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
    };
    bool measuring = false;
    std::uint64_t count = 0;
    Clock::time_point now = Clock::now();
    Clock::time_point phaseStart = now;
    Clock::time_point phaseEnd = now + toDuration(warmupSeconds);
    Clock::time_point lastProgress = now;
    double processCpuStart = 0, threadCpuStart = 0;
    for (;;) {
      const int ready = ::epoll_wait(epollFd_, events.data(), static_cast<int>(events.size()), 100);
      if (ready < 0 && errno != EINTR) failErrno("epoll_wait");
      for (int i = 0; i < ready; ++i) {
        Client& c = *static_cast<Client*>(events[i].data.ptr);
        if ((events[i].events & EPOLLOUT) && c.sent < size_) {
          send(c);
          if (c.sent == size_) watch(c, EPOLLIN);
        }
        if ((events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && receive(c)) {
          ++count;
          startMessage(c);
        }
      }
      now = Clock::now();
      if (ready > 0) {
        lastProgress = now;
      } else if (now - lastProgress > std::chrono::seconds(5)) {
        fail("no echo for 5 s");
      }
      if (now < phaseEnd) continue;
      if (!measuring) {
        measuring = true;
        count = 0;
        phaseStart = now;
        phaseEnd = now + toDuration(measureSeconds);
        if (onMeasure) onMeasure();
        processCpuStart = cpuSeconds(CLOCK_PROCESS_CPUTIME_ID);
        threadCpuStart = cpuSeconds(CLOCK_THREAD_CPUTIME_ID);
        continue;
      }
      // The process's CPU time less this thread's is the server's when it
      // runs in this process: its threads are the only others alive (each
      // cell joins its server).
      const double clientCpu = cpuSeconds(CLOCK_THREAD_CPUTIME_ID) - threadCpuStart;
      const double processCpu = cpuSeconds(CLOCK_PROCESS_CPUTIME_ID) - processCpuStart;
      LoadResult result;
      result.roundTrips = count;
      result.seconds = std::chrono::duration<double>(now - phaseStart).count();
      result.roundTripsPerSecond = static_cast<double>(count) / result.seconds;
      result.clientCpuSeconds = clientCpu;
      result.serverCpuSeconds = processCpu - clientCpu;
      return result;
    }
  }

  const int port_;
  const int connections_;
  const std::size_t size_;
  int epollFd_ = -1;
  std::vector<Client> clients_;
};

}  // namespace bench

#endif  // EVCHAN_BENCH_LOAD_GENERATOR_H
