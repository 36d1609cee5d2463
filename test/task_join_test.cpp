// SPDX-License-Identifier: Apache-2.0
// Races on TaskHandle::join(): the joined task's end, TaskHandle::cancel()
// of the joiner, a deadline, and the shutdown or destruction of either
// channel, each racing the others round after round.  Every join must end
// exactly once, as documented, with nothing hanging or leaking.
#include <cppunit/extensions/HelperMacros.h>

#include <evchan/evchan.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/slowdown.h"
#include "support/waiting.h"

namespace {

using namespace std::chrono_literals;
using evchan::EventChannel;
using evchan::Notification;
using evchan::SystemError;
using evchan::TaskGroup;
using evchan::TaskHandle;
using evchan::test::allWorkersIdle;
using evchan::test::describe;
using evchan::test::eventually;
using evchan::test::makeChannel;

// EVCHAN_JOIN_ROUNDS multiplies the rounds for a long hunt.
int rounds(int plain) { return evchan::test::raceRounds(plain, "EVCHAN_JOIN_ROUNDS"); }

// What ended a join: "returned", "cancelled", "timed out", "unwound: <what>"
// for a std::runtime_error the joined task threw, or another description.
std::string endOf(TaskHandle& task) {
  try {
    task.join();
    return "returned";
  } catch (const SystemError& e) {
    if (e.code() == std::errc::operation_canceled) return "cancelled";
    if (e.code() == std::errc::timed_out) return "timed out";
    return "SystemError " + describe(e.code());
  } catch (const std::runtime_error& e) {
    return std::string("unwound: ") + e.what();
  } catch (...) {
    return "another exception";
  }
}

// Shuts the channel down and aborts (a hang cannot be reported otherwise)
// when that does not finish in time.
void shutdownWithin(EventChannel& channel) {
  std::future<void> done = std::async(std::launch::async, [&] { channel.shutdown(); });
  if (done.wait_for(evchan::test::generous(20s)) != std::future_status::ready) {
    std::fprintf(stderr, "shutdown() did not finish: a joiner was not woken\n");
    std::abort();
  }
  done.get();
}

// A channel with `threads` workers whose tasks' unjoined exceptions (the
// expected unwinding of a shutdown) are dropped instead of printed.
std::unique_ptr<EventChannel> quietChannel(int threads) {
  EventChannel::Options options;
  options.initialThreads = threads;
  options.onUnhandledException = [](evchan::TaskId, std::exception_ptr) {};
  return evchan::test::createOrSkip(options);
}

// Two callers released together, to land their calls as close as the
// machine allows.
class StartingLine {
 public:
  void waitForGo() {
    ++ready_;
    while (!go_.load()) std::this_thread::yield();
  }
  void go(int others) {
    while (ready_.load() < others) std::this_thread::yield();
    go_.store(true);
  }

 private:
  std::atomic<int> ready_{0};
  std::atomic<bool> go_{false};
};

// Spins for about `steps` short steps: staggers two racing calls by a
// varying amount, so that each comes first in some rounds.
void stagger(int steps) {
  for (volatile int i = 0; i < steps * 3000; i = i + 1) {
  }
}

// Runs `onOtherThread` on a thread of its own and, `round % 64` stagger
// steps after both are released together, `here` on this one: two ends of
// one wait racing, each first in some rounds.
template <typename There, typename Here>
void race(int round, There onOtherThread, Here here) {
  StartingLine line;
  std::thread other([&] {
    line.waitForGo();
    onOtherThread();
  });
  line.go(1);
  stagger(round % 64);
  here();
  other.join();
}

// A task of `channel` that waits for `release` and then ends as `how`
// says; cancelled, or unwound by its channel's shutdown, it throws
// runtime_error("unwound <name>").
enum class Ending { kReturns, kThrows, kCancelled };
TaskHandle spawnTarget(EventChannel& channel, Notification& release, Ending how, std::string name) {
  return channel.spawn([&release, how, name] {
    try {
      release.wait();
    } catch (const SystemError&) {
      if (how == Ending::kCancelled) throw;  // join() rethrows the cancellation itself
      throw std::runtime_error("unwound " + name);
    }
    if (how == Ending::kThrows) throw std::runtime_error("thrown by " + name);
  });
}

}  // namespace

class TaskJoinTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(TaskJoinTest);
  CPPUNIT_TEST(testTaskAndThreadJoinersSeeTheSameEnd);
  CPPUNIT_TEST(testJoinerCancelledAsTheJoinedTaskEnds);
  CPPUNIT_TEST(testCancelledJoinerJoinsAgain);
  CPPUNIT_TEST(testJoinUnderDeadlineRacingEndAndCancel);
  CPPUNIT_TEST(testJoinsBothWaysWhileBothChannelsShutDown);
  CPPUNIT_TEST(testJoinersChannelDestroyedWhileParked);
  CPPUNIT_TEST(testJoinedTasksChannelDestroyedWhileJoinersParked);
  CPPUNIT_TEST(testTasksJoiningEachOtherUnwoundByCancel);
  CPPUNIT_TEST(testExceptionSeenOnceWhenTheJoinerIsCancelledAndDropsTheHandle);
  CPPUNIT_TEST(testGroupJoinInTaskRacingMemberEndsAndCancel);
  CPPUNIT_TEST(testJoinerWokenAsItsChannelShutsDown);
  CPPUNIT_TEST_SUITE_END();

 public:
  // Four task joiners (one of them cancelled meanwhile) and two thread
  // joiners of a task on another channel that returns, throws or is
  // cancelled as its release comes: each joiner not cancelled sees that
  // end, the cancelled one that end or its own cancellation.
  void testTaskAndThreadJoinersSeeTheSameEnd() {
    std::unique_ptr<EventChannel> targets = makeChannel(1);
    std::unique_ptr<EventChannel> joiners = makeChannel(2);
    const int n = rounds(300);
    for (int round = 0; round < n; ++round) {
      const auto how = static_cast<Ending>(round % 3);
      Notification release;
      TaskHandle target = spawnTarget(*targets, release, how, "target");
      constexpr int kTasks = 4, kThreads = 2;
      std::string ends[kTasks + kThreads];
      std::atomic<int> joining{0};
      TaskHandle tasks[kTasks];
      for (int i = 0; i < kTasks; ++i) {
        tasks[i] = joiners->spawn([&, i] {
          ++joining;
          ends[i] = endOf(target);
        });
      }
      std::vector<std::thread> threads;
      for (int i = kTasks; i < kTasks + kThreads; ++i) {
        threads.emplace_back([&, i] {
          ++joining;
          ends[i] = endOf(target);
        });
      }
      CPPUNIT_ASSERT(eventually([&] { return joining.load() == kTasks + kThreads; }));
      race(
          round,
          [&] {
            if (how == Ending::kCancelled) {
              target.cancel();
            } else {
              release.notify();
            }
          },
          [&] { tasks[0].cancel(); });
      for (std::thread& thread : threads) thread.join();
      for (TaskHandle& task : tasks) CPPUNIT_ASSERT_EQUAL(std::string("returned"), endOf(task));
      const std::string expected = how == Ending::kReturns  ? "returned"
                                   : how == Ending::kThrows ? "unwound: thrown by target"
                                                            : "cancelled";
      const std::string where = "round " + std::to_string(round);
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, expected, endOf(target));
      CPPUNIT_ASSERT_MESSAGE(where + ", cancelled joiner: " + ends[0], ends[0] == expected || ends[0] == "cancelled");
      for (int i = 1; i < kTasks + kThreads; ++i) {
        CPPUNIT_ASSERT_EQUAL_MESSAGE(where + ", joiner " + std::to_string(i), expected, ends[i]);
      }
    }
  }

  // The joiner's cancel() and the joined task's end land together, round
  // after round: the join ends either way, and the joiner, under a
  // CancellationShield, joins the same task again to its end; without the
  // shield a join of the ended task returns at once.
  void testJoinerCancelledAsTheJoinedTaskEnds() {
    std::unique_ptr<EventChannel> targets = makeChannel(1);
    std::unique_ptr<EventChannel> joiners = makeChannel(1);
    const int n = rounds(1000);
    int cancelledFirst = 0;
    for (int round = 0; round < n; ++round) {
      Notification release;
      TaskHandle target = spawnTarget(*targets, release, Ending::kReturns, "target");
      std::atomic<bool> joining{false};
      std::string first, second, third;
      TaskHandle joiner = joiners->spawn([&] {
        joining = true;
        first = endOf(target);
        {
          evchan::this_task::CancellationShield shield;
          second = endOf(target);
        }
        third = endOf(target);
      });
      CPPUNIT_ASSERT(eventually([&] { return joining.load(); }));
      race(round, [&] { release.notify(); }, [&] { joiner.cancel(); });
      CPPUNIT_ASSERT_EQUAL(std::string("returned"), endOf(joiner));
      const std::string where = "round " + std::to_string(round);
      CPPUNIT_ASSERT_MESSAGE(where + ": " + first, first == "returned" || first == "cancelled");
      if (first == "cancelled") ++cancelledFirst;
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, std::string("returned"), second);
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, std::string("returned"), third);
    }
    std::printf("[joins cancelled first: %d of %d]\n", cancelledFirst, n);
  }

  // A cancelled joiner's request stays: its join of another task not yet
  // ended fails at once; under a CancellationShield it waits for the first
  // task's end again (parked, proven by an idle pool) and returns.
  void testCancelledJoinerJoinsAgain() {
    std::unique_ptr<EventChannel> targets = makeChannel(1);
    std::unique_ptr<EventChannel> joiners = makeChannel(1);
    const int n = rounds(100);
    for (int round = 0; round < n; ++round) {
      Notification release1, release2;
      TaskHandle target1 = spawnTarget(*targets, release1, Ending::kReturns, "target1");
      TaskHandle target2 = spawnTarget(*targets, release2, Ending::kReturns, "target2");
      std::atomic<int> step{0};
      std::string first, second, third, fourth;
      TaskHandle joiner = joiners->spawn([&] {
        step = 1;
        first = endOf(target1);
        second = endOf(target2);
        step = 2;
        {
          evchan::this_task::CancellationShield shield;
          third = endOf(target1);
        }
        fourth = endOf(target2);
      });
      CPPUNIT_ASSERT(eventually([&] { return step.load() == 1; }));
      if (round % 2 == 0) CPPUNIT_ASSERT(allWorkersIdle(*joiners));  // else cancelled on its way in
      CPPUNIT_ASSERT(joiner.cancel());
      CPPUNIT_ASSERT(eventually([&] { return step.load() == 2; }));
      CPPUNIT_ASSERT(allWorkersIdle(*joiners));  // parked in the shielded join, or not there yet
      CPPUNIT_ASSERT(!target1.done());
      release1.notify();
      release2.notify();
      CPPUNIT_ASSERT_EQUAL(std::string("returned"), endOf(joiner));
      const std::string where = "round " + std::to_string(round);
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, std::string("cancelled"), first);
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, std::string("cancelled"), second);
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, std::string("returned"), third);
      // target2 may have ended by then (returned) or not (cancelled at once).
      CPPUNIT_ASSERT_MESSAGE(where + ": " + fourth, fourth == "returned" || fourth == "cancelled");
      CPPUNIT_ASSERT_EQUAL(std::string("returned"), endOf(target2));
    }
  }

  // join() under a DeadlineScope (the timer path) racing the joined task's
  // end and the joiner's cancel(); with a deadline of a few milliseconds,
  // racing the deadline instead.  Joining again without the scope waits
  // for the end: shielded from the cancel, and as it is after a deadline.
  void testJoinUnderDeadlineRacingEndAndCancel() {
    std::unique_ptr<EventChannel> targets = makeChannel(1);
    std::unique_ptr<EventChannel> joiners = makeChannel(1);
    const int n = rounds(400);
    int timedOut = 0;
    for (int round = 0; round < n; ++round) {
      const bool shortDeadline = round % 2 == 1;
      Notification release;
      TaskHandle target = spawnTarget(*targets, release, Ending::kReturns, "target");
      std::atomic<bool> joining{false};
      std::string first, second;
      TaskHandle joiner = joiners->spawn([&] {
        {
          evchan::this_task::DeadlineScope deadline(shortDeadline ? std::chrono::milliseconds(round % 4)
                                                                  : std::chrono::milliseconds(3600 * 1000));
          joining = true;
          first = endOf(target);
        }
        std::optional<evchan::this_task::CancellationShield> shield;
        if (!shortDeadline) shield.emplace();  // the cancel was for the first join; a deadline leaves nothing
        second = endOf(target);
      });
      CPPUNIT_ASSERT(eventually([&] { return joining.load(); }));
      race(round, [&] { release.notify(); }, [&] {
        if (!shortDeadline) joiner.cancel();
      });
      CPPUNIT_ASSERT_EQUAL(std::string("returned"), endOf(joiner));
      const std::string where = "round " + std::to_string(round);
      const std::string interrupted = shortDeadline ? "timed out" : "cancelled";
      CPPUNIT_ASSERT_MESSAGE(where + ": " + first, first == "returned" || first == interrupted);
      if (first == "timed out") ++timedOut;
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, std::string("returned"), second);
    }
    std::printf("[short deadlines passed first: %d of %d]\n", timedOut, n / 2);
  }

  // Tasks of two channels join each other's tasks, in both directions and
  // in pairs joining each other, while both channels shut down at once
  // from two threads.  A joiner whose channel goes first is cancelled (and
  // each join it tries again fails at once); one whose joined task was
  // unwound first sees that task's exception.  Nothing hangs.
  void testJoinsBothWaysWhileBothChannelsShutDown() {
    const int n = rounds(100);
    for (int round = 0; round < n; ++round) {
      std::unique_ptr<EventChannel> a = quietChannel(2);
      std::unique_ptr<EventChannel> b = quietChannel(2);
      Notification never;
      TaskHandle waiterA = spawnTarget(*a, never, Ending::kReturns, "a");
      TaskHandle waiterB = spawnTarget(*b, never, Ending::kReturns, "b");
      constexpr int kEach = 3;
      std::string aEnds[kEach], bEnds[kEach];
      std::atomic<int> retriesNotCancelled{0}, joining{0};
      const auto joinRetrying = [&](TaskHandle& target, std::string& end) {
        ++joining;
        end = endOf(target);
        if (end != "cancelled") return;
        for (int retry = 0; retry < 3; ++retry) {
          if (endOf(target) != "cancelled" && !target.done()) ++retriesNotCancelled;
        }
      };
      std::vector<TaskHandle> tasks;
      for (int i = 0; i < kEach; ++i) {
        tasks.push_back(a->spawn([&, i] { joinRetrying(waiterB, aEnds[i]); }));
        tasks.push_back(b->spawn([&, i] { joinRetrying(waiterA, bEnds[i]); }));
      }
      // x (on a) and y (on b) join each other.
      TaskHandle x, y;
      Notification handlesSet;
      std::string xEnd, yEnd;
      x = a->spawn([&] {
        handlesSet.wait();
        xEnd = endOf(y);
        throw std::runtime_error("x: " + xEnd);
      });
      y = b->spawn([&] {
        handlesSet.wait();
        yEnd = endOf(x);
        throw std::runtime_error("y: " + yEnd);
      });
      handlesSet.notify();
      CPPUNIT_ASSERT(eventually([&] { return joining.load() == 2 * kEach; }));
      std::string threadEnd;
      std::thread threadJoiner([&] { threadEnd = endOf(x); });
      StartingLine line;
      std::thread shutterB([&] {
        line.waitForGo();
        shutdownWithin(*b);
      });
      line.go(1);
      if (round % 3 != 0) shutdownWithin(*a);  // else a is shut down by its destructor
      shutterB.join();
      a.reset();
      threadJoiner.join();
      const std::string where = "round " + std::to_string(round);
      for (int i = 0; i < kEach; ++i) {
        CPPUNIT_ASSERT_MESSAGE(where + ": " + aEnds[i], aEnds[i] == "cancelled" || aEnds[i] == "unwound: unwound b");
        CPPUNIT_ASSERT_MESSAGE(where + ": " + bEnds[i], bEnds[i] == "cancelled" || bEnds[i] == "unwound: unwound a");
      }
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, 0, retriesNotCancelled.load());
      // One of x and y is cancelled in its join by its channel's shutdown;
      // the other is cancelled too, or sees the first one's exception.
      CPPUNIT_ASSERT_MESSAGE(where + ": " + xEnd, xEnd == "cancelled" || xEnd == "unwound: y: cancelled");
      CPPUNIT_ASSERT_MESSAGE(where + ": " + yEnd, yEnd == "cancelled" || yEnd == "unwound: x: cancelled");
      CPPUNIT_ASSERT_MESSAGE(where, xEnd == "cancelled" || yEnd == "cancelled");
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, "unwound: x: " + xEnd, threadEnd);
      for (TaskHandle& task : tasks) CPPUNIT_ASSERT_EQUAL_MESSAGE(where, std::string("returned"), endOf(task));
    }
  }

  // The joiners' channel destroyed while they are parked joining a task of
  // another channel: each is cancelled and the joined task goes on
  // undisturbed, to return when released.
  void testJoinersChannelDestroyedWhileParked() {
    std::unique_ptr<EventChannel> targets = makeChannel(1);
    const int n = rounds(100);
    for (int round = 0; round < n; ++round) {
      std::unique_ptr<EventChannel> joiners = makeChannel(2);
      Notification release;
      TaskHandle target = spawnTarget(*targets, release, Ending::kReturns, "target");
      constexpr int kJoiners = 4;
      std::string ends[kJoiners];
      std::atomic<int> joining{0};
      for (int i = 0; i < kJoiners; ++i) {
        joiners->spawn([&, i] {
          ++joining;
          ends[i] = endOf(target);
        });
      }
      CPPUNIT_ASSERT(eventually([&] { return joining.load() == kJoiners; }));
      if (round % 2 == 0) CPPUNIT_ASSERT(allWorkersIdle(*joiners));  // all parked; else racing the park
      joiners.reset();
      const std::string where = "round " + std::to_string(round);
      CPPUNIT_ASSERT_MESSAGE(where, !target.done());
      for (int i = 0; i < kJoiners; ++i) CPPUNIT_ASSERT_EQUAL_MESSAGE(where, std::string("cancelled"), ends[i]);
      release.notify();
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, std::string("returned"), endOf(target));
    }
  }

  // The joined task's channel destroyed while task and thread joiners of
  // another channel wait: the joined task is unwound by that shutdown, and
  // every joiner sees its exception.
  void testJoinedTasksChannelDestroyedWhileJoinersParked() {
    std::unique_ptr<EventChannel> joiners = makeChannel(2);
    const int n = rounds(100);
    for (int round = 0; round < n; ++round) {
      std::unique_ptr<EventChannel> targets = makeChannel(1);
      Notification never;
      TaskHandle target = spawnTarget(*targets, never, Ending::kReturns, "target");
      constexpr int kJoiners = 4;
      std::string ends[kJoiners + 1];
      std::atomic<int> joining{0};
      std::vector<TaskHandle> tasks;
      for (int i = 0; i < kJoiners; ++i) {
        tasks.push_back(joiners->spawn([&, i] {
          ++joining;
          ends[i] = endOf(target);
        }));
      }
      std::thread thread([&] {
        ++joining;
        ends[kJoiners] = endOf(target);
      });
      CPPUNIT_ASSERT(eventually([&] { return joining.load() == kJoiners + 1; }));
      if (round % 2 == 0) CPPUNIT_ASSERT(allWorkersIdle(*joiners));
      targets.reset();
      thread.join();
      for (TaskHandle& task : tasks) CPPUNIT_ASSERT_EQUAL(std::string("returned"), endOf(task));
      const std::string where = "round " + std::to_string(round);
      for (const std::string& end : ends) CPPUNIT_ASSERT_EQUAL_MESSAGE(where, std::string("unwound: unwound target"), end);
    }
  }

  // Two tasks of two channels join each other (a deadlock); cancelling one,
  // at once or once both are parked, unwinds both: the cancelled one's join
  // throws, and the other's join rethrows that cancellation.
  void testTasksJoiningEachOtherUnwoundByCancel() {
    std::unique_ptr<EventChannel> a = makeChannel(1);
    std::unique_ptr<EventChannel> b = makeChannel(1);
    const int n = rounds(300);
    for (int round = 0; round < n; ++round) {
      TaskHandle x, y;
      Notification handlesSet;
      std::atomic<int> joining{0};
      std::string xEnd, yEnd;
      x = a->spawn([&] {
        {
          evchan::this_task::CancellationShield shield;  // the cancel is for the join
          handlesSet.wait();
        }
        ++joining;
        xEnd = endOf(y);
        throw std::runtime_error("x after its join");
      });
      y = b->spawn([&] {
        handlesSet.wait();
        ++joining;
        yEnd = endOf(x);
      });
      handlesSet.notify();
      if (round % 2 == 0) {
        CPPUNIT_ASSERT(eventually([&] { return joining.load() == 2; }));
        CPPUNIT_ASSERT(allWorkersIdle(*a) && allWorkersIdle(*b));
      }
      CPPUNIT_ASSERT(x.cancel());
      const std::string where = "round " + std::to_string(round);
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, std::string("unwound: x after its join"), endOf(x));
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, std::string("returned"), endOf(y));
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, std::string("cancelled"), xEnd);
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, std::string("unwound: x after its join"), yEnd);
    }
  }

  // A task that throws is joined by a task cancelled as the thrower ends,
  // which then drops the last handle: the exception is either seen by the
  // join or reported to the channel's handler, exactly once.
  void testExceptionSeenOnceWhenTheJoinerIsCancelledAndDropsTheHandle() {
    std::atomic<int> reported{0};
    EventChannel::Options options;
    options.initialThreads = 1;
    options.onUnhandledException = [&reported](evchan::TaskId, std::exception_ptr) { ++reported; };
    std::unique_ptr<EventChannel> targets = evchan::test::createOrSkip(options);
    std::unique_ptr<EventChannel> joiners = makeChannel(1);
    const int n = rounds(500);
    int seen = 0;
    for (int round = 0; round < n; ++round) {
      Notification release;
      std::atomic<bool> joining{false}, sawIt{false};
      TaskHandle joiner;
      {
        TaskHandle target = spawnTarget(*targets, release, Ending::kThrows, "target");
        joiner = joiners->spawn([&joining, &sawIt](TaskHandle only) {
          joining = true;
          if (endOf(only) == "unwound: thrown by target") sawIt = true;
        }, target);
      }  // the joiner holds the only handle
      CPPUNIT_ASSERT(eventually([&] { return joining.load(); }));
      race(round, [&] { release.notify(); }, [&] { joiner.cancel(); });
      CPPUNIT_ASSERT_EQUAL(std::string("returned"), endOf(joiner));
      const int expected = round + 1;
      if (sawIt) ++seen;
      const std::string where = "round " + std::to_string(round);
      CPPUNIT_ASSERT_MESSAGE(where, eventually([&] { return seen + reported.load() == expected; }));
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, expected, seen + reported.load());
    }
    std::printf("[seen by the join: %d, reported: %d]\n", seen, reported.load());
  }

  // TaskGroup::join() in a task of another channel racing the members' end
  // and the joiner's cancel(): it returns or is cancelled, and the group
  // joined again from this thread returns once every member has.
  void testGroupJoinInTaskRacingMemberEndsAndCancel() {
    std::unique_ptr<EventChannel> members = makeChannel(2);
    std::unique_ptr<EventChannel> joiners = makeChannel(1);
    const int n = rounds(300);
    for (int round = 0; round < n; ++round) {
      Notification release;
      TaskGroup group(*members);
      std::atomic<int> running{0};
      for (int i = 0; i < 4; ++i) {
        group.spawn([&] {
          ++running;
          release.wait();
        });
      }
      std::atomic<bool> joining{false};
      std::string end;
      TaskHandle joiner = joiners->spawn([&] {
        joining = true;
        try {
          group.join();
          end = "returned";
        } catch (const SystemError& e) {
          end = e.code() == std::errc::operation_canceled ? "cancelled" : describe(e.code());
        }
      });
      CPPUNIT_ASSERT(eventually([&] { return joining.load() && running.load() == 4; }));
      race(round, [&] { release.notify(); }, [&] { joiner.cancel(); });
      CPPUNIT_ASSERT_EQUAL(std::string("returned"), endOf(joiner));
      const std::string where = "round " + std::to_string(round);
      CPPUNIT_ASSERT_MESSAGE(where + ": " + end, end == "returned" || end == "cancelled");
      group.join();
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, std::size_t(0), group.size());
    }
  }

  // A parked joiner woken by the joined task's end (a worker of the other
  // channel) or by its cancel() (a plain thread) just as its own channel
  // shuts down: shutdown() returns only once the joiner has ended, and the
  // joiner resumed on its own channel's worker, not on the waking thread.
  void testJoinerWokenAsItsChannelShutsDown() {
    std::unique_ptr<EventChannel> targets = makeChannel(1);
    const int n = rounds(100);
    for (int round = 0; round < n; ++round) {
      const bool byCancel = round % 2 == 1;
      std::unique_ptr<EventChannel> joiners = makeChannel(1);
      Notification release;
      std::thread::id targetThread, joinerThread, wakerThread;
      TaskHandle target = targets->spawn([&] {
        targetThread = std::this_thread::get_id();
        release.wait();
      });
      std::atomic<bool> joining{false};
      std::string end;
      TaskHandle joiner = joiners->spawn([&] {
        joining = true;
        end = endOf(target);
        joinerThread = std::this_thread::get_id();
      });
      CPPUNIT_ASSERT(eventually([&] { return joining.load(); }));
      CPPUNIT_ASSERT(allWorkersIdle(*joiners));  // parked in join()
      // More running threads than cores: the waker is preempted now and
      // then, anywhere in its wake-up of the joiner.
      std::atomic<bool> racing{true};
      std::vector<std::thread> spinners;
      for (int i = 0; i < 3; ++i) {
        spinners.emplace_back([&racing] {
          while (racing.load()) {
          }
        });
      }
      StartingLine line;
      std::thread waker([&] {
        wakerThread = std::this_thread::get_id();
        line.waitForGo();
        if (byCancel) {
          joiner.cancel();
        } else {
          release.notify();
        }
      });
      line.go(1);
      stagger(round % 64);
      shutdownWithin(*joiners);
      racing = false;
      for (std::thread& spinner : spinners) spinner.join();
      const std::string where = "round " + std::to_string(round) + (byCancel ? " (cancel)" : " (end)");
      const bool endedFirst = joiner.done();
      if (!eventually([&] { return joiner.done(); })) {
        // Run by the waker under its locks, the joiner may wait for them forever.
        std::fprintf(stderr, "%s: the joiner never ended after its channel's shutdown\n", where.c_str());
        std::abort();
      }
      waker.join();
      release.notify();
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, std::string("returned"), endOf(joiner));
      CPPUNIT_ASSERT_EQUAL_MESSAGE(where, std::string("returned"), endOf(target));
      CPPUNIT_ASSERT_MESSAGE(where + ": " + end, end == "returned" || end == "cancelled");
      CPPUNIT_ASSERT_MESSAGE(where + ": the joiner resumed on the waking thread", joinerThread != wakerThread);
      CPPUNIT_ASSERT_MESSAGE(where + ": the joiner resumed on the other channel's worker", joinerThread != targetThread);
      CPPUNIT_ASSERT_MESSAGE(where + ": shutdown() returned before its task ended", endedFirst);
    }
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(TaskJoinTest);
