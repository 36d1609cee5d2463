// SPDX-License-Identifier: Apache-2.0
// Tasks of one channel taking turns at a shared listener or UDP socket,
// pushed on their edges: close(), cancel(), the destructor,
// TaskHandle::cancel(), shutdown() and DeadlineScopes racing the hand-off
// of the turn; floods of connections and datagrams on 64 tasks; tasks of
// two channels; a thread beside the tasks; acceptWithBackoff(); a raw
// AcceptEvent racing a task's accept.  Every call ends (none hangs), none
// fails with socket_busy but where the header says so, and every
// connection or datagram goes to exactly one caller.  On every backend.
#include <cppunit/extensions/HelperMacros.h>

#include <evchan/evchan.h>
#ifndef _WIN32
#include <evchan/unix_socket.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "support/backend_fixture.h"
#include "support/diagnostics.h"
#include "support/host_behaviour.h"
#include "support/named_suite.h"
#include "support/reclaim_on_exit.h"
#include "support/run_where.h"
#include "support/skip.h"
#include "support/temp_path.h"
#include "support/turn_takers.h"
#include "support/waiting.h"

namespace {

using namespace std::chrono_literals;
using evchan::AcceptBackoff;
using evchan::AcceptEvent;
using evchan::Address;
using evchan::Backend;
using evchan::Duration;
using evchan::Errc;
using evchan::EventChannel;
using evchan::TaskHandle;
using evchan::TcpListener;
using evchan::TcpSocket;
using evchan::UdpSocket;
#ifndef _WIN32
using evchan::UnixListener;
using evchan::UnixSocket;
#endif
using evchan::test::AcceptLog;
using evchan::test::acceptUntilError;
using evchan::test::allWorkersIdle;
using evchan::test::boundUdpSocket;
using evchan::test::connectTagged;
using evchan::test::eventually;
using evchan::test::generous;
using evchan::test::JoinOnExit;
using evchan::test::joinWithin;
using evchan::test::loopbackListener;
using evchan::test::spawnAcceptors;
using evchan::test::spawnOrSkip;
using evchan::test::spawnParked;
using evchan::test::tagsUpTo;

// Exactly this code, as the header promises for a call that a cancel(), a
// close() or shutdown() ended while it waited (channel_shut_down compares
// equal to the condition too, but says the call came after the shutdown).
const std::error_code kCancelled = std::make_error_code(std::errc::operation_canceled);
const std::error_condition kTimedOut = std::errc::timed_out;

std::string describeAll(const std::vector<std::error_code>& errors) {
  std::string text;
  for (const std::error_code& ec : errors) text += "[" + evchan::test::describe(ec) + "] ";
  return text;
}

// A datagram's content: who sent it and its number.
struct Datagram {
  std::uint16_t sender;
  std::uint16_t number;
};

// Which datagrams the receivers got, and every error they saw.
struct ReceiveLog {
  explicit ReceiveLog(int senders, int perSender) : seen(senders, std::vector<int>(perSender, 0)) {}

  std::mutex mutex;
  std::vector<std::vector<int>> seen;
  std::map<std::string, int> errors;
  std::vector<std::error_code> every;
  std::atomic<int> received{0};
  std::atomic<int> started{0};

  void record(const Datagram& datagram) {
    std::lock_guard<std::mutex> lock(mutex);
    if (datagram.sender < seen.size() && datagram.number < seen[datagram.sender].size())
      ++seen[datagram.sender][datagram.number];
    ++received;
  }
  void recordError(const std::error_code& ec) {
    std::lock_guard<std::mutex> lock(mutex);
    ++errors[evchan::test::describe(ec)];
    every.push_back(ec);
  }
  // "" when every datagram came exactly once, else the first that did not.
  std::string missingOrTwice() {
    std::lock_guard<std::mutex> lock(mutex);
    for (std::size_t s = 0; s < seen.size(); ++s)
      for (std::size_t n = 0; n < seen[s].size(); ++n)
        if (seen[s][n] != 1)
          return "datagram " + std::to_string(s) + "/" + std::to_string(n) + " received " +
                 std::to_string(seen[s][n]) + " times";
    return "";
  }
  std::string errorText() {
    std::lock_guard<std::mutex> lock(mutex);
    std::string text;
    for (const auto& [what, count] : errors) text += what + " x" + std::to_string(count) + "; ";
    return text;
  }
  int errorsOtherThan(std::initializer_list<std::error_condition> allowed) {
    std::lock_guard<std::mutex> lock(mutex);
    int count = 0;
    for (const std::error_code& ec : every) {
      bool ok = false;
      for (const std::error_condition& one : allowed) ok = ok || ec == one;
      if (!ok) ++count;
    }
    return count;
  }
};

// Sends `count` datagrams numbered from 0 as `sender` to `to`, never more
// than `window` ahead of what the receivers took (a loopback receive
// buffer that overflows drops datagrams, which would read as lost).
void sendWindowed(UdpSocket& socket, const Address& to, std::uint16_t sender, int count, ReceiveLog& log,
                  std::atomic<int>& sent, int window, std::map<std::string, int>& sendErrors,
                  std::mutex& sendMutex) {
  for (int i = 0; i < count; ++i) {
    while (sent.load() - log.received.load() >= window) {
      if (evchan::inTask()) {
        evchan::this_task::sleepFor(1ms);
      } else {
        std::this_thread::sleep_for(1ms);
      }
    }
    const Datagram datagram{sender, static_cast<std::uint16_t>(i)};
    std::error_code ec;
    socket.sendTo(&datagram, sizeof datagram, to, ec);
    if (ec) {
      std::lock_guard<std::mutex> lock(sendMutex);
      ++sendErrors[evchan::test::describe(ec)];
      continue;
    }
    ++sent;
  }
}

template <Backend B>
class TaskTurnsAdversarialTest : public evchan::test::BackendChannelFixture<B> {
  EVCHAN_TEST_SUITE_NAMED(TaskTurnsAdversarialTest, suiteName());
  CPPUNIT_TEST(testShutdownEndsWaitingAcceptsWithOperationCanceled);
  CPPUNIT_TEST(testShutdownEndsWaitingAcceptsOnTwoWorkers);
  CPPUNIT_TEST(testShutdownEndsWaitingReceivesWithOperationCanceled);
  CPPUNIT_TEST(testCloseRacingTheHandOffEndsEveryAcceptor);
  CPPUNIT_TEST(testCancelRacingTheHandOffLosesNoConnection);
  CPPUNIT_TEST(testDestructorRacingCloseFromAnotherThread);
  CPPUNIT_TEST(testTaskCancelRacingTheHandOffPassesTheTurnOn);
  CPPUNIT_TEST(testDeadlineScopeEndsTheWaitForTheTurn);
  CPPUNIT_TEST(testDeadlineScopeOfTheTaskInsidePassesTheTurnOn);
  CPPUNIT_TEST(testTimeoutSetWhileTasksWaitAppliesToLaterCalls);
  CPPUNIT_TEST(testSixtyFourAcceptorsTakeAFloodOfConnections);
  CPPUNIT_TEST(testUnixAcceptorsTakeAFloodOfConnections);
  CPPUNIT_TEST(testReceiversAndSendersShareOneSocket);
  CPPUNIT_TEST(testReceiversWithShortTimeoutsMixReceiveAndReceiveFrom);
  CPPUNIT_TEST(testAThreadReceivesBesideReceiverTasks);
  CPPUNIT_TEST(testTwoChannelsOneShutDownMidway);
  CPPUNIT_TEST(testAcceptWithBackoffFromSeveralTasks);
  CPPUNIT_TEST(testTaskAcceptRacingARawAcceptEvent);
  CPPUNIT_TEST(testAShieldedTaskKeepsItsPlaceInLine);
  CPPUNIT_TEST(testCloseFromAnAcceptorTaskEndsTheOthers);
  CPPUNIT_TEST(testAThreadAcceptsBesideAcceptorTasks);
  CPPUNIT_TEST(testReceiversEndedAtRandomLoseNoDatagram);
  CPPUNIT_TEST_SUITE_END();

