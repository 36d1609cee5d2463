// SPDX-License-Identifier: Apache-2.0
// Tests of the context switch under tasks, on both implementations.
#include <cppunit/extensions/HelperMacros.h>

#include <evchan/thread_identity.h>

#include <atomic>
#include <future>
#include <string>
#include <cstring>
#include <thread>

#include "support/leak_checked_fixture.h"
#include "support/named_suite.h"
#include "task/context/fiber_context.h"
#include "posix/stack_pool.h"

namespace {

using evchan::detail::ContextKind;
using evchan::detail::FiberContext;
using evchan::detail::Stack;
using evchan::detail::StackPool;


// A fiber that counts and switches back to whoever resumed it.
struct Counter {
  FiberContext* caller = nullptr;
  std::unique_ptr<FiberContext> fiber;
  int rounds = 0;
  std::atomic<int> count{0};
  bool finished = false;
  std::thread::id firstThread, lastThread;

  static void run(void* argument) {
    auto* self = static_cast<Counter*>(argument);
    self->firstThread = evchan::currentThreadId();
    for (int i = 0; i < self->rounds; ++i) {
      ++self->count;
      self->fiber->switchTo(*self->caller);
    }
    self->lastThread = evchan::currentThreadId();
    self->finished = true;
    self->fiber->exitTo(*self->caller);
  }
};

// Uses about `bytes` of stack through recursion the optimiser cannot flatten.
[[gnu::noinline]] int deepSum(int depth, volatile char* previous) {
  volatile char frame[512];
  frame[0] = static_cast<char>(depth);
  if (previous != nullptr) frame[1] = previous[0];
  return depth == 0 ? frame[0] : frame[0] + deepSum(depth - 1, frame);
}

struct DeepCall {
  FiberContext* caller = nullptr;
  std::unique_ptr<FiberContext> fiber;
  int depth = 0;
  int result = -1;
  static void run(void* argument) {
    auto* self = static_cast<DeepCall*>(argument);
    self->result = deepSum(self->depth, nullptr);
    self->fiber->exitTo(*self->caller);
  }
};

template <ContextKind K>
class FiberContextTest : public evchan::test::LeakCheckedFixture {
  static std::string suiteName() {
    return std::string("FiberContextTest<") + evchan::detail::contextKindName(K) + ">";
  }

  EVCHAN_TEST_SUITE_NAMED(FiberContextTest, suiteName());
  CPPUNIT_TEST(testSwitchesBackAndForth);
  CPPUNIT_TEST(testFiberMigratesBetweenThreads);
  CPPUNIT_TEST(testDeepRecursionFitsTheStack);
  CPPUNIT_TEST(testManyFibersInterleave);
  CPPUNIT_TEST(testTooSmallStackIsRefused);
  CPPUNIT_TEST_SUITE_END();

 public:
  void testSwitchesBackAndForth() {
    StackPool pool(64 * 1024);
    Stack stack;
    CPPUNIT_ASSERT(!pool.acquire(stack));
    std::unique_ptr<FiberContext> self = evchan::detail::makeThreadContext(K);
    Counter counter;
    counter.caller = self.get();
    counter.rounds = 1000;
    counter.fiber = evchan::detail::makeFiberContext(K, stack.usable, &Counter::run, &counter);
    CPPUNIT_ASSERT(counter.fiber);
    for (int i = 1; i <= counter.rounds; ++i) {
      self->switchTo(*counter.fiber);
      CPPUNIT_ASSERT_EQUAL(i, counter.count.load());
    }
    CPPUNIT_ASSERT(!counter.finished);
    self->switchTo(*counter.fiber);
    CPPUNIT_ASSERT(counter.finished);
    counter.fiber.reset();
    pool.release(stack);
  }

