// SPDX-License-Identifier: Apache-2.0
// The child process of test/task_exit_test: a program whose channel still
// has tasks parked in waits when the process exits, so that static
// destruction tears it down.  Its mode (argv[1]) says where the channel
// lives:
//   global  a namespace-scope channel, built before main()
//   static  a function-static channel
//   self    a channel destroyed inside one of its own tasks; main() returns
//           while that task is still on its stack
// In each the tasks' stacks are taken from the process's stack pool after
// the channel was built, so its teardown runs after every static object
// built since (the pool's bookkeeping among them) has been destroyed.
//
// Exit status 0 and nothing on stderr means a clean exit.  A check that
// fails prints why and exits with status 3.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <evchan/evchan.h>

namespace {

using namespace std::chrono_literals;
using evchan::EventChannel;

[[noreturn]] void fail(const std::string& why) {
  std::fprintf(stderr, "task_exit_child: %s\n", why.c_str());
  std::fflush(stderr);
  _exit(3);
}

// Polls `condition` for up to a minute (a check, not a timing assumption:
// only a broken build waits that long).
template <class Condition>
bool eventually(Condition condition) {
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

constexpr int kParkedTasks = 6;
std::atomic<int> parked{0};    // tasks that reached their wait
std::atomic<int> ended{0};     // tasks that ran to their end (their wait
                               // cancelled, or the mutex handed over)
std::atomic<int> cancelled{0};  // tasks whose wait threw
std::atomic<int> foundGone{0};  // ... and were told by this_task::channel()
                                // that their channel is destroyed

// What the parked tasks wait on; plain globals with trivial or no
// teardown of their own, built before any channel.
evchan::Notification never;
evchan::Mutex held;
evchan::Mutex cvMutex;
evchan::ConditionVariable cv;

// Spawns tasks that park in every kind of wait a shutdown cancels, each
// with a TaskLocal (destroyed as the task ends).
void spawnParkedTasks(EventChannel& channel) {
  static evchan::TaskLocal<std::string> local;
  auto wrap = [](void (*wait)()) {
    return [wait] {
      local.get() = "a task-local string, long enough to be on the heap";
      try {
        wait();
      } catch (const evchan::SystemError&) {
        cancelled.fetch_add(1);
        try {
          evchan::this_task::channel();
        } catch (const evchan::SystemError& e) {
          if (e.code() == evchan::Errc::channel_shut_down) foundGone.fetch_add(1);
        }
      }
      ended.fetch_add(1);
    };
  };
  // One task holds `held` and sleeps; another waits for it.
  channel.spawn(wrap([] {
    std::unique_lock<evchan::Mutex> lock(held);
    parked.fetch_add(1);
    evchan::this_task::sleepFor(24h);
  }));
  if (!eventually([] { return parked.load() == 1; })) fail("the mutex holder did not start");
  channel.spawn(wrap([] {
    parked.fetch_add(1);
    std::unique_lock<evchan::Mutex> lock(held);
  }));
  channel.spawn(wrap([] {
    parked.fetch_add(1);
    never.wait();
  }));
  channel.spawn(wrap([] {
    std::unique_lock<evchan::Mutex> lock(cvMutex);
    parked.fetch_add(1);
    cv.wait(lock, [] { return false; });
  }));
  channel.spawn(wrap([] {
    parked.fetch_add(1);
    evchan::this_task::sleepFor(24h);
  }));
  channel.spawn(wrap([] {
    evchan::TcpListener listener = evchan::TcpListener::listen({"127.0.0.1", 0});
    parked.fetch_add(1);
    listener.accept();
  }));
  // A task that has counted itself may not have suspended yet; either
  // way the exit must unwind it.
  if (!eventually([] { return parked.load() == kParkedTasks; })) fail("the tasks did not all start");
}

std::unique_ptr<EventChannel> makeChannel() {
  EventChannel::Options options;
  options.initialThreads = 2;
  return EventChannel::create(options);
}

// Built before the channels below (same translation unit, declared
// first), so destroyed after them: checks that their teardown unwound
// every parked task.
struct CheckAtExit {
  bool armed = false;
  ~CheckAtExit() {
    if (armed && ended.load() != kParkedTasks) {
      fail("only " + std::to_string(ended.load()) + " of " + std::to_string(kParkedTasks) +
           " tasks ended at exit");
    }
  }
} checkAtExit;

std::unique_ptr<EventChannel> globalChannel = makeChannel();

EventChannel& staticChannel() {
  static std::unique_ptr<EventChannel> channel = makeChannel();
  return *channel;
}

// "self": the task that destroys its own channel, and the ordering the
// test wants: built before the pool's first use, this object is destroyed
// after the pool's bookkeeping; only then does it let that task end (and
// give back its stack), and it waits for every task to unwind.
struct SelfDestroyed {
  std::unique_ptr<EventChannel> channel;
  evchan::TaskHandle destroyer;
  evchan::Notification go;  // spawn() has returned: the task may destroy the channel
  std::atomic<bool> destroyed{false};
  std::mutex gateMutex;
  bool gateOpen = false;
  std::condition_variable gate;

  ~SelfDestroyed() {
    if (!destroyer.valid()) return;
    {
      std::lock_guard<std::mutex> lock(gateMutex);
      gateOpen = true;
    }
    gate.notify_all();
    if (!eventually([&] { return destroyer.done() && ended.load() == kParkedTasks; })) {
      fail("the tasks of the self-destroyed channel did not end (" + std::to_string(ended.load()) + " of " +
           std::to_string(kParkedTasks) + " ended)");
    }
    // Their channel was being destroyed when they woke: none may have been
    // handed a reference to it.
    if (foundGone.load() != cancelled.load()) {
      fail("this_task::channel() gave " + std::to_string(cancelled.load() - foundGone.load()) +
           " unwinding tasks a reference to their channel while it was destroyed");
    }
  }
} self;

int runSelf() {
  self.channel = makeChannel();
  spawnParkedTasks(*self.channel);
  self.destroyer = self.channel->spawn([] {
    self.go.wait();
    self.channel.reset();  // inside its own task
    self.destroyed.store(true);
    // Blocks its worker thread (not just the task) until static
    // destruction is under way.
    std::unique_lock<std::mutex> lock(self.gateMutex);
    self.gate.wait(lock, [] { return self.gateOpen; });
  });
  self.go.notify();
  if (!eventually([] { return self.destroyed.load(); })) fail("the channel was not destroyed by its task");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "global") {
    checkAtExit.armed = true;
    spawnParkedTasks(*globalChannel);
    return 0;
  }
  globalChannel.reset();
  if (mode == "static") {
    checkAtExit.armed = true;
    spawnParkedTasks(staticChannel());
    return 0;
  }
  if (mode == "self") return runSelf();
  std::fprintf(stderr, "usage: task_exit_child global|static|self\n");
  return 2;
}
