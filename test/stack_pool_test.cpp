// SPDX-License-Identifier: Apache-2.0
// Tests of task stacks: guard pages, canaries, reuse, overflow reports.
#include <cppunit/extensions/HelperMacros.h>

#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define EVCHAN_TEST_MEMCHECK 1
#endif
#endif

#include "support/leak_checked_fixture.h"
#include "support/skip.h"
#include "task/context/fiber_context.h"
#include "posix/stack_overflow.h"
#include "posix/stack_pool.h"

extern char** environ;

namespace {

using evchan::detail::ContextKind;
using evchan::detail::FiberContext;
using evchan::detail::Stack;
using evchan::detail::StackChunk;
using evchan::detail::StackPool;

struct ChildResult {
  int status = 0;
  std::string stderrText;
};

// Runs `body` in a forked child with its stderr captured; the parent waits.
// The body makes system calls only, never malloc: a lock another thread of
// this process (the case watchdog, a sanitizer's) held at the fork stays
// held in the child.
template <class Body>
ChildResult runInChild(Body body) {
  int pipeFds[2];
  CPPUNIT_ASSERT(pipe(pipeFds) == 0);
  const pid_t child = fork();
  CPPUNIT_ASSERT(child >= 0);
  if (child == 0) {
    dup2(pipeFds[1], STDERR_FILENO);
    close(pipeFds[0]);
    close(pipeFds[1]);
    body();
    _exit(0);
  }
  close(pipeFds[1]);
  ChildResult result;
  char buffer[512];
  ssize_t n;
  while ((n = read(pipeFds[0], buffer, sizeof buffer)) > 0) result.stderrText.append(buffer, n);
  close(pipeFds[0]);
  waitpid(child, &result.status, 0);
  return result;
}

// Recurses until the stack runs out (the limit only keeps the compiler
// from proving the recursion infinite).
volatile int recursionLimit = 1 << 30;
[[gnu::noinline]] int recurseDeep(int depth) {
  volatile char frame[1024];
  frame[0] = static_cast<char>(depth);
  if (depth >= recursionLimit) return frame[0];
  return recurseDeep(depth + 1) + frame[0];
}

struct Overflowing {
  FiberContext* caller = nullptr;
  std::unique_ptr<FiberContext> fiber;
  static void run(void*) { recurseDeep(0); }
};

// Whether the page holding `address` is resident; -1 when it is not mapped.
int resident(const void* address) {
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  void* start = reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(address) / page * page);
  unsigned char state = 0;
  if (mincore(start, page, &state) != 0) return -1;
  return state & 1;
}

// The top page of `stack`, where a fiber starts (and so a used stack has a page).
volatile char* topByte(const Stack& stack) {
  return static_cast<volatile char*>(stack.usable.base) + stack.usable.size - 1;
}

// Whether this kernel installs guard markers (MADV_GUARD_INSTALL, 102 in
// the kernel's ABI) on a fresh mapping now, asked of the kernel here
// rather than of the pool (mlockall makes it refuse: EINVAL on a locked
// mapping).
bool kernelHasGuardMarkers() {
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  void* probe = mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CPPUNIT_ASSERT(probe != MAP_FAILED);
  const bool installed = madvise(probe, page, 102) == 0;
  munmap(probe, 2 * page);
  return installed;
}

// The process's mappings now (lines of /proc/self/maps).
std::size_t mappingCount() {
  std::ifstream maps("/proc/self/maps");
  std::size_t lines = 0;
  for (std::string line; std::getline(maps, line);) ++lines;
  return lines;
}

std::size_t maxMapCount() {
  std::ifstream file("/proc/sys/vm/max_map_count");
  std::size_t count = 0;
  file >> count;
  return count;
}

// Set in a copy of this program that runSelf() started to run one case's
// child part (a fresh process: nothing probed, no lock held by a thread
// of the parent, free to lock its memory or spend its mappings).
constexpr const char* kChildVariable = "EVCHAN_STACK_POOL_TEST_CHILD";

bool inSelfChild() { return std::getenv(kChildVariable) != nullptr; }