 public:
  using evchan::test::BackendChannelFixture<B>::channel_;

  static std::string suiteName() { return std::string("TaskTurnsAdversarialTest<") + evchan::backendName(B) + ">"; }

  // Six acceptors wait (one inside, five for their turn); shutdown() ends
  // every one of their calls with operation_canceled, the calls that the
  // leaving ones hand the turn to included: those began before the
  // shutdown, so channel_shut_down would be wrong.  Ten rounds.
  void testShutdownEndsWaitingAcceptsWithOperationCanceled() { shutdownEndsWaitingAccepts(1); }

  void testShutdownEndsWaitingAcceptsOnTwoWorkers() { shutdownEndsWaitingAccepts(2); }

  // The same for receiver tasks on one UDP socket.
  void testShutdownEndsWaitingReceivesWithOperationCanceled() {
    constexpr int kRounds = 10;
    constexpr int kTasks = 6;
    for (int round = 0; round < kRounds; ++round) {
      std::unique_ptr<EventChannel> channel = evchan::test::createOnBackendOrSkip(B, 1);
      UdpSocket socket = boundUdpSocket();
      std::vector<std::error_code> lastError(kTasks);
      std::atomic<int> started{0};
      std::vector<TaskHandle> tasks;
      const JoinOnExit end([&] { socket.close(); }, tasks);
      for (int who = 0; who < kTasks; ++who) {
        tasks.push_back(spawnOrSkip(*channel, [&, who] {
          ++started;
          for (;;) {
            Datagram datagram{};
            std::error_code ec;
            socket.receive(&datagram, sizeof datagram, ec);
            if (ec) {
              lastError[who] = ec;
              return;
            }
          }
        }));
      }
      CPPUNIT_ASSERT(eventually([&] { return started.load() == kTasks; }));
      CPPUNIT_ASSERT(allWorkersIdle(*channel));
      channel->shutdown();
      for (TaskHandle& task : tasks) joinWithin(task);
      for (const std::error_code& ec : lastError)
        CPPUNIT_ASSERT_MESSAGE("round " + std::to_string(round) + ": " + describeAll(lastError), ec == kCancelled);
    }
  }

  // Eight acceptors on two workers while a thread connects clients one
  // after another and another thread closes the listener in the middle:
  // every acceptor ends with operation_canceled (or not_open, for a call
  // that began after the close), none hangs, none fails with
  // socket_busy, and no connection is accepted twice.  Twenty rounds.
  void testCloseRacingTheHandOffEndsEveryAcceptor() {
    std::unique_ptr<EventChannel> channel = evchan::test::createOnBackendOrSkip(B, 2);
    constexpr int kRounds = 20;
    constexpr int kTasks = 8;
    constexpr int kClients = 24;
    std::mt19937 random(20261205);
    for (int round = 0; round < kRounds; ++round) {
      TcpListener listener = loopbackListener();
      const Address where = listener.localAddress();
      AcceptLog<TcpSocket> log(kTasks);
      std::vector<TaskHandle> tasks;
      const JoinOnExit end([&] { listener.close(); }, tasks);
      for (int who = 0; who < kTasks; ++who)
        tasks.push_back(spawnOrSkip(*channel, [&, who] { acceptUntilError(listener, log, who); }));
      const int closeAfter = 4 + static_cast<int>(random() % (kClients - 4));
      std::atomic<int> connected{0};
      std::vector<TcpSocket> clients;
      std::thread connector([&] {
        for (int i = 0; i < kClients; ++i) {
          std::error_code ec;
          TcpSocket client = TcpSocket::connect(where, generous(2s), ec);
          if (ec) break;  // closed: refused
          const auto tag = static_cast<std::uint16_t>(i);
          client.writeAll(&tag, sizeof tag, ec);
          clients.push_back(std::move(client));
          ++connected;
        }
      });
      std::thread closer([&] {
        while (connected.load() < closeAfter && connected.load() < kClients) std::this_thread::yield();
        listener.close();
      });
      closer.join();
      connector.join();
      for (TaskHandle& task : tasks) joinWithin(task);
      const std::string context = "round " + std::to_string(round) + ": " + describeAll(log.lastError);
      for (const std::error_code& ec : log.lastError)
        CPPUNIT_ASSERT_MESSAGE(context, ec == kCancelled || ec == Errc::not_open);
      CPPUNIT_ASSERT_EQUAL_MESSAGE(context, 0, log.errorsOf(Errc::socket_busy));
      const std::vector<std::uint16_t> tags = log.sortedTags();
      CPPUNIT_ASSERT_MESSAGE(context, std::adjacent_find(tags.begin(), tags.end()) == tags.end());
      CPPUNIT_ASSERT_MESSAGE(context, static_cast<int>(tags.size()) <= connected.load());
    }
  }

  // Four acceptors that start again after an operation_canceled, while a
  // thread calls cancel() again and again and clients connect: the
  // listener stays open, so every connection is accepted exactly once in
  // the end, and no accept fails but with operation_canceled.
  void testCancelRacingTheHandOffLosesNoConnection() {
    std::unique_ptr<EventChannel> channel = evchan::test::createOnBackendOrSkip(B, 2);
    constexpr int kTasks = 4;
    constexpr int kClients = 96;
    TcpListener listener = loopbackListener();
    AcceptLog<TcpSocket> log(kTasks);
    std::atomic<bool> stop{false};
    std::vector<TaskHandle> tasks;
    const JoinOnExit end(
        [&] {
          stop = true;
          listener.close();
        },
        tasks);
    for (int who = 0; who < kTasks; ++who) {
      tasks.push_back(spawnOrSkip(*channel, [&, who] {
        while (!stop.load()) acceptUntilError(listener, log, who);
      }));
    }
    std::atomic<bool> connecting{true};
    std::thread canceller([&] {
      while (connecting.load()) {
        listener.cancel();
        std::this_thread::sleep_for(100us);
      }
    });
    std::vector<TcpSocket> clients;
    for (int i = 0; i < kClients; ++i) clients.push_back(connectTagged(listener, static_cast<std::uint16_t>(i)));
    connecting = false;
    canceller.join();
    const bool all = eventually([&] { return log.count() >= kClients; });
    // Every acceptor started (a task just spawned leaves its worker idle too)
    // and parked in its call, none between two: close() ends each.
    CPPUNIT_ASSERT(eventually([&] { return log.started.load() >= kTasks; }));
    CPPUNIT_ASSERT(allWorkersIdle(*channel));
    stop = true;
    listener.close();
    for (TaskHandle& task : tasks) joinWithin(task);
    CPPUNIT_ASSERT_MESSAGE(log.errorText(), all);
    CPPUNIT_ASSERT(log.sortedTags() == tagsUpTo(kClients));
    CPPUNIT_ASSERT_EQUAL_MESSAGE(log.errorText(), 0, log.errorsOf(Errc::socket_busy));
    CPPUNIT_ASSERT_EQUAL_MESSAGE(log.errorText(), 0, log.errorsOf(std::make_error_code(std::errc::timed_out)));
    for (const std::error_code& ec : log.lastError) ASSERT_ERROR(kCancelled, ec);
  }

