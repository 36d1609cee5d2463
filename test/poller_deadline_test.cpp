// SPDX-License-Identifier: Apache-2.0
// Every compiled poller's wait, with nothing to report, lasts until its
// deadline: an early return makes the channel poll again and again through
// the rest of the wait, and splits timers due together into separate polls.
#include <cppunit/extensions/HelperMacros.h>

#include <chrono>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include <evchan/event_channel.h>

#include "poller/poller.h"

namespace {

using evchan::Backend;
using evchan::detail::Clock;
using evchan::detail::Completion;
using evchan::detail::CompletionPoller;
using evchan::detail::Deadline;
using evchan::detail::Poller;
using evchan::detail::Readiness;
using namespace std::chrono_literals;

class PollerDeadlineTest : public CppUnit::TestFixture {
  CPPUNIT_TEST_SUITE(PollerDeadlineTest);
  CPPUNIT_TEST(testIdleWaitLastsUntilItsDeadline);
  CPPUNIT_TEST_SUITE_END();

 public:
  // Deadlines under a millisecond, between two, and past several: a
  // backend whose system call takes whole milliseconds must round up, not
  // down.
  void testIdleWaitLastsUntilItsDeadline() {
    int tried = 0;
    for (Backend backend : evchan::detail::compiledBackends()) {
      std::error_code ec;
      std::unique_ptr<Poller> poller = evchan::detail::createCompiledPoller(backend, ec);
      if (!poller) continue;  // refused by this kernel (io_uring in a container)
      ++tried;
      for (auto wait : {300us, 2500us, 7700us}) {
        const std::string what =
            std::string(evchan::backendName(backend)) + ", a wait of " + std::to_string(wait.count()) + " us";
        const Deadline deadline = Clock::now() + wait;
        // Waits until the deadline as the channel does: a wait interrupted
        // (EINTR, seen here now and then after an io_uring was closed)
        // returns early and is repeated.  One that returns early by itself
        // repeats hundreds of times.
        int calls = 0;
        std::size_t reported = 0;
        while (Clock::now() < deadline && calls < 1000) {
          ++calls;
          if (CompletionPoller* completions = poller->completions()) {
            std::vector<Completion> done;
            ec = completions->waitCompletions(done, deadline);
            reported += done.size();
          } else {
            std::vector<Readiness> ready;
            ec = poller->wait(ready, deadline);
            reported += ready.size();
          }
          CPPUNIT_ASSERT_MESSAGE(what + ": " + ec.message(), !ec);
        }
        CPPUNIT_ASSERT_EQUAL_MESSAGE(what + ": nothing is watched", std::size_t(0), reported);
        CPPUNIT_ASSERT_MESSAGE(what + " took " + std::to_string(calls) + " calls to reach its deadline", calls <= 3);
      }
    }
    CPPUNIT_ASSERT_MESSAGE("no backend could be created", tried > 0);
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(PollerDeadlineTest);

}  // namespace
