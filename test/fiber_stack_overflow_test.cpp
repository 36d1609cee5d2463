// SPDX-License-Identifier: Apache-2.0
// Task stack overflow on Windows (Win32 fibers), as a user meets it: each
// case starts this program again as a child process (EVCHAN_OVERFLOW_CHILD
// names what its task does: see runChildIfAsked() below), whose task
// overflows its stack; the child must end with EXCEPTION_STACK_OVERFLOW's
// status and evchan's report naming the task on stderr, written by the
// vectored exception handler of src/win32/stack_overflow.cpp.  The cases:
//   * recursion without end on the default 64 KiB stack;
//   * a 70 KB frame on it (Windows compilers probe every page of a frame
//     larger than one, so the frame meets the guard page first); skipped
//     where the fiber's stack is larger than asked for, as under Wine,
//     which reserves at least 1 MiB for every fiber;
//   * a 2 MiB frame.
// Windows-only (test/stack_overflow_test is the POSIX suite): it starts
// its children with CreateProcess.
#include <cppunit/extensions/HelperMacros.h>

#include <evchan/evchan.h>

#include <windows.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "support/skip.h"


namespace {

// ------------------------------------------------------------ the child
// Stops the compiler from proving the functions below pointless.
volatile int sink = 0;
volatile int recursionLimit = 1 << 30;

[[gnu::noinline]] int recurse(int depth) {
  volatile char frame[512];
  frame[0] = static_cast<char>(depth);
  if (depth >= recursionLimit) return frame[0];
  return recurse(depth + 1) + frame[0];
}

constexpr std::size_t kLargeFrameBytes = 70 * 1000;
// Set by the "frame" child's task when its stack is too large to overflow.
std::atomic<bool> frameFits{false};

[[gnu::noinline]] void largeFrame() {
  volatile char frame[kLargeFrameBytes];
  frame[0] = 1;
  frame[sizeof frame - 1] = 2;
  sink = frame[sink];
}

[[gnu::noinline]] void hugeFrame() {
  volatile char frame[2 * 1024 * 1024];
  for (std::size_t i = 0; i < sizeof frame; i += 512) frame[i] = static_cast<char>(i);
  sink = frame[sink];
}

// The bytes reserved for the running fiber's stack (Windows 8 and later).
std::size_t stackReserve() {
  ULONG_PTR low = 0;
  ULONG_PTR high = 0;
  GetCurrentThreadStackLimits(&low, &high);
  return static_cast<std::size_t>(high - low);
}

[[noreturn]] void childFails(const std::string& why) {
  std::fprintf(stderr, "fiber_stack_overflow_test child: %s\n", why.c_str());
  std::fflush(stderr);
  std::_Exit(3);
}

// In a child (EVCHAN_OVERFLOW_CHILD set), runs its task and never returns:
// the overflow report ends the process, and exit status 4 says it went
// unnoticed.  Called during static initialisation, before the suite's main().
bool runChildIfAsked() {
  const char* mode = std::getenv("EVCHAN_OVERFLOW_CHILD");
  if (mode == nullptr || *mode == '\0') return false;
  const std::string what = mode;
  void (*overflow)() = nullptr;
  if (what == "recursion") {
    overflow = [] { sink = recurse(0); };
  } else if (what == "frame") {
    overflow = [] {
      // The stack is too large for the frame to overflow it: the task says
      // so and ends, and the main thread exits with status 5 (a process
      // ended from a fiber's own exit call was seen hanging under Wine).
      if (const std::size_t reserve = stackReserve(); reserve > kLargeFrameBytes) {
        std::fprintf(stderr, "reserve %llu\n", static_cast<unsigned long long>(reserve));
        std::fflush(stderr);
        frameFits = true;
        return;
      }
      largeFrame();
    };
  } else if (what == "hugeframe") {
    overflow = hugeFrame;
  } else {
    childFails("unknown mode " + what);
  }
  try {
    evchan::EventChannel::Options options;
    options.initialThreads = 1;
    std::unique_ptr<evchan::EventChannel> channel = evchan::EventChannel::create(options);
    evchan::TaskHandle task = channel->spawn([overflow] {
      std::fprintf(stderr, "task %llu\n", static_cast<unsigned long long>(evchan::this_task::id()));
      std::fflush(stderr);
      overflow();
    });
    task.join();
    if (frameFits) {
      channel.reset();
      std::fflush(stderr);
      std::_Exit(5);
    }
  } catch (const std::exception& error) {
    childFails(error.what());
  }
  std::fflush(stderr);
  std::_Exit(4);
}

[[maybe_unused]] const bool isChild = runChildIfAsked();

// ------------------------------------------------------------ the parent
struct ChildResult {
  DWORD exitCode = 0;
  std::string stderrText;
};

/// Runs this program as a child with EVCHAN_OVERFLOW_CHILD=`mode`, its
/// stderr into a pipe; waits at most 60 s for it.
ChildResult runChild(const char* mode) {
  wchar_t program[MAX_PATH];
  const DWORD length = GetModuleFileNameW(nullptr, program, MAX_PATH);
  CPPUNIT_ASSERT(length > 0 && length < MAX_PATH);

  SECURITY_ATTRIBUTES inherit{sizeof(SECURITY_ATTRIBUTES), nullptr, TRUE};
  HANDLE readEnd = nullptr;
  HANDLE writeEnd = nullptr;
  CPPUNIT_ASSERT(CreatePipe(&readEnd, &writeEnd, &inherit, 0));
  SetHandleInformation(readEnd, HANDLE_FLAG_INHERIT, 0);

  // The child inherits this process's environment with the mode added.
  CPPUNIT_ASSERT(SetEnvironmentVariableA("EVCHAN_OVERFLOW_CHILD", mode));
  STARTUPINFOW startup{};
  startup.cb = sizeof startup;
  startup.dwFlags = STARTF_USESTDHANDLES;
  startup.hStdInput = GetStdHandle(STD_INPUT_HANDLE);
  startup.hStdOutput = writeEnd;
  startup.hStdError = writeEnd;
  PROCESS_INFORMATION process{};
  std::wstring commandLine = L"\"" + std::wstring(program) + L"\"";
  const BOOL started = CreateProcessW(program, &commandLine[0], nullptr, nullptr, TRUE, 0, nullptr, nullptr,
                                      &startup, &process);
  SetEnvironmentVariableA("EVCHAN_OVERFLOW_CHILD", nullptr);
  CloseHandle(writeEnd);
  if (!started) {
    CloseHandle(readEnd);
    CPPUNIT_FAIL("CreateProcess failed: Windows error " + std::to_string(GetLastError()));
  }
  CloseHandle(process.hThread);

  // Read while it runs (a full pipe would stop it); the read ends when the
  // child, the only writer, is gone.
  ChildResult result;
  std::thread reader([&] {
    char buffer[4096];
    DWORD got = 0;
    while (ReadFile(readEnd, buffer, sizeof buffer, &got, nullptr) && got > 0) result.stderrText.append(buffer, got);
  });
  const DWORD waited = WaitForSingleObject(process.hProcess, 60 * 1000);
  if (waited != WAIT_OBJECT_0) TerminateProcess(process.hProcess, 99);
  WaitForSingleObject(process.hProcess, INFINITE);
  GetExitCodeProcess(process.hProcess, &result.exitCode);
  CloseHandle(process.hProcess);
  reader.join();
  CloseHandle(readEnd);
  CPPUNIT_ASSERT_MESSAGE(std::string("the child (") + mode + ") did not end within 60 s: " + result.stderrText,
                         waited == WAIT_OBJECT_0);
  std::string text;
  for (char c : result.stderrText) {
    if (c != '\r') text += c;
  }
  result.stderrText = text;
  return result;
}

/// The child's task announced itself and the report names that task.
void checkReported(const ChildResult& result, const char* mode) {
  const std::string context = std::string(mode) + ": exit status " + std::to_string(result.exitCode) +
                              ", stderr: " + result.stderrText;
  CPPUNIT_ASSERT_MESSAGE(context, result.exitCode == static_cast<DWORD>(EXCEPTION_STACK_OVERFLOW));
  const std::string::size_type at = result.stderrText.find("task ");
  CPPUNIT_ASSERT_MESSAGE(context, at == 0);
  const std::string id = result.stderrText.substr(5, result.stderrText.find('\n') - 5);
  CPPUNIT_ASSERT_MESSAGE(context, !id.empty() && id != "0");
  const std::string expected = "evchan: task stack overflow in task " + id + " (EXCEPTION_STACK_OVERFLOW)\n";
  CPPUNIT_ASSERT_MESSAGE(context, result.stderrText.find(expected) != std::string::npos);
}

}  // namespace

