// SPDX-License-Identifier: Apache-2.0
// What the race suites (task_late_wake_test, slow_lookup_child late-cancel)
// use to make the two sides of a race meet in many orders: a spin that
// staggers one side, and on Linux one CPU shared by a round's threads with
// the waking side at SCHED_IDLE, woken after a precise sleep (OneCpu and
// becomeIdlePriority() serve every suite that makes a race happen so);
// and a watchdog that turns a hang into an abort the suite sees.
#ifndef EVCHAN_TEST_SUPPORT_RACE_SCHEDULING_H
#define EVCHAN_TEST_SUPPORT_RACE_SCHEDULING_H

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include <time.h>
#endif

#include "support/slowdown.h"

namespace evchan::test {

/// Spins for about `steps` short steps: staggers two racing calls by a
/// varying amount, so that each comes first in some rounds.
inline void stagger(int steps) {
  for (volatile int i = 0; i < steps * 3000; i = i + 1) {
  }
}

/// Aborts the process (a hang cannot be reported otherwise) unless
/// destroyed within a generous 30 s; `what` names the round in the message.
class Watchdog {
 public:
  explicit Watchdog(std::string what) : what_(std::move(what)), thread_([this] { watch(); }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      disarmed_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

 private:
  void watch() {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!wake_.wait_for(lock, generous(std::chrono::seconds(30)), [this] { return disarmed_; })) {
      std::fprintf(stderr, "%s: still not over (a task woken late deadlocked?)\n", what_.c_str());
      std::abort();
    }
  }

  std::string what_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool disarmed_ = false;
  std::thread thread_;
};

#if defined(__linux__)
/// Pins the calling thread to the CPU it runs on while it lives; threads it
/// starts meanwhile (a channel's workers too) inherit the mask.
class OneCpu {
 public:
  OneCpu() {
    if (sched_getaffinity(0, sizeof saved_, &saved_) != 0) return;
    const int cpu = sched_getcpu();
    if (cpu < 0) return;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    pinned_ = sched_setaffinity(0, sizeof one, &one) == 0;
  }
  ~OneCpu() {
    if (pinned_) sched_setaffinity(0, sizeof saved_, &saved_);
  }
  OneCpu(const OneCpu&) = delete;
  OneCpu& operator=(const OneCpu&) = delete;

 private:
  cpu_set_t saved_;
  bool pinned_ = false;
};

/// The calling thread runs only when nothing else on its CPU wants to: any
/// thread that wakes there preempts it at once, wherever it is.  False
/// where the host refuses SCHED_IDLE.
inline bool becomeIdlePriority() {
  sched_param param{};
  return pthread_setschedparam(pthread_self(), SCHED_IDLE, &param) == 0;
}

/// Sleeps about `micros` microseconds, with no timer slack added: a thread
/// at idle priority runs meanwhile, and is preempted where it is when the
/// sleep ends.
inline void sleepPrecisely(int micros) {
  (void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  timespec pause{0, static_cast<long>(micros) * 1000L};
  while (nanosleep(&pause, &pause) != 0) {
  }
}
#endif

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_RACE_SCHEDULING_H
