// SPDX-License-Identifier: Apache-2.0
// Tests of SignalSet and waitForSignal() with real signals (kill, raise):
// on a thread, in a task on a one-worker channel that keeps running other
// tasks, several sets at once, coalescing and order, dispositions put
// back, a process full of threads that a signal does not end, thousands
// of deliveries nobody waited for yet, a delivery counted while the wait
// fell asleep (Linux), several threads taking turns at one set, bad input.
#include <cppunit/extensions/HelperMacros.h>

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <evchan/evchan.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/race_scheduling.h"
#include "support/skip.h"
#include "support/waiting.h"

namespace {

using namespace std::chrono_literals;
using evchan::EventChannel;
using evchan::SignalSet;
using evchan::SystemError;
using evchan::TaskHandle;
using evchan::test::eventually;

std::atomic<int> counted{0};
extern "C" void countSignal(int) { counted.fetch_add(1); }

// Sets `signal`'s disposition for the test and puts the old one back.
class Disposition {
 public:
  Disposition(int signal, void (*handler)(int)) : signal_(signal) {
    struct sigaction action = {};
    action.sa_handler = handler;
    sigemptyset(&action.sa_mask);
    CPPUNIT_ASSERT_EQUAL(0, sigaction(signal, &action, &saved_));
  }
  ~Disposition() { sigaction(signal_, &saved_, nullptr); }

 private:
  int signal_;
  struct sigaction saved_;
};

void (*currentHandler(int signal))(int) {
  struct sigaction now = {};
  sigaction(signal, nullptr, &now);
  return now.sa_handler;
}

#if defined(__linux__)
// Rounds of the counted-delivery race: before the fix about one round
// in six lost a delivery; a round takes 3-30 ms (more on a busy CPU).
#if defined(EVCHAN_TEST_TSAN)
constexpr int kCountedRaceRounds = 30;
#else
constexpr int kCountedRaceRounds = 100;
#endif
// Raises enough to fill a set's socket pair several times over.
constexpr int kFillingRaises = 600;

#endif

int waitCode(std::initializer_list<int> signals) {
  try {
    SignalSet set(signals);
  } catch (const SystemError& e) {
    return e.code().value();
  }
  return 0;
}

class SignalTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(SignalTest);
  CPPUNIT_TEST(threadWaitGetsSignalKilledFromAnotherThread);
  CPPUNIT_TEST(signalCaughtBeforeWaitIsKept);
  CPPUNIT_TEST(waitForTimesOutWithZero);
  CPPUNIT_TEST(distinctSignalsComeInOrder);
  CPPUNIT_TEST(pendingRepeatsCoalesce);
  CPPUNIT_TEST(thousandsOfUnwaitedDeliveriesAreKept);
  CPPUNIT_TEST(thousandsOfUnwaitedDeliveriesAreKeptForATask);
#if defined(__linux__)
  CPPUNIT_TEST(deliveryCountedWhileTheWaitFallsAsleepIsHandedOut);
#endif
  CPPUNIT_TEST(threadsTakingTurnsGetEveryDelivery);
  CPPUNIT_TEST(taskWaitLeavesTheWorkerRunning);
  CPPUNIT_TEST(taskWaitIsCancelled);
  CPPUNIT_TEST(taskWaitEndsAtShutdown);
  CPPUNIT_TEST(taskWaitEndsAtTheTasksDeadline);
  CPPUNIT_TEST(destroyingRestoresPreviousHandler);
  CPPUNIT_TEST(destroyingRestoresIgnore);
  CPPUNIT_TEST(twoSetsEachReceive);
  CPPUNIT_TEST(processSignalWithManyThreadsDoesNotKill);
  CPPUNIT_TEST(secondConcurrentWaitIsBusy);
  CPPUNIT_TEST(movedFromSetIsNotOpen);
  CPPUNIT_TEST(badSignalsAreRefused);
  CPPUNIT_TEST(setsBeyondTheLimitAreRefused);
  CPPUNIT_TEST(negativeTimeoutIsRefused);
  CPPUNIT_TEST(waitForSignalOnAThread);
  CPPUNIT_TEST_SUITE_END();

