// SPDX-License-Identifier: Apache-2.0
// ResolveEvent on every backend: names looked up off the workers, numeric
// hosts at post(), bad endpoints refused at post(), unknown names failing
// with the resolver's error, every lookup handed back at shutdown.
#include <cppunit/extensions/HelperMacros.h>

#include <evchan/evchan.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "support/descriptor_names.h"
#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/named_suite.h"
#include "support/reclaim_on_exit.h"
#include "support/skip.h"
#include "support/waiting.h"

namespace {

using evchan::Address;
using evchan::AddressFamily;
using evchan::Backend;
using evchan::Endpoint;
using evchan::Errc;
using evchan::Event;
using evchan::EventChannel;
using evchan::ResolveEvent;
using evchan::test::ReclaimOnExit;

// A name that never resolves (RFC 6761 reserves .invalid).
const char* const kUnknownName = "no-such-host.invalid";

bool hasLoopback(const std::vector<Address>& addresses, int port) {
  return std::any_of(addresses.begin(), addresses.end(), [port](const Address& address) {
    return (address.host() == "127.0.0.1" || address.host() == "::1") && address.port() == port;
  });
}

template <Backend B>
class ResolveEventTest : public evchan::test::LeakCheckedFixture {
  EVCHAN_TEST_SUITE_NAMED(ResolveEventTest, suiteName());
  CPPUNIT_TEST(localhostResolvesToLoopback);
  CPPUNIT_TEST(numericHostsCompleteAtPost);
  CPPUNIT_TEST(unknownNameFailsLikeResolve);
  CPPUNIT_TEST(badEndpointsAreRefusedAtPost);
  CPPUNIT_TEST(moreLookupsThanResolverThreadsAllComplete);
  CPPUNIT_TEST(eventCanBeRepostedWithAnotherEndpoint);
  CPPUNIT_TEST(shutdownHandsBackEveryLookupOnce);
  CPPUNIT_TEST(postAfterShutdownIsRefused);
  CPPUNIT_TEST_SUITE_END();

 public:
  static std::string suiteName() { return std::string("ResolveEventTest<") + evchan::backendName(B) + ">"; }

  void setUp() override {
    LeakCheckedFixture::setUp();
    descriptorsAtStart_ = evchan::test::openDescriptorCountBesidesNameServerSockets();
    EventChannel::Options options;
    options.backend = B;
    channel_ = evchan::test::createOnBackendOrSkip(options);
  }

  void tearDown() override {
    channel_.reset();
    // A resolver thread ends just after handing its event back, and one
    // whose lookup was cancelled when the lookup ends; meanwhile the system
    // resolver holds descriptors of its own.  Its sockets to the name
    // server are not counted: where the server drops queries, an abandoned
    // lookup keeps one for 30 s and more (seen in CI).  What it holds briefly
    // (a socket not yet connected, /etc/hosts) is waited out; and the
    // count may drop below the start, when an earlier case's lookup held
    // such a descriptor as this case began.  More than at the start, after
    // that wait, is a leak.
    // The count that ended the wait is the one judged: one taken after it
    // may catch another case's lookup between making its socket and
    // connecting it.
    int left = -1;
    evchan::test::eventually(
        [&] {
          left = evchan::test::openDescriptorCountBesidesNameServerSockets();
          return left <= descriptorsAtStart_;
        },
        std::chrono::seconds(30));
    if (left > descriptorsAtStart_) {
      CPPUNIT_FAIL("descriptors open after the test (leak): " + std::to_string(left) + ", " +
                   std::to_string(descriptorsAtStart_) + " at the start; now open: " +
                   evchan::test::openDescriptorNames());
    }
  }

  void localhostResolvesToLoopback() {
    ResolveEvent event(Endpoint("localhost", 8080));
    ReclaimOnExit reclaim(*channel_);
    channel_->post(event);
    CPPUNIT_ASSERT(takeBack(event));
    ASSERT_NO_ERROR(event.error());
    CPPUNIT_ASSERT(hasLoopback(event.addresses(), 8080));
    // The same answer as resolve() on this thread.
    CPPUNIT_ASSERT(evchan::resolve(Endpoint("localhost", 8080)) == event.addresses());
    const std::vector<Address> taken = event.takeAddresses();
    CPPUNIT_ASSERT(!taken.empty() && event.addresses().empty());
  }

