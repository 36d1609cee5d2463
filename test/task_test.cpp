// SPDX-License-Identifier: Apache-2.0
// Tests of tasks: EventChannel::spawn, TaskHandle (join, exceptions),
// this_task::yield/sleepFor/id, inTask, TaskLocal, migration between
// workers, stack size, errors, and a task that blocks its thread.
#include <cppunit/extensions/HelperMacros.h>

#include <evchan/evchan.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <new>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/diagnostics.h"
#include "support/loopback.h"
#include "support/leak_checked_fixture.h"
#include "support/waiting.h"
#include "support/reclaim_on_exit.h"
#include "support/skip.h"
#include "support/stderr_capture.h"

namespace {

using namespace std::chrono_literals;
using evchan::Duration;
using evchan::EventChannel;
using evchan::NotifyEvent;
using evchan::SystemError;
using evchan::TaskHandle;
using evchan::TaskId;
using evchan::TaskLocal;
using evchan::TaskOptions;
using evchan::test::generous;
using evchan::test::Clock;
using evchan::test::elapsedText;
using evchan::test::ReclaimOnExit;
namespace this_task = evchan::this_task;

// Bounded waits everywhere: a task that never ends fails its test after
// kPatience instead of hanging the suite.  Tasks that wait for each other
// give up after kBlockLimit, well before.
constexpr Duration kPatience = 8s;
using evchan::test::eventually;
using evchan::test::joinWithin;
using evchan::test::makeChannelWithoutMonitor;
using evchan::test::makeChannel;
constexpr Duration kBlockLimit = 5s;


/// Spins a task (yielding) until `flag` is set or kBlockLimit passes.
bool yieldUntil(const std::atomic<bool>& flag) {
  const Clock::time_point deadline = Clock::now() + kBlockLimit;
  while (!flag.load()) {
    if (Clock::now() > deadline) return false;
    this_task::yield();
  }
  return true;
}

/// Occupies the calling worker thread (not suspending) until `flag` is set
/// or kBlockLimit passes: lets a test queue several tasks behind it.
void blockThreadUntil(const std::atomic<bool>& flag) {
  const Clock::time_point deadline = Clock::now() + kBlockLimit;
  while (!flag.load() && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
}

/// One worker and no spare: nothing but that worker can poll the backend.
std::unique_ptr<EventChannel> makeSingleWorkerChannel() {
  EventChannel::Options options;
  options.initialThreads = 1;
  options.maxThreads = 1;
  return evchan::test::createOrSkip(options);
}

/// Two tasks yielding until `flag` is set (so one is always queued while
/// the other runs); joinAndCheck() fails the test if they gave up waiting.
class YieldingSpinners {
 public:
  YieldingSpinners(EventChannel& channel, const std::atomic<bool>& flag) {
    for (TaskHandle& task : tasks_) {
      task = channel.spawn([this, &flag] {
        if (!yieldUntil(flag)) gaveUp_ = true;
      });
    }
  }
  void joinAndCheck() {
    for (TaskHandle& task : tasks_) joinWithin(task);
    CPPUNIT_ASSERT_MESSAGE("the awaited event never came while tasks kept yielding", !gaveUp_.load());
  }

 private:
  TaskHandle tasks_[2];
  std::atomic<bool> gaveUp_{false};
};

class TaskFailure : public std::runtime_error {
 public:
  explicit TaskFailure(const std::string& what) : std::runtime_error(what) {}
};

/// Counts constructions and destructions, for TaskLocal's lifetime.
struct Tracked {
  static std::atomic<int> constructed;
  static std::atomic<int> destroyed;
  std::uint64_t value = 0;
  Tracked() { ++constructed; }
  ~Tracked() { ++destroyed; }
  Tracked(const Tracked&) = delete;
  Tracked& operator=(const Tracked&) = delete;
};
std::atomic<int> Tracked::constructed{0};
std::atomic<int> Tracked::destroyed{0};

/// Recurses through `depth` frames of at least 512 bytes each the optimiser
/// cannot drop; reports the lowest frame address reached.
[[gnu::noinline]] int deepRecursion(int depth, volatile char* previous, std::uintptr_t& lowest) {
  volatile char frame[512];
  frame[0] = static_cast<char>(depth);
  frame[511] = previous != nullptr ? previous[0] : 0;
  const auto here = reinterpret_cast<std::uintptr_t>(&frame[0]);
  if (here < lowest) lowest = here;
  return depth == 0 ? frame[0] : frame[511] + deepRecursion(depth - 1, frame, lowest);
}

std::string codeText(const std::error_code& ec) { return evchan::test::describe(ec); }

/// What an onUnhandledException handler received.
struct UnhandledReports {
  std::mutex mutex;
  std::vector<std::pair<TaskId, std::string>> reports;  // id, what()
  void add(TaskId id, std::exception_ptr exception) {
    std::string what = "?";
    try {
      std::rethrow_exception(exception);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    std::lock_guard<std::mutex> lock(mutex);
    reports.emplace_back(id, what);
  }
  std::size_t count() {
    std::lock_guard<std::mutex> lock(mutex);
    return reports.size();
  }
};

std::unique_ptr<EventChannel> makeReportingChannel(UnhandledReports& reports) {
  EventChannel::Options options;
  options.initialThreads = 2;
  options.onUnhandledException = [&reports](TaskId id, std::exception_ptr e) { reports.add(id, e); };
  return evchan::test::createOrSkip(options);
}

/// A move-only function object that records where it ran and was destroyed.
struct MoveOnlyJob {
  std::unique_ptr<int> value;
  std::atomic<int>* result;
  std::atomic<bool>* destroyedInTask;
  MoveOnlyJob(std::unique_ptr<int> v, std::atomic<int>* r, std::atomic<bool>* d)
      : value(std::move(v)), result(r), destroyedInTask(d) {}
  MoveOnlyJob(MoveOnlyJob&&) = default;
  ~MoveOnlyJob() {
    if (value) *destroyedInTask = evchan::inTask();
  }
  void operator()(std::unique_ptr<int> extra) { *result = *value + *extra; }
};

}  // namespace

class TaskTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(TaskTest);
  CPPUNIT_TEST(testSpawnAndJoinRunOnceOnAWorker);
  CPPUNIT_TEST(testTaskIds);
  CPPUNIT_TEST(testExceptionIsRethrownByEveryJoin);
  CPPUNIT_TEST(testJoinInsideATaskSuspendsTheJoiner);
  CPPUNIT_TEST(testJoinInsideATaskRacingWithTheEnd);
  CPPUNIT_TEST(testJoinFromSeveralThreadsAtOnce);
  CPPUNIT_TEST(testJoinSelfIsADeadlockError);
  CPPUNIT_TEST(testJoinAcrossChannelsResumesOnTheJoinersChannel);
  CPPUNIT_TEST(testJoinEmptyHandleIsInvalidArgument);
  CPPUNIT_TEST(testYieldLetsOtherReadyTasksRun);
  CPPUNIT_TEST(testSleepSuspendsTheTaskNotTheThread);
  CPPUNIT_TEST(testMigrationKeepsTaskData);
  CPPUNIT_TEST(testTaskLocalPerTaskAndDestroyedAtEnd);
  CPPUNIT_TEST(testTaskLocalOutsideATask);
  CPPUNIT_TEST(testTaskLocalAtTheAddressOfADestroyedOneIsNew);
  CPPUNIT_TEST(testManySleepingTasks);
  CPPUNIT_TEST(testStackSizeOption);
  CPPUNIT_TEST(testParkedTasksFramesSitAtDifferentPageOffsets);
  CPPUNIT_TEST(testSpawnAfterShutdown);
  CPPUNIT_TEST(testSpawnEmptyFunction);
  CPPUNIT_TEST(testThisTaskOutsideATaskActsOnTheThread);
  CPPUNIT_TEST(testThreadBlockingWaitInATaskIsCompensated);
  CPPUNIT_TEST(testSpawnMoveOnlyFunctionAndArguments);
  CPPUNIT_TEST(testSpawnMovesASocketIntoTheTask);
  CPPUNIT_TEST(testYieldingTasksDoNotStarveTimers);
  CPPUNIT_TEST(testYieldingTasksDoNotStarveSockets);
  CPPUNIT_TEST(testSpawnTemplateFormRefusesNullFunctions);
  CPPUNIT_TEST(testSpawnTemplateFormWithOptions);
  CPPUNIT_TEST(testThisTaskChannel);
  CPPUNIT_TEST(testUnhandledExceptionReportedAtTheEndWhenNoHandleIsLeft);
  CPPUNIT_TEST(testUnhandledExceptionReportedWhenTheLastHandleGoes);
  CPPUNIT_TEST(testJoinedOrCancelledExceptionsAreNotReported);
  CPPUNIT_TEST(testUnhandledExceptionDefaultPrintsOneLine);
  CPPUNIT_TEST(testThrowingHandlerFallsBackToTheDefaultLine);
  CPPUNIT_TEST_SUITE_END();

 public:
  void testSpawnAndJoinRunOnceOnAWorker() {
    std::atomic<int> runs{0};
    std::atomic<bool> insideTask{false};
    std::thread::id taskThread;
    CPPUNIT_ASSERT(!evchan::inTask());
    std::unique_ptr<EventChannel> channel = makeChannel(2);
    TaskHandle task = channel->spawn([&] {
      ++runs;
      insideTask = evchan::inTask();
      taskThread = evchan::currentThreadId();
    });
    CPPUNIT_ASSERT(task.valid());
    CPPUNIT_ASSERT(task.id() != 0);
    joinWithin(task);
    CPPUNIT_ASSERT(task.done());
    CPPUNIT_ASSERT_EQUAL(1, runs.load());
    CPPUNIT_ASSERT_MESSAGE("inTask() false inside a task", insideTask.load());
    CPPUNIT_ASSERT_MESSAGE("the task ran on the spawning thread", taskThread != std::this_thread::get_id());
    CPPUNIT_ASSERT(taskThread != std::thread::id());
    CPPUNIT_ASSERT(!evchan::inTask());
    task.join();  // a second join returns at once
    CPPUNIT_ASSERT_EQUAL(1, runs.load());
  }

  void testTaskIds() {
    constexpr int kTasks = 8;
    std::vector<std::atomic<TaskId>> seen(kTasks);
    std::unique_ptr<EventChannel> channel = makeChannel(2);
    std::vector<TaskHandle> tasks;
    for (int i = 0; i < kTasks; ++i) {
      tasks.push_back(channel->spawn([&seen, i] {
        const TaskId before = this_task::id();
        this_task::yield();
        // Stable across a suspension.
        seen[i] = this_task::id() == before ? before : 0;
      }));
    }
    std::set<TaskId> distinct;
    for (int i = 0; i < kTasks; ++i) {
      joinWithin(tasks[i]);
      CPPUNIT_ASSERT(seen[i].load() != 0);
      CPPUNIT_ASSERT_EQUAL(tasks[i].id(), seen[i].load());
      distinct.insert(seen[i].load());
    }
    CPPUNIT_ASSERT_EQUAL(static_cast<std::size_t>(kTasks), distinct.size());
    CPPUNIT_ASSERT_EQUAL(TaskId(0), this_task::id());
    TaskHandle empty;
    CPPUNIT_ASSERT(!empty.valid());
    CPPUNIT_ASSERT_EQUAL(TaskId(0), empty.id());
    CPPUNIT_ASSERT(!empty.done());
    // Copies refer to the same task.
    TaskHandle copy = tasks[0];
    CPPUNIT_ASSERT_EQUAL(tasks[0].id(), copy.id());
    CPPUNIT_ASSERT(copy.done());
  }

  void testExceptionIsRethrownByEveryJoin() {
    std::atomic<int> laterRuns{0};
    std::unique_ptr<EventChannel> channel = makeChannel(1);
    TaskHandle failing = channel->spawn([] {
      this_task::yield();
      throw TaskFailure("task failure 42");
    });
    CPPUNIT_ASSERT(eventually([&] { return failing.done(); }));
    for (int join = 0; join < 3; ++join) {
      try {
        failing.join();
        CPPUNIT_FAIL("join " + std::to_string(join) + " did not rethrow");
      } catch (const TaskFailure& e) {
        CPPUNIT_ASSERT_EQUAL(std::string("task failure 42"), std::string(e.what()));
      }
    }
    CPPUNIT_ASSERT(failing.done());
    // The single worker survived and runs later tasks.
    TaskHandle later = channel->spawn([&] { ++laterRuns; });
    joinWithin(later);
    CPPUNIT_ASSERT_EQUAL(1, laterRuns.load());
    // A non-std exception too.
    TaskHandle throwsInt = channel->spawn([] { throw 7; });
    CPPUNIT_ASSERT(eventually([&] { return throwsInt.done(); }));
    try {
      throwsInt.join();
      CPPUNIT_FAIL("join did not rethrow an int");
    } catch (int value) {
      CPPUNIT_ASSERT_EQUAL(7, value);
    }
  }

  // With a single worker, a task joining a sleeping task must be suspended
  // (not block the thread): the worker runs the joined task meanwhile, and
  // the pool needs no spare thread.  The joined task's exception reaches
  // the joining task.
  void testJoinInsideATaskSuspendsTheJoiner() {
    std::atomic<bool> joinedRan{false}, caught{false}, joinerFinished{false};
    std::thread::id joinerBefore, joinerAfter, joinedThread;
    std::string message;
    std::unique_ptr<EventChannel> channel = makeChannelWithoutMonitor(1);
    EventChannel* ch = channel.get();
    TaskHandle joiner = channel->spawn([&] {
      joinerBefore = evchan::currentThreadId();
      TaskHandle sleeper = ch->spawn([&] {
        joinedThread = evchan::currentThreadId();
        this_task::sleepFor(100ms);
        joinedRan = true;
        throw TaskFailure("from the joined task");
      });
      try {
        sleeper.join();
      } catch (const TaskFailure& e) {
        caught = true;
        message = e.what();
      }
      CPPUNIT_ASSERT(sleeper.done());
      joinerAfter = evchan::currentThreadId();
      joinerFinished = true;
    });
    joinWithin(joiner);
    CPPUNIT_ASSERT(joinerFinished.load());
    CPPUNIT_ASSERT(joinedRan.load());
    CPPUNIT_ASSERT_MESSAGE("in-task join did not rethrow", caught.load());
    CPPUNIT_ASSERT_EQUAL(std::string("from the joined task"), message);
    // One thread ran both: the joiner was suspended, not blocking.
    CPPUNIT_ASSERT(joinerBefore == joinedThread);
    CPPUNIT_ASSERT(joinerAfter == joinedThread);
    const evchan::ThreadPoolStats stats = channel->poolStats();
    CPPUNIT_ASSERT_EQUAL_MESSAGE("a spare thread was started: join blocked the worker", std::uint64_t(1),
                                 stats.started);
  }

  // A task joining another that ends at that very moment on another
  // worker: the end's wake-up may come before the joiner has switched out;
  // it must not be lost (the joiner would sleep forever).
  void testJoinInsideATaskRacingWithTheEnd() {
    const int kPairs = evchan::test::raceRounds(2000, "EVCHAN_RACE_FACTOR");
    std::atomic<int> joined{0};
    std::unique_ptr<EventChannel> channel = makeChannel(2);
    EventChannel* ch = channel.get();
    std::vector<TaskHandle> joiners;
    joiners.reserve(kPairs);
    for (int i = 0; i < kPairs; ++i) {
      // Ends after a short, varying spin: around the time its joiner joins.
      TaskHandle quick = channel->spawn([i] {
        for (volatile int spin = 0; spin < (i % 64) * 20; spin = spin + 1) {
        }
      });
      joiners.push_back(ch->spawn([quick, &joined]() mutable {
        quick.join();
        ++joined;
      }));
    }
    CPPUNIT_ASSERT_MESSAGE("joined " + std::to_string(joined.load()) + " of " + std::to_string(kPairs),
                           eventually([&] { return joined.load() == kPairs; }));
    for (TaskHandle& joiner : joiners) joinWithin(joiner);
  }

  // Several plain threads joining one task at once: in even rounds they
  // wait until it ends, in odd ones its end races with their joins.  Each
  // waits on a condition variable of its own; every one must be woken,
  // and none before the end (a missed one hangs the case).
  void testJoinFromSeveralThreadsAtOnce() {
    constexpr int kRounds = 200;
    constexpr int kThreads = 3;
    std::unique_ptr<EventChannel> channel = makeChannel(2);
    for (int round = 0; round < kRounds; ++round) {
      std::atomic<bool> release{false};
      TaskHandle task = channel->spawn([&release, round] {
        while (round % 2 == 0 && !release.load()) this_task::sleepFor(1ms);
      });
      std::atomic<int> sawItDone{0};
      std::vector<std::thread> joiners;
      for (int t = 0; t < kThreads; ++t) {
        joiners.emplace_back([task, &sawItDone]() mutable {
          task.join();
          if (task.done()) ++sawItDone;
        });
      }
      if (round % 2 == 0) std::this_thread::sleep_for(2ms);  // most joiners are waiting by now
      release = true;
      for (std::thread& joiner : joiners) joiner.join();
      CPPUNIT_ASSERT_EQUAL_MESSAGE("round " + std::to_string(round), kThreads, sawItDone.load());
    }
  }

  void testJoinSelfIsADeadlockError() {
    std::atomic<bool> published{false}, gotHandle{false};
    std::error_code code;
    TaskHandle self;
    std::unique_ptr<EventChannel> channel = makeChannel(2);
    TaskHandle task = channel->spawn([&] {
      gotHandle = yieldUntil(published);
      if (!gotHandle) return;
      try {
        self.join();
      } catch (const SystemError& e) {
        code = e.code();
      }
    });
    self = task;
    published = true;
    joinWithin(task);
    CPPUNIT_ASSERT(gotHandle.load());
    CPPUNIT_ASSERT_MESSAGE(codeText(code), code == std::errc::resource_deadlock_would_occur);
  }

  // A task may join a task of another channel: it waits suspended and
  // resumes on a worker of its own channel, never on the joined task's.
  void testJoinAcrossChannelsResumesOnTheJoinersChannel() {
    std::unique_ptr<EventChannel> joinerChannel = makeChannelWithoutMonitor(1);
    std::unique_ptr<EventChannel> targetChannel = makeChannelWithoutMonitor(1);
    std::thread::id joinerBefore, joinerAfter, targetThread;
    std::atomic<bool> joining{false};
    bool caught = false;
    TaskHandle target = targetChannel->spawn([&] {
      targetThread = evchan::currentThreadId();
      yieldUntil(joining);
      this_task::sleepFor(20ms);  // the joiner parks meanwhile
      throw TaskFailure("from the other channel");
    });
    TaskHandle joiner = joinerChannel->spawn([&] {
      joinerBefore = evchan::currentThreadId();
      joining = true;
      try {
        target.join();
      } catch (const TaskFailure&) {
        caught = true;
      }
      joinerAfter = evchan::currentThreadId();
    });
    joinWithin(joiner);
    CPPUNIT_ASSERT_THROW(target.join(), TaskFailure);
    CPPUNIT_ASSERT(caught);
    // One worker each: the joiner's channel's thread ran it before and after.
    CPPUNIT_ASSERT(joinerBefore == joinerAfter);
    CPPUNIT_ASSERT(joinerAfter != targetThread);
    CPPUNIT_ASSERT_EQUAL(std::uint64_t(1), joinerChannel->poolStats().started);
  }

  void testJoinEmptyHandleIsInvalidArgument() {
    TaskHandle empty;
    try {
      empty.join();
      CPPUNIT_FAIL("join on an empty handle did not throw");
    } catch (const SystemError& e) {
      CPPUNIT_ASSERT_MESSAGE(codeText(e.code()), e.code() == std::errc::invalid_argument);
    }
    // Inside a task too.
    std::error_code code;
    std::unique_ptr<EventChannel> channel = makeChannel(1);
    TaskHandle task = channel->spawn([&] {
      try {
        TaskHandle().join();
      } catch (const SystemError& e) {
        code = e.code();
      }
    });
    joinWithin(task);
    CPPUNIT_ASSERT_MESSAGE(codeText(code), code == std::errc::invalid_argument);
  }

  // One worker, two tasks queued behind a task that holds it: each appends
  // and yields; yield() puts a task behind the other ready one.  The order
  // is promised only while one worker runs them all, so the stuck-worker
  // monitor (which rightly adds a worker when the holder outlasts its grace
  // period, as it does on a slow machine) is off.
  void testYieldLetsOtherReadyTasksRun() {
    constexpr int kRounds = 5;
    std::mutex mutex;
    std::string order;
    std::atomic<bool> go{false};
    std::unique_ptr<EventChannel> channel = makeChannelWithoutMonitor(1);
    TaskHandle gate = channel->spawn([&] { blockThreadUntil(go); });
    auto appender = [&](char name) {
      return [&, name] {
        for (int i = 0; i < kRounds; ++i) {
          {
            std::lock_guard<std::mutex> lock(mutex);
            order += name;
          }
          this_task::yield();
        }
      };
    };
    TaskHandle a = channel->spawn(appender('A'));
    TaskHandle b = channel->spawn(appender('B'));
    go = true;
    joinWithin(gate);
    joinWithin(a);
    joinWithin(b);
    CPPUNIT_ASSERT_EQUAL(1, channel->poolStats().peak);
    std::lock_guard<std::mutex> lock(mutex);
    CPPUNIT_ASSERT_EQUAL(std::string("ABABABABAB"), order);
  }

  void testSleepSuspendsTheTaskNotTheThread() {
    std::atomic<bool> quickDone{false}, quickDoneBeforeWake{false};
    std::atomic<int> quickYields{0};
    Clock::duration slept{};
    // Without the monitor: a spare thread would let quick finish even if
    // the sleep held the worker.
    std::unique_ptr<EventChannel> channel = makeChannelWithoutMonitor(1);
    TaskHandle sleeper = channel->spawn([&] {
      const Clock::time_point start = Clock::now();
      this_task::sleepFor(200ms);
      quickDoneBeforeWake = quickDone.load();
      slept = Clock::now() - start;
    });
    TaskHandle quick = channel->spawn([&] {
      for (int i = 0; i < 100; ++i) {
        this_task::yield();
        ++quickYields;
      }
      quickDone = true;
    });
    joinWithin(sleeper);
    joinWithin(quick);
    CPPUNIT_ASSERT_EQUAL(100, quickYields.load());
    CPPUNIT_ASSERT_MESSAGE("the sleeping task kept the only worker: " + elapsedText(slept),
                           quickDoneBeforeWake.load());
    CPPUNIT_ASSERT_EQUAL(1, channel->poolStats().peak);
    CPPUNIT_ASSERT_MESSAGE(elapsedText(slept), slept >= 190ms);
    CPPUNIT_ASSERT_MESSAGE(elapsedText(slept), slept < generous(2s));
  }

  // Tasks suspend many times on two workers and may resume on either.
  // Whether one moves is up to the scheduler; when it does, its stack and
  // its TaskLocal must come along intact.
  void testMigrationKeepsTaskData() {
    constexpr int kTasks = 4;
    constexpr int kSuspensions = 150;
    struct Payload {
      std::uint64_t owner = 0;
      std::uint64_t checksum = 0;
    };
    TaskLocal<Payload> local;
    std::atomic<int> completed{0}, corrupt{0}, migrations{0}, suspensions{0}, tasksThatMoved{0};
    std::unique_ptr<EventChannel> channel = makeChannel(2);
    std::vector<TaskHandle> tasks;
    for (int t = 0; t < kTasks; ++t) {
      tasks.push_back(channel->spawn([&, t] {
        const std::uint64_t owner = 0x9e3779b97f4a7c15ull * static_cast<std::uint64_t>(t + 1);
        volatile std::uint64_t onStack = owner ^ 0xabcdefull;
        local->owner = owner;
        std::set<std::thread::id> threads{evchan::currentThreadId()};
        for (int i = 0; i < kSuspensions; ++i) {
          local->checksum += static_cast<std::uint64_t>(i);
          const std::thread::id before = evchan::currentThreadId();
          if (i % 10 == 0) {
            this_task::sleepFor(1ms);
          } else {
            this_task::yield();
          }
          ++suspensions;
          const std::thread::id after = evchan::currentThreadId();
          if (after != before) ++migrations;
          threads.insert(after);
          if (local->owner != owner || onStack != (owner ^ 0xabcdefull)) ++corrupt;
        }
        const std::uint64_t expected = static_cast<std::uint64_t>(kSuspensions) * (kSuspensions - 1) / 2;
        if (local->checksum != expected) ++corrupt;
        if (threads.size() > 1) ++tasksThatMoved;
        ++completed;
      }));
    }
    for (TaskHandle& task : tasks) joinWithin(task);
    CPPUNIT_ASSERT_EQUAL(kTasks, completed.load());
    CPPUNIT_ASSERT_EQUAL(0, corrupt.load());
    CPPUNIT_ASSERT_EQUAL(kTasks * kSuspensions, suspensions.load());
    CPPUNIT_ASSERT(migrations.load() <= suspensions.load());
    CPPUNIT_ASSERT(tasksThatMoved.load() <= kTasks);
  }

  void testTaskLocalPerTaskAndDestroyedAtEnd() {
    constexpr int kTasks = 6;
    Tracked::constructed = 0;
    Tracked::destroyed = 0;
    TaskLocal<Tracked> tracked;
    TaskLocal<int> counter;
    std::atomic<int> freshDefaults{0}, intact{0}, liveAtEnd{0};
    std::atomic<bool> caughtByJoin{false};
    {
      std::unique_ptr<EventChannel> channel = makeChannel(2);
      std::vector<TaskHandle> tasks;
      for (int t = 0; t < kTasks; ++t) {
        tasks.push_back(channel->spawn([&, t] {
          if (tracked->value == 0 && *counter == 0) ++freshDefaults;
          tracked->value = static_cast<std::uint64_t>(t) + 100;
          *counter = t * 3;
          this_task::sleepFor(2ms);
          this_task::yield();
          // The same instance, not a new one.
          if (tracked.get().value == static_cast<std::uint64_t>(t) + 100 && counter.get() == t * 3) ++intact;
          if (Tracked::destroyed.load() < Tracked::constructed.load()) ++liveAtEnd;
        }));
      }
      // A task that never uses the local does not construct one.
      tasks.push_back(channel->spawn([] { this_task::yield(); }));
      // A task that ends with an exception still destroys its locals.
      TaskHandle throwing = channel->spawn([&] {
        tracked->value = 1;
        throw TaskFailure("with a local");
      });
      for (TaskHandle& task : tasks) joinWithin(task);
      CPPUNIT_ASSERT(eventually([&] { return throwing.done(); }));
      try {
        throwing.join();
      } catch (const TaskFailure&) {
        caughtByJoin = true;
      }
    }
    CPPUNIT_ASSERT(caughtByJoin.load());
    CPPUNIT_ASSERT_EQUAL(kTasks, freshDefaults.load());
    CPPUNIT_ASSERT_EQUAL(kTasks, intact.load());
    CPPUNIT_ASSERT_EQUAL(kTasks, liveAtEnd.load());
    CPPUNIT_ASSERT_EQUAL(kTasks + 1, Tracked::constructed.load());
    CPPUNIT_ASSERT_EQUAL(kTasks + 1, Tracked::destroyed.load());
  }

  // A TaskLocal built where a destroyed one lived (the same stack slot, or
  // reused heap) is a new variable: a fresh default value of its own type,
  // never the old one's.  The old one's value lives on until the task ends.
  void testTaskLocalAtTheAddressOfADestroyedOneIsNew() {
    Tracked::constructed = 0;
    Tracked::destroyed = 0;
    std::atomic<int> fresh{0}, sameAddress{0};
    std::atomic<int> liveAfterItsLocal{-1};
    {
      std::unique_ptr<EventChannel> channel = makeChannel(1);
      TaskHandle task = channel->spawn([&] {
        alignas(std::max_align_t) unsigned char storage[sizeof(TaskLocal<std::string>) + sizeof(TaskLocal<int>) +
                                                        sizeof(TaskLocal<Tracked>) + 16] = {};
        auto* tracked = new (storage) TaskLocal<Tracked>;
        tracked->get().value = 7;
        tracked->~TaskLocal<Tracked>();
        liveAfterItsLocal = Tracked::constructed.load() - Tracked::destroyed.load();

        auto* number = new (storage) TaskLocal<int>;
        if (static_cast<void*>(number) == static_cast<void*>(storage)) ++sameAddress;
        if (number->get() == 0) ++fresh;  // not the Tracked's bytes
        number->get() = 42;
        number->~TaskLocal<int>();

        // A larger type where a smaller one's value was: reading the old
        // slot as a string ran off the end of the int's allocation.
        auto* text = new (storage) TaskLocal<std::string>;
        if (text->get().empty()) ++fresh;
        text->get() = "a string longer than the small-string buffer of std::string";
        if (text->get().size() == 59) ++fresh;
        text->~TaskLocal<std::string>();
      });
      joinWithin(task);
    }
    CPPUNIT_ASSERT_EQUAL(1, sameAddress.load());
    CPPUNIT_ASSERT_EQUAL(3, fresh.load());
    // Destroying a TaskLocal leaves its value to the task's end.
    CPPUNIT_ASSERT_EQUAL(1, liveAfterItsLocal.load());
    CPPUNIT_ASSERT_EQUAL(1, Tracked::constructed.load());
    CPPUNIT_ASSERT_EQUAL(1, Tracked::destroyed.load());
  }

  void testTaskLocalOutsideATask() {
    TaskLocal<int> local;
    try {
      local.get();
      CPPUNIT_FAIL("TaskLocal::get outside a task did not throw");
    } catch (const SystemError& e) {
      CPPUNIT_ASSERT_MESSAGE(codeText(e.code()), e.code() == std::errc::operation_not_permitted);
    }
    CPPUNIT_ASSERT_THROW(*local, SystemError);
  }

  void testManySleepingTasks() {
#if defined(EVCHAN_TEST_TSAN)
    // Each task is a TSan fiber, whose state TSan maps and clears (about
    // 2.5 ms a task on CI's machine): a tenth as many.
    constexpr int kTasks = 1000;
#else
    constexpr int kTasks = 10000;
#endif
    std::atomic<int> finished{0};
    std::unique_ptr<EventChannel> channel = makeChannel(2);
    std::vector<TaskHandle> tasks;
    tasks.reserve(kTasks);
    for (int i = 0; i < kTasks; ++i) {
      tasks.push_back(channel->spawn([&finished, i] {
        this_task::sleepFor(std::chrono::milliseconds(1 + i % 5));
        ++finished;
      }));
    }
    CPPUNIT_ASSERT_MESSAGE("finished " + std::to_string(finished.load()) + " of " + std::to_string(kTasks),
                           eventually([&] { return finished.load() == kTasks; }));
    for (TaskHandle& task : tasks) joinWithin(task);
    CPPUNIT_ASSERT_EQUAL(kTasks, finished.load());
  }

  // ~150 KiB of frames: beyond the 64 KiB default, within a 256 KiB stack.
  void testStackSizeOption() {
    constexpr int kDepth = 150 * 1024 / 512;
    std::uintptr_t top = 0, lowest = UINTPTR_MAX;
    std::atomic<bool> completed{false};
    std::unique_ptr<EventChannel> channel = makeChannel(1);
    TaskOptions options;
    options.stackSize = 256 * 1024;
    TaskHandle task = channel->spawn(
        [&] {
          volatile char marker = 0;
          top = reinterpret_cast<std::uintptr_t>(&marker);
          std::uintptr_t deepest = UINTPTR_MAX;
          (void)deepRecursion(kDepth, nullptr, deepest);
          lowest = deepest;
          completed = true;
        },
        options);
    joinWithin(task);
    CPPUNIT_ASSERT(completed.load());
    CPPUNIT_ASSERT(lowest < top);
    const std::uintptr_t used = top - lowest;
    CPPUNIT_ASSERT_MESSAGE("recursion used only " + std::to_string(used) + " bytes", used >= 140 * 1024);
  }

  // The same frame of tasks parked at once sits at different offsets in
  // its page (stack colouring), so that a level-1 or level-2 cache, whose
  // sets the offset picks, does not hold it for only a few of them.
  void testParkedTasksFramesSitAtDifferentPageOffsets() {
#ifdef _WIN32
    EVCHAN_SKIP("Windows allocates a fiber's stack itself: no colouring");
#else
    constexpr int kTasks = 64;
    std::vector<std::uintptr_t> markers(kTasks, 0);
    std::atomic<int> parked{0};
    std::atomic<bool> release{false};
    std::unique_ptr<EventChannel> channel = makeChannel(1);
    std::vector<TaskHandle> tasks;
    for (int i = 0; i < kTasks; ++i) {
      tasks.push_back(channel->spawn([&, i] {
        // The frame itself: a sanitizer may move locals to a stack of its own.
        markers[i] = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
        ++parked;
        while (!release.load()) evchan::this_task::sleepFor(1ms);
      }));
    }
    const bool allParked = eventually([&] { return parked.load() == kTasks; });
    release = true;
    for (TaskHandle& task : tasks) joinWithin(task);
    CPPUNIT_ASSERT(allParked);
    std::set<std::uintptr_t> offsets;
    for (const std::uintptr_t marker : markers) {
      // The same frame, moved by whole cache lines.
      CPPUNIT_ASSERT_EQUAL(markers[0] % 64, marker % 64);
      offsets.insert(marker % 4096);
    }
    CPPUNIT_ASSERT_MESSAGE(std::to_string(offsets.size()) + " offsets in the page for " + std::to_string(kTasks) +
                               " tasks",
                           offsets.size() >= 16);
#endif
  }

  void testSpawnAfterShutdown() {
    std::atomic<int> runs{0};
    std::unique_ptr<EventChannel> channel = makeChannel(1);
    channel->shutdown();
    std::error_code ec;
    TaskHandle task = channel->spawn([&] { ++runs; }, TaskOptions(), ec);
    CPPUNIT_ASSERT_MESSAGE(codeText(ec), ec == evchan::Errc::channel_shut_down);
    CPPUNIT_ASSERT(!task.valid());
    try {
      channel->spawn([&] { ++runs; });
      CPPUNIT_FAIL("spawn after shutdown did not throw");
    } catch (const SystemError& e) {
      CPPUNIT_ASSERT_MESSAGE(codeText(e.code()), e.code() == evchan::Errc::channel_shut_down);
    }
    CPPUNIT_ASSERT_EQUAL(0, runs.load());
  }

  void testSpawnEmptyFunction() {
    std::unique_ptr<EventChannel> channel = makeChannel(1);
    std::error_code ec;
    TaskHandle task = channel->spawn(std::function<void()>(), TaskOptions(), ec);
    CPPUNIT_ASSERT_MESSAGE(codeText(ec), ec == std::errc::invalid_argument);
    CPPUNIT_ASSERT(!task.valid());
    try {
      channel->spawn(std::function<void()>());
      CPPUNIT_FAIL("spawn of an empty function did not throw");
    } catch (const SystemError& e) {
      CPPUNIT_ASSERT_MESSAGE(codeText(e.code()), e.code() == std::errc::invalid_argument);
    }
    // The channel still works.
    TaskHandle fine = channel->spawn([] {}, TaskOptions(), ec);
    CPPUNIT_ASSERT_MESSAGE(codeText(ec), !ec);
    joinWithin(fine);
  }

  void testThisTaskOutsideATaskActsOnTheThread() {
    CPPUNIT_ASSERT(!evchan::inTask());
    CPPUNIT_ASSERT_EQUAL(TaskId(0), this_task::id());
    this_task::yield();  // a thread yield: returns
    const Clock::duration slept = evchan::test::timed([] { this_task::sleepFor(50ms); });
    CPPUNIT_ASSERT_MESSAGE(elapsedText(slept), slept >= 50ms);
    CPPUNIT_ASSERT_MESSAGE(elapsedText(slept), slept < generous(2s));
    // Zero and negative durations return at once.
    const Clock::duration none = evchan::test::timed([] {
      this_task::sleepFor(Duration::zero());
      this_task::sleepFor(-5ms);
    });
    CPPUNIT_ASSERT_MESSAGE(elapsedText(none), none < generous(500ms));
    // On a worker thread outside a task (a dispatch callback) too.
    std::atomic<bool> ran{false}, wasInTask{true};
    std::atomic<TaskId> idThere{1};
    Clock::duration sleptThere{};
    NotifyEvent done;
    std::unique_ptr<EventChannel> channel = makeChannel(1);
    evchan::DispatchEvent dispatch([&] {
      wasInTask = evchan::inTask();
      idThere = this_task::id();
      this_task::yield();
      sleptThere = evchan::test::timed([] { this_task::sleepFor(30ms); });
      ran = true;
    });
    dispatch.setCallback([&](evchan::Event&) { channel->post(done); });
    ReclaimOnExit reclaim(*channel);
    channel->post(dispatch);
    CPPUNIT_ASSERT_MESSAGE("the dispatch did not complete", done.wait(kPatience));
    CPPUNIT_ASSERT(ran.load());
    CPPUNIT_ASSERT(!wasInTask.load());
    CPPUNIT_ASSERT_EQUAL(TaskId(0), idThere.load());
    CPPUNIT_ASSERT_MESSAGE(elapsedText(sleptThere), sleptThere >= 30ms);
  }

  // NotifyEvent::wait blocks the worker thread even inside a task.  With
  // one worker, the task that posts the event can only run on a spare
  // thread the pool starts for the blocked one.
  void testThreadBlockingWaitInATaskIsCompensated() {
    NotifyEvent event;
    std::atomic<bool> waiting{false}, posterSawWaiter{false}, released{false};
    std::error_code postError;
    std::unique_ptr<EventChannel> channel = makeChannel(1);
    EventChannel* ch = channel.get();
    ReclaimOnExit reclaim(*channel);
    TaskHandle waiter = channel->spawn([&] {
      waiting = true;
      released = event.wait(kBlockLimit);
    });
    TaskHandle poster = channel->spawn([&] {
      posterSawWaiter = yieldUntil(waiting);
      this_task::sleepFor(20ms);  // let the waiter get into wait()
      ch->post(event, postError);
    });
    const Clock::duration took = evchan::test::timed([&] {
      joinWithin(waiter);
      joinWithin(poster);
    });
    CPPUNIT_ASSERT(posterSawWaiter.load());
    CPPUNIT_ASSERT_MESSAGE(codeText(postError), !postError);
    CPPUNIT_ASSERT_MESSAGE("the waiting task was not released: " + elapsedText(took), released.load());
    CPPUNIT_ASSERT_MESSAGE(elapsedText(took), took < generous(3s));
    const evchan::ThreadPoolStats stats = channel->poolStats();
    CPPUNIT_ASSERT_MESSAGE("no spare thread was started", stats.peak >= 2);
  }

  void testSpawnMoveOnlyFunctionAndArguments() {
    std::unique_ptr<EventChannel> channel = makeChannel(2);
    std::atomic<int> result{0};
    std::atomic<bool> destroyedInTask{false};
    // A move-only function object and a move-only argument.
    TaskHandle task = channel->spawn(MoveOnlyJob(std::make_unique<int>(40), &result, &destroyedInTask),
                                     std::make_unique<int>(2));
    joinWithin(task);
    CPPUNIT_ASSERT_EQUAL(42, result.load());
    CPPUNIT_ASSERT_MESSAGE("the function and its arguments are destroyed in the task", destroyedInTask.load());
    // A lambda capturing a move-only value, and a plain function pointer
    // with an argument copied from an lvalue.
    auto owned = std::make_unique<int>(7);
    task = channel->spawn([owned = std::move(owned), &result] { result = *owned; });
    joinWithin(task);
    CPPUNIT_ASSERT_EQUAL(7, result.load());
    static std::atomic<int> sum{0};
    void (*add)(int) = [](int x) { sum += x; };
    const int three = 3;
    task = channel->spawn(add, three);
    joinWithin(task);
    CPPUNIT_ASSERT_EQUAL(3, sum.load());
    // The std::function form still takes a std::function.
    std::function<void()> function = [&result] { result = 5; };
    task = channel->spawn(function);
    joinWithin(task);
    CPPUNIT_ASSERT_EQUAL(5, result.load());
  }

  void testSpawnMovesASocketIntoTheTask() {
    std::unique_ptr<EventChannel> channel = makeChannel(2);
    evchan::test::ConnectedPair pair = evchan::test::connectPair();
    // The server side moves into the task, which echoes one message.
    TaskHandle task = channel->spawn(
        [](evchan::TcpSocket socket) {
          char buffer[5];
          socket.readExactly(buffer, sizeof buffer);
          socket.writeAll(buffer, sizeof buffer);
        },
        std::move(pair.server));
    pair.client.writeAll("hello", 5);
    char echoed[5] = {};
    pair.client.readExactly(echoed, sizeof echoed);
    CPPUNIT_ASSERT_EQUAL(std::string("hello"), std::string(echoed, sizeof echoed));
    joinWithin(task);
    // The socket died with the task's function: the client sees the end.
    char byte;
    std::error_code ec;
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), pair.client.readSome(&byte, 1, ec));
  }

  // Tasks that only yield keep the run queue from ever emptying.  The one
  // worker must still poll its backend between them, or every timer and
  // socket on the channel waits for the spinning to stop.
  void testYieldingTasksDoNotStarveTimers() {
    std::unique_ptr<EventChannel> channel = makeSingleWorkerChannel();
    std::atomic<bool> woke{false};
    YieldingSpinners spinners(*channel, woke);
    TaskHandle sleeper = channel->spawn([&woke] {
      this_task::sleepFor(10ms);
      woke = true;
    });
    joinWithin(sleeper);
    spinners.joinAndCheck();
  }

  void testYieldingTasksDoNotStarveSockets() {
    std::unique_ptr<EventChannel> channel = makeSingleWorkerChannel();
    evchan::test::ConnectedPair pair = evchan::test::connectPair();
    std::atomic<bool> read{false};
    YieldingSpinners spinners(*channel, read);
    TaskHandle reader = channel->spawn(
        [&read](evchan::TcpSocket socket) {
          char byte = 0;
          socket.readExactly(&byte, 1);
          if (byte == 'x') read = true;
        },
        std::move(pair.server));
    std::this_thread::sleep_for(20ms);  // the reader waits on the backend by now
    pair.client.writeAll("x", 1);
    joinWithin(reader);
    spinners.joinAndCheck();
  }

  void testSpawnTemplateFormRefusesNullFunctions() {
    std::unique_ptr<EventChannel> channel = makeChannel(1);
    void (*none)(int) = nullptr;
    try {
      channel->spawn(none, 1);
      CPPUNIT_FAIL("a null function pointer was spawned");
    } catch (const SystemError& e) {
      CPPUNIT_ASSERT_EQUAL_MESSAGE(codeText(e.code()), std::make_error_code(std::errc::invalid_argument), e.code());
    }
    std::function<void(int)> empty;
    try {
      channel->spawn(std::move(empty), 1);
      CPPUNIT_FAIL("an empty std::function was spawned");
    } catch (const SystemError& e) {
      CPPUNIT_ASSERT_EQUAL_MESSAGE(codeText(e.code()), std::make_error_code(std::errc::invalid_argument), e.code());
    }
  }

  void testSpawnTemplateFormWithOptions() {
    std::unique_ptr<EventChannel> channel = makeChannel(1);
    std::atomic<int> result{0};
    TaskHandle task = channel->spawn(TaskOptions{256 * 1024},
                                     [&result](std::unique_ptr<int> v) {
                                       std::uintptr_t lowest = UINTPTR_MAX;
                                       deepRecursion(300, nullptr, lowest);  // ~150 KiB: beyond the default 64 KiB
                                       result = *v;
                                     },
                                     std::make_unique<int>(9));
    joinWithin(task);
    CPPUNIT_ASSERT_EQUAL(9, result.load());
    try {
      channel->spawn(TaskOptions{evchan::kMaxTaskStackSize + 1}, [] {});
      CPPUNIT_FAIL("a stack above kMaxTaskStackSize was accepted");
    } catch (const SystemError& e) {
      CPPUNIT_ASSERT_EQUAL_MESSAGE(codeText(e.code()), std::make_error_code(std::errc::invalid_argument), e.code());
    }
  }

  void testThisTaskChannel() {
    try {
      this_task::channel();
      CPPUNIT_FAIL("this_task::channel() outside a task returned");
    } catch (const SystemError& e) {
      CPPUNIT_ASSERT_EQUAL_MESSAGE(codeText(e.code()), std::make_error_code(std::errc::operation_not_permitted),
                                   e.code());
    }
    std::unique_ptr<EventChannel> channel = makeChannel(2);
    std::atomic<EventChannel*> seen{nullptr};
    std::atomic<TaskId> childId{0};
    TaskHandle task = channel->spawn([&] {
      seen = &this_task::channel();
      // A child spawned through it runs on the same channel, handed a
      // move-only argument.
      TaskHandle child = this_task::channel().spawn([&](std::unique_ptr<int>) {
        childId = this_task::id();
        CPPUNIT_ASSERT(&this_task::channel() == seen.load());
      }, std::make_unique<int>(1));
      child.join();
    });
    joinWithin(task);
    CPPUNIT_ASSERT(seen.load() == channel.get());
    CPPUNIT_ASSERT(childId.load() != 0);
  }

  void testUnhandledExceptionReportedAtTheEndWhenNoHandleIsLeft() {
    UnhandledReports reports;
    std::unique_ptr<EventChannel> channel = makeReportingChannel(reports);
    std::atomic<bool> release{false};
    TaskId id = 0;
    {
      TaskHandle task = channel->spawn([&] {
        CPPUNIT_ASSERT(yieldUntil(release));
        throw TaskFailure("dropped task failed");
      });
      id = task.id();
      TaskHandle copy = task;  // copies share one count: dropping both is the end
    }
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), reports.count());  // not ended yet
    release = true;
    CPPUNIT_ASSERT(eventually([&] { return reports.count() == 1; }));
    std::lock_guard<std::mutex> lock(reports.mutex);
    CPPUNIT_ASSERT_EQUAL(std::size_t(1), reports.reports.size());
    CPPUNIT_ASSERT_EQUAL(id, reports.reports[0].first);
    CPPUNIT_ASSERT_EQUAL(std::string("dropped task failed"), reports.reports[0].second);
  }

  void testUnhandledExceptionReportedWhenTheLastHandleGoes() {
    UnhandledReports reports;
    std::unique_ptr<EventChannel> channel = makeReportingChannel(reports);
    auto task = std::make_unique<TaskHandle>(channel->spawn([] { throw TaskFailure("kept but never joined"); }));
    TaskHandle copy = *task;
    const TaskId id = task->id();
    CPPUNIT_ASSERT(eventually([&] { return task->done(); }));
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), reports.count());  // a handle is left: somebody may join
    task.reset();
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), reports.count());  // the copy is left
    copy = TaskHandle();
    // Reported at once, on this thread, by the last handle's destruction.
    CPPUNIT_ASSERT_EQUAL(std::size_t(1), reports.count());
    CPPUNIT_ASSERT_EQUAL(id, reports.reports[0].first);
    CPPUNIT_ASSERT_EQUAL(std::string("kept but never joined"), reports.reports[0].second);
  }

  void testJoinedOrCancelledExceptionsAreNotReported() {
    UnhandledReports reports;
    {
      std::unique_ptr<EventChannel> channel = makeReportingChannel(reports);
      {
        TaskHandle joined = channel->spawn([] { throw TaskFailure("joined"); });
        CPPUNIT_ASSERT_THROW(joined.join(), TaskFailure);
      }
      {
        // Joined through one copy, the others' end reports nothing either.
        TaskHandle joined = channel->spawn([] { throw TaskFailure("joined by a copy"); });
        TaskHandle copy = joined;
        CPPUNIT_ASSERT_THROW(copy.join(), TaskFailure);
      }
      // Dropped tasks unwound by the shutdown end with operation_canceled:
      // their expected end, not reported.
      std::atomic<int> parked{0};
      for (int i = 0; i < 4; ++i) {
        channel->spawn([&] {
          ++parked;
          this_task::sleepFor(std::chrono::hours(1));
        });
      }
      CPPUNIT_ASSERT(eventually([&] { return parked.load() == 4; }));
      channel->shutdown();
    }
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), reports.count());
  }

  void testUnhandledExceptionDefaultPrintsOneLine() {
    std::string printed;
    TaskId id = 0;
    {
      evchan::test::StderrCapture capture;
      std::unique_ptr<EventChannel> channel = makeChannel(1);
      {
        TaskHandle task = channel->spawn([] { throw TaskFailure("nobody listens"); });
        id = task.id();
        CPPUNIT_ASSERT(eventually([&] { return task.done(); }));
      }  // reported here
      printed = capture.text();
    }
    const std::string expected =
        "evchan: task " + std::to_string(id) + " ended with an unhandled exception: nobody listens\n";
    CPPUNIT_ASSERT_EQUAL(expected, printed);
  }

  void testThrowingHandlerFallsBackToTheDefaultLine() {
    std::string printed;
    TaskId id = 0;
    {
      evchan::test::StderrCapture capture;
      EventChannel::Options options;
      options.initialThreads = 1;
      options.onUnhandledException = [](TaskId, std::exception_ptr) { throw std::runtime_error("handler failed"); };
      std::unique_ptr<EventChannel> channel = evchan::test::createOrSkip(options);
      TaskHandle task = channel->spawn([] { throw 42; });  // not a std::exception
      id = task.id();
      CPPUNIT_ASSERT(eventually([&] { return task.done(); }));
      task = TaskHandle();  // reported here
      printed = capture.text();
    }
    const std::string idText = std::to_string(id);
    CPPUNIT_ASSERT_EQUAL(std::string("evchan: onUnhandledException threw; task " + idText +
                                     "'s exception follows\n"
                                     "evchan: task " + idText +
                                     " ended with an unhandled exception: an exception not derived from std::exception\n"),
                         printed);
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(TaskTest);
