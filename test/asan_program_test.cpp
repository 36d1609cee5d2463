// SPDX-License-Identifier: Apache-2.0
// A program built with -fsanitize=address and linked with this build of
// evchan, built with or without ASan, as a user who builds only their own
// code with it does (Makefile.am builds this suite so).  The plain library
// told ASan nothing about its task stacks: ASan took a task's stack for
// its thread's, ignored the unpoisoning a throw asks for ("ASan is
// ignoring requested __asan_handle_no_return"), and the redzones that a
// throw left on a stack were then reported as a stack-buffer-underflow in
// the next task on it: a false error, and the program aborted.
#include <cppunit/extensions/HelperMacros.h>

#include <sys/mman.h>

#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <string>

#include <evchan/evchan.h>

#include "support/leak_checked_fixture.h"
#include "support/stderr_capture.h"
#include "support/waiting.h"

namespace {

// Frames with local arrays (whose redzones ASan poisons) between the
// task's entry and a throw that unwinds them without returning.
[[gnu::noinline]] void throwBelow(int depth) {
  if (depth == 0) throw std::runtime_error("unwinds the frames above");
  char pad[256];
  std::memset(pad, depth, sizeof pad);
  asm volatile("" : : "r"(pad) : "memory");
  throwBelow(depth - 1);
}

[[gnu::noinline]] void framesThenThrow() {
  char local[1024];
  std::memset(local, 1, sizeof local);
  asm volatile("" : : "r"(local) : "memory");
  throwBelow(8);
}

// Writes over the part of the stack where framesThenThrow()'s frames were.
[[gnu::noinline]] void writeOverTheStack() {
  char buffer[24 * 1024];
  std::memset(buffer, 2, sizeof buffer);
  asm volatile("" : : "r"(buffer) : "memory");
}

}  // namespace

class AsanProgramTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(AsanProgramTest);
  CPPUNIT_TEST(throwsInTasksLeaveNoRedzonesBehind);
  CPPUNIT_TEST_SUITE_END();

 public:
  // Each task's stack comes back to the next task (one worker, one at a
  // time).  The task stacks lie far below the worker's own: 256 MiB are
  // reserved first, so ASan could not take them for part of it.  Before,
  // every run aborted in the first writeOverTheStack().
  void throwsInTasksLeaveNoRedzonesBehind() {
    std::unique_ptr<evchan::EventChannel> channel = evchan::test::makeChannel(1);
    const std::size_t gapSize = std::size_t{256} << 20;
    void* gap = mmap(nullptr, gapSize, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    CPPUNIT_ASSERT(gap != MAP_FAILED);
    int caught = 0;
    std::string said;
    for (int round = 0; round < 8; ++round) {
      {
        // Only around the throw: an error ASan reports in the writes below
        // ends the process, and must reach the real stderr.
        evchan::test::StderrCapture captured;
        channel->spawn([&] {
          try {
            framesThenThrow();
          } catch (const std::runtime_error&) {
            ++caught;
          }
        }).join();
        said += captured.text();
      }
      channel->spawn(writeOverTheStack).join();
    }
    munmap(gap, gapSize);
    CPPUNIT_ASSERT_EQUAL(8, caught);
    CPPUNIT_ASSERT_MESSAGE("ASan said: " + said, said.find("__asan_handle_no_return") == std::string::npos);
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(AsanProgramTest);