class FiberStackOverflowTest : public CppUnit::TestFixture {
  CPPUNIT_TEST_SUITE(FiberStackOverflowTest);
  CPPUNIT_TEST(testDeepRecursionIsReportedNamingTheTask);
  CPPUNIT_TEST(testLargeFrameIsReportedNamingTheTask);
  CPPUNIT_TEST(testHugeFrameIsReportedNamingTheTask);
  CPPUNIT_TEST_SUITE_END();

 public:
  void testDeepRecursionIsReportedNamingTheTask() { checkReported(runChild("recursion"), "recursion"); }
  void testLargeFrameIsReportedNamingTheTask() {
    const ChildResult probe = runChild("frame");
    if (probe.exitCode == 5) {
      const std::string::size_type at = probe.stderrText.find("reserve ");
      const std::string bytes =
          at == std::string::npos ? "?" : probe.stderrText.substr(at + 8, probe.stderrText.find('\n', at) - at - 8);
      EVCHAN_SKIP("the task's fiber stack is larger than the 64 KiB asked for (" + bytes +
                  " bytes reserved; Wine reserves at least 1 MiB for a fiber): the 70 KB frame fits; a native "
                  "Windows run keeps the case");
    }
    checkReported(probe, "frame");
  }
  void testHugeFrameIsReportedNamingTheTask() { checkReported(runChild("hugeframe"), "hugeframe"); }
};

CPPUNIT_TEST_SUITE_REGISTRATION(FiberStackOverflowTest);
