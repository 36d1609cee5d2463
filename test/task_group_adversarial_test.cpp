// SPDX-License-Identifier: Apache-2.0
// TaskGroup, TaskLocal, this_task::DeadlineScope and evchan::blocking()
// pushed on their edges: spawns from threads, tasks and the group's own
// members racing cancel(), join() and the destructor; many members failing
// at once; nested groups; joins from members and under an expired
// deadline; TaskLocal constructors that throw, destructors that use other
// TaskLocals or suspend, thousands of keys, values that migrate; deadline
// scopes nested deeply, already expired, huge or negative, and expiring
// just as a read's data arrives; nested blocking() calls, blocking() that
// throws, and many tasks in blocking() on a one-worker channel.
#include <cppunit/extensions/HelperMacros.h>

#include <evchan/evchan.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/loopback.h"
#include "support/slowdown.h"
#include "support/stderr_capture.h"
#include "support/task_reports.h"
#include "support/waiting.h"

namespace {

using namespace std::chrono_literals;
using evchan::Duration;
using evchan::EventChannel;
using evchan::Notification;
using evchan::SystemError;
using evchan::TaskGroup;
using evchan::TaskHandle;
using evchan::TaskId;
using evchan::TaskLocal;
using evchan::test::endOfCall;
using evchan::test::EndWitness;
using evchan::test::eventually;
using evchan::test::makeReportingChannel;
using evchan::test::MemberFailure;
using evchan::test::Reports;
using evchan::test::joinWithin;
namespace this_task = evchan::this_task;

std::string deadlockError() {
  return "SystemError " + evchan::test::describe(std::make_error_code(std::errc::resource_deadlock_would_occur));
}

// One worker, no stuck-worker monitor: only blocking() may start spares.
std::unique_ptr<EventChannel> oneWorkerWithoutMonitor() {
  EventChannel::Options options;
  options.initialThreads = 1;
  options.stuckWorkerGrace = Duration::zero();
  return evchan::test::createOrSkip(options);
}

std::string describe(const evchan::ThreadPoolStats& s) {
  return "current " + std::to_string(s.current) + ", peak " + std::to_string(s.peak) + ", idle " +
         std::to_string(s.idle) + ", blocked " + std::to_string(s.blocked) + ", started for blocking calls " +
         std::to_string(s.startedForBlockingCalls);
}

// TaskLocal values that count themselves, and that use other TaskLocals
// from their destructors (globals: a destructor may not use its own).
struct Counted {
  static std::atomic<int> constructed, destroyed;
  int value = 0;
  Counted() { ++constructed; }
  ~Counted() { ++destroyed; }
  Counted(const Counted&) = delete;
  Counted& operator=(const Counted&) = delete;
};
std::atomic<int> Counted::constructed{0};
std::atomic<int> Counted::destroyed{0};

struct Older : Counted {};
struct Newer : Counted {};
TaskLocal<Older> olderLocal;
TaskLocal<Newer> newerLocal;
std::atomic<int> olderSeenByToucher{-1}, newerSeenByToucher{-1};

struct Toucher : Counted {
  ~Toucher() {
    // Older was created before this one, Newer after (and may be gone:
    // then get() makes a fresh one, which must be destroyed too).
    olderSeenByToucher = olderLocal.get().value;
    newerSeenByToucher = newerLocal.get().value;
    newerLocal.get().value = 99;
  }
};
TaskLocal<Toucher> toucherLocal;

// A destructor that suspends its task (it runs in the task, at its end).
std::atomic<int> suspendingDestructorsDone{0};
struct SuspendsWhenDestroyed {
  ~SuspendsWhenDestroyed() {
    this_task::yield();
    this_task::sleepFor(1ms);
    ++suspendingDestructorsDone;
  }
};
TaskLocal<SuspendsWhenDestroyed> suspendingLocal;

// A constructor that throws while failuresLeft > 0.
std::atomic<int> flakyFailuresLeft{0};
struct Flaky : Counted {
  Flaky() {
    if (flakyFailuresLeft.fetch_sub(1) > 0) throw std::runtime_error("flaky constructor");
  }
};

}  // namespace

class TaskGroupAdversarialTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(TaskGroupAdversarialTest);
  CPPUNIT_TEST(spawnsFromThreadsTasksAndMembersRacingCancelAndJoin);
  CPPUNIT_TEST(cancelRacingSpawnsMissesNoMember);
  CPPUNIT_TEST(manyMembersFailAtOnce);
  CPPUNIT_TEST(manyMembersFailAtOnceWithCancelOnFailure);
  CPPUNIT_TEST(destructorWaitsForMembersSpawnedWhileUnwinding);
  CPPUNIT_TEST(destroyerMemberFailingAfterwardsIsReportedOnce);
  CPPUNIT_TEST(membersJoiningTheirGroupWhileItIsCancelledAndJoined);
  CPPUNIT_TEST(concurrentJoinersTakeTheFailureOnce);
  CPPUNIT_TEST(nestedGroupsCancelAndFailUpwards);
  CPPUNIT_TEST(joinAndDestructorUnderAnExpiredDeadline);
  CPPUNIT_TEST(taskLocalConstructorThatThrows);
  CPPUNIT_TEST(taskLocalDestructorsUseOtherTaskLocals);
  CPPUNIT_TEST(taskLocalDestructorThatSuspends);
  CPPUNIT_TEST(thousandsOfTaskLocalKeys);
  CPPUNIT_TEST(taskLocalsFollowMigratingTasks);
  CPPUNIT_TEST(deadlineScopesAtTheExtremes);
  CPPUNIT_TEST(deeplyNestedDeadlineScopes);
  CPPUNIT_TEST(deadlineExpiringAsTheDataArrivesLosesNothing);
  CPPUNIT_TEST(nestedBlockingCountsTheWorkerOnce);
  CPPUNIT_TEST(blockingOnAPlainThread);
  CPPUNIT_TEST(exceptionsEscapingNestedBlockingFromManyTasks);
  CPPUNIT_TEST(manyTasksInBlockingOnOneWorkerLetOthersRun);
  CPPUNIT_TEST_SUITE_END();

 public:
  // Three threads, a (non-member) task and every first-generation member
  // spawn into one group while the test thread cancels and joins it over
  // and over.  Every member ends (cancelled, or released at the end), the
  // last join waits for them all, and a cancellation is never a failure.
  void spawnsFromThreadsTasksAndMembersRacingCancelAndJoin() {
    constexpr int kThreads = 3;
    const int kPerSpawner = evchan::test::raceRounds(150, "EVCHAN_RACE_FACTOR");
    Reports reports;
    std::unique_ptr<EventChannel> channel = makeReportingChannel(reports);
    TaskGroup group(*channel);
    Notification stop;
    std::atomic<int> spawned{0}, ended{0}, spawnErrors{0};
    auto child = [&] {
      EndWitness witness{ended};
      stop.wait();
    };
    auto member = [&] {
      EndWitness witness{ended};
      try {
        group.spawn(child);
        ++spawned;
      } catch (...) {
        ++spawnErrors;
      }
      stop.wait();
    };
    auto spawnMany = [&] {
      for (int i = 0; i < kPerSpawner; ++i) {
        try {
          group.spawn(member);
          ++spawned;
        } catch (...) {
          ++spawnErrors;
        }
        if (i % 16 == 0) std::this_thread::yield();
      }
    };
    std::atomic<int> spawnersDone{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&] {
        spawnMany();
        ++spawnersDone;
      });
    }
    TaskHandle taskSpawner = channel->spawn([&] {
      for (int i = 0; i < kPerSpawner; ++i) {
        group.spawn(member);
        ++spawned;
        if (i % 8 == 0) this_task::yield();
      }
      ++spawnersDone;
    });
    int joins = 0;
    std::string badJoin;
    while (spawnersDone.load() < kThreads + 1) {
      group.cancel();
      const std::string outcome = endOfCall([&] { group.join(); });
      if (outcome != "returned") badJoin = outcome;
      ++joins;
    }
    for (std::thread& thread : threads) thread.join();
    joinWithin(taskSpawner);
    stop.notify();
    group.join();
    CPPUNIT_ASSERT_EQUAL(std::string(), badJoin);
    CPPUNIT_ASSERT(joins >= 1);
    CPPUNIT_ASSERT_EQUAL(0, spawnErrors.load());
    CPPUNIT_ASSERT_EQUAL(2 * (kThreads + 1) * kPerSpawner, spawned.load());
    CPPUNIT_ASSERT_EQUAL(spawned.load(), ended.load());
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), group.size());
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), reports.count());
  }

  // cancel() from one thread while four others spawn: each member is
  // either listed when cancel() walks the list or spawned after it, and
  // then starts cancelled.  A member missed by both would wait for ever:
  // the join would not end until the test releases it.
  void cancelRacingSpawnsMissesNoMember() {
    const int kRounds = evchan::test::raceRounds(20, "EVCHAN_RACE_FACTOR");
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(2);
    for (int round = 0; round < kRounds; ++round) {
      Notification never;
      std::atomic<bool> go{false};
      std::atomic<int> ended{0};
      std::atomic<int> spawned{0};
      TaskGroup group(*channel);  // after what its members use
      std::vector<std::thread> spawners;
      for (int t = 0; t < 4; ++t) {
        spawners.emplace_back([&] {
          while (!go.load()) std::this_thread::yield();
          for (int i = 0; i < 40; ++i) {
            group.spawn([&] {
              EndWitness witness{ended};
              never.wait();
            });
            ++spawned;
          }
        });
      }
      std::thread canceller([&] {
        while (!go.load()) std::this_thread::yield();
        while (spawned.load() < 60) std::this_thread::yield();
        group.cancel();
      });
      go = true;
      canceller.join();
      for (std::thread& thread : spawners) thread.join();
      const bool joined = evchan::test::finishesWithin(8s, [&] { group.join(); }, [&] { never.notify(); });
      CPPUNIT_ASSERT_MESSAGE("round " + std::to_string(round) + ": a member escaped the cancel", joined);
      CPPUNIT_ASSERT_EQUAL(160, ended.load());
    }
  }

  // 24 members throw at the same moment: join() rethrows one, the channel's
  // handler gets the 23 others, each exactly once.
  void manyMembersFailAtOnce() {
    constexpr int kMembers = 24;
    Reports reports;
    std::string rethrown;
    {
      std::unique_ptr<EventChannel> channel = makeReportingChannel(reports);
      TaskGroup group(*channel);
      Notification go;
      std::atomic<int> ready{0};
      std::vector<TaskHandle> handles;
      for (int i = 0; i < kMembers; ++i) {
        handles.push_back(group.spawn([&, i] {
          ++ready;
          go.wait();
          throw MemberFailure("failure " + std::to_string(i));
        }));
      }
      CPPUNIT_ASSERT(eventually([&] { return ready.load() == kMembers; }));
      go.notify();
      rethrown = endOfCall([&] { group.join(); });
      // Every handle still tells its own member's end.
      for (int i = 0; i < kMembers; ++i) {
        CPPUNIT_ASSERT_EQUAL("exception: failure " + std::to_string(i), endOfCall([&] { handles[i].join(); }));
      }
      handles.clear();  // dropping the handles reports nothing more
    }
    std::set<std::string> seen;
    seen.insert(rethrown.substr(std::string("exception: ").size()));
    {
      std::lock_guard<std::mutex> lock(reports.mutex);
      CPPUNIT_ASSERT_EQUAL(std::size_t(kMembers - 1), reports.whats.size());
      seen.insert(reports.whats.begin(), reports.whats.end());
    }
    CPPUNIT_ASSERT_EQUAL(std::size_t(kMembers), seen.size());
    for (int i = 0; i < kMembers; ++i) CPPUNIT_ASSERT(seen.count("failure " + std::to_string(i)) == 1);
  }

  // The same with cancelOnFailure: the first failure cancels the others,
  // some of which throw their own failure anyway (they were past their
  // wait), the rest end cancelled.  Every failure is rethrown or reported
  // once, no cancellation is, and the parked members unwind.
  void manyMembersFailAtOnceWithCancelOnFailure() {
    constexpr int kMembers = 24;
    constexpr int kParked = 4;
    Reports reports;
    std::atomic<int> threw{0}, parkedEnded{0};
    std::string rethrown;
    {
      std::unique_ptr<EventChannel> channel = makeReportingChannel(reports);
      TaskGroup::Options options;
      options.cancelOnFailure = true;
      TaskGroup group(*channel, options);
      Notification go, never;
      std::atomic<int> ready{0};
      for (int i = 0; i < kParked; ++i) {
        group.spawn([&] {
          EndWitness witness{parkedEnded};
          ++ready;
          never.wait();
        });
      }
      for (int i = 0; i < kMembers; ++i) {
        group.spawn([&, i] {
          ++ready;
          go.wait();
          ++threw;
          throw MemberFailure("failure " + std::to_string(i));
        });
      }
      CPPUNIT_ASSERT(eventually([&] { return ready.load() == kMembers + kParked; }));
      go.notify();
      rethrown = endOfCall([&] { group.join(); });
      CPPUNIT_ASSERT_EQUAL(kParked, parkedEnded.load());
    }
    CPPUNIT_ASSERT_EQUAL(std::string("exception: failure"), rethrown.substr(0, 18));
    CPPUNIT_ASSERT(threw.load() >= 1);
    CPPUNIT_ASSERT_EQUAL(std::size_t(threw.load() - 1), reports.count());
  }

  // Members that spawn two more members each while they unwind from the
  // destructor's cancel (three generations deep): the destructor returns
  // only when all 8 x 15 have ended, and those spawned after the cancel
  // start cancelled (else they would wait for ever).
  void destructorWaitsForMembersSpawnedWhileUnwinding() {
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(2);
    std::atomic<int> started{0}, ended{0};
    Notification never;
    auto group = std::make_unique<TaskGroup>(*channel);
    TaskGroup* const members = group.get();  // group.reset() nulls `group` before the destructor runs
    std::function<void(int)> body = [&](int generation) {
      ++started;
      EndWitness witness{ended};
      try {
        never.wait();
      } catch (...) {
        if (generation < 3) {
          members->spawn(body, generation + 1);
          members->spawn(body, generation + 1);
        }
        throw;
      }
    };
    for (int i = 0; i < 8; ++i) group->spawn(body, 0);
    CPPUNIT_ASSERT(eventually([&] { return started.load() == 8; }));
    int startedWhenDestroyed = -1, endedWhenDestroyed = -1;
    const bool finished = evchan::test::finishesWithin(
        8s,
        [&] {
          group.reset();
          startedWhenDestroyed = started.load();
          endedWhenDestroyed = ended.load();
        },
        [&] { never.notify(); });
    CPPUNIT_ASSERT_MESSAGE("the destructor waited for ever: a member spawned during it was not cancelled", finished);
    CPPUNIT_ASSERT_EQUAL(8 * 15, startedWhenDestroyed);
    CPPUNIT_ASSERT_EQUAL(8 * 15, endedWhenDestroyed);
  }

  // A member destroys its own group, goes on outside it, then fails: the
  // failure is reported once (at once: no group is left to take it), its
  // own handle rethrows it, and dropping the handle reports nothing more.
  void destroyerMemberFailingAfterwardsIsReportedOnce() {
    Reports reports;
    std::string printed, joined;
    {
      std::unique_ptr<EventChannel> channel = makeReportingChannel(reports);
      evchan::test::StderrCapture capture;
      auto holder = std::make_shared<std::unique_ptr<TaskGroup>>(std::make_unique<TaskGroup>(*channel));
      std::atomic<int> siblingsEnded{0};
      for (int i = 0; i < 2; ++i) {
        (*holder)->spawn([&] {
          EndWitness witness{siblingsEnded};
          this_task::sleepFor(1h);
        });
      }
      TaskHandle destroyer = (*holder)->spawn([holder, &siblingsEnded] {
        holder->reset();
        if (siblingsEnded.load() != 2) throw MemberFailure("siblings still running");
        this_task::yield();
        throw MemberFailure("failed outside the group");
      });
      CPPUNIT_ASSERT(eventually([&] { return destroyer.done(); }));
      CPPUNIT_ASSERT(eventually([&] { return reports.count() >= 1; }));
      joined = endOfCall([&] { destroyer.join(); });
      destroyer = TaskHandle();
      channel.reset();
      printed = capture.text();
    }
    CPPUNIT_ASSERT_EQUAL(std::string("exception: failed outside the group"), joined);
    CPPUNIT_ASSERT_EQUAL(std::size_t(1), reports.count());
    CPPUNIT_ASSERT_EQUAL(std::string("failed outside the group"), reports.whats.front());
    CPPUNIT_ASSERT(printed.find("TaskGroup destroyed from its own task") != std::string::npos);
  }

  // Every member calls join() on its own group while the test thread
  // cancels and joins it: each gets resource_deadlock_would_occur (not a
  // cancellation, not a hang), cancelled or not.
  void membersJoiningTheirGroupWhileItIsCancelledAndJoined() {
    constexpr int kMembers = 16;
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(2);
    std::mutex mutex;
    std::vector<std::string> outcomes;
    Notification never;
    TaskGroup group(*channel);
    for (int i = 0; i < kMembers; ++i) {
      group.spawn([&, i] {
        if (i % 2 == 0) std::this_thread::yield();  // not a wait: a cancelled member still gets to join()
        const std::string outcome = endOfCall([&] { group.join(); });
        {
          std::lock_guard<std::mutex> lock(mutex);
          outcomes.push_back(outcome);
        }
        never.wait();
      });
    }
    group.cancel();
    group.join();
    CPPUNIT_ASSERT_EQUAL(std::size_t(kMembers), outcomes.size());
    for (const std::string& outcome : outcomes) CPPUNIT_ASSERT_EQUAL(deadlockError(), outcome);
  }

  // Three threads and two tasks join one group at once; one member fails.
  // Exactly one join rethrows it, the others return, nothing is reported.
  void concurrentJoinersTakeTheFailureOnce() {
    const int kRounds = evchan::test::raceRounds(20, "EVCHAN_RACE_FACTOR");
    Reports reports;
    std::unique_ptr<EventChannel> channel = makeReportingChannel(reports);
    std::unique_ptr<EventChannel> joiners = evchan::test::makeChannel(2);
    for (int round = 0; round < kRounds; ++round) {
      TaskGroup group(*channel);
      Notification go;
      for (int i = 0; i < 3; ++i) group.spawn([&] { go.wait(); });
      group.spawn([&] {
        go.wait();
        throw MemberFailure("the one failure");
      });
      std::atomic<int> rethrown{0}, returned{0}, other{0};
      auto join = [&] {
        const std::string outcome = endOfCall([&] { group.join(); });
        if (outcome == "exception: the one failure") {
          ++rethrown;
        } else if (outcome == "returned") {
          ++returned;
        } else {
          ++other;
        }
      };
      std::vector<std::thread> threads;
      for (int i = 0; i < 3; ++i) threads.emplace_back(join);
      TaskHandle first = joiners->spawn(join), second = joiners->spawn(join);
      go.notify();
      for (std::thread& thread : threads) thread.join();
      joinWithin(first);
      joinWithin(second);
      CPPUNIT_ASSERT_EQUAL(1, rethrown.load());
      CPPUNIT_ASSERT_EQUAL(4, returned.load());
      CPPUNIT_ASSERT_EQUAL(0, other.load());
    }
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), reports.count());
  }

  // Members of an outer group own inner groups, whose members own groups
  // of their own.  Cancelling the outer group unwinds them all through the
  // inner groups' destructors before the outer join() returns; an inner
  // failure, rethrown by an inner join() in an outer member, fails that
  // member and reaches the outer join(), reported nowhere else.
  void nestedGroupsCancelAndFailUpwards() {
    Reports reports;
    std::unique_ptr<EventChannel> channel = makeReportingChannel(reports);
    std::atomic<int> innerParked{0}, innerEnded{0}, outerEnded{0};
    {
      TaskGroup outer(*channel);
      for (int i = 0; i < 3; ++i) {
        outer.spawn([&] {
          EndWitness witness{outerEnded};
          TaskGroup inner(this_task::channel());
          for (int j = 0; j < 3; ++j) {
            inner.spawn([&] {
              EndWitness innerWitness{innerEnded};
              TaskGroup innermost(this_task::channel());
              innermost.spawn([&] {
                EndWitness innermostWitness{innerEnded};
                ++innerParked;
                this_task::sleepFor(1h);
              });
              ++innerParked;
              this_task::sleepFor(1h);
            });
          }
          Notification never;
          never.wait();
        });
      }
      CPPUNIT_ASSERT(eventually([&] { return innerParked.load() == 18; }));
      outer.cancel();
      outer.join();
      CPPUNIT_ASSERT_EQUAL(18, innerEnded.load());
      CPPUNIT_ASSERT_EQUAL(3, outerEnded.load());
      CPPUNIT_ASSERT_EQUAL(std::size_t(0), outer.size());

      outer.spawn([] {
        TaskGroup::Options options;
        options.cancelOnFailure = true;
        TaskGroup inner(this_task::channel(), options);
        inner.spawn([] {
          this_task::yield();
          throw MemberFailure("inner failure");
        });
        inner.spawn([] { this_task::sleepFor(1h); });  // cancelled by the failure
        inner.join();  // rethrows it: the outer member fails with it
      });
      CPPUNIT_ASSERT_EQUAL(std::string("exception: inner failure"), endOfCall([&] { outer.join(); }));
    }
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), reports.count());  // rethrown once, by each join on its way up
  }

  // Under a deadline that has passed, join() fails at once with timed_out
  // and leaves the group as it was; the destructor still waits for a
  // shielded member (its own shield lifts the caller's deadline).
  void joinAndDestructorUnderAnExpiredDeadline() {
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(2);
    Notification release;
    std::atomic<bool> memberDone{false}, joinRecorded{false};
    std::string joinOutcome;
    std::size_t sizeAfterJoin = 0;
    bool doneAfterDestructor = false;
    TaskHandle owner = channel->spawn([&] {
      this_task::DeadlineScope passed(-1ms);
      {
        TaskGroup group(this_task::channel());
        group.spawn([&] {
          this_task::CancellationShield shield;
          release.wait();
          memberDone = true;
        });
        joinOutcome = endOfCall([&] { group.join(); });
        sizeAfterJoin = group.size();
        joinRecorded = true;
      }
      doneAfterDestructor = memberDone.load();
    });
    CPPUNIT_ASSERT(eventually([&] { return joinRecorded.load(); }));
    release.notify();
    joinWithin(owner);
    CPPUNIT_ASSERT_EQUAL(std::string("timed out"), joinOutcome);
    CPPUNIT_ASSERT_EQUAL(std::size_t(1), sizeAfterJoin);
    CPPUNIT_ASSERT(doneAfterDestructor);
  }

  // A constructor that throws: get() throws, nothing is kept, and the next
  // get() tries again and keeps its value until the task ends.
  void taskLocalConstructorThatThrows() {
    Counted::constructed = 0;
    Counted::destroyed = 0;
    flakyFailuresLeft = 2;
    TaskLocal<Flaky> flaky;
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(1);
    std::vector<std::string> outcomes;
    int kept = 0;
    TaskHandle task = channel->spawn([&] {
      for (int i = 0; i < 3; ++i) outcomes.push_back(endOfCall([&] { flaky.get().value = 7; }));
      this_task::yield();
      kept = flaky.get().value;
    });
    joinWithin(task);
    CPPUNIT_ASSERT_EQUAL(std::size_t(3), outcomes.size());
    CPPUNIT_ASSERT_EQUAL(std::string("exception: flaky constructor"), outcomes[0]);
    CPPUNIT_ASSERT_EQUAL(std::string("exception: flaky constructor"), outcomes[1]);
    CPPUNIT_ASSERT_EQUAL(std::string("returned"), outcomes[2]);
    CPPUNIT_ASSERT_EQUAL(7, kept);
    // The failed constructions' Counted bases were destroyed as they
    // unwound; the one that succeeded, at the task's end.
    CPPUNIT_ASSERT_EQUAL(3, Counted::constructed.load());
    CPPUNIT_ASSERT_EQUAL(3, Counted::destroyed.load());
  }

  // At a task's end a TaskLocal's destructor uses two others: one made
  // before it, one after.  Each use sees a live value (a fresh one if its
  // own was gone already), and every value made, those made during the
  // clean-up included, is destroyed before join() returns.
  void taskLocalDestructorsUseOtherTaskLocals() {
    Counted::constructed = 0;
    Counted::destroyed = 0;
    olderSeenByToucher = -1;
    newerSeenByToucher = -1;
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(2);
    for (int i = 0; i < 8; ++i) {
      TaskHandle task = channel->spawn([] {
        olderLocal.get().value = 11;
        toucherLocal.get().value = 1;
        newerLocal.get().value = 22;
        this_task::yield();
      });
      joinWithin(task);
      const int older = olderSeenByToucher.load(), newer = newerSeenByToucher.load();
      CPPUNIT_ASSERT_MESSAGE(std::to_string(older), older == 11 || older == 0);
      CPPUNIT_ASSERT_MESSAGE(std::to_string(newer), newer == 22 || newer == 0);
      CPPUNIT_ASSERT_EQUAL(Counted::constructed.load(), Counted::destroyed.load());
    }
    CPPUNIT_ASSERT(Counted::constructed.load() >= 8 * 3);
  }

  // A value whose destructor suspends the task: the task ends after it,
  // on whichever worker resumes it, and join() returns after it.
  void taskLocalDestructorThatSuspends() {
    suspendingDestructorsDone = 0;
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(2);
    std::vector<TaskHandle> tasks;
    for (int i = 0; i < 10; ++i) {
      tasks.push_back(channel->spawn([] {
        suspendingLocal.get();
        this_task::yield();
      }));
    }
    for (TaskHandle& task : tasks) {
      joinWithin(task);
    }
    CPPUNIT_ASSERT_EQUAL(10, suspendingDestructorsDone.load());
  }

  // Thousands of TaskLocals used by a few tasks at once, across yields:
  // each task finds its own value under every key; TaskLocals made after
  // the first batch was destroyed start fresh.
  void thousandsOfTaskLocalKeys() {
    constexpr int kKeys = 2000;
    constexpr int kTasks = 4;
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(2);
    for (int batch = 0; batch < 2; ++batch) {
      std::vector<std::unique_ptr<TaskLocal<std::uint64_t>>> locals;
      for (int k = 0; k < kKeys; ++k) locals.push_back(std::make_unique<TaskLocal<std::uint64_t>>());
      std::atomic<int> wrong{0}, notFresh{0};
      std::vector<TaskHandle> tasks;
      for (int t = 0; t < kTasks; ++t) {
        tasks.push_back(channel->spawn([&, t] {
          for (int k = 0; k < kKeys; ++k) {
            std::uint64_t& value = locals[k]->get();
            if (value != 0) ++notFresh;
            value = (std::uint64_t(t + 1) << 32) | std::uint64_t(k);
            if (k % 256 == 0) this_task::yield();
          }
          for (int k = kKeys - 1; k >= 0; --k) {
            if (**locals[k] != ((std::uint64_t(t + 1) << 32) | std::uint64_t(k))) ++wrong;
            if (k % 256 == 0) this_task::yield();
          }
        }));
      }
      for (TaskHandle& task : tasks) joinWithin(task, 30s);
      CPPUNIT_ASSERT_EQUAL(0, notFresh.load());
      CPPUNIT_ASSERT_EQUAL(0, wrong.load());
    }
  }

  // Tasks that yield hundreds of times on two workers, and use blocking()
  // and a DeadlineScope between yields: their values, and their values'
  // addresses, stay as they were wherever they resume.
  void taskLocalsFollowMigratingTasks() {
    constexpr int kTasks = 6;
    constexpr int kYields = 200;
    TaskLocal<std::array<unsigned char, 512>> block;
    TaskLocal<std::string> text;
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(2);
    std::atomic<int> corrupt{0}, moved{0};
    std::vector<TaskHandle> tasks;
    for (int t = 0; t < kTasks; ++t) {
      tasks.push_back(channel->spawn([&, t] {
        std::array<unsigned char, 512>* address = &block.get();
        for (std::size_t i = 0; i < address->size(); ++i) (*address)[i] = static_cast<unsigned char>(i * 7 + t);
        *text = "task " + std::to_string(t) + std::string(100, 'x');
        const std::string expected = *text;
        std::thread::id last = std::this_thread::get_id();
        for (int y = 0; y < kYields; ++y) {
          if (y % 3 == 0) {
            this_task::DeadlineScope deadline(1h);
            this_task::yield();
          } else {
            this_task::yield();
          }
          if (std::this_thread::get_id() != last) {
            ++moved;
            last = std::this_thread::get_id();
          }
          const bool same = evchan::blocking([&] { return &block.get() == address && *text == expected; });
          if (!same) ++corrupt;
          for (std::size_t i = 0; i < address->size(); ++i) {
            if ((*address)[i] != static_cast<unsigned char>(i * 7 + t)) {
              ++corrupt;
              break;
            }
          }
        }
      }));
    }
    for (TaskHandle& task : tasks) joinWithin(task, 30s);
    CPPUNIT_ASSERT_EQUAL_MESSAGE("moved " + std::to_string(moved.load()) + " times", 0, corrupt.load());
  }

  // Durations at the ends of the range: Duration::min() and negative ones
  // have passed; zero passes at once; a huge one and kInfiniteTimeout never
  // do (no overflow into the past); an inner scope never extends an outer
  // passed one, and leaving both leaves no deadline.
  void deadlineScopesAtTheExtremes() {
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(1);
    std::vector<std::pair<std::string, std::string>> seen;  // (case, outcome)
    int returnedValue = 0;
    TaskHandle task = channel->spawn([&] {
      auto record = [&](const std::string& name, const std::function<void()>& call) {
        seen.emplace_back(name, endOfCall(call));
      };
      record("min", [] {
        this_task::DeadlineScope d(Duration::min());
        this_task::sleepFor(1h);
      });
      record("-1h", [] {
        this_task::DeadlineScope d(-1h);
        this_task::sleepFor(1h);
      });
      record("zero", [] {
        this_task::DeadlineScope d(Duration::zero());
        this_task::sleepFor(1h);
      });
      record("max-1", [] {
        this_task::DeadlineScope d(Duration::max() - Duration(1));
        this_task::sleepFor(1ms);
      });
      record("infinite", [] {
        this_task::DeadlineScope d(evchan::kInfiniteTimeout);
        this_task::sleepFor(1ms);
      });
      record("200 years", [] {
        this_task::DeadlineScope d(std::chrono::hours(24 * 365 * 200));
        this_task::sleepFor(1ms);
      });
      record("passed, then infinite inside", [] {
        this_task::DeadlineScope outer(-1ms);
        this_task::DeadlineScope inner(evchan::kInfiniteTimeout);
        this_task::sleepFor(1h);
      });
      record("passed, then huge inside", [] {
        this_task::DeadlineScope outer(Duration::min());
        this_task::DeadlineScope inner(Duration::max() - Duration(1));
        this_task::sleepFor(1h);
      });
      record("huge, then short inside", [] {
        this_task::DeadlineScope outer(Duration::max() - Duration(1));
        {
          this_task::DeadlineScope inner(10ms);
          try {
            this_task::sleepFor(1h);
          } catch (const SystemError&) {
          }
        }
        this_task::sleepFor(1ms);  // the huge outer one is back, far away
      });
      record("after all scopes", [] { this_task::sleepFor(1ms); });
      returnedValue = this_task::withTimeout(Duration::min(), [] { return 5; });  // no wait: unbounded
    });
    joinWithin(task);
    const std::vector<std::pair<std::string, std::string>> expected = {
        {"min", "timed out"},
        {"-1h", "timed out"},
        {"zero", "timed out"},
        {"max-1", "returned"},
        {"infinite", "returned"},
        {"200 years", "returned"},
        {"passed, then infinite inside", "timed out"},
        {"passed, then huge inside", "timed out"},
        {"huge, then short inside", "returned"},
        {"after all scopes", "returned"},
    };
    CPPUNIT_ASSERT_EQUAL(expected.size(), seen.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
      CPPUNIT_ASSERT_EQUAL_MESSAGE(expected[i].first, expected[i].second, seen[i].second);
    }
    CPPUNIT_ASSERT_EQUAL(5, returnedValue);
  }

  // 100 scopes nested by recursion, alternating long, infinite and huge,
  // a short one in the middle: the wait at the bottom ends at the short
  // one; as the recursion unwinds past it the waits are unbounded again.
  void deeplyNestedDeadlineScopes() {
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(1);
    std::string bottom;
    std::vector<std::string> onTheWayUp;
    std::function<void(int)> nest = [&](int depth) {
      const Duration timeout = depth == 50 ? Duration(20ms)
                               : depth % 3 == 0 ? Duration(1h)
                               : depth % 3 == 1 ? evchan::kInfiniteTimeout
                                                : Duration::max() - Duration(depth);
      this_task::DeadlineScope scope(timeout);
      if (depth == 100) {
        bottom = endOfCall([] { this_task::sleepFor(1h); });
        return;
      }
      nest(depth + 1);
      if (depth == 51 || depth == 49 || depth == 0) {
        onTheWayUp.push_back(endOfCall([] { this_task::sleepFor(1ms); }));
      }
    };
    evchan::TaskOptions options;
    options.stackSize = std::size_t(8) << 20;  // 100 frames of std::function and endOfCall (sanitizers: 4x)
    TaskHandle task = channel->spawn(options, [&] {
      nest(0);
      onTheWayUp.push_back(endOfCall([] { this_task::sleepFor(1ms); }));
    });
    joinWithin(task);
    CPPUNIT_ASSERT_EQUAL(std::string("timed out"), bottom);
    const std::vector<std::string> expected = {"timed out", "returned", "returned", "returned"};
    CPPUNIT_ASSERT(expected == onTheWayUp);
  }

  // A task reads one byte at a time under a deadline of 0 to 300 us while
  // a thread writes each byte after a pause of 0 to 240 us: deadlines and
  // data arrive together.  Each read either gets data or times out; a
  // timed-out read loses nothing (a later read gets the byte), nothing
  // comes twice, and the order holds.
  void deadlineExpiringAsTheDataArrivesLosesNothing() {
    const int kRounds = evchan::test::raceRounds(400, "EVCHAN_RACE_FACTOR");
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(2);
    evchan::test::ConnectedPair pair = evchan::test::connectPair();
    std::atomic<int> requested{0};
    std::atomic<bool> stop{false};
    std::thread writer([&] {
      for (int w = 0; w < kRounds; ++w) {
        while (requested.load() <= w) {
          if (stop.load()) return;
          std::this_thread::yield();
        }
        if (w % 5 != 0) std::this_thread::sleep_for(std::chrono::microseconds(w % 5 * 60));
        const char byte = static_cast<char>('a' + w % 26);
        pair.client.writeAll(&byte, 1);
      }
    });
    std::string got, expected;
    int timedOut = 0, otherErrors = 0;
    std::string lastError;
    TaskHandle reader = channel->spawn([&] {
      for (int r = 0; r < kRounds; ++r) {
        requested = r + 1;
        this_task::DeadlineScope deadline(std::chrono::microseconds(r % 7 * 50));
        char buffer[8];
        std::error_code ec;
        const std::size_t n = pair.server.readSome(buffer, sizeof buffer, ec);
        if (!ec) {
          got.append(buffer, n);
        } else if (ec == std::errc::timed_out) {
          if (n != 0) ++otherErrors;
          ++timedOut;
        } else {
          ++otherErrors;
          lastError = evchan::test::describe(ec);
        }
      }
      // Whatever is still on its way.
      this_task::DeadlineScope patience(evchan::test::generous(8s));
      while (got.size() < static_cast<std::size_t>(kRounds)) {
        char buffer[64];
        std::error_code ec;
        const std::size_t n = pair.server.readSome(buffer, sizeof buffer, ec);
        if (ec) {
          lastError = evchan::test::describe(ec);
          break;
        }
        got.append(buffer, n);
      }
    });
    evchan::test::eventually([&] { return reader.done(); }, 30s);
    stop = true;
    writer.join();
    joinWithin(reader);
    for (int w = 0; w < kRounds; ++w) expected.push_back(static_cast<char>('a' + w % 26));
    CPPUNIT_ASSERT_EQUAL_MESSAGE(lastError, 0, otherErrors);
    CPPUNIT_ASSERT_EQUAL_MESSAGE(std::to_string(timedOut) + " timed out; " + lastError, expected, got);
  }

  // blocking() inside blocking() (a library that wraps its own calls, used
  // by code that wraps the library): the worker is one blocked worker,
  // counted once, and the other tasks run meanwhile.
  void nestedBlockingCountsTheWorkerOnce() {
    std::unique_ptr<EventChannel> channel = oneWorkerWithoutMonitor();
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
    std::atomic<bool> inside{false};
    std::atomic<int> result{0};
    TaskHandle blocker = channel->spawn([&] {
      result = evchan::blocking([&] {
        return evchan::blocking([&] {
          return evchan::blocking([&] {
            inside = true;
            released.wait();
            return 42;
          });
        });
      });
    });
    CPPUNIT_ASSERT(eventually([&] { return inside.load(); }));
    const evchan::ThreadPoolStats during = channel->poolStats();
    std::atomic<int> othersDone{0};
    std::vector<TaskHandle> others;
    for (int i = 0; i < 10; ++i) {
      others.push_back(channel->spawn([&] {
        this_task::yield();
        ++othersDone;
      }));
    }
    const bool othersRan = eventually([&] { return othersDone.load() == 10; });
    const evchan::ThreadPoolStats afterOthers = channel->poolStats();
    release.set_value();
    joinWithin(blocker);
    for (TaskHandle& task : others) joinWithin(task);
    CPPUNIT_ASSERT_EQUAL(42, result.load());
    CPPUNIT_ASSERT_MESSAGE(describe(during), during.blocked == 1);
    CPPUNIT_ASSERT_MESSAGE(describe(afterOthers), othersRan);
    // One blocked worker needs one spare, not one per nesting level.
    CPPUNIT_ASSERT_MESSAGE(describe(afterOthers), afterOthers.peak <= 2);
    CPPUNIT_ASSERT_MESSAGE(describe(channel->poolStats()),
                           eventually([&] { return channel->poolStats().blocked == 0; }));
  }

  // On a plain thread (even one that owns channels) blocking() is a plain
  // call, nested or throwing, from several threads at once; no channel's
  // count moves.
  void blockingOnAPlainThread() {
    std::unique_ptr<EventChannel> channel = oneWorkerWithoutMonitor();
    std::atomic<int> sum{0}, caught{0}, maxBlockedSeen{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 50; ++i) {
          sum += evchan::blocking([&] { return evchan::blocking([&] { return t + 1; }); });
          try {
            evchan::blocking([&] {
              evchan::blocking([&] {
                const int blocked = channel->poolStats().blocked;
                if (blocked > maxBlockedSeen.load()) maxBlockedSeen = blocked;
                throw MemberFailure("from a plain thread");
              });
            });
          } catch (const MemberFailure&) {
            ++caught;
          }
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    CPPUNIT_ASSERT_EQUAL(50 * (1 + 2 + 3 + 4), sum.load());
    CPPUNIT_ASSERT_EQUAL(200, caught.load());
    CPPUNIT_ASSERT_EQUAL(0, maxBlockedSeen.load());
    CPPUNIT_ASSERT_EQUAL(0, channel->poolStats().blocked);
  }

  // Eight tasks throw out of nested blocking() calls at the same moment:
  // each catches its own exception, and the blocked count goes back to 0.
  void exceptionsEscapingNestedBlockingFromManyTasks() {
    constexpr int kTasks = 8;
    std::unique_ptr<EventChannel> channel = oneWorkerWithoutMonitor();
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
    std::atomic<int> inside{0}, caughtOwn{0};
    std::vector<TaskHandle> tasks;
    for (int i = 0; i < kTasks; ++i) {
      tasks.push_back(channel->spawn([&, i] {
        try {
          evchan::blocking([&] {
            evchan::blocking([&] {
              ++inside;
              released.wait();
              throw MemberFailure("task " + std::to_string(i));
            });
          });
        } catch (const MemberFailure& e) {
          if (std::string(e.what()) == "task " + std::to_string(i)) ++caughtOwn;
        }
      }));
    }
    CPPUNIT_ASSERT_MESSAGE(describe(channel->poolStats()), eventually([&] { return inside.load() == kTasks; }));
    release.set_value();
    for (TaskHandle& task : tasks) joinWithin(task);
    CPPUNIT_ASSERT_EQUAL(kTasks, caughtOwn.load());
    CPPUNIT_ASSERT_MESSAGE(describe(channel->poolStats()),
                           eventually([&] { return channel->poolStats().blocked == 0; }));
  }

  // Six tasks block their threads in blocking() on a one-worker channel
  // without a monitor: 20 other tasks still run to their end, and once
  // released the six return and the count goes back to 0.
  void manyTasksInBlockingOnOneWorkerLetOthersRun() {
    constexpr int kBlockers = 6;
    constexpr int kOthers = 20;
    std::unique_ptr<EventChannel> channel = oneWorkerWithoutMonitor();
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
    std::atomic<int> inside{0}, returned{0}, othersDone{0};
    std::vector<TaskHandle> blockers, others;
    for (int i = 0; i < kBlockers; ++i) {
      blockers.push_back(channel->spawn([&] {
        evchan::blocking([&] {
          ++inside;
          released.wait();
        });
        this_task::yield();
        ++returned;
      }));
    }
    const bool allInside = eventually([&] { return inside.load() == kBlockers; });
    const evchan::ThreadPoolStats whileBlocked = channel->poolStats();
    for (int i = 0; i < kOthers; ++i) {
      others.push_back(channel->spawn([&] {
        this_task::sleepFor(1ms);
        this_task::yield();
        ++othersDone;
      }));
    }
    const bool othersRan = eventually([&] { return othersDone.load() == kOthers; });
    release.set_value();
    for (TaskHandle& task : blockers) joinWithin(task);
    for (TaskHandle& task : others) joinWithin(task);
    CPPUNIT_ASSERT_MESSAGE(describe(whileBlocked), allInside);
    CPPUNIT_ASSERT_MESSAGE(describe(whileBlocked), whileBlocked.blocked == kBlockers);
    CPPUNIT_ASSERT_MESSAGE(std::to_string(othersDone.load()) + " of " + std::to_string(kOthers) + "; " +
                               describe(channel->poolStats()),
                           othersRan);
    CPPUNIT_ASSERT_EQUAL(kBlockers, returned.load());
    CPPUNIT_ASSERT_MESSAGE(describe(channel->poolStats()),
                           eventually([&] { return channel->poolStats().blocked == 0; }));
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(TaskGroupAdversarialTest);
