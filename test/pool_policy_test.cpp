// SPDX-License-Identifier: Apache-2.0
// The pool's policy on threads that run but do not advance (Linux: the
// stuck-worker monitor reads each worker's kernel state): a worker that is
// runnable, preempted by a noisy neighbour or computing, gets no spare
// thread; only one asleep in the kernel does (blocking_test checks that
// side with real blocking reads).  Real threads, sockets and CPU affinity.
#include <cppunit/extensions/HelperMacros.h>

#include <evchan/evchan.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/computing.h"
#include "support/cpu_burners.h"
#include "support/leak_checked_fixture.h"
#include "support/skip.h"
#include "support/slowdown.h"
#include "support/waiting.h"

namespace {

using evchan::test::computeFor;
using evchan::test::CpuBurners;

using namespace std::chrono_literals;
using evchan::Duration;
using evchan::EventChannel;
using evchan::TaskHandle;
using evchan::TcpListener;
using evchan::TcpSocket;
using evchan::ThreadPoolStats;
using evchan::test::generous;
using evchan::test::joinWithin;
using Clock = std::chrono::steady_clock;
namespace this_task = evchan::this_task;

std::string describe(const ThreadPoolStats& s) {
  return "current " + std::to_string(s.current) + ", peak " + std::to_string(s.peak) + ", blocked " +
         std::to_string(s.blocked) + ", initial " + std::to_string(s.initial) + ", cpus " +
         std::to_string(s.cpuParallelism) + ", started " + std::to_string(s.started) + " (initial " +
         std::to_string(s.startedInitial) + ", blocking calls " + std::to_string(s.startedForBlockingCalls) +
         ", presumed stuck " + std::to_string(s.startedForPresumedStuck) + ", growth " +
         std::to_string(s.startedForGrowth) + "), runnable past grace " + std::to_string(s.runnablePastGrace);
}

/// Pins the calling thread to the first CPU of its affinity mask, and so
/// every thread it starts afterwards (they inherit the mask): the channel's
/// workers and monitor, the neighbours, the clients.  Restores the mask.
class PinnedToOneCpu {
 public:
  PinnedToOneCpu() {
    CPU_ZERO(&saved_);
    if (sched_getaffinity(0, sizeof saved_, &saved_) != 0) {
      reason_ = "sched_getaffinity: " + std::to_string(errno);
      return;
    }
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (!CPU_ISSET(cpu, &saved_)) continue;
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpu, &one);
      if (sched_setaffinity(0, sizeof one, &one) != 0) {
        reason_ = "sched_setaffinity: " + std::to_string(errno);
        return;
      }
      pinned_ = true;
      return;
    }
    reason_ = "an empty affinity mask";
  }
  ~PinnedToOneCpu() {
    if (pinned_) sched_setaffinity(0, sizeof saved_, &saved_);
  }
  PinnedToOneCpu(const PinnedToOneCpu&) = delete;
  PinnedToOneCpu& operator=(const PinnedToOneCpu&) = delete;

  bool pinned() const { return pinned_; }
  const std::string& reason() const { return reason_; }

 private:
  cpu_set_t saved_;
  bool pinned_ = false;
  std::string reason_;
};

/// One client on a plain blocking socket: sends 64 bytes, waits for their
/// echo, until `stop`.  Counts round trips; errors end it and are counted.
void echoClient(int port, const std::atomic<bool>& stop, std::atomic<long>& roundTrips, std::atomic<int>& failures) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ++failures;
    return;
  }
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    ++failures;
    ::close(fd);
    return;
  }
  char message[64] = {'p'};
  while (!stop.load(std::memory_order_relaxed)) {
    if (::send(fd, message, sizeof message, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof message)) {
      ++failures;
      break;
    }
    std::size_t got = 0;
    while (got < sizeof message) {
      const ssize_t n = ::recv(fd, message + got, sizeof message - got, 0);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        ++failures;
        break;
      }
      got += static_cast<std::size_t>(n);
    }
    if (got < sizeof message) break;
    roundTrips.fetch_add(1, std::memory_order_relaxed);
  }
  ::close(fd);  // the server's task sees the end of the stream
}

}  // namespace

class PoolPolicyTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(PoolPolicyTest);
  CPPUNIT_TEST(testNoisyNeighbourDoesNotGrowThePool);
  CPPUNIT_TEST(testLongComputationGetsNoSpareThread);
  CPPUNIT_TEST(testReaderBlockedOnABusyCpuStillGetsASpare);
  CPPUNIT_TEST_SUITE_END();

 public:
  // (1) Everything on one CPU: the channel (its default size, one worker),
  // two threads that burn that CPU, and four clients of a task-per-
  // connection echo server, each message costing the task 20 µs of CPU.
  // The worker is preempted in the middle of items again and again, far
  // longer than the 1 ms grace period while work waits, which the monitor
  // counts (runnablePastGrace); the worker is runnable throughout, so no
  // spare thread starts and the pool stays at its initial size.
  //
  // No timing is asserted: the load runs until the monitor has seen at
  // least kPreemptions items past the grace period (seconds at most; the
  // test fails if it never does, since it would then have checked
  // nothing).  The test's own thread reads poolStats() rarely: a thread
  // preempted while it holds the channel's lock keeps the worker asleep
  // on that lock, and the rule would rightly see a waiting worker if that
  // lasted two ticks.
  //
  // Not under ThreadSanitizer: there every thread, the burners included,
  // takes mutexes inside the TSan runtime (found: the presumed-stuck
  // worker asleep in __sanitizer::FutexWait on a mutex in __tsan::ctx),
  // and a thread preempted while it holds one keeps the worker asleep in
  // the kernel for a whole time slice of the busy CPU.  That is a real
  // wait, which the rule rightly answers with a spare thread, so the
  // property this case checks does not hold there (5 runs in 130 failed
  // beside a parallel TSan make check).  The other builds run it.
  void testNoisyNeighbourDoesNotGrowThePool() {
#if defined(EVCHAN_TEST_TSAN)
    EVCHAN_SKIP("under ThreadSanitizer the worker waits for the runtime's own locks, held by preempted threads");
#endif
    constexpr int kClients = 4;
    constexpr int kBurners = 2;
    constexpr std::uint64_t kPreemptions = 20;
    PinnedToOneCpu pin;
    if (!pin.pinned()) EVCHAN_SKIP("cannot restrict the process to one CPU: " + pin.reason());

    EventChannel::Options options;
    options.stuckWorkerGrace = 1ms;
    std::unique_ptr<EventChannel> channel = evchan::test::createOrSkip(options);
    EventChannel* ch = channel.get();
    const ThreadPoolStats initial = channel->poolStats();
    CPPUNIT_ASSERT_EQUAL_MESSAGE("one CPU allowed: one worker", 1, initial.cpuParallelism);
    CPPUNIT_ASSERT_EQUAL_MESSAGE(describe(initial), 1, initial.initial);

    TcpListener listener = TcpListener::listen({"127.0.0.1", 0}, 64);
    const int port = listener.port();
    std::atomic<int> serverErrors{0};
    std::vector<TaskHandle> servers;
    TaskHandle acceptor = channel->spawn([&] {
      for (int i = 0; i < kClients; ++i) {
        std::error_code ec;
        auto socket = std::make_shared<TcpSocket>(listener.accept(ec));
        if (ec) {
          ++serverErrors;
          return;
        }
        servers.push_back(ch->spawn([socket, &serverErrors] {
          char buffer[64];
          for (;;) {
            std::error_code ec;
            const std::size_t n = socket->readSome(buffer, sizeof buffer, ec);
            if (ec) {
              if (ec != evchan::Errc::end_of_stream) ++serverErrors;
              break;
            }
            computeFor(20us);  // the request's work
            socket->writeAll(buffer, n, ec);
            if (ec) {
              ++serverErrors;
              break;
            }
          }
          socket->close();
        }));
      }
    });

    std::atomic<bool> stopClients{false};
    std::atomic<long> roundTrips{0};
    std::atomic<int> clientFailures{0};
    ThreadPoolStats loaded;
    Duration ran{};
    {
      CpuBurners burners(kBurners);
      std::vector<std::thread> clients;
      for (int i = 0; i < kClients; ++i) {
        clients.emplace_back([&] { echoClient(port, stopClients, roundTrips, clientFailures); });
      }
      const Clock::time_point start = Clock::now();
      const Clock::time_point giveUp = start + generous(10s);
      do {
        std::this_thread::sleep_for(500ms);
        loaded = channel->poolStats();
      } while ((loaded.runnablePastGrace < kPreemptions || Clock::now() - start < 1s) && Clock::now() < giveUp);
      ran = Clock::now() - start;
      stopClients = true;
      for (std::thread& client : clients) client.join();
    }
    joinWithin(acceptor);
    for (TaskHandle& server : servers) joinWithin(server);

    const ThreadPoolStats after = channel->poolStats();
    std::printf("pool_policy_test: noisy neighbour: %ld round trips in %lld ms; %s\n", roundTrips.load(),
                static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(ran).count()),
                describe(after).c_str());
    CPPUNIT_ASSERT_EQUAL(0, clientFailures.load());
    CPPUNIT_ASSERT_EQUAL(0, serverErrors.load());
    CPPUNIT_ASSERT(roundTrips.load() > 0);
    CPPUNIT_ASSERT_MESSAGE(describe(after), after.peak == after.initial && after.current == after.initial);
    CPPUNIT_ASSERT_MESSAGE(describe(after), after.startedForPresumedStuck == 0 && after.startedForGrowth == 0 &&
                                                after.startedForBlockingCalls == 0);
    CPPUNIT_ASSERT_MESSAGE("the load never kept an item past the grace period: nothing was checked; " +
                               describe(loaded),
                           loaded.runnablePastGrace >= kPreemptions);
    CPPUNIT_ASSERT_MESSAGE(describe(after), after.started == after.startedInitial && after.started == 1);
    CPPUNIT_ASSERT_EQUAL_MESSAGE(describe(after), 0, after.blocked);
  }

  // (2) One worker, a task that computes for 50 ms without yielding, and
  // another task queued behind it.  The rule: nothing happens until it
  // yields.  The queued task waits (it does not run during the
  // computation), no spare thread starts (one more thread on the CPU the
  // computation holds would only share it), and the monitor counts the
  // item in runnablePastGrace: the operator's sign that items compute too
  // long.  The computation lasts at least 50 ms and, on a machine slow to
  // schedule the monitor, until the monitor has looked.
  void testLongComputationGetsNoSpareThread() {
    EventChannel::Options options;
    options.initialThreads = 1;
    options.stuckWorkerGrace = 5ms;
    std::unique_ptr<EventChannel> channel = evchan::test::createOrSkip(options);
    EventChannel* ch = channel.get();
    std::atomic<bool> computing{false};
    std::atomic<int> queuedRan{0};
    std::atomic<int> queuedRanDuringComputation{0};
    Duration computed{};
    TaskHandle queued;
    TaskHandle computer = channel->spawn([&] {
      queued = ch->spawn([&] {
        if (computing.load()) ++queuedRanDuringComputation;
        ++queuedRan;
      });
      computing = true;
      const Clock::time_point start = Clock::now();
      const Clock::time_point giveUp = start + generous(4s);
      do {
        computeFor(1ms);
      } while ((Clock::now() - start < 50ms || ch->poolStats().runnablePastGrace == 0) && Clock::now() < giveUp);
      computed = Clock::now() - start;
      computing = false;
    });
    joinWithin(computer);
    joinWithin(queued);
    const ThreadPoolStats s = channel->poolStats();
    std::printf("pool_policy_test: computed %lld ms; %s\n",
                static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(computed).count()),
                describe(s).c_str());
    CPPUNIT_ASSERT_EQUAL(1, queuedRan.load());
    CPPUNIT_ASSERT_MESSAGE(describe(s), s.runnablePastGrace >= 1);
    CPPUNIT_ASSERT_EQUAL_MESSAGE(describe(s), 0, s.blocked);
