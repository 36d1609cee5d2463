// SPDX-License-Identifier: Apache-2.0
// many_connections_bench: many concurrent TCP connections, each served by
// its own task parked in TcpSocket::readSome, and what one costs in
// resident memory.
//
//   many_connections_bench [--connections N] [--stack BYTES] [--threads N]
//
// The clients live in a forked child (plain POSIX sockets), so that each
// process stays under its descriptor limit; both raise RLIMIT_NOFILE to
// the hard limit.  The parent accepts N connections (default 15,000) in an
// acceptor task, spawns an echo task per connection and measures VmRSS
// once every task is parked in readSome; then the child sends one message
// per connection and checks each echo (timed).  The channel's shutdown
// then cancels the parked reads and the tasks close their sockets.
// Target: under 16 KiB resident per connection, task and stack included.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <evchan/evchan.h>

#include "scale_common.h"
#include "posix/stack_pool.h"

namespace {

using namespace std::chrono_literals;
using evchan::Errc;
using evchan::EventChannel;
using evchan::TaskHandle;
using evchan::TcpListener;
using evchan::TcpSocket;
using scale_bench::Clock;
using scale_bench::waitUntil;
using scale_bench::secondsSince;

constexpr double kTargetKiB = 16.0;
constexpr int kChildPatienceSeconds = 60;

void usage() {
  std::fprintf(stderr, "usage: many_connections_bench [--connections N] [--stack BYTES] [--threads N]\n");
  std::exit(2);
}

// ---------------------------------------------------------------- pipes
// Small fixed-size messages over pipes, each read bounded by a poll.
struct Message {
  char tag;           // 'P' port, 'C' connected, 'G' go, 'E' echoed, 'Q' quit
  std::int64_t a, b;  // payload
};

bool sendMessage(int fd, char tag, std::int64_t a = 0, std::int64_t b = 0) {
  Message m{tag, a, b};
  return write(fd, &m, sizeof m) == static_cast<ssize_t>(sizeof m);
}

bool receiveMessage(int fd, Message& m, int timeoutSeconds) {
  struct pollfd p {fd, POLLIN, 0};
  int ready;
  do ready = poll(&p, 1, timeoutSeconds * 1000);
  while (ready < 0 && errno == EINTR);
  if (ready <= 0) return false;
  return read(fd, &m, sizeof m) == static_cast<ssize_t>(sizeof m);
}

// ---------------------------------------------------------------- child
// Connects `count` sockets to 127.0.0.1:port, then on 'G' writes 8 bytes
// on each and reads back the echo.  Runs in a forked process before the
// parent starts any thread; uses plain system calls only.
int clientMain(int fromParent, int toParent, long count) {
  scale_bench::raiseDescriptorLimit();
  Message m{};
  if (!receiveMessage(fromParent, m, kChildPatienceSeconds) || m.tag != 'P') return 10;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(m.a));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::vector<int> sockets;
  sockets.reserve(count);
  const Clock::time_point connectStart = Clock::now();
  int connectErrno = 0;
  for (long i = 0; i < count; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
      connectErrno = errno;
      break;
    }
    timeval timeout{10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      connectErrno = errno;
      close(fd);
      break;
    }
    sockets.push_back(fd);
  }
  const long connected = static_cast<long>(sockets.size());
  sendMessage(toParent, 'C', connected,
              connectErrno != 0 ? connectErrno : static_cast<std::int64_t>(secondsSince(connectStart) * 1e6));
  if (!receiveMessage(fromParent, m, kChildPatienceSeconds) || m.tag != 'G') return 11;
  // One round: every message out first, then every echo back.
  const Clock::time_point roundStart = Clock::now();
  long echoed = 0;
  for (long i = 0; i < connected; ++i) {
    const std::uint64_t word = 0x5ca1e00000000000ull + static_cast<std::uint64_t>(i);
    if (send(sockets[i], &word, sizeof word, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof word)) break;
  }
  for (long i = 0; i < connected; ++i) {
    std::uint64_t word = 0;
    std::size_t got = 0;
    while (got < sizeof word) {
      const ssize_t n = recv(sockets[i], reinterpret_cast<char*>(&word) + got, sizeof word - got, 0);
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    if (got == sizeof word && word == 0x5ca1e00000000000ull + static_cast<std::uint64_t>(i)) ++echoed;
  }
  sendMessage(toParent, 'E', echoed, static_cast<std::int64_t>(secondsSince(roundStart) * 1e6));
  // Closed after the server side, which keeps TIME_WAIT off the client's ports.
  receiveMessage(fromParent, m, kChildPatienceSeconds);
  for (int fd : sockets) close(fd);
  return echoed == count ? 0 : 1;
}