  void numericHostsCompleteAtPost() {
    ReclaimOnExit reclaim(*channel_);
    const struct {
      const char* host;
      AddressFamily family;
      const char* expected;
    } cases[] = {{"127.0.0.1", AddressFamily::Unspecified, "127.0.0.1:80"},
                 {"10.1.2.3", AddressFamily::IPv4, "10.1.2.3:80"},
                 {"::1", AddressFamily::Unspecified, "[::1]:80"},
                 {"FE80:0:0:0::9", AddressFamily::IPv6, "[fe80::9]:80"}};
    for (const auto& c : cases) {
      ResolveEvent event(Endpoint(c.host, 80), c.family);
      channel_->post(event);
      // No lookup: complete before post() returned.
      CPPUNIT_ASSERT_MESSAGE(c.host, channel_->getEvent(std::chrono::seconds(0)) == &event);
      ASSERT_NO_ERROR(event.error());
      CPPUNIT_ASSERT_EQUAL(std::size_t(1), event.addresses().size());
      CPPUNIT_ASSERT_EQUAL(std::string(c.expected), event.addresses()[0].toString());
    }
  }

  void unknownNameFailsLikeResolve() {
    ResolveEvent event(Endpoint(kUnknownName, 80));
    ReclaimOnExit reclaim(*channel_);
    channel_->post(event);
    CPPUNIT_ASSERT(takeBack(event));
    CPPUNIT_ASSERT_MESSAGE("an unknown name resolved", event.error());
    CPPUNIT_ASSERT(event.addresses().empty());
    std::error_code direct;
    CPPUNIT_ASSERT(evchan::resolve(Endpoint(kUnknownName, 80), AddressFamily::Unspecified, direct).empty());
    CPPUNIT_ASSERT_EQUAL(direct.value(), event.error().value());
    // The throwing form names the host.
    try {
      evchan::resolve(Endpoint(kUnknownName, 80));
      CPPUNIT_FAIL("resolve() of an unknown name did not throw");
    } catch (const evchan::SystemError& e) {
      CPPUNIT_ASSERT_MESSAGE(e.what(), std::string(e.what()).find(kUnknownName) != std::string::npos);
    }
  }

  void badEndpointsAreRefusedAtPost() {
    const struct {
      Endpoint endpoint;
      Errc expected;
    } cases[] = {{Endpoint("", 80), Errc::empty_host},
                 {Endpoint("localhost", -1), Errc::port_out_of_range},
                 {Endpoint("localhost", 65536), Errc::port_out_of_range},
                 {Endpoint(std::string("127.0.0.1\0.example.com", 23), 80), Errc::bad_endpoint}};
    for (const auto& c : cases) {
      ResolveEvent event(c.endpoint);
      std::error_code posted;
      channel_->post(event, posted);
      CPPUNIT_ASSERT(posted == c.expected);
      CPPUNIT_ASSERT(!event.inFlight());
      std::error_code ec;
      CPPUNIT_ASSERT(evchan::resolve(c.endpoint, AddressFamily::Unspecified, ec).empty());
      CPPUNIT_ASSERT(ec == c.expected);
    }
  }