#if !defined(EVCHAN_TEST_TSAN)
    // Not under ThreadSanitizer, for the reason testNoisyNeighbourDoesNotGrowThePool
    // gives: there the computing worker (which calls poolStats() every
    // millisecond) may really sleep on a runtime lock a preempted thread
    // holds, and a spare thread for a sleeping worker is the rule.
    CPPUNIT_ASSERT_EQUAL_MESSAGE("the queued task ran beside the computation: a spare thread started; " + describe(s),
                                 0, queuedRanDuringComputation.load());
    CPPUNIT_ASSERT_MESSAGE(describe(s), s.started == 1 && s.peak == 1 && s.startedForPresumedStuck == 0);
#endif
  }

  // (3) The other side on the same busy CPU: the one worker stuck in a
  // real blocking read() on a pipe (not wrapped in evchan::blocking()),
  // two threads burning the CPU.  The worker is asleep in the kernel, not
  // runnable, so the monitor presumes it blocked and starts a spare thread
  // that runs the tasks queued behind it (blocking_test checks the same
  // with two workers and no neighbours).
  void testReaderBlockedOnABusyCpuStillGetsASpare() {
    constexpr int kOthers = 10;
    PinnedToOneCpu pin;
    if (!pin.pinned()) EVCHAN_SKIP("cannot restrict the process to one CPU: " + pin.reason());
    int fds[2];
    CPPUNIT_ASSERT_EQUAL(0, ::pipe(fds));
    struct Closed {
      int* fds;
      ~Closed() {
        if (fds[1] >= 0) ::close(fds[1]);
        ::close(fds[0]);
      }
    } closed{fds};
    std::atomic<int> othersDone{0};
    std::atomic<bool> reading{false};
    std::atomic<ssize_t> got{-2};
    ThreadPoolStats during;
    {
      EventChannel::Options options;
      options.stuckWorkerGrace = 1ms;
      std::unique_ptr<EventChannel> channel = evchan::test::createOrSkip(options);
      CPPUNIT_ASSERT_EQUAL(1, channel->poolStats().initial);
      // Destroyed before the channel: a failing assertion gives the reader
      // its end of file, and the channel's destructor does not wait forever.
      struct WriteEndClosedOnExit {
        int& fd;
        ~WriteEndClosedOnExit() {
          if (fd >= 0) ::close(fd);
          fd = -1;
        }
      } unblock{fds[1]};
      CpuBurners burners(2);
      TaskHandle reader = channel->spawn([&] {
        reading = true;
        char c;
        got = ::read(fds[0], &c, 1);  // unwrapped: the worker blocks
      });
      CPPUNIT_ASSERT(evchan::test::eventually([&] { return reading.load(); }));
      std::vector<TaskHandle> others;
      for (int i = 0; i < kOthers; ++i) {
        others.push_back(channel->spawn([&] {
          this_task::yield();
          ++othersDone;
        }));
      }
      const bool progressed = evchan::test::eventually([&] { return othersDone.load() == kOthers; });
      during = channel->poolStats();
      const bool readerStillBlocked = got.load() == -2;
      CPPUNIT_ASSERT_EQUAL(ssize_t{1}, ::write(fds[1], "x", 1));  // release the reader whatever happened
      joinWithin(reader);
      for (TaskHandle& other : others) joinWithin(other);
      CPPUNIT_ASSERT_MESSAGE("tasks stalled behind the blocked reader: " + std::to_string(othersDone.load()) +
                                 " of " + std::to_string(kOthers) + "; " + describe(during),
                             progressed);
      CPPUNIT_ASSERT_MESSAGE("the reader returned before it was released", readerStillBlocked);
    }
    std::printf("pool_policy_test: blocked reader on a busy CPU: %s\n", describe(during).c_str());
    CPPUNIT_ASSERT_EQUAL(ssize_t{1}, got.load());
    CPPUNIT_ASSERT_MESSAGE(describe(during), during.startedForPresumedStuck >= 1 && during.peak >= 2);
    CPPUNIT_ASSERT_MESSAGE(describe(during), during.startedForBlockingCalls == 0);
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(PoolPolicyTest);
