// SPDX-License-Identifier: Apache-2.0
// Scale: 100,000 tasks parked at once on timers, and 5,000 connections
// each served by a task parked in TcpSocket::readSome (the clients in a
// forked child process, so each process stays well under its descriptor
// limit).  Every task is released and joined; the resident memory each
// costs is bounded generously (the benchmarks bench/parked_tasks_bench and
// bench/many_connections_bench measure it against the real targets).
// And every backend but select waits on more sockets at once than the
// apr_pollset backend's first set holds.
#include <cppunit/extensions/HelperMacros.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <evchan/evchan.h>

#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/posix/descriptor_limit.h"
#include "support/skip.h"
#include "support/waiting.h"

namespace {

using namespace std::chrono_literals;
using evchan::Duration;
using evchan::Errc;
using evchan::EventChannel;
using evchan::TaskHandle;
using evchan::TcpListener;
using evchan::TcpSocket;
using evchan::test::Clock;
using evchan::test::describe;
using evchan::test::eventually;
using evchan::test::allWorkersIdle;
using evchan::test::requireDescriptors;
namespace this_task = evchan::this_task;

// Sanitizers add shadow memory and redzones to every allocation: there the
// memory bounds say nothing about evchan and only the behaviour is checked.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kMemoryBoundsMeaningful = false;
#else
constexpr bool kMemoryBoundsMeaningful = true;
#endif

constexpr long kParkedTasks = 100000;
// Issue 17: one stack page and the heap a task needs, with room to spare,
// but not a second page (6 KiB with 4 KiB pages).
double parkedTaskBoundKiB() { return 2.0 + double(sysconf(_SC_PAGESIZE)) / 1024.0; }
constexpr long kConnections = 5000;
constexpr double kConnectionBoundKiB = 32.0;
// Every wait of the test is bounded by this, stretched like every patience
// (evchan::test::generous); the child gives up after it too.
constexpr Duration kPatience = 20s;

// kPatience stretched, in whole seconds: what the client process and the
// test wait for each other's messages.  The parent's waits between two
// messages are stretched, so the child's must be too (under ThreadSanitizer
// parking 5,000 readers can take longer than 20 s, and a child that gave
// up closed every connection: all the readers ended before any data).
int childPatienceSeconds() {
  return static_cast<int>(std::chrono::ceil<std::chrono::seconds>(evchan::test::generous(kPatience)).count());
}

/// VmRSS of this process, in KiB; -1 where unknown.
long residentKiB() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.compare(0, 6, "VmRSS:") == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

std::string count(long value) { return std::to_string(value); }

// ---- the client process: plain system calls, bounded waits.

/// A fixed-size message over a pipe.
struct Message {
  char tag;  // 'P' port, 'C' connected, 'G' go, 'E' echoed, 'Q' quit
  std::int64_t value;
};

bool sendMessage(int fd, char tag, std::int64_t value = 0) {
  const Message m{tag, value};
  return write(fd, &m, sizeof m) == static_cast<ssize_t>(sizeof m);
}

/// False when nothing arrives within `seconds` (or the peer is gone).
bool receiveMessage(int fd, Message& m, int seconds) {
  pollfd p{fd, POLLIN, 0};
  int ready;
  do ready = poll(&p, 1, seconds * 1000);
  while (ready < 0 && errno == EINTR);
  return ready > 0 && read(fd, &m, sizeof m) == static_cast<ssize_t>(sizeof m);
}

/// The child: connects `connections` sockets to the port the parent sends,
/// reports how many, waits for 'G', sends one 8-byte word per connection,
/// checks every echo, reports how many matched, and closes them on 'Q'.
/// System calls only, never malloc (`sockets` has room for every socket
/// already): a lock another thread of the parent held at the fork stays
/// held in the child.
int clientMain(int fromParent, int toParent, long connections, std::vector<int>& sockets) {
  Message m{};
  if (!receiveMessage(fromParent, m, childPatienceSeconds()) || m.tag != 'P') return 10;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(m.value));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (long i = 0; i < connections; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) break;
    timeval timeout{10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      close(fd);
      break;
    }
    sockets.push_back(fd);
  }
  sendMessage(toParent, 'C', static_cast<std::int64_t>(sockets.size()));
  if (!receiveMessage(fromParent, m, childPatienceSeconds()) || m.tag != 'G') return 11;
  for (std::size_t i = 0; i < sockets.size(); ++i) {
    const std::uint64_t word = 0xec40000000000000ull + i;
    if (send(sockets[i], &word, sizeof word, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof word)) break;
  }
  long echoed = 0;
  for (std::size_t i = 0; i < sockets.size(); ++i) {
    std::uint64_t word = 0;
    std::size_t got = 0;
    while (got < sizeof word) {
      const ssize_t n = recv(sockets[i], reinterpret_cast<char*>(&word) + got, sizeof word - got, 0);
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    if (got == sizeof word && word == 0xec40000000000000ull + i) ++echoed;
  }
  sendMessage(toParent, 'E', echoed);
  // Closed once the server side has closed (TIME_WAIT stays off the
  // client's ephemeral ports), or when the parent is gone.
  receiveMessage(fromParent, m, childPatienceSeconds());
  for (int fd : sockets) close(fd);
  return echoed == connections ? 0 : 1;
}