  // Acceptors waiting in turn; a thread closes the listener, and as soon
  // as the close() has ended one accept (so it has begun) the listener is
  // destroyed while that close() may still wait for the other calls:
  // from the test thread in even rounds, from the task whose accept the
  // close() ended in odd ones (the case closeSocket() waits for).  Every
  // acceptor ends with operation_canceled; nothing is used after it is
  // gone (ASan).  Twenty rounds on two workers.
  void testDestructorRacingCloseFromAnotherThread() {
    std::unique_ptr<EventChannel> channel = evchan::test::createOnBackendOrSkip(B, 2);
    constexpr int kRounds = 20;
    constexpr int kTasks = 5;
    for (int round = 0; round < kRounds; ++round) {
      auto listener = std::make_unique<TcpListener>(loopbackListener());
      TcpListener* shared = listener.get();
      const bool byTask = round % 2 == 1;
      AcceptLog<TcpSocket> log(kTasks);
      std::atomic<int> ended{0};
      std::vector<TaskHandle> tasks;
      for (int who = 0; who < kTasks; ++who) {
        tasks.push_back(spawnOrSkip(*channel, [&, shared, who] {
          acceptUntilError(*shared, log, who);
          if (who == 0 && byTask) listener.reset();
          ++ended;
        }));
      }
      CPPUNIT_ASSERT(eventually([&] { return log.started.load() == kTasks; }));
      CPPUNIT_ASSERT(allWorkersIdle(*channel));
      std::thread closer([shared] { shared->close(); });
      if (!byTask) {
        CPPUNIT_ASSERT(eventually([&] { return ended.load() > 0; }));
        listener.reset();
      }
      closer.join();
      for (TaskHandle& task : tasks) joinWithin(task);
      CPPUNIT_ASSERT(listener == nullptr);
      const std::string context = "round " + std::to_string(round) + ": " + describeAll(log.lastError);
      for (const std::error_code& ec : log.lastError) CPPUNIT_ASSERT_MESSAGE(context, ec == kCancelled);
    }
  }

  // Three acceptors on one worker, A inside, B and C waiting; a client
  // connects (A's accept completes and hands the turn to B) while the
  // test cancels B.  B ends with operation_canceled, whether the turn
  // reached it or not, and the turn is not lost: a second client is
  // accepted by A or C.  Forty rounds.
  void testTaskCancelRacingTheHandOffPassesTheTurnOn() {
    constexpr int kRounds = 40;
    for (int round = 0; round < kRounds; ++round) {
      TcpListener listener = loopbackListener();
      AcceptLog<TcpSocket> log(3);
      std::vector<TaskHandle> tasks;
      const JoinOnExit end([&] { listener.close(); }, tasks);
      spawnAcceptors(*channel_, listener, log, tasks);
      std::atomic<bool> go{false};
      std::thread canceller([&] {
        while (!go.load()) std::this_thread::yield();
        if (round % 3 != 0) std::this_thread::sleep_for(std::chrono::microseconds(round * 10));
        tasks[1].cancel();
      });
      go = true;
      TcpSocket first = connectTagged(listener, 0);
      canceller.join();
      CPPUNIT_ASSERT(eventually([&] { return tasks[1].done(); }));
      TcpSocket second = connectTagged(listener, 1);
      const std::string context = "round " + std::to_string(round);
      CPPUNIT_ASSERT_MESSAGE(context, eventually([&] { return log.count() == 2; }));
      // Every acceptor started (a task just spawned leaves its worker idle too)
      // and parked in its call, none between two: close() ends each.
      CPPUNIT_ASSERT(eventually([&] { return log.started.load() >= 3; }));
      CPPUNIT_ASSERT(allWorkersIdle(*channel_));
      listener.close();
      for (TaskHandle& task : tasks) joinWithin(task);
      CPPUNIT_ASSERT_MESSAGE(context, log.sortedTags() == tagsUpTo(2));
      for (const std::error_code& ec : log.lastError)
        CPPUNIT_ASSERT_MESSAGE(context + ": " + describeAll(log.lastError), ec == kCancelled);
    }
  }

  // Three tasks wait behind an acceptor with no timeout, each under a
  // DeadlineScope of 100 ms: they end with timed_out while still waiting
  // for their turn, and the one inside goes on and accepts.
  void testDeadlineScopeEndsTheWaitForTheTurn() {
    TcpListener listener = loopbackListener();
    AcceptLog<TcpSocket> log(4);
    std::vector<TaskHandle> tasks;
    const JoinOnExit end([&] { listener.close(); }, tasks);
    spawnParked(*channel_, tasks, 1, log.started, [&](int who) { acceptUntilError(listener, log, who); });
    for (int who = 1; who < 4; ++who) {
      tasks.push_back(spawnOrSkip(*channel_, [&, who] {
        evchan::this_task::DeadlineScope deadline(100ms);
        acceptUntilError(listener, log, who);
      }));
    }
    for (int who = 1; who < 4; ++who) joinWithin(tasks[who]);
    for (int who = 1; who < 4; ++who) ASSERT_ERROR(std::errc::timed_out, log.lastError[who]);
    CPPUNIT_ASSERT(!tasks[0].done());
    TcpSocket client = connectTagged(listener, 7);
    CPPUNIT_ASSERT(eventually([&] { return log.count() == 1; }));
    CPPUNIT_ASSERT(log.sortedTags() == std::vector<std::uint16_t>{7});
    // Every acceptor started (a task just spawned leaves its worker idle too)
    // and parked in its call, none between two: close() ends each.
    CPPUNIT_ASSERT(eventually([&] { return log.started.load() >= 4; }));
    CPPUNIT_ASSERT(allWorkersIdle(*channel_));
    listener.close();
    joinWithin(tasks[0]);
    ASSERT_ERROR(kCancelled, log.lastError[0]);
  }

