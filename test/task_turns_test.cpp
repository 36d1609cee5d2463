// SPDX-License-Identifier: Apache-2.0
// Tasks of one channel that accept on one listener, or receive on one UDP
// socket, at the same time: they take turns at the channel's slot for the
// socket (first come, first in) instead of failing with socket_busy, and
// cancel(), close(), the socket's timeout and TaskHandle::cancel() end a
// call waiting for its turn as they end one waiting in the kernel.  On
// every backend.
#include <cppunit/extensions/HelperMacros.h>

#include <evchan/evchan.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "support/backend_fixture.h"
#include "support/diagnostics.h"
#include "support/named_suite.h"
#include "support/reclaim_on_exit.h"
#include "support/run_where.h"
#include "support/turn_takers.h"
#include "support/waiting.h"

namespace {

using namespace std::chrono_literals;
using evchan::AcceptEvent;
using evchan::Backend;
using evchan::Duration;
using evchan::Errc;
using evchan::EventChannel;
using evchan::TaskHandle;
using evchan::TcpListener;
using evchan::TcpSocket;
using evchan::UdpSocket;
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
using evchan::test::ReclaimOnExit;
using evchan::test::spawnAcceptors;
using evchan::test::spawnOrSkip;
using evchan::test::spawnParked;
using evchan::test::tagsUpTo;

const std::error_code kCancelled = std::make_error_code(std::errc::operation_canceled);

// How a task that calls again and again ends once the socket is closed:
// its call was waiting (operation_canceled), or it came after the close()
// (not_open).  Never socket_busy.
void assertStoppedByClose(const std::error_code& ec) {
  CPPUNIT_ASSERT_MESSAGE(ec.message(), ec == kCancelled || ec == Errc::not_open);
}

template <Backend B>
class TaskTurnsTest : public evchan::test::BackendChannelFixture<B> {
  EVCHAN_TEST_SUITE_NAMED(TaskTurnsTest, suiteName());
  CPPUNIT_TEST(testAcceptorTasksTakeTurnsOnOneWorker);
  CPPUNIT_TEST(testAcceptorTasksTakeTurnsOnTwoWorkers);
  CPPUNIT_TEST(testReceiverTasksTakeTurns);
  CPPUNIT_TEST(testTurnsComeInArrivalOrder);
  CPPUNIT_TEST(testCloseEndsEveryWaitingAccept);
  CPPUNIT_TEST(testCancelEndsEveryWaitingAcceptAndTheListenerStaysOpen);
  CPPUNIT_TEST(testTheTimeoutCoversTheWaitForTheTurn);
  CPPUNIT_TEST(testCancellingTheTaskInsidePassesTheTurnOn);
  CPPUNIT_TEST(testCancellingAWaitingTaskKeepsTheOthersInLine);
  CPPUNIT_TEST(testTasksOfTwoChannelsDoNotWaitForEachOther);
  CPPUNIT_TEST(testAnEventPostedDirectlyStillMakesTasksBusy);
  CPPUNIT_TEST(testAcceptorsCancelledAtRandomLoseNoConnection);
  CPPUNIT_TEST(testTheTurnPassesWhileTheTaskThatHadItComputes);
  CPPUNIT_TEST(testANewReceiveDoesNotTakeADatagramAheadOfAWaitingOne);
  CPPUNIT_TEST(testATinyTimeoutStillAcceptsAQueuedConnection);
  CPPUNIT_TEST_SUITE_END();

 public:
  using evchan::test::BackendChannelFixture<B>::channel_;

  static std::string suiteName() { return std::string("TaskTurnsTest<") + evchan::backendName(B) + ">"; }

  void testAcceptorTasksTakeTurnsOnOneWorker() { acceptorsTakeTurns(*channel_); }

  void testAcceptorTasksTakeTurnsOnTwoWorkers() {
    std::unique_ptr<EventChannel> channel = evchan::test::createOnBackendOrSkip(B, 2);
    acceptorsTakeTurns(*channel);
  }

