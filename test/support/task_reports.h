// SPDX-License-Identifier: Apache-2.0
// For the task suites: a member's own exception type, a witness of a
// task's end, and a channel whose onUnhandledException records what it
// reports.
#ifndef EVCHAN_TEST_SUPPORT_TASK_REPORTS_H
#define EVCHAN_TEST_SUPPORT_TASK_REPORTS_H

#include <atomic>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <evchan/event_channel.h>
#include <evchan/task.h>

#include "support/waiting.h"

namespace evchan::test {

/// What a failing member throws.
class MemberFailure : public std::runtime_error {
 public:
  explicit MemberFailure(const std::string& what) : std::runtime_error(what) {}
};

/// Counts the tasks whose stack unwound (or returned) past it.
struct EndWitness {
  std::atomic<int>& ended;
  ~EndWitness() { ++ended; }
};

/// The channel's onUnhandledException reports, by what() ("?" for an
/// exception not derived from std::exception), and the exceptions a test
/// keeps alive beside them.
struct Reports {
  std::mutex mutex;
  std::vector<std::string> whats;
  std::vector<std::exception_ptr> kept;  // by keep(); not reports
  std::size_t count() {
    std::lock_guard<std::mutex> lock(mutex);
    return whats.size();
  }
  /// Holds `e` as long as this lives, so that no worker frees an exception
  /// that a report reads: exception_ptr counts its references inside
  /// libstdc++, where ThreadSanitizer does not see it, and would take that
  /// free for a race.  Thread-safe.
  void keep(std::exception_ptr e) {
    std::lock_guard<std::mutex> lock(mutex);
    kept.push_back(std::move(e));
  }
};

/// A channel of `threads` workers that records its unhandled-exception
/// reports in `reports` (which must outlive it); skips the test where no
/// channel can be made.
inline std::unique_ptr<EventChannel> makeReportingChannel(Reports& reports, int threads = 2) {
  EventChannel::Options options;
  options.initialThreads = threads;
  options.onUnhandledException = [&reports](TaskId, std::exception_ptr e) {
    std::string what = "?";
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      what = x.what();
    } catch (...) {
    }
    std::lock_guard<std::mutex> lock(reports.mutex);
    reports.whats.push_back(what);
  };
  return createOrSkip(options);
}

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_TASK_REPORTS_H