  // The task inside runs under a DeadlineScope; the two behind it have no
  // deadline.  Its accept times out and it hands the turn on: the next
  // one accepts the connection that comes after.
  void testDeadlineScopeOfTheTaskInsidePassesTheTurnOn() {
    TcpListener listener = loopbackListener();
    AcceptLog<TcpSocket> log(3);
    std::vector<TaskHandle> tasks;
    const JoinOnExit end([&] { listener.close(); }, tasks);
    spawnParked(*channel_, tasks, 1, log.started, [&](int who) {
      evchan::this_task::DeadlineScope deadline(generous(300ms));
      acceptUntilError(listener, log, who);
    });
    spawnAcceptors(*channel_, listener, log, tasks);
    joinWithin(tasks[0]);
    ASSERT_ERROR(std::errc::timed_out, log.lastError[0]);
    TcpSocket a = connectTagged(listener, 1);
    TcpSocket b = connectTagged(listener, 2);
    CPPUNIT_ASSERT(eventually([&] { return log.count() == 2; }));
    CPPUNIT_ASSERT(log.sortedTags() == (std::vector<std::uint16_t>{1, 2}));
    // Every acceptor started (a task just spawned leaves its worker idle too)
    // and parked in its call, none between two: close() ends each.
    CPPUNIT_ASSERT(eventually([&] { return log.started.load() >= 3; }));
    CPPUNIT_ASSERT(allWorkersIdle(*channel_));
    listener.close();
    for (TaskHandle& task : tasks) joinWithin(task);
    ASSERT_ERROR(kCancelled, log.lastError[1]);
    ASSERT_ERROR(kCancelled, log.lastError[2]);
  }

  // Three tasks wait (no timeout); setTimeout(100 ms) then: two tasks that
  // come after it end with timed_out behind them, within their own
  // timeout, and the three that began before still accept one connection
  // each (their calls keep the timeout they began with).
  void testTimeoutSetWhileTasksWaitAppliesToLaterCalls() {
    TcpListener listener = loopbackListener();
    AcceptLog<TcpSocket> log(5);
    std::vector<TaskHandle> tasks;
    const JoinOnExit end([&] { listener.close(); }, tasks);
    std::vector<int> acceptedBy(3, 0);
    spawnParked(*channel_, tasks, 3, log.started, [&](int who) {
      ++log.started;
      std::error_code ec;
      TcpSocket accepted = listener.accept(ec);
      std::lock_guard<std::mutex> lock(log.mutex);
      log.lastError[who] = ec;
      if (!ec) log.accepted.push_back(std::move(accepted));
    });
    listener.setTimeout(100ms);
    for (int who = 3; who < 5; ++who)
      tasks.push_back(spawnOrSkip(*channel_, [&, who] { acceptUntilError(listener, log, who); }));
    for (int who = 3; who < 5; ++who) joinWithin(tasks[who]);
    ASSERT_ERROR(std::errc::timed_out, log.lastError[3]);
    ASSERT_ERROR(std::errc::timed_out, log.lastError[4]);
    std::vector<TcpSocket> clients;
    for (std::uint16_t tag = 0; tag < 3; ++tag) clients.push_back(connectTagged(listener, tag));
    for (int who = 0; who < 3; ++who) joinWithin(tasks[who]);
    for (int who = 0; who < 3; ++who) ASSERT_NO_ERROR(log.lastError[who]);
    CPPUNIT_ASSERT(log.sortedTags() == tagsUpTo(3));
  }

  // 64 acceptor tasks on two workers; four threads connect 160 clients at
  // once: each connection is accepted exactly once, no accept fails, and
  // close() ends all 64 with operation_canceled.
  void testSixtyFourAcceptorsTakeAFloodOfConnections() {
    std::unique_ptr<EventChannel> channel = evchan::test::createOnBackendOrSkip(B, 2);
    TcpListener listener = loopbackListener();
    floodAcceptors(*channel, listener, 64, 160);
  }

  // 16 acceptor tasks on a UnixListener; 96 clients from four threads.
  void testUnixAcceptorsTakeAFloodOfConnections() {
#ifdef _WIN32
    EVCHAN_SKIP("POSIX-only: AF_UNIX (docs/windows.md)");
#else
    std::unique_ptr<EventChannel> channel = evchan::test::createOnBackendOrSkip(B, 2);
    evchan::test::TempPath path("evchan-turns-");
    UnixListener listener = UnixListener::listen(path.str());
    floodAcceptors(*channel, listener, 16, 96);
#endif
  }

  // One UDP socket, 16 receiver tasks and 8 sender tasks of one channel on
  // two workers, the senders sending to the socket itself: each of the
  // 8 x 48 datagrams is received exactly once, no call fails.
  void testReceiversAndSendersShareOneSocket() {
    std::unique_ptr<EventChannel> channel = evchan::test::createOnBackendOrSkip(B, 2);
    constexpr int kReceivers = 16;
    constexpr int kSenders = 8;
    constexpr int kPerSender = 48;
    UdpSocket socket = boundUdpSocket();
    const Address self = socket.localAddress();
    ReceiveLog log(kSenders, kPerSender);
    std::atomic<int> sent{0};
    std::mutex sendMutex;
    std::map<std::string, int> sendErrors;
    std::vector<TaskHandle> tasks;
    const JoinOnExit end([&] { socket.close(); }, tasks);
    for (int who = 0; who < kReceivers; ++who)
      tasks.push_back(spawnOrSkip(*channel, [&, who] { receiveUntilError(socket, log, who % 2 == 0); }));
    std::vector<TaskHandle> senders;
    for (int who = 0; who < kSenders; ++who) {
      senders.push_back(spawnOrSkip(*channel, [&, who] {
        sendWindowed(socket, self, static_cast<std::uint16_t>(who), kPerSender, log, sent, 32, sendErrors, sendMutex);
      }));
    }
    for (TaskHandle& sender : senders) joinWithin(sender);
    const bool all = eventually([&] { return log.received.load() >= sent.load(); });
    // Every receiver started (a task just spawned leaves its worker idle too)
    // and parked in its call, none between two: close() ends each.
    CPPUNIT_ASSERT(eventually([&] { return log.started.load() >= kReceivers; }));
    CPPUNIT_ASSERT(allWorkersIdle(*channel));
    socket.close();
    for (TaskHandle& task : tasks) joinWithin(task);
    CPPUNIT_ASSERT_MESSAGE("send errors: " + std::to_string(sendErrors.size()), sendErrors.empty());
    CPPUNIT_ASSERT(all);
    CPPUNIT_ASSERT_EQUAL(std::string(), log.missingOrTwice());
    CPPUNIT_ASSERT_EQUAL_MESSAGE(log.errorText(), 0, log.errorsOtherThan({std::errc::operation_canceled}));
  }