  // Four tasks receive on one socket; every datagram goes to exactly one
  // of them, and none fails with socket_busy.
  void testReceiverTasksTakeTurns() {
    constexpr int kTasks = 4;
    constexpr int kDatagrams = 64;
    UdpSocket receiver = boundUdpSocket();
    UdpSocket sender = boundUdpSocket();
    std::mutex mutex;
    std::vector<int> seen(kDatagrams, 0);
    std::vector<std::error_code> lastError(kTasks);
    std::atomic<int> received{0};
    std::vector<TaskHandle> tasks;
    const JoinOnExit end([&] { receiver.close(); }, tasks);
    for (int who = 0; who < kTasks; ++who) {
      tasks.push_back(spawnOrSkip(*channel_, [&, who] {
        for (;;) {
          unsigned char number = 0;
          std::error_code ec;
          receiver.receive(&number, 1, ec);
          if (ec) {
            lastError[who] = ec;
            return;
          }
          std::lock_guard<std::mutex> lock(mutex);
          if (number < kDatagrams) ++seen[number];
          ++received;
        }
      }));
    }
    for (int i = 0; i < kDatagrams; ++i) {
      const auto number = static_cast<unsigned char>(i);
      sender.sendTo(&number, 1, receiver.localAddress());
      if (i % 8 == 7) std::this_thread::sleep_for(1ms);  // let them park again now and then
    }
    CPPUNIT_ASSERT_MESSAGE("not every datagram was received",
                           eventually([&] { return received.load() == kDatagrams; }));
    receiver.close();
    for (TaskHandle& task : tasks) joinWithin(task);
    for (int i = 0; i < kDatagrams; ++i) CPPUNIT_ASSERT_EQUAL_MESSAGE(std::to_string(i), 1, seen[i]);
    for (const std::error_code& ec : lastError) assertStoppedByClose(ec);
  }

  // Tasks that find another task accepting wait in the order they came:
  // one connection at a time goes to the first of them still waiting.
  void testTurnsComeInArrivalOrder() {
    constexpr int kTasks = 4;
    TcpListener listener = loopbackListener();
    std::vector<int> order;
    std::mutex mutex;
    std::atomic<int> started{0};
    std::vector<TaskHandle> tasks;
    const JoinOnExit end([&] { listener.close(); }, tasks);
    spawnParked(*channel_, tasks, kTasks, started, [&](int who) {
      ++started;
      TcpSocket accepted = listener.accept();
      std::lock_guard<std::mutex> lock(mutex);
      order.push_back(who);
    });
    std::vector<TcpSocket> clients;
    for (int i = 0; i < kTasks; ++i) {
      clients.push_back(TcpSocket::connect(listener.localAddress(), generous(10s)));
      CPPUNIT_ASSERT(eventually([&] {
        std::lock_guard<std::mutex> lock(mutex);
        return static_cast<int>(order.size()) == i + 1;
      }));
    }
    for (TaskHandle& task : tasks) joinWithin(task);
    CPPUNIT_ASSERT((order == std::vector<int>{0, 1, 2, 3}));
  }

  void testCloseEndsEveryWaitingAccept() {
    TcpListener listener = loopbackListener();
    AcceptLog<TcpSocket> log(3);
    std::vector<TaskHandle> tasks;
    const JoinOnExit end([&] { listener.close(); }, tasks);
    spawnAcceptors(*channel_, listener, log, tasks);
    listener.close();
    for (TaskHandle& task : tasks) joinWithin(task);
    for (const std::error_code& ec : log.lastError) ASSERT_ERROR(kCancelled, ec);
    CPPUNIT_ASSERT(!listener.isOpen());
  }

