// SPDX-License-Identifier: Apache-2.0
// A CppUnit fixture base for suites run once per backend: a one-worker
// channel on backend B for every test, leak-checked.
#ifndef EVCHAN_TEST_SUPPORT_BACKEND_FIXTURE_H
#define EVCHAN_TEST_SUPPORT_BACKEND_FIXTURE_H

#include <memory>

#include <evchan/event_channel.h>

#include "support/leak_checked_fixture.h"
#include "support/waiting.h"

namespace evchan::test {

/// setUp() makes channel_, a channel on B with one worker (the test skips
/// where the build or the kernel has no B); tearDown() destroys it before
/// the descriptor count is checked.  A test may replace channel_ (after
/// resetting it) with one made differently.
template <Backend B>
class BackendChannelFixture : public LeakCheckedFixture {
 public:
  void setUp() override {
    LeakCheckedFixture::setUp();
    channel_ = createOnBackendOrSkip(B, 1);
  }

  void tearDown() override {
    channel_.reset();
    LeakCheckedFixture::tearDown();
  }

 protected:
  std::unique_ptr<EventChannel> channel_;
};

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_BACKEND_FIXTURE_H