// Waits up to `seconds` for the child; kills it when it does not end.
int reapChild(pid_t child, int seconds) {
  int status = 0;
  const Clock::time_point deadline = Clock::now() + std::chrono::seconds(seconds);
  for (;;) {
    const pid_t done = waitpid(child, &status, WNOHANG);
    if (done == child) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (done < 0) return -1;
    if (Clock::now() > deadline) {
      kill(child, SIGKILL);
      waitpid(child, &status, 0);
      return -2;
    }
    std::this_thread::sleep_for(5ms);
  }
}

}  // namespace

int main(int argc, char** argv) {
  long connections = 15000;
  std::size_t stackSize = 0;
  int threads = 0;
  for (int i = 1; i < argc; ++i) {
    if (i + 1 >= argc) usage();
    if (std::strcmp(argv[i], "--connections") == 0) {
      connections = scale_bench::parseCount("--connections", argv[++i]);
    } else if (std::strcmp(argv[i], "--stack") == 0) {
      stackSize = static_cast<std::size_t>(scale_bench::parseCount("--stack", argv[++i]));
    } else if (std::strcmp(argv[i], "--threads") == 0) {
      threads = static_cast<int>(scale_bench::parseCount("--threads", argv[++i]));
    } else {
      usage();
    }
  }
  const long fdLimit = scale_bench::raiseDescriptorLimit();

  // Fork the clients before any thread exists.
  int down[2], up[2];
  if (pipe(down) != 0 || pipe(up) != 0) {
    std::perror("pipe");
    return 1;
  }
  const pid_t child = fork();
  if (child < 0) {
    std::perror("fork");
    return 1;
  }
  if (child == 0) {
    close(down[1]);
    close(up[0]);
    _exit(clientMain(down[0], up[1], connections));
  }
  close(down[0]);
  close(up[1]);
  const int toChild = down[1], fromChild = up[0];

  EventChannel::Options options;
  options.initialThreads = threads;
  if (stackSize != 0) options.taskStackSize = stackSize;
  std::unique_ptr<EventChannel> channel = EventChannel::create(options);
  std::printf("many_connections_bench: %ld connections, each served by a task parked in readSome; clients in a "
              "forked child\n",
              connections);
  std::printf("  backend %s, %d workers, stack size %zu bytes, descriptor limit %ld per process\n",
              channel->backendName(), channel->poolStats().current, options.taskStackSize, fdLimit);

  TcpListener listener = TcpListener::listen({"127.0.0.1", 0}, 4096);
  std::vector<TcpSocket> sockets(static_cast<std::size_t>(connections));
  std::vector<TaskHandle> servers(static_cast<std::size_t>(connections));
  std::atomic<long> accepted{0}, parked{0}, echoed{0}, ended{0}, cleanEnds{0};
  std::atomic<long> acceptFailures{0};
  // Warm up the task machinery (worker contexts, stack pool) before the baseline.
  channel->spawn([] { evchan::this_task::sleepFor(1ms); }).join();
  const long rssBefore = scale_bench::residentKiB();
  const std::size_t heapBefore = scale_bench::heapInUse();
  const long mapsBefore = scale_bench::mappingCount();
  const std::size_t guardedBefore = evchan::detail::StackPool::guardedStacks();
  EventChannel* ch = channel.get();

  // Each connection's task: echo until the stream ends or the read is
  // cancelled by the shutdown, then close.
  auto serve = [&](long index) {
    TcpSocket& socket = sockets[index];
    char buffer[64];
    bool first = true;
    for (;;) {
      if (first) parked.fetch_add(1, std::memory_order_relaxed);
      first = false;
      std::error_code ec;
      const std::size_t n = socket.readSome(buffer, sizeof buffer, ec);
      if (ec) {
        if (ec == Errc::end_of_stream || ec == std::errc::operation_canceled) cleanEnds.fetch_add(1);
        break;
      }
      socket.writeAll(buffer, n, ec);
      if (ec) break;
      echoed.fetch_add(1, std::memory_order_relaxed);
    }
    socket.close();
    ended.fetch_add(1, std::memory_order_relaxed);
  };
  TaskHandle acceptor = channel->spawn([&] {
    for (long i = 0; i < connections; ++i) {
      std::error_code ec;
      sockets[i] = listener.accept(ec);
      if (ec) {
        acceptFailures.fetch_add(1);
        std::printf("  accept failed after %ld: %s\n", i, ec.message().c_str());
        return;
      }
      servers[i] = ch->spawn([&serve, i] { serve(i); });
      accepted.fetch_add(1, std::memory_order_relaxed);
    }
  });

  int exitCode = 0;
  Message m{};
  const Clock::time_point connectStart = Clock::now();
  sendMessage(toChild, 'P', listener.port());
  if (!receiveMessage(fromChild, m, kChildPatienceSeconds) || m.tag != 'C') {
    std::printf("  FAILED: the child did not report its connections\n");
    exitCode = 1;
  } else if (m.a != connections) {
    std::printf("  FAILED: the child connected %lld of %ld: %s\n", static_cast<long long>(m.a), connections,
                std::strerror(static_cast<int>(m.b)));
    exitCode = 1;
  }
  const bool allParked = exitCode == 0 && waitUntil(parked, connections, 30s);
  const double setupSeconds = secondsSince(connectStart);
  std::this_thread::sleep_for(300ms);  // the last tasks switch out and register their reads
  const long rssParked = scale_bench::residentKiB();
  const double heapPerConnection = double(scale_bench::heapInUse() - heapBefore) / connections;
  const long mapsParked = scale_bench::mappingCount();
  const std::size_t guarded = evchan::detail::StackPool::guardedStacks() - guardedBefore;
  const double perConnectionKiB = double(rssParked - rssBefore) / connections;
  if (exitCode == 0) {
    std::printf("  connected, accepted and parked %ld in %.2f s%s\n", parked.load(), setupSeconds,
                allParked ? "" : " (NOT ALL PARKED within 30 s)");
    std::printf("  VmRSS %ld KiB before, %ld KiB with every connection parked: +%ld KiB\n", rssBefore, rssParked,
                rssParked - rssBefore);
    std::printf("  per connection: %.2f KiB resident (guarded stacks %zu of %ld); malloc in use %.0f bytes per "
                "connection (APR pool block, TaskState, socket state; not all of it touched)\n",
                perConnectionKiB, guarded, connections + 1, heapPerConnection);
    std::printf("  mappings %ld -> %ld (a guarded stack is two)\n", mapsBefore, mapsParked);
    if (!allParked) exitCode = 1;
  }

  if (exitCode == 0) {
    sendMessage(toChild, 'G');
    if (!receiveMessage(fromChild, m, kChildPatienceSeconds) || m.tag != 'E') {
      std::printf("  FAILED: the child did not report the echo round\n");
      exitCode = 1;
    } else {
      const double seconds = static_cast<double>(m.b) / 1e6;
      std::printf("  one echo per connection: %lld of %ld echoed in %.3f s (%.0f echoes/s, %.1f us each)\n",
                  static_cast<long long>(m.a), connections, seconds, m.a / seconds, seconds * 1e6 / connections);
      if (m.a != connections) exitCode = 1;
    }
  }

  // Release: the shutdown cancels every parked read; the tasks close their
  // sockets (server side first, so TIME_WAIT stays off the client's ports).
  const Clock::time_point releaseStart = Clock::now();
  channel->shutdown();
  const bool allEnded = waitUntil(ended, accepted.load(), 30s);
  acceptor.join();
  listener.close();
  long joinFailures = 0;
  for (TaskHandle& server : servers) {
    if (!server.valid()) continue;
    try {
      server.join();
    } catch (const std::exception& e) {
      if (joinFailures++ == 0) std::printf("  join failed: %s\n", e.what());
    }
  }
  std::printf("  released and joined %ld tasks in %.2f s: ended %ld (cancelled or end of stream %ld), "
              "join failures %ld\n",
              accepted.load(), secondsSince(releaseStart), ended.load(), cleanEnds.load(), joinFailures);
  if (!allEnded || joinFailures != 0 || cleanEnds.load() != accepted.load()) exitCode = 1;
  sendMessage(toChild, 'Q');
  const int childStatus = reapChild(child, 30);
  if (childStatus != 0) {
    std::printf("  FAILED: the client process ended with status %d\n", childStatus);
    exitCode = 1;
  }
  close(toChild);
  close(fromChild);

  std::printf("resident memory per connection: %.2f KiB (target < %.0f KiB): %s\n", perConnectionKiB, kTargetKiB,
              perConnectionKiB < kTargetKiB ? "met" : "missed");
  if (exitCode != 0) std::printf("many_connections_bench: FAILED\n");
  return exitCode;
}