  // Eight receiver tasks loop on a socket whose timeout is 1 ms, half with
  // receive(), half with receiveFrom() (checking the sender's address),
  // while a thread sends 240 datagrams: every one is received exactly
  // once, and no call fails but with timed_out.
  void testReceiversWithShortTimeoutsMixReceiveAndReceiveFrom() {
    std::unique_ptr<EventChannel> channel = evchan::test::createOnBackendOrSkip(B, 2);
    constexpr int kReceivers = 8;
    constexpr int kDatagrams = 240;
    UdpSocket socket = boundUdpSocket();
    socket.setTimeout(1ms);
    UdpSocket sender = boundUdpSocket();
    const Address senderAddress = sender.localAddress();
    ReceiveLog log(1, kDatagrams);
    std::atomic<bool> stop{false};
    std::atomic<int> wrongSender{0};
    std::vector<TaskHandle> tasks;
    const JoinOnExit end(
        [&] {
          stop = true;
          socket.close();
        },
        tasks);
    for (int who = 0; who < kReceivers; ++who) {
      tasks.push_back(spawnOrSkip(*channel, [&, who] {
        ++log.started;
        while (!stop.load()) {
          Datagram datagram{};
          std::error_code ec;
          if (who % 2 == 0) {
            socket.receive(&datagram, sizeof datagram, ec);
          } else {
            Address from;
            socket.receiveFrom(&datagram, sizeof datagram, from, ec);
            if (!ec && !(from == senderAddress)) ++wrongSender;
          }
          if (ec) {
            log.recordError(ec);
            if (ec != std::errc::timed_out) return;
            continue;
          }
          log.record(datagram);
        }
      }));
    }
    std::atomic<int> sent{0};
    std::mutex sendMutex;
    std::map<std::string, int> sendErrors;
    sendWindowed(sender, socket.localAddress(), 0, kDatagrams, log, sent, 16, sendErrors, sendMutex);
    const bool all = eventually([&] { return log.received.load() >= kDatagrams; });
    stop = true;
    for (TaskHandle& task : tasks) joinWithin(task);
    CPPUNIT_ASSERT(sendErrors.empty());
    CPPUNIT_ASSERT(all);
    CPPUNIT_ASSERT_EQUAL(std::string(), log.missingOrTwice());
    CPPUNIT_ASSERT_EQUAL(0, wrongSender.load());
    CPPUNIT_ASSERT_EQUAL_MESSAGE(log.errorText(), 0,
                                 log.errorsOtherThan({kTimedOut}));
  }

  // Four receiver tasks and a plain thread receive on one socket while a
  // thread sends: every datagram is received exactly once, and close()
  // ends the tasks with operation_canceled (the thread too, or with
  // not_open when it was between two calls).
  void testAThreadReceivesBesideReceiverTasks() {
    constexpr int kDatagrams = 200;
    UdpSocket socket = boundUdpSocket();
    socket.setTimeout(generous(10s));
    UdpSocket sender = boundUdpSocket();
    ReceiveLog log(1, kDatagrams);
    std::vector<TaskHandle> tasks;
    std::thread thread;
    const JoinOnExit end(
        [&] {
          socket.close();
          if (thread.joinable()) thread.join();
        },
        tasks);
    for (int who = 0; who < 4; ++who)
      tasks.push_back(spawnOrSkip(*channel_, [&, who] { receiveUntilError(socket, log, who % 2 == 0); }));
    std::atomic<int> byThread{0};
    std::error_code threadError;
    thread = std::thread([&] {
      for (;;) {
        Datagram datagram{};
        std::error_code ec;
        socket.receive(&datagram, sizeof datagram, ec);
        if (ec) {
          threadError = ec;
          return;
        }
        log.record(datagram);
        ++byThread;
      }
    });
    std::atomic<int> sent{0};
    std::mutex sendMutex;
    std::map<std::string, int> sendErrors;
    sendWindowed(sender, socket.localAddress(), 0, kDatagrams, log, sent, 16, sendErrors, sendMutex);
    const bool all = eventually([&] { return log.received.load() >= kDatagrams; });
    // Every receiver started (a task just spawned leaves its worker idle too)
    // and parked in its call, none between two: close() ends each.
    CPPUNIT_ASSERT(eventually([&] { return log.started.load() >= 4; }));
    CPPUNIT_ASSERT(allWorkersIdle(*channel_));
    socket.close();
    thread.join();
    for (TaskHandle& task : tasks) joinWithin(task);
    CPPUNIT_ASSERT(sendErrors.empty());
    CPPUNIT_ASSERT(all);
    CPPUNIT_ASSERT_EQUAL(std::string(), log.missingOrTwice());
    CPPUNIT_ASSERT_EQUAL_MESSAGE(log.errorText(), 0, log.errorsOtherThan({std::errc::operation_canceled}));
    CPPUNIT_ASSERT_MESSAGE(evchan::test::describe(threadError),
                           threadError == kCancelled || threadError == Errc::not_open);
  }

  // Four acceptors on each of two channels share a listener; after 16
  // connections the second channel shuts down: its acceptors end with
  // operation_canceled, the first channel's accept the next 16, and
  // every connection is accepted exactly once.
  void testTwoChannelsOneShutDownMidway() {
    std::unique_ptr<EventChannel> other = evchan::test::createOnBackendOrSkip(B, 1);
    constexpr int kPerChannel = 4;
    TcpListener listener = loopbackListener();
    AcceptLog<TcpSocket> log(2 * kPerChannel);
    std::vector<TaskHandle> tasks;
    const JoinOnExit end([&] { listener.close(); }, tasks);
    for (int who = 0; who < 2 * kPerChannel; ++who) {
      EventChannel& channel = who < kPerChannel ? *channel_ : *other;
      tasks.push_back(spawnOrSkip(channel, [&, who] { acceptUntilError(listener, log, who); }));
    }
    CPPUNIT_ASSERT(eventually([&] { return log.started.load() == 2 * kPerChannel; }));
    std::vector<TcpSocket> clients;
    for (int i = 0; i < 16; ++i) clients.push_back(connectTagged(listener, static_cast<std::uint16_t>(i)));
    CPPUNIT_ASSERT(eventually([&] { return log.count() == 16; }));
    // The second channel's acceptors all parked in their calls, none
    // between two: the shutdown ends each call (operation_canceled), and
    // none makes a call after it (channel_shut_down).
    CPPUNIT_ASSERT(allWorkersIdle(*other));
    other->shutdown();
    for (int who = kPerChannel; who < 2 * kPerChannel; ++who) joinWithin(tasks[who]);
    for (int i = 16; i < 32; ++i) clients.push_back(connectTagged(listener, static_cast<std::uint16_t>(i)));
    const bool all = eventually([&] { return log.count() == 32; });
    // Every acceptor started (a task just spawned leaves its worker idle too)
    // and parked in its call, none between two: close() ends each.
    CPPUNIT_ASSERT(eventually([&] { return log.started.load() >= 2 * kPerChannel; }));
    CPPUNIT_ASSERT(allWorkersIdle(*channel_));
    listener.close();
    for (TaskHandle& task : tasks) joinWithin(task);
    CPPUNIT_ASSERT_MESSAGE(log.errorText(), all);
    CPPUNIT_ASSERT(log.sortedTags() == tagsUpTo(32));
    for (const std::error_code& ec : log.lastError)
      CPPUNIT_ASSERT_MESSAGE(describeAll(log.lastError), ec == kCancelled);
  }