  void testCancelEndsEveryWaitingAcceptAndTheListenerStaysOpen() {
    TcpListener listener = loopbackListener();
    AcceptLog<TcpSocket> log(3);
    std::vector<TaskHandle> tasks;
    const JoinOnExit end([&] { listener.close(); }, tasks);
    spawnAcceptors(*channel_, listener, log, tasks);
    listener.cancel();
    for (TaskHandle& task : tasks) joinWithin(task);
    for (const std::error_code& ec : log.lastError) ASSERT_ERROR(kCancelled, ec);
    // Open still: accepts made after the cancel() work, in turn too.
    AcceptLog<TcpSocket> after(2);
    std::vector<TaskHandle> again;
    const JoinOnExit endAgain([&] { listener.close(); }, again);
    spawnAcceptors(*channel_, listener, after, again);
    TcpSocket clientA = connectTagged(listener, 0);
    TcpSocket clientB = connectTagged(listener, 1);
    CPPUNIT_ASSERT(eventually([&] { return after.sortedTags() == tagsUpTo(2); }));
    listener.close();
    for (TaskHandle& task : again) joinWithin(task);
    for (const std::error_code& ec : after.lastError) assertStoppedByClose(ec);
  }

  // The listener's timeout bounds the whole call, the wait for the turn
  // included: the tasks waiting behind the first end with timed_out too.
  void testTheTimeoutCoversTheWaitForTheTurn() {
    TcpListener listener = loopbackListener();
    listener.setTimeout(200ms);
    AcceptLog<TcpSocket> log(3);
    std::vector<TaskHandle> tasks;
    const JoinOnExit end([&] { listener.close(); }, tasks);
    for (int who = 0; who < 3; ++who)
      tasks.push_back(spawnOrSkip(*channel_, [&, who] { acceptUntilError(listener, log, who); }));
    for (TaskHandle& task : tasks) joinWithin(task);
    for (const std::error_code& ec : log.lastError) ASSERT_ERROR(std::errc::timed_out, ec);
  }

  // TaskHandle::cancel() of the task whose accept is inside: the one
  // waiting behind it goes in and gets the next connection.
  void testCancellingTheTaskInsidePassesTheTurnOn() {
    TcpListener listener = loopbackListener();
    AcceptLog<TcpSocket> log(2);
    std::vector<TaskHandle> tasks;
    const JoinOnExit end([&] { listener.close(); }, tasks);
    spawnAcceptors(*channel_, listener, log, tasks);
    tasks[0].cancel();
    CPPUNIT_ASSERT(eventually([&] { return tasks[0].done(); }));
    ASSERT_ERROR(kCancelled, log.lastError[0]);
    TcpSocket client = connectTagged(listener, 0);
    CPPUNIT_ASSERT(eventually([&] { return log.sortedTags() == tagsUpTo(1); }));
    CPPUNIT_ASSERT_EQUAL(1, log.acceptedBy(1));
    listener.close();
    for (TaskHandle& task : tasks) joinWithin(task);
    assertStoppedByClose(log.lastError[1]);
  }

  // TaskHandle::cancel() of a task waiting for its turn ends only that
  // task; the one inside and the one behind still accept.
  void testCancellingAWaitingTaskKeepsTheOthersInLine() {
    TcpListener listener = loopbackListener();
    AcceptLog<TcpSocket> log(3);
    std::vector<TaskHandle> tasks;
    const JoinOnExit end([&] { listener.close(); }, tasks);
    spawnAcceptors(*channel_, listener, log, tasks);
    tasks[1].cancel();
    CPPUNIT_ASSERT(eventually([&] { return tasks[1].done(); }));
    ASSERT_ERROR(kCancelled, log.lastError[1]);
    std::vector<TcpSocket> clients;
    for (std::uint16_t tag : tagsUpTo(4)) clients.push_back(connectTagged(listener, tag));
    CPPUNIT_ASSERT(eventually([&] { return log.sortedTags() == tagsUpTo(4); }));
    CPPUNIT_ASSERT_EQUAL(0, log.acceptedBy(1));
    listener.close();
    for (TaskHandle& task : tasks) joinWithin(task);
    assertStoppedByClose(log.lastError[0]);
    assertStoppedByClose(log.lastError[2]);
  }