 public:
  void threadWaitGetsSignalKilledFromAnotherThread() {
    SignalSet set({SIGUSR1});
    std::thread sender([] {
      std::this_thread::sleep_for(50ms);
      kill(getpid(), SIGUSR1);
    });
    const int signal = set.waitFor(evchan::test::generous(10s));
    sender.join();
    CPPUNIT_ASSERT_EQUAL(SIGUSR1, signal);
  }

  void signalCaughtBeforeWaitIsKept() {
    SignalSet set({SIGUSR1, SIGUSR2});
    raise(SIGUSR2);  // delivered to this thread before raise() returns
    CPPUNIT_ASSERT_EQUAL(SIGUSR2, set.waitFor(0s));
    CPPUNIT_ASSERT_EQUAL(0, set.waitFor(0s));
  }

  void waitForTimesOutWithZero() {
    SignalSet set({SIGUSR1});
    const auto start = std::chrono::steady_clock::now();
    std::error_code ec;
    CPPUNIT_ASSERT_EQUAL(0, set.waitFor(60ms, ec));
    ASSERT_NO_ERROR(ec);
    CPPUNIT_ASSERT(std::chrono::steady_clock::now() - start >= 60ms);
  }

  void distinctSignalsComeInOrder() {
    SignalSet set({SIGUSR1, SIGUSR2, SIGHUP});
    raise(SIGUSR2);
    raise(SIGHUP);
    raise(SIGUSR1);
    CPPUNIT_ASSERT_EQUAL(SIGUSR2, set.wait());
    CPPUNIT_ASSERT_EQUAL(SIGHUP, set.wait());
    CPPUNIT_ASSERT_EQUAL(SIGUSR1, set.wait());
    CPPUNIT_ASSERT_EQUAL(0, set.waitFor(0s));
  }

  // The kernel keeps one pending instance of a standard signal: sent
  // three times while blocked, it is one delivery, so one wait.
  void pendingRepeatsCoalesce() {
    SignalSet set({SIGUSR1});
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigset_t old;
    CPPUNIT_ASSERT_EQUAL(0, pthread_sigmask(SIG_BLOCK, &usr1, &old));
    for (int i = 0; i < 3; ++i) raise(SIGUSR1);  // pending for this thread
    CPPUNIT_ASSERT_EQUAL(0, set.waitFor(0s));
    CPPUNIT_ASSERT_EQUAL(0, pthread_sigmask(SIG_SETMASK, &old, nullptr));
    CPPUNIT_ASSERT_EQUAL(SIGUSR1, set.waitFor(0s));
    CPPUNIT_ASSERT_EQUAL(0, set.waitFor(0s));
  }

  // Far more deliveries than the set's socket pair holds bytes (an
  // adversarial tester found it kept 278 of them and dropped the rest
  // silently).  raise() returns once the handler has run on this thread,
  // so each successful raise() is one delivery, none coalesced.
  static constexpr int kManyDeliveries = 5000;

  static int raiseMany(int signal) {
    int delivered = 0;
    for (int i = 0; i < kManyDeliveries; ++i) delivered += raise(signal) == 0 ? 1 : 0;
    return delivered;
  }

  // Waits out what `set` holds; the timeout only ends the count.
  static int takeAll(SignalSet& set, int signal, std::error_code& ec) {
    int taken = 0;
    while (set.waitFor(0s, ec) == signal) ++taken;
    return taken;
  }

  void thousandsOfUnwaitedDeliveriesAreKept() {
    SignalSet set({SIGUSR1, SIGUSR2});
    const int delivered = raiseMany(SIGUSR1);
    CPPUNIT_ASSERT_EQUAL(kManyDeliveries, delivered);
    std::error_code ec;
    CPPUNIT_ASSERT_EQUAL(delivered, takeAll(set, SIGUSR1, ec));
    ASSERT_NO_ERROR(ec);
    // Still one delivery, one wait, in order, after the flood.
    raise(SIGUSR2);
    raise(SIGUSR1);
    CPPUNIT_ASSERT_EQUAL(SIGUSR2, set.waitFor(0s));
    CPPUNIT_ASSERT_EQUAL(SIGUSR1, set.waitFor(0s));
    CPPUNIT_ASSERT_EQUAL(0, set.waitFor(0s));
  }