/// The forked client process and its two pipes.  The destructor closes the
/// pipes and reaps the child, killing it if it has not ended in time: a
/// failed assertion never leaves a process or a descriptor behind.
class ClientProcess {
 public:
  explicit ClientProcess(long connections) {
    int down[2], up[2];
    CPPUNIT_ASSERT_MESSAGE("pipe", pipe(down) == 0);
    if (pipe(up) != 0) {
      close(down[0]);
      close(down[1]);
      CPPUNIT_FAIL("pipe");
    }
    std::vector<int> sockets;
    sockets.reserve(static_cast<std::size_t>(connections));
    pid_ = fork();
    if (pid_ == 0) {
      close(down[1]);
      close(up[0]);
      _exit(clientMain(down[0], up[1], connections, sockets));
    }
    close(down[0]);
    close(up[1]);
    toChild_ = down[1];
    fromChild_ = up[0];
    CPPUNIT_ASSERT_MESSAGE("fork: " + std::string(std::strerror(errno)), pid_ > 0);
  }
  ~ClientProcess() {
    if (pid_ > 0 && status_ == kRunning) wait(std::chrono::seconds(0));
    close(toChild_);
    close(fromChild_);
  }
  ClientProcess(const ClientProcess&) = delete;
  ClientProcess& operator=(const ClientProcess&) = delete;

  bool send(char tag, std::int64_t value = 0) { return sendMessage(toChild_, tag, value); }
  bool receive(char tag, std::int64_t& value) {
    Message m{};
    if (!receiveMessage(fromChild_, m, childPatienceSeconds()) || m.tag != tag) return false;
    value = m.value;
    return true;
  }

  /// Waits up to `patience` for the child to exit, then kills it.  Its exit
  /// status; 128 + signal when killed or crashed.
  int wait(Duration patience) {
    if (status_ != kRunning) return status_;
    const Clock::time_point deadline = Clock::now() + patience;
    int status = 0;
    for (;;) {
      const pid_t done = waitpid(pid_, &status, WNOHANG);
      if (done == pid_) break;
      if (done < 0 || Clock::now() >= deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(5ms);
    }
    status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return status_;
  }

 private:
  static constexpr int kRunning = -1;
  pid_t pid_ = -1;
  int toChild_ = -1;
  int fromChild_ = -1;
  int status_ = kRunning;
};

/// Shuts the channel down on every way out of a test (a failed assertion
/// too), before the locals its tasks use go away: the shutdown cancels the
/// parked timers and reads and runs the tasks to their end.
class ShutDownOnExit {
 public:
  explicit ShutDownOnExit(EventChannel& channel) : channel_(channel) {}
  ~ShutDownOnExit() { channel_.shutdown(); }
  ShutDownOnExit(const ShutDownOnExit&) = delete;
  ShutDownOnExit& operator=(const ShutDownOnExit&) = delete;

 private:
  EventChannel& channel_;
};

}  // namespace

class ScaleTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(ScaleTest);
  CPPUNIT_TEST(testHundredThousandParkedTasks);
  CPPUNIT_TEST(testFiveThousandConnectionsParkedInReadSome);
  CPPUNIT_TEST(testEveryBackendWaitsOnMoreSocketsThanAFirstSetHolds);
  CPPUNIT_TEST_SUITE_END();

 public:
  // 100,000 tasks asleep on a one-hour timer at once: no thread and no
  // descriptor each.  The shutdown cancels the timers, which wakes them all
  // early; every one ends and joins.
  void testHundredThousandParkedTasks() {
#if defined(__SANITIZE_THREAD__)
    // Every task is a ThreadSanitizer fiber, and it dies at 8,128 threads
    // and fibers alive at once ("Thread limit (8128 threads) exceeded").
    EVCHAN_SKIP("ThreadSanitizer allows 8,128 threads and fibers at once, not " + count(kParkedTasks) + " tasks");
#endif
    std::atomic<long> parked{0}, woken{0}, early{0};
    std::vector<TaskHandle> tasks(kParkedTasks);  // touched before the baseline
    EventChannel::Options options;
    options.initialThreads = 2;
    std::unique_ptr<EventChannel> channel = EventChannel::create(options);
    ShutDownOnExit shutDown(*channel);
    channel->spawn([] { this_task::sleepFor(1ms); }).join();  // warm up the workers and stack pool
    const long before = residentKiB();
    CPPUNIT_ASSERT(before > 0);

    for (long i = 0; i < kParkedTasks; ++i) {
      tasks[i] = channel->spawn([&] {
        const Clock::time_point start = Clock::now();
        parked.fetch_add(1, std::memory_order_relaxed);
        try {
          this_task::sleepFor(1h);
        } catch (const evchan::SystemError& e) {
          // The shutdown's cancellation, the one way out of an hour's sleep here.
          if (e.code() == std::errc::operation_canceled && Clock::now() - start < 10min) {
            early.fetch_add(1, std::memory_order_relaxed);
          }
        }
        woken.fetch_add(1, std::memory_order_relaxed);
      });
    }
    CPPUNIT_ASSERT_MESSAGE("parked " + count(parked.load()) + " of " + count(kParkedTasks),
                           eventually([&] { return parked.load() == kParkedTasks; }, kPatience));
    CPPUNIT_ASSERT(allWorkersIdle(*channel, kPatience));  // the last ones switched out and posted their timers
    CPPUNIT_ASSERT_EQUAL_MESSAGE("a task woke before the shutdown", 0L, woken.load());
    const long after = residentKiB();
    const double perTask = double(after - before) / kParkedTasks;
    std::printf("scale_test: %ld parked tasks: VmRSS +%ld KiB, %.2f KiB per task\n", kParkedTasks, after - before,
                perTask);
    if (kMemoryBoundsMeaningful) {
      CPPUNIT_ASSERT_MESSAGE("resident memory per parked task " + std::to_string(perTask) + " KiB, bound " +
                                 std::to_string(parkedTaskBoundKiB()) + " KiB",
                             perTask < parkedTaskBoundKiB());
      // Something was measured: at least the one stack page each task touched.
      CPPUNIT_ASSERT_MESSAGE("implausibly small: " + std::to_string(perTask) + " KiB per task", perTask >= 2.0);
    }

    const Clock::time_point releaseStart = Clock::now();
    channel->shutdown();
    CPPUNIT_ASSERT_MESSAGE("woken " + count(woken.load()) + " of " + count(kParkedTasks),
                           eventually([&] { return woken.load() == kParkedTasks; }, kPatience));
    for (TaskHandle& task : tasks) {
      CPPUNIT_ASSERT_MESSAGE("task " + std::to_string(task.id()) + " did not end in time",
                             eventually([&] { return task.done(); }, kPatience));
      task.join();
    }
    CPPUNIT_ASSERT_EQUAL_MESSAGE("tasks released early by the shutdown's cancellation", kParkedTasks, early.load());
    std::printf("scale_test: released and joined %ld tasks in %lld ms\n", kParkedTasks,
                static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() -
                                                                                             releaseStart)
                                           .count()));
  }

  // 5,000 connections from a child process, each served by its own task
  // parked in readSome (infinite timeout: nothing but data, the peer or the
  // shutdown releases it).  One echo per connection, then the shutdown
  // cancels the parked reads and the tasks close their sockets.
  void testFiveThousandConnectionsParkedInReadSome() {
    requireDescriptors(kConnections + 200);
    const char* backend = std::getenv("EVCHAN_BACKEND");
    if (backend != nullptr && std::string(backend) == "select") {
      EVCHAN_SKIP("EVCHAN_BACKEND=select watches descriptors below FD_SETSIZE only");
    }

    // Forked before the channel starts its threads.
    ClientProcess client(kConnections);
    std::atomic<long> accepted{0}, parked{0}, echoes{0}, ended{0}, cleanEnds{0};
    std::atomic<long> acceptFailures{0};
    std::vector<TcpSocket> sockets(kConnections);
    std::vector<TaskHandle> servers(kConnections);
    TcpListener listener = TcpListener::listen({"127.0.0.1", 0}, 4096);
    EventChannel::Options options;
    options.initialThreads = 2;
    std::unique_ptr<EventChannel> channel = EventChannel::create(options);
    EventChannel* ch = channel.get();
    channel->spawn([] { this_task::sleepFor(1ms); }).join();  // warm up
    const long before = residentKiB();

    auto serve = [&](long index) {
      TcpSocket& socket = sockets[index];
      char buffer[64];
      parked.fetch_add(1, std::memory_order_relaxed);
      for (;;) {
        std::error_code ec;
        const std::size_t n = socket.readSome(buffer, sizeof buffer, ec);
        if (ec) {
          if (ec == Errc::end_of_stream || ec == std::errc::operation_canceled) cleanEnds.fetch_add(1);
          break;
        }
        socket.writeAll(buffer, n, ec);
        if (ec) break;
        echoes.fetch_add(1, std::memory_order_relaxed);
      }
      socket.close();
      ended.fetch_add(1, std::memory_order_relaxed);
    };
    // After everything the tasks refer to, so that it runs first on the way out.
    ShutDownOnExit shutDown(*channel);
    TaskHandle acceptor = channel->spawn([&] {
      for (long i = 0; i < kConnections; ++i) {
        std::error_code ec;
        sockets[i] = listener.accept(ec);
        if (ec) {
          acceptFailures.fetch_add(1);
          return;  // cancelled by the shutdown of a failing test
        }
        servers[i] = ch->spawn([&serve, i] { serve(i); });
        accepted.fetch_add(1, std::memory_order_relaxed);
      }
    });

    CPPUNIT_ASSERT(client.send('P', listener.port()));
    std::int64_t connected = 0;
    CPPUNIT_ASSERT_MESSAGE("the client did not report its connections", client.receive('C', connected));
    CPPUNIT_ASSERT_EQUAL_MESSAGE("connections the client made", std::int64_t(kConnections), connected);
    CPPUNIT_ASSERT_MESSAGE("parked " + count(parked.load()) + " of " + count(kConnections),
                           eventually([&] { return parked.load() == kConnections; }, kPatience));
    CPPUNIT_ASSERT(allWorkersIdle(*channel, kPatience));  // the last reads switched out and registered
    acceptor.join();
    CPPUNIT_ASSERT_EQUAL(0L, acceptFailures.load());
    CPPUNIT_ASSERT_EQUAL_MESSAGE("a task left readSome before any data", 0L, ended.load());
    const long after = residentKiB();
    const double perConnection = double(after - before) / kConnections;
    std::printf("scale_test: %ld connections parked in readSome: VmRSS +%ld KiB, %.2f KiB per connection\n",
                kConnections, after - before, perConnection);
    if (kMemoryBoundsMeaningful) {
      CPPUNIT_ASSERT_MESSAGE("resident memory per connection " + std::to_string(perConnection) + " KiB, bound " +
                                 std::to_string(kConnectionBoundKiB) + " KiB",
                             perConnection < kConnectionBoundKiB);
    }

    CPPUNIT_ASSERT(client.send('G'));
    std::int64_t echoed = 0;
    CPPUNIT_ASSERT_MESSAGE("the client did not report the echo round", client.receive('E', echoed));
    CPPUNIT_ASSERT_EQUAL_MESSAGE("connections whose echo came back", std::int64_t(kConnections), echoed);
    // A server task counts its echo after writeAll returns, which may be
    // after the client has already read it.
    eventually([&] { return echoes.load() == kConnections; }, kPatience);
    CPPUNIT_ASSERT_EQUAL_MESSAGE("echoes the server tasks sent", kConnections, echoes.load());

    // The shutdown cancels the parked reads; the tasks close their sockets.
    channel->shutdown();
    CPPUNIT_ASSERT_MESSAGE("ended " + count(ended.load()) + " of " + count(kConnections),
                           eventually([&] { return ended.load() == kConnections; }, kPatience));
    for (TaskHandle& server : servers) {
      CPPUNIT_ASSERT(eventually([&] { return server.done(); }, kPatience));
      server.join();
    }
    CPPUNIT_ASSERT_EQUAL_MESSAGE("tasks ended by cancellation or end of stream", kConnections, cleanEnds.load());
    listener.close();
    CPPUNIT_ASSERT(client.send('Q'));
    CPPUNIT_ASSERT_EQUAL_MESSAGE("the client process's exit status", 0, client.wait(kPatience));
  }

  // 4,500 reads waiting at once, one per connection, on each backend (not
  // select: FD_SETSIZE), then a byte for each: every read completes.  The
  // apr_pollset backend's first set holds 4,096 sockets; it refused the
  // 4,097th with descriptor_too_large before it learnt to grow.
  void testEveryBackendWaitsOnMoreSocketsThanAFirstSetHolds() {
    constexpr int kSockets = 4500;
    requireDescriptors(2 * kSockets + 200);
    TcpListener listener = TcpListener::listen({"127.0.0.1", 0}, 512);
    listener.setTimeout(kPatience);
    std::vector<TcpSocket> clients(kSockets), servers(kSockets);
    for (int i = 0; i < kSockets; ++i) {
      // The kernel completes the handshake from the backlog.
      clients[i] = TcpSocket::connect({"127.0.0.1", listener.port()}, kPatience);
      servers[i] = listener.accept();
    }
    int backendsTried = 0;
    for (evchan::Backend backend : {evchan::Backend::Epoll, evchan::Backend::Poll, evchan::Backend::AprPollset,
                                    evchan::Backend::IoUring, evchan::Backend::Aio}) {
      std::vector<char> bytes(kSockets, 0);
      // The reads outlive the channel, which a failing assertion leaves holding them.
      std::vector<std::unique_ptr<evchan::ReadEvent>> reads;
      EventChannel::Options options;
      options.backend = backend;
      options.initialThreads = 1;
      std::error_code ec;
      std::unique_ptr<EventChannel> channel = EventChannel::create(options, ec);
      if (!channel) continue;  // not in this build, or refused by the kernel
      ++backendsTried;
      const std::string name = channel->backendName();
      for (int i = 0; i < kSockets; ++i) {
        reads.push_back(std::make_unique<evchan::ReadEvent>(servers[i], &bytes[i], 1));
        channel->post(*reads.back(), ec);
        CPPUNIT_ASSERT_MESSAGE(name + ": read " + std::to_string(i) + ": " + describe(ec), !ec);
      }
      for (int i = 0; i < kSockets; ++i) clients[i].writeAll("x", 1);
      for (int i = 0; i < kSockets; ++i) {
        evchan::Event* done = channel->getEvent(kPatience);
        CPPUNIT_ASSERT_MESSAGE(name + ": " + std::to_string(i) + " of " + std::to_string(kSockets) + " reads completed",
                               done != nullptr);
        CPPUNIT_ASSERT_MESSAGE(name + ": " + describe(done->error()), !done->error());
        CPPUNIT_ASSERT_EQUAL(std::size_t(1), static_cast<evchan::ReadEvent*>(done)->bytesTransferred());
      }
      for (int i = 0; i < kSockets; ++i) CPPUNIT_ASSERT_EQUAL_MESSAGE(name, 'x', bytes[i]);
      channel->shutdown();
    }
    CPPUNIT_ASSERT_MESSAGE("no backend could be created", backendsTried > 0);
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(ScaleTest);