  // Each channel keeps its own slot: a task of another channel accepts
  // while this channel's task waits in accept.
  void testTasksOfTwoChannelsDoNotWaitForEachOther() {
    std::unique_ptr<EventChannel> other = evchan::test::createOnBackendOrSkip(B, 1);
    TcpListener listener = loopbackListener();
    AcceptLog<TcpSocket> log(2);
    std::vector<TaskHandle> tasks;
    const JoinOnExit end([&] { listener.close(); }, tasks);
    tasks.push_back(spawnOrSkip(*channel_, [&] { acceptUntilError(listener, log, 0); }));
    tasks.push_back(spawnOrSkip(*other, [&] { acceptUntilError(listener, log, 1); }));
    CPPUNIT_ASSERT(eventually([&] { return log.started.load() == 2; }));
    CPPUNIT_ASSERT(allWorkersIdle(*channel_));
    CPPUNIT_ASSERT(allWorkersIdle(*other));
    std::vector<TcpSocket> clients;
    for (std::uint16_t tag : tagsUpTo(8)) clients.push_back(connectTagged(listener, tag));
    CPPUNIT_ASSERT(eventually([&] { return log.sortedTags() == tagsUpTo(8); }));
    listener.close();
    for (TaskHandle& task : tasks) joinWithin(task);
    assertStoppedByClose(log.lastError[0]);
    assertStoppedByClose(log.lastError[1]);
  }

  // An AcceptEvent the user posted on the channel is not a task's call:
  // the tasks cannot know when it leaves the slot, so they fail at once
  // with socket_busy, as before, rather than wait on it.
  void testAnEventPostedDirectlyStillMakesTasksBusy() {
    TcpListener listener = loopbackListener();
    AcceptEvent posted(listener);
    ReclaimOnExit reclaim(*channel_);
    channel_->post(posted);
    AcceptLog<TcpSocket> log(2);
    std::vector<TaskHandle> tasks;
    const JoinOnExit end([&] { listener.close(); }, tasks);
    for (int who = 0; who < 2; ++who)
      tasks.push_back(spawnOrSkip(*channel_, [&, who] { acceptUntilError(listener, log, who); }));
    for (TaskHandle& task : tasks) joinWithin(task);
    ASSERT_ERROR(Errc::socket_busy, log.lastError[0]);
    ASSERT_ERROR(Errc::socket_busy, log.lastError[1]);
    TcpSocket client = connectTagged(listener, 0);
    CPPUNIT_ASSERT(channel_->getEvent(generous(10s)) == &posted);
    ASSERT_NO_ERROR(posted.error());
  }

  // Acceptor tasks that TaskHandle::cancel() ends at random moments, while
  // new ones start and clients connect: every connection is accepted by
  // exactly one task, no accept fails but by the cancel, none hangs.
  void testAcceptorsCancelledAtRandomLoseNoConnection() {
    std::unique_ptr<EventChannel> channel = evchan::test::createOnBackendOrSkip(B, 2);
    constexpr int kRounds = 30;
    constexpr int kTasks = 4;
    std::mt19937 random(20261205);
    for (int round = 0; round < kRounds; ++round) {
      TcpListener listener = loopbackListener();
      AcceptLog<TcpSocket> log(kTasks + 1);
      std::vector<TaskHandle> tasks;
      const JoinOnExit end([&] { listener.close(); }, tasks);
      for (int who = 0; who < kTasks; ++who)
        tasks.push_back(spawnOrSkip(*channel, [&, who] { acceptUntilError(listener, log, who); }));
      std::vector<TcpSocket> clients;
      const std::vector<std::uint16_t> tags = tagsUpTo(12);
      const int victim = static_cast<int>(random() % kTasks);
      const std::size_t cancelAt = random() % tags.size();
      for (std::size_t i = 0; i < tags.size(); ++i) {
        if (i == cancelAt) tasks[victim].cancel();
        clients.push_back(connectTagged(listener, tags[i]));
      }
      // A late acceptor, in case the cancel took the last one inside.
      tasks.push_back(spawnOrSkip(*channel, [&] { acceptUntilError(listener, log, kTasks); }));
      const bool all = eventually([&] { return log.sortedTags() == tags; });
      listener.close();
      for (TaskHandle& task : tasks) joinWithin(task);
      CPPUNIT_ASSERT_MESSAGE("round " + std::to_string(round), tags == log.sortedTags());
      CPPUNIT_ASSERT(all);
      for (int who = 0; who < kTasks; ++who) assertStoppedByClose(log.lastError[who]);
      assertStoppedByClose(log.lastError[kTasks]);
    }
  }