  void testFiberMigratesBetweenThreads() {
    StackPool pool(64 * 1024);
    Stack stack;
    CPPUNIT_ASSERT(!pool.acquire(stack));
    Counter counter;
    counter.rounds = 1;
    counter.fiber = evchan::detail::makeFiberContext(K, stack.usable, &Counter::run, &counter);
    // Started on one thread, finished on another: its stack travels with it.
    // The first thread stays alive meanwhile, so the two ids differ.
    std::promise<void> secondDone;
    std::promise<void> firstBack;  // the hand-over point between the threads
    std::thread first([&] {
      std::unique_ptr<FiberContext> self = evchan::detail::makeThreadContext(K);
      counter.caller = self.get();
      self->switchTo(*counter.fiber);
      firstBack.set_value();
      secondDone.get_future().wait();
    });
    firstBack.get_future().wait();
    std::thread second([&] {
      std::unique_ptr<FiberContext> self = evchan::detail::makeThreadContext(K);
      counter.caller = self.get();
      self->switchTo(*counter.fiber);
    });
    const std::thread::id firstId = first.get_id();
    const std::thread::id secondId = second.get_id();
    second.join();
    secondDone.set_value();
    first.join();
    CPPUNIT_ASSERT(counter.firstThread == firstId);
    CPPUNIT_ASSERT(counter.finished);
    CPPUNIT_ASSERT_EQUAL(1, counter.count.load());
    CPPUNIT_ASSERT(counter.firstThread != counter.lastThread);
    CPPUNIT_ASSERT(counter.lastThread == secondId);
    counter.fiber.reset();
    pool.release(stack);
  }

  void testDeepRecursionFitsTheStack() {
    StackPool pool(256 * 1024);
    Stack stack;
    CPPUNIT_ASSERT(!pool.acquire(stack));
    std::unique_ptr<FiberContext> self = evchan::detail::makeThreadContext(K);
    DeepCall call;
    call.caller = self.get();
    call.depth = 200;  // ~100-150 KiB of frames (more under sanitizers)
    call.fiber = evchan::detail::makeFiberContext(K, stack.usable, &DeepCall::run, &call);
    self->switchTo(*call.fiber);
    int expected = 0;
    for (int d = 0; d <= call.depth; ++d) expected += static_cast<char>(d);
    CPPUNIT_ASSERT_EQUAL(expected, call.result);
    call.fiber.reset();
    pool.release(stack);
  }

  void testManyFibersInterleave() {
    constexpr int kFibers = 50;
    StackPool pool(32 * 1024);
    std::unique_ptr<FiberContext> self = evchan::detail::makeThreadContext(K);
    std::vector<Stack> stacks(kFibers);
    std::vector<Counter> counters(kFibers);
    for (int i = 0; i < kFibers; ++i) {
      CPPUNIT_ASSERT(!pool.acquire(stacks[i]));
      counters[i].caller = self.get();
      counters[i].rounds = 10;
      counters[i].fiber = evchan::detail::makeFiberContext(K, stacks[i].usable, &Counter::run, &counters[i]);
    }
    for (int round = 0; round <= 10; ++round) {
      for (Counter& counter : counters) self->switchTo(*counter.fiber);
    }
    for (int i = 0; i < kFibers; ++i) {
      CPPUNIT_ASSERT(counters[i].finished);
      CPPUNIT_ASSERT_EQUAL(10, counters[i].count.load());
      counters[i].fiber.reset();
      pool.release(stacks[i]);
    }
  }

  void testTooSmallStackIsRefused() {
    char tiny[256];
    CPPUNIT_ASSERT(!evchan::detail::makeFiberContext(K, {tiny, sizeof tiny}, &Counter::run, nullptr));
    CPPUNIT_ASSERT(!evchan::detail::makeFiberContext(K, {nullptr, 65536}, &Counter::run, nullptr));
  }
};

using BoostFiberContextTest = FiberContextTest<ContextKind::BoostContext>;
using UcontextFiberContextTest = FiberContextTest<ContextKind::Ucontext>;
CPPUNIT_TEST_SUITE_REGISTRATION(BoostFiberContextTest);
CPPUNIT_TEST_SUITE_REGISTRATION(UcontextFiberContextTest);

}  // namespace
