// SPDX-License-Identifier: Apache-2.0
// Tests of this_task::DeadlineScope and withTimeout(): one deadline for a
// whole sequence of waits in a task (socket calls, sleeps, joins,
// notifications, condition variables), nested scopes, shields, and the
// calls that it does not bound (Mutex::lock, outside a task).
#include <cppunit/extensions/HelperMacros.h>

#include <evchan/evchan.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/loopback.h"
#include "support/waiting.h"

namespace {

using namespace std::chrono_literals;
using evchan::ConditionVariable;
using evchan::EventChannel;
using evchan::Mutex;
using evchan::Notification;
using evchan::SystemError;
using evchan::TaskHandle;
using evchan::test::describe;
using evchan::test::makeChannel;
namespace this_task = evchan::this_task;
using Clock = std::chrono::steady_clock;

// How a call ended: "returned", or the error of the SystemError it threw.
std::string endOf(const std::function<void()>& call) {
  try {
    call();
    return "returned";
  } catch (const SystemError& e) {
    return e.code() == std::errc::timed_out ? "timed out" : "SystemError " + describe(e.code());
  }
}

// Runs `body` in a task of `channel` and returns how it ended.
std::string inTask(EventChannel& channel, const std::function<void()>& body) {
  std::string outcome;
  TaskHandle task = channel.spawn([&] { outcome = endOf(body); });
  evchan::test::joinWithin(task);
  return outcome;
}

}  // namespace

class TaskDeadlineTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(TaskDeadlineTest);
  CPPUNIT_TEST(testDeadlineBoundsASequenceOfReads);
  CPPUNIT_TEST(testEveryKindOfWaitEndsAtTheDeadline);
  CPPUNIT_TEST(testWaitAfterTheDeadlineFailsAtOnce);
  CPPUNIT_TEST(testErrorCodeFormsReturnTimedOut);
  CPPUNIT_TEST(testWorkFinishedInTimeIsUntouched);
  CPPUNIT_TEST(testNestedScopesKeepTheEarlierDeadline);
  CPPUNIT_TEST(testShieldLiftsTheDeadline);
  CPPUNIT_TEST(testMutexLockIsNotBounded);
  CPPUNIT_TEST(testOutsideATaskIsRefused);
  CPPUNIT_TEST_SUITE_END();

 public:
  // A peer that answers every 40 ms: each read is quick, the sequence is
  // not; the 150 ms deadline ends it although no single step took long.
  void testDeadlineBoundsASequenceOfReads() {
    std::unique_ptr<EventChannel> channel = makeChannel(2);
    evchan::test::ConnectedPair pair = evchan::test::connectPair();
    std::atomic<bool> stop{false}, reading{false};
    TaskHandle peer = channel->spawn([&] {
      // From the reader's start: bytes written before it would be read at once.
      while (!reading.load() && !stop.load()) this_task::sleepFor(1ms);
      while (!stop.load()) {
        this_task::sleepFor(40ms);
        pair.client.writeAll("x", 1);
      }
    });
    int reads = 0;
    Clock::duration took{};
    const std::string outcome = inTask(*channel, [&] {
      const Clock::time_point start = Clock::now();
      reading = true;
      try {
        this_task::withTimeout(150ms, [&] {
          pair.server.setTimeout(10s);  // per step: never reached
          for (;;) {
            char byte;
            pair.server.readExactly(&byte, 1);
            ++reads;
          }
        });
      } catch (...) {
        took = Clock::now() - start;
        throw;
      }
    });
    stop = true;
    evchan::test::joinWithin(peer);
    CPPUNIT_ASSERT_EQUAL(std::string("timed out"), outcome);
    // One byte per 40 ms at most, over the time the sequence really took
    // (a loaded machine may fire the deadline late).
    CPPUNIT_ASSERT_MESSAGE(std::to_string(reads) + " reads in " + std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()) + " ms",
                           reads <= 1 + static_cast<int>(took / 40ms));
    CPPUNIT_ASSERT(took >= 150ms);
    CPPUNIT_ASSERT(took < 10s);  // the per-step timeout did not decide it
  }

  void testEveryKindOfWaitEndsAtTheDeadline() {
    std::unique_ptr<EventChannel> channel = makeChannel(2);
    evchan::test::ConnectedPair pair = evchan::test::connectPair();
    evchan::TcpListener listener = evchan::TcpListener::listen({"127.0.0.1", 0});
    Notification never;
    Mutex mutex;
    ConditionVariable condition;
    TaskHandle sleeper = channel->spawn([] { this_task::sleepFor(1h); });
    const std::vector<std::pair<std::string, std::function<void()>>> waits = {
        {"sleepFor", [] { this_task::sleepFor(1h); }},
        {"readSome",
         [&] {
           char byte;
           pair.server.readSome(&byte, 1);
         }},
        {"accept", [&] { listener.accept(); }},
        {"Notification::wait", [&] { never.wait(); }},
        {"Notification::waitFor", [&] { never.waitFor(1h); }},
        {"ConditionVariable::wait",
         [&] {
           std::unique_lock<Mutex> lock(mutex);
           condition.wait(lock, [] { return false; });
         }},
        {"join", [&] { sleeper.join(); }},
    };
    for (const auto& wait : waits) {
      const std::string outcome = inTask(*channel, [&] {
        this_task::DeadlineScope deadline(30ms);
        wait.second();
      });
      CPPUNIT_ASSERT_EQUAL_MESSAGE(wait.first, std::string("timed out"), outcome);
    }
    // The condition variable's mutex was locked again and released.
    CPPUNIT_ASSERT(mutex.try_lock());
    mutex.unlock();
    CPPUNIT_ASSERT(!sleeper.done());  // the joined task was left alone
    CPPUNIT_ASSERT(sleeper.cancel());
  }

  void testWaitAfterTheDeadlineFailsAtOnce() {
    std::unique_ptr<EventChannel> channel = makeChannel(1);
    std::string second;
    const std::string first = inTask(*channel, [&] {
      this_task::DeadlineScope deadline(10ms);
      second = endOf([] { this_task::sleepFor(1h); });
      const Clock::time_point start = Clock::now();
      second += endOf([] { this_task::sleepFor(1h); });
      if (Clock::now() - start > 1s) second += " but waited";
    });
    CPPUNIT_ASSERT_EQUAL(std::string("returned"), first);
    CPPUNIT_ASSERT_EQUAL(std::string("timed outtimed out"), second);
  }

  void testErrorCodeFormsReturnTimedOut() {
    std::unique_ptr<EventChannel> channel = makeChannel(1);
    evchan::test::ConnectedPair pair = evchan::test::connectPair();
    std::error_code ec;
    std::size_t got = 1;
    inTask(*channel, [&] {
      this_task::DeadlineScope deadline(20ms);
      char byte;
      got = pair.server.readSome(&byte, 1, ec);
    });
    CPPUNIT_ASSERT_MESSAGE(describe(ec), ec == std::errc::timed_out);
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), got);
    // The socket is fine: the next read, without a deadline, gets data.
    pair.client.writeAll("y", 1);
    char byte = 0;
    CPPUNIT_ASSERT_EQUAL(std::size_t(1), pair.server.readSome(&byte, 1));
    CPPUNIT_ASSERT_EQUAL('y', byte);
  }

  void testWorkFinishedInTimeIsUntouched() {
    std::unique_ptr<EventChannel> channel = makeChannel(1);
    evchan::test::ConnectedPair pair = evchan::test::connectPair();
    int value = 0;
    const std::string outcome = inTask(*channel, [&] {
      value = this_task::withTimeout(5s, [&] {
        pair.client.writeAll("hello", 5);
        char buffer[5];
        pair.server.readExactly(buffer, 5);
        this_task::sleepFor(1ms);
        return 42;
      });
      // The scope is gone: a long wait after it is not bounded by it.
      this_task::sleepFor(50ms);
    });
    CPPUNIT_ASSERT_EQUAL(std::string("returned"), outcome);
    CPPUNIT_ASSERT_EQUAL(42, value);
  }

  void testNestedScopesKeepTheEarlierDeadline() {
    std::unique_ptr<EventChannel> channel = makeChannel(1);
    std::string inner, afterInner;
    Clock::duration innerTook{};
    const std::string outer = inTask(*channel, [&] {
      this_task::DeadlineScope outerDeadline(300ms);
      const Clock::time_point start = Clock::now();
      inner = endOf([] {
        this_task::DeadlineScope longer(1h);  // cannot extend the outer one
        this_task::sleepFor(1h);
      });
      innerTook = Clock::now() - start;
      afterInner = endOf([] { this_task::sleepFor(1h); });  // the outer one is still there (and passed)
    });
    CPPUNIT_ASSERT_EQUAL(std::string("returned"), outer);
    CPPUNIT_ASSERT_EQUAL(std::string("timed out"), inner);
    CPPUNIT_ASSERT(innerTook >= 300ms && innerTook < 1h);
    CPPUNIT_ASSERT_EQUAL(std::string("timed out"), afterInner);
    // A shorter inner scope ends first; the outer one is restored after it.
    std::string shortInner, outerAgain;
    inTask(*channel, [&] {
      this_task::DeadlineScope outerDeadline(1h);
      shortInner = endOf([] {
        this_task::DeadlineScope shorter(20ms);
        this_task::sleepFor(1h);
      });
      outerAgain = endOf([] { this_task::sleepFor(30ms); });
    });
    CPPUNIT_ASSERT_EQUAL(std::string("timed out"), shortInner);
    CPPUNIT_ASSERT_EQUAL(std::string("returned"), outerAgain);
  }

  void testShieldLiftsTheDeadline() {
    std::unique_ptr<EventChannel> channel = makeChannel(1);
    std::string shielded, after;
    inTask(*channel, [&] {
      this_task::DeadlineScope deadline(10ms);
      {
        this_task::CancellationShield shield;
        shielded = endOf([] { this_task::sleepFor(40ms); });  // a goodbye that must finish
      }
      after = endOf([] { this_task::sleepFor(1h); });
    });
    CPPUNIT_ASSERT_EQUAL(std::string("returned"), shielded);
    CPPUNIT_ASSERT_EQUAL(std::string("timed out"), after);
  }

  // Like cancellation, a deadline does not interrupt taking a lock (a
  // clean-up in a destructor must get it).
  void testMutexLockIsNotBounded() {
    std::unique_ptr<EventChannel> channel = makeChannel(1);
    Mutex held;
    held.lock();
    std::atomic<bool> started{false}, locked{false};
    TaskHandle task = channel->spawn([&] {
      this_task::DeadlineScope deadline(10ms);
      started = true;
      std::lock_guard<Mutex> lock(held);
      locked = true;
    });
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return started.load(); }));
    this_task::sleepFor(60ms);  // well past the task's deadline
    CPPUNIT_ASSERT(!locked.load());
    held.unlock();
    evchan::test::joinWithin(task);
    CPPUNIT_ASSERT(locked.load());
  }

  void testOutsideATaskIsRefused() {
    try {
      this_task::DeadlineScope deadline(1s);
      CPPUNIT_FAIL("a DeadlineScope outside a task was accepted");
    } catch (const SystemError& e) {
      CPPUNIT_ASSERT_EQUAL(std::make_error_code(std::errc::operation_not_permitted), e.code());
    }
    CPPUNIT_ASSERT_THROW(this_task::withTimeout(1s, [] { return 1; }), SystemError);
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(TaskDeadlineTest);