  // The task that accepted computes on without suspending: the task it
  // handed the turn to resumes on the other, idle, worker and accepts the
  // next connection meanwhile (not once the first task waits again).
  void testTheTurnPassesWhileTheTaskThatHadItComputes() {
    std::unique_ptr<EventChannel> channel = evchan::test::createOnBackendOrSkip(B, 2);
    TcpListener listener = loopbackListener();
    std::atomic<int> started{0};
    std::atomic<bool> secondAccepted{false};
    std::atomic<bool> sawItWhileComputing{false};
    std::vector<TaskHandle> tasks;
    const JoinOnExit end([&] { listener.close(); }, tasks);
    tasks.push_back(spawnOrSkip(*channel, [&] {
      ++started;
      TcpSocket accepted = listener.accept();
      const auto giveUp = std::chrono::steady_clock::now() + generous(5s);
      while (!secondAccepted.load() && std::chrono::steady_clock::now() < giveUp) {
      }
      sawItWhileComputing = secondAccepted.load();
    }));
    CPPUNIT_ASSERT(eventually([&] { return started.load() == 1; }));
    CPPUNIT_ASSERT(allWorkersIdle(*channel));
    tasks.push_back(spawnOrSkip(*channel, [&] {
      ++started;
      TcpSocket accepted = listener.accept();
      secondAccepted = true;
    }));
    CPPUNIT_ASSERT(eventually([&] { return started.load() == 2; }));
    CPPUNIT_ASSERT(allWorkersIdle(*channel));
    TcpSocket first = TcpSocket::connect(listener.localAddress(), generous(10s));
    TcpSocket second = TcpSocket::connect(listener.localAddress(), generous(10s));
    for (TaskHandle& task : tasks) joinWithin(task);
    CPPUNIT_ASSERT_MESSAGE("the waiting task accepted only once the first stopped computing",
                           sawItWhileComputing.load());
  }