  // The same, waited out in a task: its waits go through the channel's
  // backend (EVCHAN_BACKEND; test/io_uring/signal_test runs io_uring).
  void thousandsOfUnwaitedDeliveriesAreKeptForATask() {
    SignalSet set({SIGUSR1});
    auto channel = evchan::test::makeChannel(1);
    const int delivered = raiseMany(SIGUSR1);
    CPPUNIT_ASSERT_EQUAL(kManyDeliveries, delivered);
    int taken = 0;
    std::error_code ec;
    TaskHandle taker = channel->spawn([&] { taken = takeAll(set, SIGUSR1, ec); });
    evchan::test::joinWithin(taker);
    ASSERT_NO_ERROR(ec);
    CPPUNIT_ASSERT_EQUAL(delivered, taken);
  }

#if defined(__linux__)
  // A delivery that finds the socket pair full is counted, not written.
  // The race: the handler's write fails, and before it counts the
  // delivery the wait reads every byte, finds no count and falls asleep;
  // the count then comes with nothing to wake the wait.  Made to happen:
  // every thread on one CPU, the raiser under SCHED_IDLE, so this thread,
  // waking from its sleep, preempts the raiser where it is, often at the
  // return from the handler's failed write(), and drains the set before
  // the raiser runs again.  Each raise() is one delivery (its handler runs
  // on the raiser before it returns), so the set hands out exactly as many.
  // Before the fix (the nudge after a count) 13-18 rounds of 100 lost one.
  void deliveryCountedWhileTheWaitFallsAsleepIsHandedOut() {
    SignalSet set({SIGUSR1});
    evchan::test::OneCpu oneCpu;  // the raisers inherit it
    std::string wrong;
    for (int round = 0; round < kCountedRaceRounds && wrong.empty(); ++round) {
      wrong = countedRaceRound(set);
      if (!wrong.empty()) wrong = "round " + std::to_string(round) + ": " + wrong;
    }
    CPPUNIT_ASSERT_MESSAGE(wrong, wrong.empty());
  }

  // One round: a raiser raising until told to stop, the set drained here
  // meanwhile.  What went wrong, or empty.
  static std::string countedRaceRound(SignalSet& set) {
    std::atomic<bool> idle{false}, stop{false};
    std::atomic<int> raising{0};  // counted before each raise(): an upper bound
    std::thread raiser([&] {
      idle = evchan::test::becomeIdlePriority();
      while (!stop.load()) {
        raising.fetch_add(1);
        raise(SIGUSR1);
      }
    });
    // Some 278 deliveries fill the socket pair: past those the raiser's
    // writes fail, and one of them is the last when this thread wakes up.
    // In steps: on a CPU busy with other programs the raiser gets little.
    while (raising.load() < kFillingRaises) std::this_thread::sleep_for(1ms);
    stop = true;
    int taken = 0;
    bool complete = takeRaised(set, raising, taken);
    raiser.join();
    // The raiser may have raised once more after the look at `raising`.
    complete = complete && takeRaised(set, raising, taken);
    if (!idle.load()) EVCHAN_SKIP("SCHED_IDLE refused: the race cannot be made to happen");
    const std::string tally = std::to_string(taken) + " of " + std::to_string(raising.load()) + " deliveries";
    if (!complete) return tally + " handed out, then a wait of 5 s passed without the next";
    if (set.waitFor(0s) != 0) return tally + " handed out, and then one more";
    return {};
  }

  // Waits for deliveries until `taken` reaches `raising`; false when a
  // wait of 5 s passes without one.
  static bool takeRaised(SignalSet& set, const std::atomic<int>& raising, int& taken) {
    while (taken < raising.load()) {
      if (set.waitFor(evchan::test::generous(5s)) != SIGUSR1) return false;
      ++taken;
    }
    return true;
  }
#endif