  // Four tasks loop on acceptWithBackoff(): they take turns as accept()'s
  // callers do; 48 connections are accepted exactly once, close() ends
  // each with operation_canceled, and no back-off wait happens.
  void testAcceptWithBackoffFromSeveralTasks() {
    std::unique_ptr<EventChannel> channel = evchan::test::createOnBackendOrSkip(B, 2);
    constexpr int kTasks = 4;
    constexpr int kClients = 48;
    TcpListener listener = loopbackListener();
    AcceptLog<TcpSocket> log(kTasks);
    std::atomic<int> backoffs{0};
    std::vector<TaskHandle> tasks;
    const JoinOnExit end([&] { listener.close(); }, tasks);
    for (int who = 0; who < kTasks; ++who) {
      tasks.push_back(spawnOrSkip(*channel, [&, who] {
        AcceptBackoff backoff;
        backoff.onWait = [&](const std::error_code&, Duration) { ++backoffs; };
        acceptUntilError(log, who, [&](std::error_code& ec) { return listener.acceptWithBackoff(backoff, ec); });
      }));
    }
    std::vector<TcpSocket> clients;
    for (int i = 0; i < kClients; ++i) clients.push_back(connectTagged(listener, static_cast<std::uint16_t>(i)));
    const bool all = eventually([&] { return log.count() == kClients; });
    // Every acceptor started (a task just spawned leaves its worker idle too)
    // and parked in its call, none between two: close() ends each.
    CPPUNIT_ASSERT(eventually([&] { return log.started.load() >= kTasks; }));
    CPPUNIT_ASSERT(allWorkersIdle(*channel));
    listener.close();
    for (TaskHandle& task : tasks) joinWithin(task);
    CPPUNIT_ASSERT_MESSAGE(log.errorText(), all);
    CPPUNIT_ASSERT(log.sortedTags() == tagsUpTo(kClients));
    CPPUNIT_ASSERT_EQUAL(0, backoffs.load());
    for (const std::error_code& ec : log.lastError) ASSERT_ERROR(kCancelled, ec);
  }

  // Each round a task's accept() and a raw AcceptEvent posted on the same
  // channel race for the slot.  The loser fails with socket_busy (post()
  // throws it; the task's accept returns it, and the task tries again
  // after a short sleep); nothing hangs, and the round's two clients are
  // accepted once each, one by the task and one by the event.  Twenty
  // rounds on two workers.
  void testTaskAcceptRacingARawAcceptEvent() {
    std::unique_ptr<EventChannel> channel = evchan::test::createOnBackendOrSkip(B, 2);
    constexpr int kRounds = 20;
    TcpListener listener = loopbackListener();
    AcceptEvent posted(listener);
    const evchan::test::ReclaimOnExit reclaim(*channel);
    std::uint16_t tag = 0;
    for (int round = 0; round < kRounds; ++round) {
      const std::string context = "round " + std::to_string(round);
      std::atomic<bool> go{false};
      std::uint16_t byTask = 0xffff;
      std::error_code taskError;
      TaskHandle task = spawnOrSkip(*channel, [&] {
        while (!go.load()) evchan::this_task::yield();
        for (;;) {
          std::error_code ec;
          TcpSocket accepted = listener.accept(ec);
          if (ec == Errc::socket_busy) {
            evchan::this_task::sleepFor(200us);
            continue;
          }
          taskError = ec;
          if (!ec) {
            accepted.setTimeout(generous(10s));
            accepted.readExactly(&byTask, sizeof byTask);
          }
          return;
        }
      });
      go = true;
      if (round % 2 == 1) std::this_thread::sleep_for(std::chrono::microseconds(20 * round));
      bool parked = true;
      try {
        channel->post(posted);
      } catch (const evchan::SystemError& e) {
        CPPUNIT_ASSERT_MESSAGE(context + ": " + e.what(), e.code() == Errc::socket_busy);
        parked = false;
      }
      std::vector<TcpSocket> clients;
      if (!parked) {
        // The task is inside: it takes the first client, then the event.
        clients.push_back(connectTagged(listener, tag++));
        joinWithin(task);
        channel->post(posted);
        clients.push_back(connectTagged(listener, tag++));
      } else {
        clients.push_back(connectTagged(listener, tag++));
      }
      CPPUNIT_ASSERT_MESSAGE(context, channel->getEvent(generous(10s)) == &posted);
      ASSERT_NO_ERROR(posted.error());
      TcpSocket byEvent = posted.takeSocket();
      if (parked) clients.push_back(connectTagged(listener, tag++));  // for the task, busy until now
      joinWithin(task);
      ASSERT_NO_ERROR(taskError);
      std::uint16_t eventTag = 0;
      byEvent.setTimeout(generous(10s));
      byEvent.readExactly(&eventTag, sizeof eventTag);
      std::vector<std::uint16_t> both{byTask, eventTag};
      std::sort(both.begin(), both.end());
      CPPUNIT_ASSERT_MESSAGE(context, both == tagsUpTo(tag, tag - 2));
    }
  }

  // A task waiting for its turn under a CancellationShield:
  // TaskHandle::cancel() leaves its call waiting, in its place (the shield
  // defers the cancel), and it accepts when its turn comes; the task
  // behind it is not skipped ahead of it either.
  void testAShieldedTaskKeepsItsPlaceInLine() {
    TcpListener listener = loopbackListener();
    AcceptLog<TcpSocket> log(3);
    std::vector<int> order;
    std::vector<TaskHandle> tasks;
    const JoinOnExit end([&] { listener.close(); }, tasks);
    spawnParked(*channel_, tasks, 3, log.started, [&](int who) {
      const evchan::this_task::CancellationShield shield;
      ++log.started;
      std::error_code ec;
      TcpSocket accepted = listener.accept(ec);
      std::lock_guard<std::mutex> lock(log.mutex);
      log.lastError[who] = ec;
      if (!ec) {
        log.accepted.push_back(std::move(accepted));
        order.push_back(who);
      }
    });
    CPPUNIT_ASSERT(tasks[1].cancel());
    CPPUNIT_ASSERT(allWorkersIdle(*channel_));
    CPPUNIT_ASSERT(!tasks[1].done());
    std::vector<TcpSocket> clients;
    for (std::uint16_t tag = 0; tag < 3; ++tag) {
      clients.push_back(connectTagged(listener, tag));
      CPPUNIT_ASSERT(eventually([&] { return log.count() == tag + 1; }));
    }
    for (TaskHandle& task : tasks) joinWithin(task);
    for (const std::error_code& ec : log.lastError) ASSERT_NO_ERROR(ec);
    CPPUNIT_ASSERT((order == std::vector<int>{0, 1, 2}));
    CPPUNIT_ASSERT(log.sortedTags() == tagsUpTo(3));
  }