  // More than the channel's resolver threads at once: the rest queue.
  void moreLookupsThanResolverThreadsAllComplete() {
    constexpr int kLookups = 24;
    std::vector<std::unique_ptr<ResolveEvent>> events;
    std::atomic<int> succeeded{0};
    std::atomic<int> completed{0};
    ReclaimOnExit reclaim(*channel_);
    for (int i = 0; i < kLookups; ++i) {
      events.push_back(std::make_unique<ResolveEvent>(Endpoint("localhost", 1000 + i)));
      const int port = 1000 + i;
      events.back()->setCallback([&, port](Event& back) {
        auto& lookup = static_cast<ResolveEvent&>(back);
        if (!lookup.error() && hasLoopback(lookup.addresses(), port)) succeeded.fetch_add(1);
        completed.fetch_add(1);
      });
      channel_->post(*events.back());
    }
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return completed.load() == kLookups; }, std::chrono::seconds(30)));
    CPPUNIT_ASSERT_EQUAL(kLookups, succeeded.load());
  }

  void eventCanBeRepostedWithAnotherEndpoint() {
    ResolveEvent event(Endpoint(kUnknownName, 1));
    ReclaimOnExit reclaim(*channel_);
    channel_->post(event);
    CPPUNIT_ASSERT(takeBack(event));
    CPPUNIT_ASSERT(event.error());
    event.setEndpoint(Endpoint("localhost", 2), AddressFamily::IPv4);
    channel_->post(event);
    CPPUNIT_ASSERT(takeBack(event));
    ASSERT_NO_ERROR(event.error());
    CPPUNIT_ASSERT(event.addresses() == std::vector<Address>{Address::fromNumeric("127.0.0.1", 2, AddressFamily::IPv4)});
  }

  // Each lookup either finished before the shutdown or is cancelled by it
  // (slow_lookup_test makes sure of one under way); never both, never lost.
  void shutdownHandsBackEveryLookupOnce() {
    constexpr int kLookups = 16;
    std::vector<std::unique_ptr<ResolveEvent>> events;
    std::atomic<int> completions{0};
    std::atomic<int> unexpected{0};
    for (int i = 0; i < kLookups; ++i) {
      events.push_back(std::make_unique<ResolveEvent>(Endpoint(i % 2 ? "localhost" : kUnknownName, 80)));
      events.back()->setCallback([&](Event& back) {
        const bool named = static_cast<ResolveEvent&>(back).endpoint().host == "localhost";
        const bool expected = back.error() == std::errc::operation_canceled || (named ? !back.error() : !!back.error());
        if (!expected) unexpected.fetch_add(1);
        completions.fetch_add(1);
      });
      channel_->post(*events.back());
    }
    channel_->shutdown();
    CPPUNIT_ASSERT_EQUAL(kLookups, completions.load());
    CPPUNIT_ASSERT_EQUAL(0, unexpected.load());
    for (const auto& event : events) CPPUNIT_ASSERT(!event->inFlight());
  }

  void postAfterShutdownIsRefused() {
    channel_->shutdown();
    ResolveEvent event(Endpoint("localhost", 80));
    std::error_code posted;
    channel_->post(event, posted);
    CPPUNIT_ASSERT(posted == Errc::channel_shut_down);
    CPPUNIT_ASSERT(!event.inFlight());
  }

 private:
  bool takeBack(Event& event) { return channel_->getEvent(std::chrono::seconds(30)) == &event; }

  std::unique_ptr<EventChannel> channel_;
  int descriptorsAtStart_ = -1;
};

// The count ResolveEventTest's tearDown checks leaves out the system
// resolver's sockets to the name server, and nothing else.
class NameServerSocketCountTest : public CppUnit::TestFixture {
  EVCHAN_TEST_SUITE_NAMED(NameServerSocketCountTest, "NameServerSocketCountTest");
  CPPUNIT_TEST(onlySocketsConnectedToPort53AreLeftOut);
  CPPUNIT_TEST_SUITE_END();

 public:
  void onlySocketsConnectedToPort53AreLeftOut() {
    const int all = evchan::test::openDescriptorCount();
    const int besides = evchan::test::openDescriptorCountBesidesNameServerSockets();
    if (all < 0 || besides < 0) EVCHAN_SKIP("this host does not list its open descriptors");
    // Connecting a UDP socket sends nothing: no server need listen.
    evchan::UdpSocket nameServer = evchan::UdpSocket::open(AddressFamily::IPv4);
    nameServer.connect(Address::fromNumeric("127.0.0.1", 53, AddressFamily::IPv4));
    evchan::UdpSocket other = evchan::UdpSocket::open(AddressFamily::IPv4);
    other.connect(Address::fromNumeric("127.0.0.1", 54, AddressFamily::IPv4));
    evchan::UdpSocket unconnected = evchan::UdpSocket::open(AddressFamily::IPv4);
    CPPUNIT_ASSERT_EQUAL(all + 3, evchan::test::openDescriptorCount());
    CPPUNIT_ASSERT_EQUAL(besides + 2, evchan::test::openDescriptorCountBesidesNameServerSockets());
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(NameServerSocketCountTest);
CPPUNIT_TEST_SUITE_REGISTRATION(ResolveEventTest<Backend::Epoll>);
CPPUNIT_TEST_SUITE_REGISTRATION(ResolveEventTest<Backend::Poll>);
CPPUNIT_TEST_SUITE_REGISTRATION(ResolveEventTest<Backend::Select>);
CPPUNIT_TEST_SUITE_REGISTRATION(ResolveEventTest<Backend::AprPollset>);
CPPUNIT_TEST_SUITE_REGISTRATION(ResolveEventTest<Backend::IoUring>);
CPPUNIT_TEST_SUITE_REGISTRATION(ResolveEventTest<Backend::Aio>);
CPPUNIT_TEST_SUITE_REGISTRATION(ResolveEventTest<Backend::Iocp>);

}  // namespace