// Runs this program again on `testCase` alone, with kChildVariable set;
// its exit status and output (stdout and stderr).
ChildResult runSelf(const std::string& testCase) {
  std::vector<std::string> environment{std::string(kChildVariable) + "=1"};
  for (char** variable = environ; *variable != nullptr; ++variable) environment.emplace_back(*variable);
  std::vector<char*> envp;
  for (std::string& variable : environment) envp.push_back(variable.data());
  envp.push_back(nullptr);
  int pipeFds[2];
  CPPUNIT_ASSERT(pipe(pipeFds) == 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipeFds[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, pipeFds[1], STDERR_FILENO);
  posix_spawn_file_actions_addclose(&actions, pipeFds[0]);
  posix_spawn_file_actions_addclose(&actions, pipeFds[1]);
  std::string self = "/proc/self/exe";
  char* argv[] = {self.data(), const_cast<char*>(testCase.c_str()), nullptr};
  pid_t pid = -1;
  const int spawned = posix_spawn(&pid, self.c_str(), &actions, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  close(pipeFds[1]);
  ChildResult result;
  if (spawned != 0) {
    close(pipeFds[0]);
    CPPUNIT_FAIL(std::string("posix_spawn: ") + std::strerror(spawned));
  }
  char buffer[4096];
  ssize_t n;
  while ((n = read(pipeFds[0], buffer, sizeof buffer)) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) result.stderrText.append(buffer, static_cast<std::size_t>(n));
  }
  close(pipeFds[0]);
  while (waitpid(pid, &result.status, 0) < 0 && errno == EINTR) {
  }
  return result;
}

// The child's case passed (exit 0) or skipped (77, passed on as a skip).
void assertSelfChildPassed(const std::string& testCase) {
  const ChildResult result = runSelf(testCase);
  if (WIFEXITED(result.status) && WEXITSTATUS(result.status) == 77) EVCHAN_SKIP("child: " + result.stderrText);
  CPPUNIT_ASSERT_MESSAGE("child of " + testCase + " (status " + std::to_string(result.status) + "):\n" +
                             result.stderrText,
                         WIFEXITED(result.status) && WEXITSTATUS(result.status) == 0);
}

// Whether a new mapping that cannot merge with a neighbour can still be
// made (two pages of different protections: two mappings).
bool roomForTwoMappings() {
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  void* probe = mmap(nullptr, 3 * page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (probe == MAP_FAILED) return false;
  const bool split = mprotect(static_cast<char*>(probe) + page, page, PROT_READ | PROT_WRITE) == 0;
  munmap(probe, 3 * page);
  return split;
}

// Whether this kernel populates pages ahead (MADV_POPULATE_WRITE, Linux
// 5.14 on), what the pool's prefaulting needs.
bool kernelPopulatesPages() {
#ifdef __linux__
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  void* probe = mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (probe == MAP_FAILED) return false;
  const bool populated = madvise(probe, page, 23 /* MADV_POPULATE_WRITE */) == 0 && resident(probe) == 1;
  munmap(probe, page);
  return populated;
#else
  return false;
#endif
}

// Skips the case when `stack` came unguarded (EVCHAN_GUARDED_STACKS set
// a budget that is spent), giving it back first.
void skipIfUnguarded(StackPool& pool, Stack& stack) {
  if (stack.guarded) return;
  pool.release(stack);
  EVCHAN_SKIP("EVCHAN_GUARDED_STACKS: the stack is not guarded");
}

}  // namespace

class StackPoolTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(StackPoolTest);
  CPPUNIT_TEST(testStackIsUsableAndGuarded);
  CPPUNIT_TEST(testReleasedStacksAreReused);
  CPPUNIT_TEST(testThreadKeepsItsStacksAndGivesThemBackAtExit);
  CPPUNIT_TEST(testGuardPageFaults);
  CPPUNIT_TEST(testGuardReserveFaultsAtItsBottom);
  CPPUNIT_TEST(testOverflowIsReportedAsTaskStackOverflow);
  CPPUNIT_TEST(testCanaryInsteadOfGuard);
  CPPUNIT_TEST(testGuardBudgetFollowsTheKernel);
  CPPUNIT_TEST(testGuardMarkersCostNoMapping);
  CPPUNIT_TEST(testSizeIsRoundedToPages);
  CPPUNIT_TEST(testStacksAreCarvedFromOneReservation);
  CPPUNIT_TEST(testStacksPastTheCacheGoBackToTheKernel);
  CPPUNIT_TEST(testLaterChunksComeWithTheirStackTopsResident);
  CPPUNIT_TEST(testEmptiedChunksAreUnmappedAroundOneInUse);
  CPPUNIT_TEST(testGuardedStacksAreCarvedAndPurgedToo);
  CPPUNIT_TEST(testPurgeRacesAcquireAndReleaseOnThreads);
  CPPUNIT_TEST(testOutOfMappingsStacksAreCanaried);
  CPPUNIT_TEST(testMarkersRefusedLaterKeepTheMappingBudget);
  CPPUNIT_TEST(testGuardReserveIsUnaddressableUnderValgrind);
  CPPUNIT_TEST_SUITE_END();

 public:
  void testStackIsUsableAndGuarded() {
    StackPool pool(64 * 1024);
    Stack stack;
    CPPUNIT_ASSERT(!pool.acquire(stack));
    skipIfUnguarded(pool, stack);
    CPPUNIT_ASSERT_EQUAL(std::size_t(64 * 1024), stack.usable.size);
    // The guard reserve: 64 KiB below the stack (one mapping however large).
    CPPUNIT_ASSERT_EQUAL(std::size_t(64 * 1024), std::size_t(static_cast<char*>(stack.usable.base) -
                                                             static_cast<char*>(stack.mapping)));
    std::memset(stack.usable.base, 0xab, stack.usable.size);  // every byte writable
    CPPUNIT_ASSERT(StackPool::canaryIntact(stack));
    pool.release(stack);
  }

  void testReleasedStacksAreReused() {
    StackPool pool(32 * 1024);
    Stack first;
    CPPUNIT_ASSERT(!pool.acquire(first));
    void* mapping = first.mapping;
    const std::size_t guardsBefore = StackPool::guardedStacks();
    pool.release(first);
    CPPUNIT_ASSERT(first.mapping == nullptr);
    Stack second;
    CPPUNIT_ASSERT(!pool.acquire(second));
    CPPUNIT_ASSERT_EQUAL(mapping, second.mapping);
    CPPUNIT_ASSERT_EQUAL(guardsBefore, StackPool::guardedStacks());
    pool.release(second);
  }

  // acquireOnThread()/releaseOnThread(): a thread reuses the stacks it
  // released itself, newest first, without the pool seeing them; those it
  // holds past kThreadStacks, or still holds when it exits, go back to
  // the pool (which then hands them out again before carving new ones).
  void testThreadKeepsItsStacksAndGivesThemBackAtExit() {
    StackPool pool(32 * 1024);
    std::vector<void*> keptByThread;
    void* pastTheThreadsShare = nullptr;
    bool reusedOwn = false;
    bool acquired = true;  // no assertion on the thread: a failure there would terminate
    std::thread([&] {
      std::vector<Stack> stacks(StackPool::kThreadStacks + 1);
      for (Stack& stack : stacks) acquired = !pool.acquireOnThread(stack) && acquired;
      for (Stack& stack : stacks) {
        void* mapping = stack.mapping;
        pool.releaseOnThread(stack);
        if (keptByThread.size() < StackPool::kThreadStacks) keptByThread.push_back(mapping);
        else pastTheThreadsShare = mapping;
      }
      Stack again;
      acquired = !pool.acquireOnThread(again) && acquired;
      reusedOwn = again.mapping == keptByThread.back();
      pool.releaseOnThread(again);
    }).join();
    CPPUNIT_ASSERT(acquired);
    CPPUNIT_ASSERT_MESSAGE("the thread did not reuse the stack it released last", reusedOwn);
    // The pool now holds all of them: the one past the thread's share
    // first released, then the thread's own at its exit.
    std::vector<Stack> fromPool(StackPool::kThreadStacks + 1);
    std::vector<void*> got;
    for (Stack& stack : fromPool) {
      CPPUNIT_ASSERT(!pool.acquire(stack));
      got.push_back(stack.mapping);
    }
    for (Stack& stack : fromPool) pool.release(stack);
    std::vector<void*> expected = keptByThread;
    expected.push_back(pastTheThreadsShare);
    std::sort(expected.begin(), expected.end());
    std::sort(got.begin(), got.end());
    CPPUNIT_ASSERT_MESSAGE("the exiting thread's stacks did not go back to the pool", expected == got);
  }

  void testGuardPageFaults() {
    StackPool pool(32 * 1024);
    Stack stack;
    CPPUNIT_ASSERT(!pool.acquire(stack));
    skipIfUnguarded(pool, stack);
    const ChildResult result = runInChild([&] {
      std::signal(SIGSEGV, SIG_DFL);  // no sanitizer's handler: the plain fault
      static_cast<volatile char*>(stack.usable.base)[-1] = 1;  // one byte below: the guard page
      _exit(4);
    });
    pool.release(stack);
    CPPUNIT_ASSERT_MESSAGE(result.stderrText, WIFSIGNALED(result.status));
    CPPUNIT_ASSERT_EQUAL(SIGSEGV, WTERMSIG(result.status));
  }

  // The lowest byte of the reserve, 64 KiB below the stack: where a large
  // frame that skips the stack's last pages writes first.
  void testGuardReserveFaultsAtItsBottom() {
    StackPool pool(32 * 1024);
    Stack stack;
    CPPUNIT_ASSERT(!pool.acquire(stack));
    skipIfUnguarded(pool, stack);
    const ChildResult result = runInChild([&] {
      std::signal(SIGSEGV, SIG_DFL);
      static_cast<volatile char*>(stack.usable.base)[-64 * 1024] = 1;
      _exit(4);
    });
    pool.release(stack);
    CPPUNIT_ASSERT_MESSAGE(result.stderrText, WIFSIGNALED(result.status));
    CPPUNIT_ASSERT_EQUAL(SIGSEGV, WTERMSIG(result.status));
  }

  // The fiber is made here; the child only switches to it.
  void testOverflowIsReportedAsTaskStackOverflow() {
    evchan::detail::prepareStackOverflowReporting();
    for (ContextKind kind : {ContextKind::BoostContext, ContextKind::Ucontext}) {
      StackPool pool(64 * 1024);
      Stack stack;
      CPPUNIT_ASSERT(!pool.acquire(stack));
      skipIfUnguarded(pool, stack);
      std::unique_ptr<FiberContext> self = evchan::detail::makeThreadContext(kind);
      Overflowing task;
      task.caller = self.get();
      task.fiber = evchan::detail::makeFiberContext(kind, stack.usable, &Overflowing::run, &task);
      const ChildResult result = runInChild([&] {
        evchan::detail::setRunningStack(&stack, 42);
        self->switchTo(*task.fiber);
        _exit(5);  // never: the fiber overflows
      });
      task.fiber.reset();
      pool.release(stack);
      const std::string context = evchan::detail::contextKindName(kind) + std::string(": ") + result.stderrText;
      CPPUNIT_ASSERT_MESSAGE(context, WIFSIGNALED(result.status));
      CPPUNIT_ASSERT_EQUAL_MESSAGE(context, SIGABRT, WTERMSIG(result.status));
      CPPUNIT_ASSERT_MESSAGE(context, result.stderrText.find("task stack overflow in task 42") != std::string::npos);
    }
  }

  void testCanaryInsteadOfGuard() {
    StackPool pool(32 * 1024, 4, /*guardPages=*/false);
    const std::size_t guardsBefore = StackPool::guardedStacks();
    Stack stack;
    CPPUNIT_ASSERT(!pool.acquire(stack));
    CPPUNIT_ASSERT(!stack.guarded);
    CPPUNIT_ASSERT_EQUAL(guardsBefore, StackPool::guardedStacks());
    CPPUNIT_ASSERT(StackPool::canaryIntact(stack));
    // What a blown stack does to its lowest word.
    std::memset(stack.usable.base, 0xa5, 16);
    CPPUNIT_ASSERT(!StackPool::canaryIntact(stack));
    pool.release(stack);  // a corrupted stack is not reused
    CPPUNIT_ASSERT(stack.mapping == nullptr);
    Stack fresh;
    CPPUNIT_ASSERT(!pool.acquire(fresh));
    CPPUNIT_ASSERT(StackPool::canaryIntact(fresh));
    pool.release(fresh);
  }

  void testGuardBudgetFollowsTheKernel() {
    const std::size_t count = maxMapCount();
    CPPUNIT_ASSERT(count > 0);
    CPPUNIT_ASSERT_EQUAL(kernelHasGuardMarkers(), StackPool::guardsAreMarkers());
    if (std::getenv("EVCHAN_GUARDED_STACKS") != nullptr) return;  // it sets the budget
    if (StackPool::guardsAreMarkers()) {
      // Markers cost no mapping: every stack guarded.
      CPPUNIT_ASSERT_EQUAL(StackPool::kUnlimitedGuards, StackPool::guardBudget());
    } else {
      // Two mappings a guarded stack: 3/8 of the count leaves a quarter to
      // the rest of the process.
      CPPUNIT_ASSERT_EQUAL(count / 8 * 3, StackPool::guardBudget());
    }
  }

  // With guard markers a guarded chunk is one mapping, not two a stack,
  // and its reserves fault all the same, before and after a purge.
  void testGuardMarkersCostNoMapping() {
    if (!kernelHasGuardMarkers()) EVCHAN_SKIP("the kernel has no guard markers (MADV_GUARD_INSTALL, Linux 6.13)");
    constexpr std::size_t kChunk = 64;  // 64 KiB stacks and reserves: 64 to a chunk
    StackPool pool(64 * 1024, 0, /*guardPages=*/true, /*purgeBatch=*/kChunk - 1);
    const std::size_t mappingsBefore = mappingCount();
    std::vector<Stack> stacks(kChunk);
    for (Stack& stack : stacks) {
      CPPUNIT_ASSERT(!pool.acquire(stack));
      if (!stack.guarded) {
        for (Stack& other : stacks) pool.release(other);
        return;  // EVCHAN_GUARDED_STACKS spent the budget: nothing to check here
      }
      *topByte(stack) = 1;
    }
    CPPUNIT_ASSERT(stacks.back().chunk == stacks.front().chunk);
    // One more mapping, give or take a few the allocators made (ASan's
    // more); the PROT_NONE way would have made 2 a stack.
    const std::size_t mappingsAfter = mappingCount();
    CPPUNIT_ASSERT_MESSAGE(std::to_string(mappingsBefore) + " -> " + std::to_string(mappingsAfter),
                           mappingsAfter < mappingsBefore + kChunk / 4);
    auto reserveFaults = [](const Stack& stack) {
      const ChildResult result = runInChild([&] {
        std::signal(SIGSEGV, SIG_DFL);
        static_cast<volatile char*>(stack.usable.base)[-1] = 1;  // the reserve's top byte
        _exit(4);
      });
      return WIFSIGNALED(result.status) && WTERMSIG(result.status) == SIGSEGV;
    };
    CPPUNIT_ASSERT(reserveFaults(stacks[1]));
    // Its bottom too (a 64 KiB frame that skipped the stack's pages).
    const ChildResult bottom = runInChild([&] {
      std::signal(SIGSEGV, SIG_DFL);
      static_cast<volatile char*>(stacks[1].mapping)[0] = 1;
      _exit(4);
    });
    CPPUNIT_ASSERT(WIFSIGNALED(bottom.status) && WTERMSIG(bottom.status) == SIGSEGV);
    // All but one released: one batch, purged (the chunk stays mapped).
    Stack kept = stacks[0];
    for (std::size_t i = 1; i < kChunk; ++i) {
      Stack copy = stacks[i];
      pool.release(copy);
    }
    CPPUNIT_ASSERT_EQUAL(0, resident(const_cast<char*>(topByte(stacks[1]))));
    CPPUNIT_ASSERT(reserveFaults(stacks[1]));
    CPPUNIT_ASSERT_EQUAL(1, int(*topByte(kept)));
    pool.release(kept);
  }

  // Under valgrind (CI runs this case there), memcheck knows the guard
  // reserve as unaddressable, whether a marker or a PROT_NONE mapping
  // guards it: otherwise its leak check reads every reserve page at exit,
  // each read a fault.  VALGRIND_GET_VBITS answers 3 for a range with an
  // unaddressable byte, 1 for an addressable one, and reports nothing.
  void testGuardReserveIsUnaddressableUnderValgrind() {
#ifdef EVCHAN_TEST_MEMCHECK
    if (!RUNNING_ON_VALGRIND) EVCHAN_SKIP("not running under valgrind");
    StackPool pool(64 * 1024);
    Stack stack;
    CPPUNIT_ASSERT(!pool.acquire(stack));
    skipIfUnguarded(pool, stack);
    unsigned char bits[64];
    char* const base = static_cast<char*>(stack.usable.base);
    const int reserveTop = VALGRIND_GET_VBITS(base - sizeof bits, bits, sizeof bits);
    const int reserveBottom = VALGRIND_GET_VBITS(stack.mapping, bits, sizeof bits);
    const int stackBottom = VALGRIND_GET_VBITS(base, bits, sizeof bits);
    pool.release(stack);
    CPPUNIT_ASSERT_EQUAL_MESSAGE("the reserve's top", 3, reserveTop);
    CPPUNIT_ASSERT_EQUAL_MESSAGE("the reserve's bottom", 3, reserveBottom);
    CPPUNIT_ASSERT_EQUAL_MESSAGE("the stack's lowest bytes", 1, stackBottom);
#else
    EVCHAN_SKIP("built without <valgrind/memcheck.h>");
#endif
  }

  void testSizeIsRoundedToPages() {
    const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    CPPUNIT_ASSERT_EQUAL(std::size_t(16384), StackPool(1).stackSize());
    CPPUNIT_ASSERT_EQUAL((20000 + page - 1) / page * page, StackPool(20000).stackSize());
  }

  // Neighbouring stacks of one chunk: slot after slot, one mapping.
  void testStacksAreCarvedFromOneReservation() {
    StackPool pool(64 * 1024, 0, /*guardPages=*/false);
    Stack stacks[8];
    for (Stack& stack : stacks) CPPUNIT_ASSERT(!pool.acquire(stack));
    for (std::size_t i = 1; i < 8; ++i) {
      CPPUNIT_ASSERT(stacks[i].chunk == stacks[0].chunk);
      const std::ptrdiff_t step = static_cast<char*>(stacks[i].mapping) - static_cast<char*>(stacks[i - 1].mapping);
      CPPUNIT_ASSERT_EQUAL(std::ptrdiff_t(64 * 1024), step < 0 ? -step : step);
    }
    for (Stack& stack : stacks) pool.release(stack);
  }

  // A pool's first chunk makes no page resident that its stacks have not
  // written; from its second chunk on (tasks spawned in bulk) every new
  // chunk comes with its stacks' top pages resident already, populated
  // together (the first write of each would otherwise fault), guarded and
  // canaried alike.
  void testLaterChunksComeWithTheirStackTopsResident() {
    if (!kernelPopulatesPages()) EVCHAN_SKIP("this kernel does not populate pages ahead (MADV_POPULATE_WRITE)");
    for (const bool guarded : {false, true}) {
      StackPool pool(64 * 1024, 0, guarded);
      std::vector<Stack> stacks;
      Stack stack;
      CPPUNIT_ASSERT(!pool.acquire(stack));
      StackChunk* const first = stack.chunk;
      stacks.push_back(stack);
      std::size_t unpopulated = 0;
      while (!pool.acquire(stack)) {
        stacks.push_back(stack);
        if (stack.chunk != first) break;
        unpopulated += resident(const_cast<char*>(topByte(stack))) == 0 ? 1 : 0;
      }
      CPPUNIT_ASSERT(stacks.back().chunk != first);
      CPPUNIT_ASSERT_EQUAL(stacks.size() - 2, unpopulated);
      // The second chunk: each of its stacks resident before it is used.
      StackChunk* const second = stacks.back().chunk;
      CPPUNIT_ASSERT_EQUAL(1, resident(const_cast<char*>(topByte(stacks.back()))));
      for (int i = 0; i < 8; ++i) {
        CPPUNIT_ASSERT(!pool.acquire(stack));
        stacks.push_back(stack);
        CPPUNIT_ASSERT(stack.chunk == second);
        CPPUNIT_ASSERT_EQUAL(1, resident(const_cast<char*>(topByte(stack))));
        // Only its top page: the canary's, at the bottom, stays untouched.
        CPPUNIT_ASSERT(resident(stack.usable.base) != 1);
        CPPUNIT_ASSERT(StackPool::canaryIntact(stack));
      }
      for (Stack& used : stacks) pool.release(used);
    }
  }

  // Without a cache, every purge batch of released stacks is given back
  // (here a batch of one chunk's count): the pages of a chunk that still
  // has a stack in use are dropped (they read as zero again, the canary
  // intact), a chunk with none is unmapped.
  void testStacksPastTheCacheGoBackToTheKernel() {
    constexpr std::size_t kChunk = 64;  // 64 KiB stacks: 64 to a chunk
    StackPool pool(64 * 1024, 0, /*guardPages=*/false, /*purgeBatch=*/kChunk);
    std::vector<Stack> stacks(2 * kChunk);
    for (Stack& stack : stacks) {
      CPPUNIT_ASSERT(!pool.acquire(stack));
      *topByte(stack) = 1;
      CPPUNIT_ASSERT_EQUAL(1, resident(const_cast<char*>(topByte(stack))));
    }
    CPPUNIT_ASSERT(stacks[0].chunk != stacks[kChunk].chunk);
    for (std::size_t i = 0; i < kChunk; ++i) CPPUNIT_ASSERT(stacks[i].chunk == stacks[0].chunk);
    // The first chunk whole, but for its last stack, and one of the second:
    // one batch.
    std::vector<Stack> released(stacks.begin(), stacks.begin() + kChunk - 1);
    released.push_back(stacks[kChunk]);
    for (Stack& stack : released) {
      Stack copy = stack;
      pool.release(copy);
      CPPUNIT_ASSERT(copy.mapping == nullptr);
    }
    for (const Stack& stack : released) {
      CPPUNIT_ASSERT_EQUAL(0, resident(const_cast<char*>(topByte(stack))));  // mapped, but the page is gone
      CPPUNIT_ASSERT_EQUAL(0, int(*topByte(stack)));  // (maps the shared zero page, which mincore counts)
      CPPUNIT_ASSERT(StackPool::canaryIntact(stack));
    }
    // The first chunk's last stack: now none of it is in use, but it has
    // to wait for a batch to be unmapped.
    char* const firstChunkTop = const_cast<char*>(topByte(stacks[0]));
    pool.release(stacks[kChunk - 1]);
    CPPUNIT_ASSERT(resident(firstChunkTop) >= 0);
    // The second chunk's others: the batch's end.
    for (std::size_t i = kChunk + 1; i < 2 * kChunk; ++i) pool.release(stacks[i]);
    CPPUNIT_ASSERT_EQUAL(-1, resident(firstChunkTop));  // unmapped with its chunk
    // A purged stack is handed out again, zero-filled.
    Stack again;
    CPPUNIT_ASSERT(!pool.acquire(again));
    CPPUNIT_ASSERT(StackPool::canaryIntact(again));
    CPPUNIT_ASSERT_EQUAL(0, int(*topByte(again)));
    pool.release(again);
  }

  // Chunks emptied in one batch are unmapped in runs of neighbours; a
  // chunk between two of them that still has a stack in use stays mapped,
  // its stack intact.
  void testEmptiedChunksAreUnmappedAroundOneInUse() {
    constexpr std::size_t kChunk = 64;  // 64 KiB stacks: 64 to a chunk
    StackPool pool(64 * 1024, 0, /*guardPages=*/false, /*purgeBatch=*/3 * kChunk - 1);
    std::vector<Stack> stacks(3 * kChunk);
    for (Stack& stack : stacks) {
      CPPUNIT_ASSERT(!pool.acquire(stack));
      *topByte(stack) = 1;
    }
    for (std::size_t c = 0; c < 3; ++c) {
      for (std::size_t i = 0; i < kChunk; ++i) CPPUNIT_ASSERT(stacks[c * kChunk + i].chunk == stacks[c * kChunk].chunk);
    }
    // The middle chunk (by address) keeps one stack in use.
    std::vector<std::size_t> chunkOrder = {0, kChunk, 2 * kChunk};
    std::sort(chunkOrder.begin(), chunkOrder.end(), [&](std::size_t a, std::size_t b) {
      return std::less<void*>()(stacks[a].mapping, stacks[b].mapping);
    });
    Stack kept = stacks[chunkOrder[1] + kChunk / 2];
    stacks.erase(stacks.begin() + static_cast<std::ptrdiff_t>(chunkOrder[1] + kChunk / 2));
    std::vector<char*> tops;
    for (const Stack& stack : stacks) tops.push_back(const_cast<char*>(topByte(stack)));
    for (Stack& stack : stacks) pool.release(stack);  // exactly one batch
    std::size_t unmapped = 0, zeroed = 0;
    for (char* top : tops) {
      const int state = resident(top);
      if (state == -1) {
        ++unmapped;
      } else {
        CPPUNIT_ASSERT_EQUAL(0, state);  // the middle chunk's other stacks: purged, still mapped
        ++zeroed;
      }
    }
    CPPUNIT_ASSERT_EQUAL(2 * kChunk, unmapped);
    CPPUNIT_ASSERT_EQUAL(kChunk - 1, zeroed);
    CPPUNIT_ASSERT_EQUAL(1, resident(const_cast<char*>(topByte(kept))));
    CPPUNIT_ASSERT_EQUAL(1, int(*topByte(kept)));
    pool.release(kept);
  }

  // A guarded chunk's stacks, past the cache, lose their pages like the
  // others (the madvise runs over their reserves too, which keep faulting).
  void testGuardedStacksAreCarvedAndPurgedToo() {
    const std::size_t guardsBefore = StackPool::guardedStacks();
    {
      StackPool pool(32 * 1024, 0, /*guardPages=*/true, /*purgeBatch=*/64);
      std::vector<Stack> stacks(64 + 1);
      for (Stack& stack : stacks) {
        CPPUNIT_ASSERT(!pool.acquire(stack));
        if (!stack.guarded) {
          for (Stack& other : stacks) pool.release(other);
          return;  // the budget is spent (EVCHAN_GUARDED_STACKS), nothing to check here
        }
        CPPUNIT_ASSERT_EQUAL(std::size_t(64 * 1024),
                             std::size_t(static_cast<char*>(stack.usable.base) - static_cast<char*>(stack.mapping)));
        std::memset(stack.usable.base, 0xab, stack.usable.size);
      }
      CPPUNIT_ASSERT(StackPool::guardedStacks() > guardsBefore);
      // One stack kept in use, so that its chunk stays mapped through the batch.
      Stack kept = stacks[64 - 1];
      stacks.erase(stacks.begin() + (64 - 1));
      for (Stack& stack : stacks) {
        Stack copy = stack;
        pool.release(copy);
      }
      if (kept.chunk == stacks[0].chunk) {
        CPPUNIT_ASSERT_EQUAL(0, resident(const_cast<char*>(topByte(stacks[0]))));
        CPPUNIT_ASSERT_EQUAL(0, int(*topByte(stacks[0])));
        const ChildResult result = runInChild([&] {
          std::signal(SIGSEGV, SIG_DFL);
          static_cast<volatile char*>(stacks[0].usable.base)[-1] = 1;  // its reserve, still PROT_NONE
          _exit(4);
        });
        CPPUNIT_ASSERT(WIFSIGNALED(result.status) && WTERMSIG(result.status) == SIGSEGV);
      }
      pool.release(kept);
    }
    CPPUNIT_ASSERT_EQUAL(guardsBefore, StackPool::guardedStacks());  // the pool's end unmapped its chunks
  }

  // Threads acquire, mark, check and release stacks while a small cache
  // and batch keep the purge running, chunks emptied and unmapped while
  // their neighbours' slots are handed out: no stack is handed to two
  // holders at once (each finds its own marks), none is unmapped while
  // held (that would fault here), and the guard count comes back with the
  // pool.  Run with EVCHAN_GUARDED_STACKS small, the pool mixes guarded and
  // canaried chunks.
  void testPurgeRacesAcquireAndReleaseOnThreads() {
    const std::size_t guardsBefore = StackPool::guardedStacks();
    constexpr unsigned kThreads = 4;
    std::atomic<std::size_t> overwritten{0}, failed{0}, acquired{0};
    {
      StackPool pool(16 * 1024, 4, /*guardPages=*/true, /*purgeBatch=*/16);
      std::vector<std::thread> threads;
      for (unsigned t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
          std::vector<std::pair<Stack, std::uint64_t>> held;
          std::uint32_t random = 2463534242u + t;
          auto next = [&random] {
            random ^= random << 13;
            random ^= random >> 17;
            random ^= random << 5;
            return random;
          };
          std::uint64_t serial = 0;
          auto words = [](const Stack& stack) {
            char* base = static_cast<char*>(stack.usable.base);
            return std::make_pair(reinterpret_cast<volatile std::uint64_t*>(base + 64),
                                  reinterpret_cast<volatile std::uint64_t*>(base + stack.usable.size - 8));
          };
          auto giveBack = [&](std::pair<Stack, std::uint64_t>& entry) {
            const auto marks = words(entry.first);
            if (*marks.first != entry.second || *marks.second != entry.second) ++overwritten;
            if (entry.second & 1) pool.releaseOnThread(entry.first); else pool.release(entry.first);
          };
          for (unsigned round = 0; round < 1500; ++round) {
            const std::uint32_t pick = next();
            const std::size_t want = pick % 8 == 0 ? 0 : pick / 8 % 160;
            while (held.size() < want) {
              Stack stack;
              const std::uint64_t mark = (std::uint64_t(t) << 56) | (++serial << 1) | (next() & 1);
              if ((mark & 1) ? pool.acquireOnThread(stack) : pool.acquire(stack)) {
                ++failed;
                break;
              }
              ++acquired;
              const auto marks = words(stack);
              *marks.first = mark;
              *marks.second = mark;
              held.emplace_back(stack, mark);
            }
            // Half of them back, from anywhere in the list.
            while (held.size() > want / 2) {
              const std::size_t at = next() % held.size();
              std::swap(held[at], held.back());
              giveBack(held.back());
              held.pop_back();
            }
          }
          for (auto& entry : held) giveBack(entry);
        });
      }
      for (std::thread& thread : threads) thread.join();
    }
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), failed.load());
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), overwritten.load());
    CPPUNIT_ASSERT(acquired.load() > 1000);
    CPPUNIT_ASSERT_EQUAL(guardsBefore, StackPool::guardedStacks());
  }

  // A process out of mappings (vm.max_map_count: everything else it
  // mapped) with PROT_NONE reserves (mlockall: the kernel refuses guard
  // markers on locked memory) still gets stacks: canaried ones, from
  // chunks whose reserves the kernel refused with ENOMEM.
  void testOutOfMappingsStacksAreCanaried() {
    if (!inSelfChild()) return assertSelfChildPassed("StackPoolTest::testOutOfMappingsStacksAreCanaried");
    if (mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0) EVCHAN_SKIP("mlockall failed");
    if (kernelHasGuardMarkers()) EVCHAN_SKIP("memory not locked (sanitizers make mlockall a no-op), or the kernel installs guard markers on it");
    CPPUNIT_ASSERT(!StackPool::guardsAreMarkers());
    const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    const std::size_t guardsBefore = StackPool::guardedStacks();
    // Spend the mappings: one page in two made read-only until the kernel refuses.
    const std::size_t pages = 2 * maxMapCount() + 16;
    char* spent = static_cast<char*>(mmap(nullptr, pages * page, PROT_READ | PROT_WRITE,
                                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
    CPPUNIT_ASSERT(spent != MAP_FAILED);
    std::size_t split = 0;
    for (std::size_t i = 1; i < pages; i += 2, ++split) {
      if (mprotect(spent + i * page, page, PROT_READ) != 0) {
        CPPUNIT_ASSERT_EQUAL(ENOMEM, errno);
        break;
      }
    }
    CPPUNIT_ASSERT(!roomForTwoMappings());
    // Room for a few mappings: enough for a chunk, not for its reserves.
    for (std::size_t i = 0; i < 16; ++i) {
      CPPUNIT_ASSERT(mprotect(spent + (2 * (split - 1 - i) + 1) * page, page, PROT_READ | PROT_WRITE) == 0);
    }
    std::size_t canaried = 0;
    {
      StackPool pool(16 * 1024, 0, /*guardPages=*/true);
      std::vector<Stack> stacks(200);
      for (Stack& stack : stacks) {
        const std::error_code error = pool.acquire(stack);
        CPPUNIT_ASSERT_MESSAGE(error.message(), !error);
        if (!stack.guarded) ++canaried;
        *topByte(stack) = 1;
        CPPUNIT_ASSERT(StackPool::canaryIntact(stack));
      }
      CPPUNIT_ASSERT(canaried > 0);
      for (Stack& stack : stacks) pool.release(stack);
    }
    CPPUNIT_ASSERT_EQUAL(guardsBefore, StackPool::guardedStacks());
    munmap(spent, pages * page);
  }

  // The kernel has guard markers when the pool first asks, so the budget
  // is unlimited; later they are refused (mlockall, or a seccomp filter
  // installed after start-up) and reserves are PROT_NONE mappings again,
  // two mappings a stack: those may not take more than the 3/8 of
  // vm.max_map_count in guarded stacks that the mapping way is allowed,
  // leaving the rest of the process its quarter of the mappings.
  void testMarkersRefusedLaterKeepTheMappingBudget() {
    if (!inSelfChild()) return assertSelfChildPassed("StackPoolTest::testMarkersRefusedLaterKeepTheMappingBudget");
    if (!StackPool::guardsAreMarkers()) EVCHAN_SKIP("the kernel has no guard markers");
    if (std::getenv("EVCHAN_GUARDED_STACKS") != nullptr) EVCHAN_SKIP("EVCHAN_GUARDED_STACKS sets the budget");
    if (mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0) EVCHAN_SKIP("mlockall failed");
    if (kernelHasGuardMarkers()) EVCHAN_SKIP("memory not locked (sanitizers make mlockall a no-op), or the kernel installs guard markers on it");
    const std::size_t limit = maxMapCount();
    const std::size_t mappingsBefore = mappingCount();
    std::size_t guarded = 0;
    bool roomLeft = true;
    std::string trace;
    {
      StackPool pool(16 * 1024, 0, /*guardPages=*/true);
      std::vector<Stack> stacks(limit / 2 + 64);
      for (Stack& stack : stacks) {
        const std::error_code error = pool.acquire(stack);
        CPPUNIT_ASSERT_MESSAGE(error.message(), !error);
        if (stack.guarded) ++guarded;
      }
      roomLeft = roomForTwoMappings();
      trace = std::to_string(guarded) + " guarded stacks; mappings " + std::to_string(mappingsBefore) + " -> " +
              std::to_string(mappingCount()) + " of " + std::to_string(limit);
      for (Stack& stack : stacks) pool.release(stack);
    }
    CPPUNIT_ASSERT_MESSAGE(trace, guarded <= limit / 8 * 3);
    CPPUNIT_ASSERT_MESSAGE(trace, roomLeft);
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(StackPoolTest);