  // One of five acceptor tasks on one worker closes the listener while the
  // others wait (one inside, three for their turn): its close() yields to
  // them until they have left, every one ends with operation_canceled,
  // and the close() returns.  Twenty rounds, the closer at a different
  // place in the line each time.
  void testCloseFromAnAcceptorTaskEndsTheOthers() {
    constexpr int kRounds = 20;
    constexpr int kTasks = 5;
    for (int round = 0; round < kRounds; ++round) {
      TcpListener listener = loopbackListener();
      listener.setTimeout(generous(20s));
      AcceptLog<TcpSocket> log(kTasks);
      const int closer = round % kTasks;
      std::atomic<bool> closed{false};
      std::vector<TaskHandle> tasks;
      const JoinOnExit end([&] { listener.close(); }, tasks);
      spawnParked(*channel_, tasks, kTasks, log.started, [&](int who) {
        if (who != closer) {
          acceptUntilError(listener, log, who);
          return;
        }
        // Accepts once (the test connects), then closes.
        ++log.started;
        std::error_code ec;
        TcpSocket accepted = listener.accept(ec);
        log.lastError[who] = ec;
        if (ec) return;
        log.record(std::move(accepted), who);
        listener.close();
        closed = true;
      });
      // Connections, one at a time, until the closer has had its turn.
      const Address where = listener.localAddress();
      std::vector<TcpSocket> clients;
      std::uint16_t tag = 0;
      while (!closed.load() && tag < 2 * kTasks) {
        std::error_code ec;
        TcpSocket client = TcpSocket::connect(where, generous(10s), ec);
        if (ec) break;  // closing: refused
        const std::uint16_t mine = tag++;
        client.writeAll(&mine, sizeof mine, ec);
        clients.push_back(std::move(client));
        eventually([&] { return closed.load() || log.count() == tag; }, 2s);
      }
      CPPUNIT_ASSERT_MESSAGE("round " + std::to_string(round), eventually([&] { return closed.load(); }));
      for (TaskHandle& task : tasks) joinWithin(task);
      const std::string context = "round " + std::to_string(round) + ": " + describeAll(log.lastError);
      for (int who = 0; who < kTasks; ++who) {
        if (who == closer) {
          ASSERT_NO_ERROR(log.lastError[who]);
        } else {
          CPPUNIT_ASSERT_MESSAGE(context, log.lastError[who] == kCancelled);
        }
      }
      CPPUNIT_ASSERT(!listener.isOpen());
      const std::vector<std::uint16_t> tags = log.sortedTags();
      CPPUNIT_ASSERT_MESSAGE(context, tags == tagsUpTo(static_cast<int>(tags.size())));
    }
  }

  // Four acceptor tasks and a plain thread accept on one listener; 96
  // clients: each connection is accepted exactly once, and close() ends
  // the tasks with operation_canceled (the thread too, or with not_open
  // when it was between two calls).
  void testAThreadAcceptsBesideAcceptorTasks() {
    const std::string why = evchan::test::whyAcceptExBesideAPlainAcceptMayFail();
    if (B == Backend::Iocp && !why.empty()) EVCHAN_SKIP(why);
    std::unique_ptr<EventChannel> channel = evchan::test::createOnBackendOrSkip(B, 2);
    constexpr int kClients = 96;
    TcpListener listener = loopbackListener();
    AcceptLog<TcpSocket> log(5);
    std::vector<TaskHandle> tasks;
    std::thread thread;
    const JoinOnExit end(
        [&] {
          listener.close();
          if (thread.joinable()) thread.join();
        },
        tasks);
    for (int who = 0; who < 4; ++who)
      tasks.push_back(spawnOrSkip(*channel, [&, who] { acceptUntilError(listener, log, who); }));
    thread = std::thread([&] { acceptUntilError(listener, log, 4); });
    std::vector<TcpSocket> clients;
    for (int i = 0; i < kClients; ++i) clients.push_back(connectTagged(listener, static_cast<std::uint16_t>(i)));
    const bool all = eventually([&] { return log.count() >= kClients; });
    // Every acceptor started (a task just spawned leaves its worker idle too)
    // and parked in its call, none between two: close() ends each.
    CPPUNIT_ASSERT(eventually([&] { return log.started.load() >= 5; }));
    CPPUNIT_ASSERT(allWorkersIdle(*channel));
    listener.close();
    thread.join();
    for (TaskHandle& task : tasks) joinWithin(task);
    CPPUNIT_ASSERT_MESSAGE(log.errorText(), all);
    CPPUNIT_ASSERT(log.sortedTags() == tagsUpTo(kClients));
    const std::string errors = describeAll(log.lastError);
    for (int who = 0; who < 4; ++who) CPPUNIT_ASSERT_MESSAGE(errors, log.lastError[who] == kCancelled);
    // The thread may have been between two calls.
    CPPUNIT_ASSERT_MESSAGE(errors, log.lastError[4] == kCancelled || log.lastError[4] == Errc::not_open);
  }

  // Eight receiver tasks on two workers, each ended at random: by
  // TaskHandle::cancel(), by a DeadlineScope of a few milliseconds, by the
  // socket's cancel(); a new receiver replaces each one that ends, while
  // a thread sends 300 datagrams.  A call ended so takes no datagram with
  // it: in the end every datagram is received exactly once, and no call
  // fails but with operation_canceled or timed_out (or not_open, for one
  // made after the last close()).
  void testReceiversEndedAtRandomLoseNoDatagram() {
    std::unique_ptr<EventChannel> channel = evchan::test::createOnBackendOrSkip(B, 2);
    constexpr int kReceivers = 8;
    constexpr int kDatagrams = 300;
    UdpSocket socket = boundUdpSocket();
    UdpSocket sender = boundUdpSocket();
    ReceiveLog log(1, kDatagrams);
    std::atomic<bool> stop{false};
    std::mutex tasksMutex;
    std::vector<TaskHandle> tasks;
    const JoinOnExit end(
        [&] {
          stop = true;
          socket.close();
        },
        tasks);
    std::atomic<int> spawned{0};
    std::function<void(int)> spawnReceiver = [&](int who) {
      const int serial = spawned++;
      TaskHandle task = spawnOrSkip(*channel, [&, serial] {
        // A third of them under a deadline of 1 to 4 ms.
        std::unique_ptr<evchan::this_task::DeadlineScope> deadline;
        if (serial % 3 == 1)
          deadline = std::make_unique<evchan::this_task::DeadlineScope>(std::chrono::milliseconds(1 + serial % 4));
        for (;;) {
          Datagram datagram{};
          std::error_code ec;
          socket.receive(&datagram, sizeof datagram, ec);
          if (ec) {
            log.recordError(ec);
            break;
          }
          log.record(datagram);
        }
      });
      std::lock_guard<std::mutex> lock(tasksMutex);
      tasks[who] = std::move(task);
    };
    tasks.resize(kReceivers);
    for (int who = 0; who < kReceivers; ++who) spawnReceiver(who);
    std::mt19937 random(20261205);
    std::atomic<int> sent{0};
    std::mutex sendMutex;
    std::map<std::string, int> sendErrors;
    std::thread sending([&] {
      sendWindowed(sender, socket.localAddress(), 0, kDatagrams, log, sent, 16, sendErrors, sendMutex);
    });
    // The storm: until the sender is done, end receivers at random and
    // replace those that ended.
    while (sent.load() < kDatagrams) {
      const int who = static_cast<int>(random() % kReceivers);
      switch (random() % 4) {
        case 0: {
          std::lock_guard<std::mutex> lock(tasksMutex);
          tasks[who].cancel();
          break;
        }
        case 1: socket.cancel(); break;
        default: break;
      }
      for (int i = 0; i < kReceivers; ++i) {
        bool ended = false;
        {
          std::lock_guard<std::mutex> lock(tasksMutex);
          ended = tasks[i].done();
          if (ended) tasks[i].join();
        }
        if (ended) spawnReceiver(i);
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200 + random() % 800));
    }
    sending.join();
    // Calm: two receivers that nothing ends take what is left, beside
    // those of the storm still receiving.
    std::vector<TaskHandle> calm;
    for (int who = 0; who < 2; ++who) {
      calm.push_back(spawnOrSkip(*channel, [&] {
        for (;;) {
          Datagram datagram{};
          std::error_code ec;
          socket.receive(&datagram, sizeof datagram, ec);
          if (ec) {
            log.recordError(ec);
            return;
          }
          log.record(datagram);
        }
      }));
    }
    const JoinOnExit endCalm([&] { socket.close(); }, calm);
    const bool all = eventually([&] { return log.received.load() >= kDatagrams; });
    socket.close();
    for (TaskHandle& task : calm) joinWithin(task);
    for (TaskHandle& task : tasks) joinWithin(task);
    CPPUNIT_ASSERT(sendErrors.empty());
    CPPUNIT_ASSERT_MESSAGE(log.missingOrTwice() + "; " + log.errorText(), all);
    CPPUNIT_ASSERT_EQUAL(std::string(), log.missingOrTwice());
    CPPUNIT_ASSERT_EQUAL_MESSAGE(log.errorText(), 0,
                                 log.errorsOtherThan({std::errc::operation_canceled, std::errc::timed_out,
                                                      std::errc::bad_file_descriptor}));
  }

