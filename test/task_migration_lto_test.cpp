// SPDX-License-Identifier: Apache-2.0
// Task migration in a caller built with -O2 -flto (see Makefile.am).
//
// A task may resume on another worker after any suspension.  An optimiser
// that sees a whole program may keep a thread-local's address, or the
// result of a function it believes pure, in a register across a call; in
// the caller that would mean reading the previous thread's state after a
// migration.  evchan's own accessors (inTask(), this_task::id(), TaskLocal)
// must stay right whatever the caller is compiled with: this suite checks
// them before and after hundreds of suspensions on two workers.  It counts
// migrations (through a function the optimiser may not inline or merge)
// without asserting that any happen: that is the scheduler's choice.
#include <cppunit/extensions/HelperMacros.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <evchan/evchan.h>

#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/loopback.h"
#include "support/reclaim_on_exit.h"

namespace {

using namespace std::chrono_literals;
using evchan::Duration;
using evchan::EventChannel;
using evchan::TaskHandle;
using evchan::TaskId;
using evchan::TaskLocal;
using evchan::test::Clock;
namespace this_task = evchan::this_task;

constexpr Duration kPatience = 10s;
constexpr int kSuspensions = 200;

std::unique_ptr<EventChannel> makeChannel(int initialThreads) {
  EventChannel::Options options;
  options.initialThreads = initialThreads;
  return EventChannel::create(options);
}

bool eventually(const std::function<bool()>& condition, Duration patience = kPatience) {
  const Clock::time_point deadline = Clock::now() + patience;
  while (!condition()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

void joinWithin(TaskHandle& task, Duration patience = kPatience) {
  CPPUNIT_ASSERT_MESSAGE("task " + std::to_string(task.id()) + " did not end in time",
                         eventually([&] { return task.done(); }, patience));
  task.join();
}

struct Payload {
  TaskId owner = 0;
  std::uint64_t counter = 0;
};

/// What one task saw, checked on the test thread after the join.
struct Record {
  TaskId idAtStart = 0;
  int suspensions = 0;
  int migrations = 0;
  int notInTask = 0;      ///< inTask() false inside the task
  int idChanged = 0;      ///< this_task::id() differed from the first reading
  int localMoved = 0;     ///< TaskLocal::get() returned another object
  int localCorrupt = 0;   ///< the TaskLocal's contents changed behind the task's back
  int stringCorrupt = 0;  ///< a second TaskLocal (non-trivial type) changed
};

/// The checks after every resume; `i` suspensions so far.
void checkAfterResume(Record& record, TaskLocal<Payload>& payload, TaskLocal<std::string>& name, Payload* address,
                      const std::string& expectedName, std::uint64_t i) {
  if (!evchan::inTask()) ++record.notInTask;
  if (this_task::id() != record.idAtStart) ++record.idChanged;
  if (&payload.get() != address) ++record.localMoved;
  if (payload->owner != record.idAtStart || payload->counter != i) ++record.localCorrupt;
  if (*name != expectedName) ++record.stringCorrupt;
}

void assertIntact(const std::vector<Record>& records, const std::vector<TaskHandle>& tasks, int expectedSuspensions) {
  for (std::size_t t = 0; t < records.size(); ++t) {
    const Record& r = records[t];
    const std::string which = "task " + std::to_string(t) + ": ";
    CPPUNIT_ASSERT_MESSAGE(which + "id 0 inside a task", r.idAtStart != 0);
    CPPUNIT_ASSERT_EQUAL_MESSAGE(which + "this_task::id() is not the handle's id", tasks[t].id(), r.idAtStart);
    CPPUNIT_ASSERT_EQUAL_MESSAGE(which + "suspensions", expectedSuspensions, r.suspensions);
    CPPUNIT_ASSERT_EQUAL_MESSAGE(which + "inTask() false after a resume", 0, r.notInTask);
    CPPUNIT_ASSERT_EQUAL_MESSAGE(which + "this_task::id() changed", 0, r.idChanged);
    CPPUNIT_ASSERT_EQUAL_MESSAGE(which + "TaskLocal::get() returned another object", 0, r.localMoved);
    CPPUNIT_ASSERT_EQUAL_MESSAGE(which + "TaskLocal contents changed", 0, r.localCorrupt);
    CPPUNIT_ASSERT_EQUAL_MESSAGE(which + "TaskLocal<std::string> changed", 0, r.stringCorrupt);
    CPPUNIT_ASSERT(r.migrations >= 0 && r.migrations <= r.suspensions);
  }
  // For the log only: how often tasks moved (not asserted).
  int migrations = 0;
  for (const Record& r : records) migrations += r.migrations;
  std::fprintf(stderr, "note: %d migrations in %d suspensions\n", migrations,
               expectedSuspensions * static_cast<int>(records.size()));
}

}  // namespace

class TaskMigrationLtoTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(TaskMigrationLtoTest);
  CPPUNIT_TEST(testAccessorsSurviveYieldAndSleep);
  CPPUNIT_TEST(testAccessorsSurviveSocketWaits);
  CPPUNIT_TEST(testWorkerIsNotInATaskBetweenTasks);
  CPPUNIT_TEST_SUITE_END();

 public:
  // Eight tasks on two workers, 200 suspensions each (yield, and every
  // fourth a short sleep): both workers stay busy, so resuming on the other
  // one is common, though not required.
  void testAccessorsSurviveYieldAndSleep() {
    constexpr int kTasks = 8;
    TaskLocal<Payload> payload;
    TaskLocal<std::string> name;
    std::vector<Record> records(kTasks);
    std::unique_ptr<EventChannel> channel = makeChannel(2);
    std::vector<TaskHandle> tasks;
    for (int t = 0; t < kTasks; ++t) {
      tasks.push_back(channel->spawn([&, t] {
        Record& record = records[t];
        record.idAtStart = this_task::id();
        const std::string expectedName = "task-" + std::to_string(t) + std::string(40, 'x');  // heap-allocated
        *name = expectedName;
        payload->owner = record.idAtStart;
        Payload* const address = &payload.get();
        for (int i = 0; i < kSuspensions; ++i) {
          checkAfterResume(record, payload, name, address, expectedName, static_cast<std::uint64_t>(i));
          const std::thread::id before = evchan::currentThreadId();
          if (i % 4 == 0) {
            this_task::sleepFor(200us);
          } else {
            this_task::yield();
          }
          ++record.suspensions;
          if (evchan::currentThreadId() != before) ++record.migrations;
          ++payload->counter;
          checkAfterResume(record, payload, name, address, expectedName, static_cast<std::uint64_t>(i) + 1);
        }
      }));
    }
    for (TaskHandle& task : tasks) joinWithin(task);
    channel.reset();
    assertIntact(records, tasks, kSuspensions);
    CPPUNIT_ASSERT(!evchan::inTask());
    CPPUNIT_ASSERT_EQUAL(TaskId(0), this_task::id());
  }

  // Suspensions in socket waits: pairs of tasks play ping-pong over
  // loopback connections, checking the accessors after every wait.
  void testAccessorsSurviveSocketWaits() {
    constexpr int kPairs = 3;
    TaskLocal<Payload> payload;
    TaskLocal<std::string> name;
    std::vector<evchan::test::ConnectedPair> pairs;
    for (int p = 0; p < kPairs; ++p) {
      pairs.push_back(evchan::test::connectPair());
      pairs.back().client.setTimeout(5s);
      pairs.back().server.setTimeout(5s);
    }
    std::vector<Record> records(2 * kPairs);
    std::unique_ptr<EventChannel> channel = makeChannel(2);
    std::vector<TaskHandle> tasks;
    for (int t = 0; t < 2 * kPairs; ++t) {
      const bool pinger = t % 2 == 0;
      evchan::TcpSocket& socket = pinger ? pairs[t / 2].client : pairs[t / 2].server;
      tasks.push_back(channel->spawn([&, t, pinger] {
        Record& record = records[t];
        record.idAtStart = this_task::id();
        const std::string expectedName = "socket-task-" + std::to_string(t) + std::string(40, 'y');
        *name = expectedName;
        payload->owner = record.idAtStart;
        Payload* const address = &payload.get();
        char byte = static_cast<char>(t);
        for (int i = 0; i < kSuspensions; ++i) {
          checkAfterResume(record, payload, name, address, expectedName, static_cast<std::uint64_t>(i));
          const std::thread::id before = evchan::currentThreadId();
          // The pinger writes then waits for the answer; the ponger waits first.
          if (pinger) socket.writeAll(&byte, 1);
          socket.readExactly(&byte, 1);
          if (!pinger) socket.writeAll(&byte, 1);
          ++record.suspensions;
          if (evchan::currentThreadId() != before) ++record.migrations;
          ++payload->counter;
          checkAfterResume(record, payload, name, address, expectedName, static_cast<std::uint64_t>(i) + 1);
        }
      }));
    }
    for (TaskHandle& task : tasks) joinWithin(task);
    channel.reset();
    assertIntact(records, tasks, kSuspensions);
  }

  // After tasks have run (and migrated) on a worker, plain work on that
  // worker is not in a task: the running-task slot was cleared on the
  // thread each task left, not on the one it started on.
  void testWorkerIsNotInATaskBetweenTasks() {
    constexpr int kTasks = 4;
    std::unique_ptr<EventChannel> channel = makeChannel(2);
    std::vector<TaskHandle> tasks;
    for (int t = 0; t < kTasks; ++t) {
      tasks.push_back(channel->spawn([] {
        for (int i = 0; i < 50; ++i) this_task::yield();
      }));
    }
    for (TaskHandle& task : tasks) joinWithin(task);
    constexpr int kDispatches = 16;
    std::atomic<int> inTaskSeen{0}, nonZeroIds{0}, ran{0};
    std::vector<std::unique_ptr<evchan::DispatchEvent>> dispatches;
    std::vector<std::unique_ptr<evchan::NotifyEvent>> done;
    evchan::test::ReclaimOnExit reclaim(*channel);
    for (int d = 0; d < kDispatches; ++d) {
      done.push_back(std::make_unique<evchan::NotifyEvent>());
      dispatches.push_back(std::make_unique<evchan::DispatchEvent>([&] {
        if (evchan::inTask()) ++inTaskSeen;
        if (this_task::id() != 0) ++nonZeroIds;
        ++ran;
      }));
      evchan::NotifyEvent* signal = done.back().get();
      EventChannel* ch = channel.get();
      dispatches.back()->setCallback([ch, signal](evchan::Event&) { ch->post(*signal); });
      channel->post(*dispatches.back());
    }
    for (auto& event : done) CPPUNIT_ASSERT(event->wait(kPatience));
    CPPUNIT_ASSERT_EQUAL(kDispatches, ran.load());
    CPPUNIT_ASSERT_EQUAL(0, inTaskSeen.load());
    CPPUNIT_ASSERT_EQUAL(0, nonZeroIds.load());
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(TaskMigrationLtoTest);