  // One worker: A receives d0 while B waits for its turn, then, before A
  // suspends, d1 arrives and A receives again.  B came first: d1 is B's,
  // and A's second receive waits behind it (A gets d2).
  void testANewReceiveDoesNotTakeADatagramAheadOfAWaitingOne() {
    UdpSocket receiver = boundUdpSocket();
    UdpSocket sender = boundUdpSocket();
    std::atomic<int> started{0};
    std::atomic<bool> gotFirst{false};
    std::atomic<bool> secondSent{false};
    std::mutex mutex;
    std::string order;
    auto receiveOne = [&](char who) {
      char datagram = 0;
      receiver.receive(&datagram, 1);
      std::lock_guard<std::mutex> lock(mutex);
      order += who;
      order += datagram;
    };
    std::vector<TaskHandle> tasks;
    const JoinOnExit end([&] { receiver.close(); }, tasks);
    tasks.push_back(spawnOrSkip(*channel_, [&] {
      ++started;
      receiveOne('A');
      gotFirst = true;
      const auto giveUp = std::chrono::steady_clock::now() + generous(5s);
      while (!secondSent.load() && std::chrono::steady_clock::now() < giveUp) {
      }
      receiveOne('A');
    }));
    CPPUNIT_ASSERT(eventually([&] { return started.load() == 1; }));
    CPPUNIT_ASSERT(allWorkersIdle(*channel_));
    tasks.push_back(spawnOrSkip(*channel_, [&] {
      ++started;
      receiveOne('B');
    }));
    CPPUNIT_ASSERT(eventually([&] { return started.load() == 2; }));
    CPPUNIT_ASSERT(allWorkersIdle(*channel_));
    sender.sendTo("0", 1, receiver.localAddress());
    CPPUNIT_ASSERT(eventually([&] { return gotFirst.load(); }));
    sender.sendTo("1", 1, receiver.localAddress());
    secondSent = true;
    CPPUNIT_ASSERT(eventually([&] {
      std::lock_guard<std::mutex> lock(mutex);
      return order.size() == 4;
    }));
    sender.sendTo("2", 1, receiver.localAddress());
    for (TaskHandle& task : tasks) joinWithin(task);
    CPPUNIT_ASSERT_EQUAL(std::string("A0B1A2"), order);
  }

  // A timeout too short for any wait still lets an accept with no other
  // task in line take a connection already queued, as outside the turns.
  void testATinyTimeoutStillAcceptsAQueuedConnection() {
    TcpListener listener = loopbackListener();
    TcpSocket client = TcpSocket::connect(listener.localAddress(), generous(10s));
    listener.setTimeout(std::chrono::nanoseconds(1));
    std::error_code ec;
    TaskHandle task = spawnOrSkip(*channel_, [&] { TcpSocket accepted = listener.accept(ec); });
    joinWithin(task);
    ASSERT_NO_ERROR(ec);
  }

 private:
  // Four acceptor tasks share one listener; 24 clients connect one after
  // another, each sending its tag.  Every connection is accepted once, no
  // accept fails with socket_busy, and close() ends them all.
  void acceptorsTakeTurns(EventChannel& channel) {
    constexpr int kTasks = 4;
    TcpListener listener = loopbackListener();
    AcceptLog<TcpSocket> log(kTasks);
    std::vector<TaskHandle> tasks;
    const JoinOnExit end([&] { listener.close(); }, tasks);
    for (int who = 0; who < kTasks; ++who)
      tasks.push_back(spawnOrSkip(channel, [&, who] { acceptUntilError(listener, log, who); }));
    const std::vector<std::uint16_t> tags = tagsUpTo(24);
    std::vector<TcpSocket> clients;
    for (std::uint16_t tag : tags) clients.push_back(connectTagged(listener, tag));
    const bool all = eventually([&] { return log.sortedTags() == tags; });
    listener.close();
    for (TaskHandle& task : tasks) joinWithin(task);
    CPPUNIT_ASSERT(tags == log.sortedTags());
    CPPUNIT_ASSERT(all);
    for (const std::error_code& ec : log.lastError) assertStoppedByClose(ec);
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(TaskTurnsTest<Backend::Epoll>);
CPPUNIT_TEST_SUITE_REGISTRATION(TaskTurnsTest<Backend::Poll>);
CPPUNIT_TEST_SUITE_REGISTRATION(TaskTurnsTest<Backend::Select>);
CPPUNIT_TEST_SUITE_REGISTRATION(TaskTurnsTest<Backend::AprPollset>);
CPPUNIT_TEST_SUITE_REGISTRATION(TaskTurnsTest<Backend::IoUring>);
CPPUNIT_TEST_SUITE_REGISTRATION(TaskTurnsTest<Backend::Aio>);
CPPUNIT_TEST_SUITE_REGISTRATION(TaskTurnsTest<Backend::Iocp>);

}  // namespace
