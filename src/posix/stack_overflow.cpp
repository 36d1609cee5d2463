// SPDX-License-Identifier: Apache-2.0
// The SIGSEGV handler that names a task stack overflow.
#include "posix/stack_overflow.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <mutex>

namespace evchan::detail {
namespace {

// What the handler reads: plain thread-locals, written before each switch
// (so their storage exists before any signal arrives).
thread_local const char* guardLow = nullptr;
thread_local const char* guardHigh = nullptr;
thread_local std::uint64_t runningTask = 0;

struct sigaction previousSegv;
struct sigaction previousBus;

// Formats without allocating: the handler may only use async-signal-safe calls.
std::size_t appendNumber(char* out, std::uint64_t value, unsigned base) {
  char digits[20];
  std::size_t count = 0;
  do {
    digits[count++] = "0123456789abcdef"[value % base];
    value /= base;
  } while (value != 0);
  for (std::size_t i = 0; i < count; ++i) out[i] = digits[count - 1 - i];
  return count;
}

void writeOverflowMessage(const void* address) {
  char message[160];
  std::size_t length = 0;
  const char* prefix = "evchan: task stack overflow in task ";
  std::memcpy(message, prefix, std::strlen(prefix));
  length += std::strlen(prefix);
  length += appendNumber(message + length, runningTask, 10);
  const char* middle = " (guard page hit at 0x";
  std::memcpy(message + length, middle, std::strlen(middle));
  length += std::strlen(middle);
  length += appendNumber(message + length, reinterpret_cast<std::uintptr_t>(address), 16);
  message[length++] = ')';
  message[length++] = '\n';
  (void)!write(STDERR_FILENO, message, length);
}

void onFault(int signal, siginfo_t* info, void* context) {
  const char* address = static_cast<const char*>(info->si_addr);
  if (guardLow != nullptr && address >= guardLow && address < guardHigh) {
    writeOverflowMessage(address);
    ::signal(SIGABRT, SIG_DFL);
    abort();
  }
  // Not ours: hand it to whoever was there before, or let it kill us.
  const struct sigaction& previous = signal == SIGSEGV ? previousSegv : previousBus;
  if (previous.sa_flags & SA_SIGINFO) {
    if (previous.sa_sigaction != nullptr) return previous.sa_sigaction(signal, info, context);
  } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
    return previous.sa_handler(signal);
  }
  ::signal(signal, SIG_DFL);  // the faulting instruction runs again and the default action ends the process
}

// The alternate stack of one thread, freed when the thread ends.
struct AlternateStack {
  void* memory = nullptr;
  std::size_t size = 0;
  AlternateStack() {
    size = 64 * 1024;
    memory = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) {
      memory = nullptr;
      return;
    }
    stack_t altstack{};
    altstack.ss_sp = memory;
    altstack.ss_size = size;
    sigaltstack(&altstack, nullptr);
  }
  ~AlternateStack() {
    if (memory == nullptr) return;
    stack_t disable{};
    disable.ss_flags = SS_DISABLE;
    sigaltstack(&disable, nullptr);
    munmap(memory, size);
  }
};

}  // namespace

void prepareStackOverflowReporting() noexcept {
  static std::once_flag installed;
  std::call_once(installed, [] {
    struct sigaction action{};
    action.sa_sigaction = onFault;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    sigaction(SIGSEGV, &action, &previousSegv);
    sigaction(SIGBUS, &action, &previousBus);
  });
  static thread_local AlternateStack alternate;
  (void)alternate;
  setRunningStack(nullptr, 0);  // allocates this thread's slots before any fault
}

void setRunningStack(const Stack* stack, std::uint64_t taskId) noexcept {
  if (stack != nullptr && stack->guarded) {
    guardLow = static_cast<const char*>(stack->mapping);
    guardHigh = static_cast<const char*>(stack->usable.base);
  } else {
    guardLow = guardHigh = nullptr;
  }
  runningTask = taskId;
}

}  // namespace evchan::detail
