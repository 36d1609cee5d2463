// SPDX-License-Identifier: Apache-2.0
// An Event built by a program compiled against older headers: the bytes the
// library keeps in Event's padding (EventAccess::wakesTask()) hold whatever
// that program's memory held, since its inline constructors never wrote
// them.  Every post() must write them, so such an event completes as any
// other: its callback runs from the run queue, never inside the post() that
// completed it.
#include <cppunit/extensions/HelperMacros.h>

#include <evchan/evchan.h>

#include <atomic>
#include <chrono>
#include <string>
#include <system_error>

#include "poller/event_access.h"
#include "support/backend_fixture.h"
#include "support/host_socket.h"
#include "support/loopback.h"
#include "support/named_suite.h"
#include "support/waiting.h"

namespace {

using namespace std::chrono_literals;
using evchan::Backend;
using evchan::DispatchEvent;
using evchan::Event;
using evchan::ReadEvent;
using evchan::test::ConnectedPair;
using evchan::test::connectPair;

template <Backend B>
class EventAbiTest : public evchan::test::BackendChannelFixture<B> {
  EVCHAN_TEST_SUITE_NAMED(EventAbiTest, suiteName());
  CPPUNIT_TEST(testUnsetMarkOfAnOlderBuildDoesNotRunTheCallbackInsidePost);
  CPPUNIT_TEST_SUITE_END();

 public:
  using evchan::test::BackendChannelFixture<B>::channel_;

  static std::string suiteName() { return std::string("EventAbiTest<") + evchan::backendName(B) + ">"; }

  // A read whose bytes are there already completes inside its post (a
  // readiness backend tries it at once).  Posted from a worker, inside a
  // dispatched function, its callback must wait for the function to end:
  // a callback run inside post() would recurse when it re-posts, and run
  // inside whatever locks the poster holds.
  void testUnsetMarkOfAnOlderBuildDoesNotRunTheCallbackInsidePost() {
    ConnectedPair pair = connectPair();
    std::error_code ec;
    pair.client.writeAll("ping", 4, ec);
    CPPUNIT_ASSERT_MESSAGE(ec.message(), !ec);
    // There before the post, so that the post's own try reads them.
    const evchan::test::UnreadBytes unread(pair.server);
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return unread.count() >= 4; }));

    char buffer[4] = {};
    ReadEvent read(pair.server, buffer, sizeof buffer);
    // What an older build's inline constructor leaves: the byte set.
    evchan::detail::EventAccess::wakesTask(read) = true;
    std::atomic<bool> posting{false};
    std::atomic<bool> ranInsidePost{false};
    std::atomic<bool> done{false};
    read.setCallback([&](Event&) {
      ranInsidePost = posting.load();
      done = true;
    });
    std::error_code postError;
    DispatchEvent poster([&] {
      posting = true;
      channel_->post(read, postError);
      posting = false;
    });
    channel_->post(poster);
    CPPUNIT_ASSERT_MESSAGE("the dispatched function did not come back", channel_->getEvent(10s) == &poster);
    CPPUNIT_ASSERT_MESSAGE(postError.message(), !postError);
    CPPUNIT_ASSERT_MESSAGE("the read's callback did not run", evchan::test::eventually([&] { return done.load(); }));
    CPPUNIT_ASSERT_MESSAGE("the callback ran inside post()", !ranInsidePost.load());
    CPPUNIT_ASSERT_MESSAGE(read.error().message(), !read.error());
    CPPUNIT_ASSERT_EQUAL(std::string("ping"), std::string(buffer, read.bytesTransferred()));
  }
};

}  // namespace

// The readiness backends, where a read with its bytes there completes
// inside post(); the completion backends complete it from the kernel.
CPPUNIT_TEST_SUITE_REGISTRATION(EventAbiTest<Backend::Epoll>);
CPPUNIT_TEST_SUITE_REGISTRATION(EventAbiTest<Backend::Poll>);
CPPUNIT_TEST_SUITE_REGISTRATION(EventAbiTest<Backend::Select>);
CPPUNIT_TEST_SUITE_REGISTRATION(EventAbiTest<Backend::AprPollset>);