  // One wait at a time per set: threads that meet a busy set try again.
  // Between them they take each delivery exactly once, the ones that
  // piled up while all of them were between waits included.
  void threadsTakingTurnsGetEveryDelivery() {
    SignalSet set({SIGUSR1});
    constexpr int kRounds = 2000;
    std::atomic<int> taken{0};
    std::atomic<bool> stop{false};
    std::atomic<int> failures{0};
    std::vector<std::thread> takers;
    for (int i = 0; i < 4; ++i) {
      takers.emplace_back([&, i] {
        while (!stop.load()) {
          std::error_code ec;
          const int signal = set.waitFor(std::chrono::microseconds(200 + 100 * i), ec);
          if (ec == std::errc::device_or_resource_busy) {
            std::this_thread::yield();
          } else if (ec || (signal != 0 && signal != SIGUSR1)) {
            ++failures;
          } else if (signal == SIGUSR1) {
            ++taken;
          }
        }
      });
    }
    int delivered = 0;
    for (int i = 0; i < kRounds; ++i) delivered += raise(SIGUSR1) == 0 ? 1 : 0;
    eventually([&] { return taken.load() >= delivered; });
    stop = true;
    for (std::thread& taker : takers) taker.join();
    std::error_code ec;
    const int left = takeAll(set, SIGUSR1, ec);
    ASSERT_NO_ERROR(ec);
    CPPUNIT_ASSERT_EQUAL(0, failures.load());
    CPPUNIT_ASSERT_EQUAL(kRounds, delivered);
    CPPUNIT_ASSERT_EQUAL(delivered, taken.load() + left);
  }

  // One worker, no spare threads: a task waiting for the signal must not
  // hold the worker, or the ticking task would stop.
  void taskWaitLeavesTheWorkerRunning() {
    SignalSet set({SIGUSR1});
    EventChannel::Options options;
    options.initialThreads = 1;
    options.maxThreads = 1;
    auto channel = evchan::test::createOrSkip(options);
    std::atomic<int> ticks{0};
    std::atomic<bool> stop{false};
    std::atomic<bool> waiting{false};
    TaskHandle ticker = channel->spawn([&] {
      while (!stop.load()) {
        evchan::this_task::sleepFor(1ms);
        ++ticks;
      }
    });
    int received = 0;
    TaskHandle waiter = channel->spawn([&] {
      waiting = true;
      received = set.wait();
    });
    CPPUNIT_ASSERT(eventually([&] { return waiting.load(); }));
    const int before = ticks.load();
    CPPUNIT_ASSERT_MESSAGE("the worker stopped running the ticking task",
                           eventually([&] { return ticks.load() >= before + 20; }));
    CPPUNIT_ASSERT(!waiter.done());
    kill(getpid(), SIGUSR1);
    evchan::test::joinWithin(waiter);
    CPPUNIT_ASSERT_EQUAL(SIGUSR1, received);
    stop = true;
    evchan::test::joinWithin(ticker);
    // The signal was the waiter's, not left in the set.
    CPPUNIT_ASSERT_EQUAL(0, set.waitFor(0s));
  }