 private:
  void shutdownEndsWaitingAccepts(int workers) {
    constexpr int kRounds = 10;
    constexpr int kTasks = 6;
    for (int round = 0; round < kRounds; ++round) {
      std::unique_ptr<EventChannel> channel = evchan::test::createOnBackendOrSkip(B, workers);
      TcpListener listener = loopbackListener();
      AcceptLog<TcpSocket> log(kTasks);
      std::vector<TaskHandle> tasks;
      const JoinOnExit end([&] { listener.close(); }, tasks);
      for (int who = 0; who < kTasks; ++who)
        tasks.push_back(spawnOrSkip(*channel, [&, who] { acceptUntilError(listener, log, who); }));
      CPPUNIT_ASSERT(eventually([&] { return log.started.load() == kTasks; }));
      CPPUNIT_ASSERT(allWorkersIdle(*channel));
      channel->shutdown();
      for (TaskHandle& task : tasks) joinWithin(task);
      for (const std::error_code& ec : log.lastError)
        CPPUNIT_ASSERT_MESSAGE("round " + std::to_string(round) + ": " + describeAll(log.lastError), ec == kCancelled);
      // The listener outlives the channel and still works.
      TcpSocket client = connectTagged(listener, 9);
      listener.setTimeout(generous(10s));
      TcpSocket accepted = listener.accept();
      std::uint16_t tag = 0;
      accepted.readExactly(&tag, sizeof tag);
      CPPUNIT_ASSERT_EQUAL(std::uint16_t{9}, tag);
    }
  }

  void receiveUntilError(UdpSocket& socket, ReceiveLog& log, bool withFrom) {
    ++log.started;
    for (;;) {
      Datagram datagram{};
      std::error_code ec;
      if (withFrom) {
        Address from;
        socket.receiveFrom(&datagram, sizeof datagram, from, ec);
      } else {
        socket.receive(&datagram, sizeof datagram, ec);
      }
      if (ec) {
        log.recordError(ec);
        return;
      }
      log.record(datagram);
    }
  }

  // `tasks` acceptors on `channel`; four threads connect `clients` tagged
  // clients in all.
  template <class Listener>
  void floodAcceptors(EventChannel& channel, Listener& listener, int taskCount, int clientCount) {
    using Socket = decltype(listener.accept());
    AcceptLog<Socket> log(taskCount);
    std::vector<TaskHandle> tasks;
    const JoinOnExit end([&] { listener.close(); }, tasks);
    for (int who = 0; who < taskCount; ++who)
      tasks.push_back(spawnOrSkip(channel, [&, who] { acceptUntilError(listener, log, who); }));
    constexpr int kThreads = 4;
    std::vector<std::vector<Socket>> clients(kThreads);
    std::vector<std::string> connectErrors(kThreads);
    std::vector<std::thread> connectors;
    for (int t = 0; t < kThreads; ++t) {
      connectors.emplace_back([&, t] {
        try {
          for (int i = t; i < clientCount; i += kThreads)
            clients[t].push_back(connectTagged(listener, static_cast<std::uint16_t>(i)));
        } catch (const std::exception& e) {
          connectErrors[t] = e.what();
        }
      });
    }
    for (std::thread& connector : connectors) connector.join();
    for (const std::string& error : connectErrors) CPPUNIT_ASSERT_EQUAL(std::string(), error);
    const bool all = eventually([&] { return log.count() >= clientCount; });
    // Every acceptor started (a task just spawned leaves its worker idle too)
    // and parked in its call, none between two: close() ends each.
    CPPUNIT_ASSERT(eventually([&] { return log.started.load() >= taskCount; }));
    CPPUNIT_ASSERT(allWorkersIdle(channel));
    listener.close();
    for (TaskHandle& task : tasks) joinWithin(task);
    CPPUNIT_ASSERT_MESSAGE(log.errorText(), all);
    CPPUNIT_ASSERT(log.sortedTags() == tagsUpTo(clientCount));
    for (const std::error_code& ec : log.lastError)
      CPPUNIT_ASSERT_MESSAGE(log.errorText(), ec == kCancelled);
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(TaskTurnsAdversarialTest<Backend::Epoll>);
CPPUNIT_TEST_SUITE_REGISTRATION(TaskTurnsAdversarialTest<Backend::Poll>);
CPPUNIT_TEST_SUITE_REGISTRATION(TaskTurnsAdversarialTest<Backend::Select>);
CPPUNIT_TEST_SUITE_REGISTRATION(TaskTurnsAdversarialTest<Backend::AprPollset>);
CPPUNIT_TEST_SUITE_REGISTRATION(TaskTurnsAdversarialTest<Backend::IoUring>);
CPPUNIT_TEST_SUITE_REGISTRATION(TaskTurnsAdversarialTest<Backend::Aio>);
CPPUNIT_TEST_SUITE_REGISTRATION(TaskTurnsAdversarialTest<Backend::Iocp>);

}  // namespace
