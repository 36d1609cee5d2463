// SPDX-License-Identifier: Apache-2.0
// Naming a task stack overflow on Windows: a vectored exception handler
// that sees EXCEPTION_STACK_OVERFLOW on a thread running a task (a fiber
// whose stack Windows guards: src/task/context/win32_fiber_context.cpp)
// writes the task's id to stderr and ends the process, as the POSIX
// handler does (src/posix/stack_overflow.cpp).
#include <windows.h>

#include <cstdint>
#include <cstring>
#include <mutex>

#include "posix/stack_overflow.h"

namespace evchan::detail {
namespace {

// The running task's id on this thread (0: none), in a TLS slot of its own:
// TlsGetValue reads the thread's block without allocating, which is what a
// handler running on the overflowed stack's last pages may do.
DWORD taskSlot = TLS_OUT_OF_INDEXES;

std::size_t appendNumber(char* out, std::uint64_t value) {
  char digits[20];
  std::size_t count = 0;
  do {
    digits[count++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  for (std::size_t i = 0; i < count; ++i) out[i] = digits[count - 1 - i];
  return count;
}

LONG CALLBACK onException(EXCEPTION_POINTERS* pointers) {
  if (pointers->ExceptionRecord->ExceptionCode != EXCEPTION_STACK_OVERFLOW) return EXCEPTION_CONTINUE_SEARCH;
  const auto task = reinterpret_cast<std::uintptr_t>(TlsGetValue(taskSlot));
  if (task == 0) return EXCEPTION_CONTINUE_SEARCH;  // not a task's stack: the thread's own
  char message[96];
  std::size_t length = 0;
  const char* prefix = "evchan: task stack overflow in task ";
  std::memcpy(message, prefix, std::strlen(prefix));
  length += std::strlen(prefix);
  length += appendNumber(message + length, task);
  const char* suffix = " (EXCEPTION_STACK_OVERFLOW)\n";
  std::memcpy(message + length, suffix, std::strlen(suffix));
  length += std::strlen(suffix);
  DWORD written = 0;
  WriteFile(GetStdHandle(STD_ERROR_HANDLE), message, static_cast<DWORD>(length), &written, nullptr);
  // Nothing may run on this stack any more (unwinding it would need the
  // room it lacks): the process ends with the exception's own status.
  TerminateProcess(GetCurrentProcess(), static_cast<UINT>(EXCEPTION_STACK_OVERFLOW));
  return EXCEPTION_CONTINUE_SEARCH;
}

}  // namespace

void prepareStackOverflowReporting() noexcept {
  static std::once_flag installed;
  std::call_once(installed, [] {
    taskSlot = TlsAlloc();
    if (taskSlot != TLS_OUT_OF_INDEXES) AddVectoredExceptionHandler(1, &onException);
  });
}

void setRunningStack(const Stack* stack, std::uint64_t taskId) noexcept {
  if (taskSlot == TLS_OUT_OF_INDEXES) return;
  // Ids above the pointer's range (2^32 tasks in a 32-bit process) lose
  // their high bits in the message, never the report itself.
  const std::uintptr_t id = stack != nullptr ? static_cast<std::uintptr_t>(taskId == 0 ? 1 : taskId) : 0;
  TlsSetValue(taskSlot, reinterpret_cast<void*>(id));
}

}  // namespace evchan::detail
