// SPDX-License-Identifier: Apache-2.0
// The child process of test/stack_overflow_test: a task that overflows its
// stack, in the way argv[1] names, on a channel of default options.
//   frame      a 70 KB local array on the default 64 KiB stack
//              (test/stack_overflow_child is built with
//              -fstack-clash-protection where the compiler has it, as the
//              docs/tasks.md recommends; test/stack_overflow_child_unprobed
//              without it)
//   hugeframe  a 1 MiB local array, caught only with stack-clash probing
//   recursion  recursion without end
//   canary     writes the lowest bytes of its stack (where an overflow
//              ends up first) and then suspends: what an unguarded stack's
//              canary catches (run with EVCHAN_GUARDED_STACKS=0)
// Before it overflows, the task writes "task <id>\n" to stderr, so the test
// can check that the report names it.  Any exit but the overflow report's
// abort is a failure: status 3 with the reason on stderr, or the silent
// exit status 4 when the overflow went unnoticed.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include <evchan/evchan.h>

namespace {

[[noreturn]] void fail(const std::string& why) {
  std::fprintf(stderr, "stack_overflow_child: %s\n", why.c_str());
  std::fflush(stderr);
  _exit(3);
}

void announceTask() {
  std::fprintf(stderr, "task %llu\n", static_cast<unsigned long long>(evchan::this_task::id()));
  std::fflush(stderr);
}

// Stops the compiler from proving the functions below pointless.
volatile int sink = 0;
volatile int recursionLimit = 1 << 30;

[[gnu::noinline]] void largeFrame() {
  volatile char frame[70 * 1000];
  // The lowest byte first: without probing, this write lands about 70 KB
  // below the frame's top, some 5 KB below the 64 KiB stack, past a
  // one-page guard (into another mapping, or none).
  frame[0] = 1;
  frame[sizeof frame - 1] = 2;
  sink = frame[sink];
}

// Far larger than any guard reserve: only stack-clash probing (each page
// touched in turn as the frame is allocated) catches it.
[[gnu::noinline]] void hugeFrame() {
  volatile char frame[1024 * 1024];
  for (std::size_t i = 0; i < sizeof frame; i += 512) frame[i] = static_cast<char>(i);
  sink = frame[sink];
}

[[gnu::noinline]] int recurse(int depth) {
  volatile char frame[512];
  frame[0] = static_cast<char>(depth);
  if (depth >= recursionLimit) return frame[0];
  return recurse(depth + 1) + frame[0];
}

// The lowest address of this task's stack: its top is the page boundary
// above this function's caller (the stack is page aligned and the task has
// used less than a page), the size the channel's default.
[[gnu::noinline]] char* stackBase(std::size_t stackSize) {
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  const auto address = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
  return reinterpret_cast<char*>((address + page - 1) / page * page - stackSize);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) fail("usage: stack_overflow_child frame|hugeframe|recursion|canary");
  const std::string mode = argv[1];
  evchan::EventChannel::Options options;
  options.initialThreads = 1;
  std::unique_ptr<evchan::EventChannel> channel = evchan::EventChannel::create(options);
  evchan::TaskHandle task;
  if (mode == "frame") {
    task = channel->spawn([] {
      announceTask();
      largeFrame();
    });
  } else if (mode == "hugeframe") {
    task = channel->spawn([] {
      announceTask();
      hugeFrame();
    });
  } else if (mode == "recursion") {
    task = channel->spawn([] {
      announceTask();
      sink = recurse(0);
    });
  } else if (mode == "canary") {
    const std::size_t stackSize = options.taskStackSize;
    task = channel->spawn([stackSize] {
      announceTask();
      volatile char* base = stackBase(stackSize);
      for (int i = 0; i < 16; ++i) base[i] = static_cast<char>(0xa5);
      evchan::this_task::yield();
    });
  } else {
    fail("unknown mode " + mode);
  }
  task.join();
  _exit(4);  // the overflow went unnoticed
}