  void taskWaitIsCancelled() {
    SignalSet set({SIGUSR1});
    EventChannel::Options options;
    options.initialThreads = 1;
    auto channel = evchan::test::createOrSkip(options);
    std::atomic<bool> waiting{false};
    std::error_code result;
    TaskHandle waiter = channel->spawn([&] {
      waiting = true;
      set.wait(result);
    });
    CPPUNIT_ASSERT(eventually([&] { return waiting.load(); }));
    CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));
    CPPUNIT_ASSERT(waiter.cancel());
    evchan::test::joinWithin(waiter);
    ASSERT_ERROR(std::errc::operation_canceled, result);
    // The set still works once the cancelled wait has let go of it.
    raise(SIGUSR1);
    CPPUNIT_ASSERT_EQUAL(SIGUSR1, set.waitFor(0s));
  }

  // Under a DeadlineScope, wait() ends like every wait: timed_out (not a
  // return of 0, which is waitFor()'s own timeout).  Found in review:
  // result was empty and wait() returned 0 before.
  void taskWaitEndsAtTheTasksDeadline() {
    SignalSet set({SIGUSR1});
    EventChannel::Options options;
    options.initialThreads = 1;
    auto channel = evchan::test::createOrSkip(options);
    std::error_code result, ownTimeout;
    int returned = -1, timedOut = -1;
    TaskHandle waiter = channel->spawn([&] {
      evchan::this_task::DeadlineScope deadline(20ms);
      returned = set.wait(result);
      evchan::this_task::DeadlineScope later(1h);  // cannot extend the first: a no-op
    });
    evchan::test::joinWithin(waiter);
    ASSERT_ERROR(std::errc::timed_out, result);
    CPPUNIT_ASSERT_EQUAL(0, returned);
    // waitFor()'s own timeout, shorter than the task's deadline, is an answer.
    TaskHandle own = channel->spawn([&] {
      evchan::this_task::DeadlineScope deadline(1h);
      timedOut = set.waitFor(10ms, ownTimeout);
    });
    evchan::test::joinWithin(own);
    ASSERT_NO_ERROR(ownTimeout);
    CPPUNIT_ASSERT_EQUAL(0, timedOut);
  }

  void taskWaitEndsAtShutdown() {
    SignalSet set({SIGUSR1});
    EventChannel::Options options;
    options.initialThreads = 1;
    auto channel = evchan::test::createOrSkip(options);
    std::atomic<bool> waiting{false};
    std::error_code result;
    TaskHandle waiter = channel->spawn([&] {
      waiting = true;
      set.wait(result);
    });
    CPPUNIT_ASSERT(eventually([&] { return waiting.load(); }));
    CPPUNIT_ASSERT(evchan::test::allWorkersIdle(*channel));
    channel->shutdown();
    CPPUNIT_ASSERT(waiter.done());
    ASSERT_ERROR(std::errc::operation_canceled, result);
    channel.reset();
    // The set outlives the channel it waited on, and still works.
    raise(SIGUSR1);
    CPPUNIT_ASSERT_EQUAL(SIGUSR1, set.waitFor(0s));
  }

  void destroyingRestoresPreviousHandler() {
    counted = 0;
    Disposition mine(SIGUSR1, countSignal);
    {
      SignalSet set({SIGUSR1});
      CPPUNIT_ASSERT(currentHandler(SIGUSR1) != countSignal);
      raise(SIGUSR1);
      CPPUNIT_ASSERT_EQUAL(SIGUSR1, set.waitFor(0s));
      CPPUNIT_ASSERT_EQUAL(0, counted.load());
    }
    CPPUNIT_ASSERT(currentHandler(SIGUSR1) == countSignal);
    raise(SIGUSR1);
    CPPUNIT_ASSERT_EQUAL(1, counted.load());
  }

  void destroyingRestoresIgnore() {
    Disposition ignored(SIGUSR2, SIG_IGN);
    { SignalSet set({SIGUSR2, SIGUSR1}); }
    CPPUNIT_ASSERT(currentHandler(SIGUSR2) == SIG_IGN);
  }

  void twoSetsEachReceive() {
    counted = 0;
    Disposition mine(SIGUSR1, countSignal);
    SignalSet first({SIGUSR1});
    {
      SignalSet second({SIGUSR1, SIGUSR2});
      raise(SIGUSR1);
      CPPUNIT_ASSERT_EQUAL(SIGUSR1, first.waitFor(0s));
      CPPUNIT_ASSERT_EQUAL(SIGUSR1, second.waitFor(0s));
    }
    // The first set still catches SIGUSR1 after the second went.
    CPPUNIT_ASSERT(currentHandler(SIGUSR1) != countSignal);
    raise(SIGUSR1);
    CPPUNIT_ASSERT_EQUAL(SIGUSR1, first.waitFor(0s));
    CPPUNIT_ASSERT_EQUAL(0, counted.load());
  }

  // Signals sent to the process go to any thread that does not block
  // them; with workers started before the set, none of them may take
  // SIGTERM's default action (which would end this test program).
  void processSignalWithManyThreadsDoesNotKill() {
    EventChannel::Options options;
    options.initialThreads = 4;
    auto channel = evchan::test::createOrSkip(options);
    std::atomic<bool> stop{false};
    std::thread busy([&] {
      while (!stop.load()) std::this_thread::yield();
    });
    SignalSet set({SIGTERM});
    // Blocked here, so that the kernel must pick one of the other threads
    // (it prefers the sender's own).
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigset_t old;
    CPPUNIT_ASSERT_EQUAL(0, pthread_sigmask(SIG_BLOCK, &term, &old));
    int received = 0;
    for (int i = 0; i < 50; ++i) {
      kill(getpid(), SIGTERM);
      if (set.waitFor(evchan::test::generous(5s)) == SIGTERM) ++received;
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    stop = true;
    busy.join();
    CPPUNIT_ASSERT_EQUAL(50, received);
  }

  void secondConcurrentWaitIsBusy() {
    SignalSet set({SIGUSR1});
    int received = 0;
    std::error_code waiterError;
    // The probe below is itself a wait: one that starts first makes the
    // waiter's wait() busy (it threw on the thread and terminated the
    // suite, once in CI), so the waiter tries again until it is in.
    std::thread waiter([&] {
      do {
        received = set.wait(waiterError);
      } while (waiterError == std::errc::device_or_resource_busy);
    });
    std::error_code ec;
    CPPUNIT_ASSERT(eventually([&] {
      set.waitFor(0s, ec);
      return ec == std::errc::device_or_resource_busy;
    }));
    raise(SIGUSR1);
    waiter.join();
    ASSERT_NO_ERROR(waiterError);
    CPPUNIT_ASSERT_EQUAL(SIGUSR1, received);
  }

  void movedFromSetIsNotOpen() {
    SignalSet set({SIGUSR1});
    SignalSet moved(std::move(set));
    std::error_code ec;
    CPPUNIT_ASSERT_EQUAL(0, set.wait(ec));  // NOLINT(bugprone-use-after-move): the point
    ASSERT_ERROR(evchan::Errc::not_open, ec);
    raise(SIGUSR1);
    CPPUNIT_ASSERT_EQUAL(SIGUSR1, moved.waitFor(0s));
  }

  void badSignalsAreRefused() {
    // Whatever SIGINT's disposition was (SIG_IGN when the tests run from
    // a background job), a refused set must leave it as it was.
    const auto handlerBefore = currentHandler(SIGINT);
    const int invalid = static_cast<int>(std::errc::invalid_argument);
    CPPUNIT_ASSERT_EQUAL(invalid, waitCode({}));
    CPPUNIT_ASSERT_EQUAL(invalid, waitCode({SIGKILL}));
    CPPUNIT_ASSERT_EQUAL(invalid, waitCode({SIGSTOP}));
    CPPUNIT_ASSERT_EQUAL(invalid, waitCode({SIGSEGV}));
    CPPUNIT_ASSERT_EQUAL(invalid, waitCode({SIGINT, SIGBUS}));
    CPPUNIT_ASSERT_EQUAL(invalid, waitCode({0}));
    CPPUNIT_ASSERT_EQUAL(invalid, waitCode({-1}));
    CPPUNIT_ASSERT_EQUAL(invalid, waitCode({1000}));
    // Refused sets changed nothing: SIGINT was never taken over.
    CPPUNIT_ASSERT(currentHandler(SIGINT) == handlerBefore);
  }

  // 64 sets at once; the 65th is refused cleanly and fits once one goes.
  void setsBeyondTheLimitAreRefused() {
    const auto handlerBefore = currentHandler(SIGUSR2);
    std::vector<SignalSet> sets;
    for (int i = 0; i < 64; ++i) sets.emplace_back(SignalSet({SIGUSR1}));
    CPPUNIT_ASSERT_EQUAL(static_cast<int>(std::errc::too_many_files_open), waitCode({SIGUSR2}));
    CPPUNIT_ASSERT(currentHandler(SIGUSR2) == handlerBefore);  // the refused set changed nothing
    raise(SIGUSR1);
    for (SignalSet& set : sets) CPPUNIT_ASSERT_EQUAL(SIGUSR1, set.waitFor(0s));
    sets.pop_back();
    SignalSet fits({SIGUSR2});
    raise(SIGUSR2);
    CPPUNIT_ASSERT_EQUAL(SIGUSR2, fits.waitFor(0s));
  }

  void negativeTimeoutIsRefused() {
    SignalSet set({SIGUSR1});
    std::error_code ec;
    CPPUNIT_ASSERT_EQUAL(0, set.waitFor(-1ms, ec));
    ASSERT_ERROR(evchan::Errc::negative_timeout, ec);
  }

  // The free function catches only from its call on: the sender repeats
  // until it answers, with a counting handler in place so that a signal
  // sent too early does not end the program.
  void waitForSignalOnAThread() {
    Disposition mine(SIGUSR2, countSignal);
    std::atomic<int> received{0};
    std::thread waiter([&] { received = evchan::waitForSignal({SIGUSR2, SIGUSR1}); });
    CPPUNIT_ASSERT(eventually([&] {
      kill(getpid(), SIGUSR2);
      std::this_thread::sleep_for(5ms);
      return received.load() != 0;
    }));
    waiter.join();
    CPPUNIT_ASSERT_EQUAL(SIGUSR2, received.load());
    CPPUNIT_ASSERT(currentHandler(SIGUSR2) == countSignal);
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(SignalTest);

}  // namespace
