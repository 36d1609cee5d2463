// SPDX-License-Identifier: Apache-2.0
// Trying to break name resolution and connect-by-name through the public
// API: hostile host names and ports on every path that takes an Endpoint,
// the lenient numeric forms the C resolver reads, the family a lookup is
// asked for, ResolveEvents cancelled, re-posted and destroyed as they
// complete, channels destroyed under hundreds of lookups, and tasks that
// resolve or connect by name cancelled or shut down mid-lookup.  Real
// lookups of "localhost" and of names the resolver refuses; no internet.
// Each case ends with no descriptor and no thread more than it began with
// (the resolver's threads end once idle; an abandoned lookup's later).
#include <cppunit/extensions/HelperMacros.h>

#include <evchan/evchan.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/race_scheduling.h"
#include "support/reclaim_on_exit.h"
#include "support/run_where.h"
#include "support/skip.h"
#include "support/slowdown.h"
#include "support/waiting.h"

namespace {

using evchan::Address;
using evchan::AddressFamily;
using evchan::Endpoint;
using evchan::Errc;
using evchan::Event;
using evchan::EventChannel;
using evchan::ResolveEvent;
using evchan::TaskHandle;
using evchan::TcpListener;
using evchan::TcpSocket;
using evchan::UdpSocket;
using evchan::test::describe;
using evchan::test::eventually;
using evchan::test::generous;
using namespace std::chrono_literals;

#if defined(__GLIBC__)
constexpr bool kGlibc = true;
#else
constexpr bool kGlibc = false;
#endif

// A host that the resolver, not the numeric fast path, answers with
// 127.0.0.1 without asking a name server: the short form "127.1" where
// the C resolver is known to read it (glibc), else "localhost" again.
const char* const kShortLoopback = kGlibc ? "127.1" : "localhost";

// The threads of this process; -1 where the system does not list them.
int threadCount() {
  std::error_code ec;
  int count = 0;
  std::filesystem::directory_iterator it("/proc/self/task", ec);
  for (; !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) ++count;
  return ec ? -1 : count;
}

// What one resolution gave, comparable across the paths that resolve.
struct Outcome {
  std::error_code ec;
  std::vector<Address> addresses;

  bool operator==(const Outcome& other) const { return ec == other.ec && addresses == other.addresses; }
  std::string text() const {
    std::string result = describe(ec);
    for (const Address& address : addresses) result += " " + address.toString();
    return result;
  }
};

Outcome resolveHere(const Endpoint& endpoint, AddressFamily family = AddressFamily::Unspecified) {
  Outcome outcome;
  outcome.addresses = evchan::resolve(endpoint, family, outcome.ec);
  return outcome;
}

// Every address a loopback one with `port`, and at least one.
bool allLoopback(const std::vector<Address>& addresses, int port) {
  return !addresses.empty() && std::all_of(addresses.begin(), addresses.end(), [port](const Address& address) {
    return (address.host() == "127.0.0.1" || address.host() == "::1") && address.port() == port;
  });
}

std::string shortName(const std::string& host) {
  std::string shown = host.size() > 40 ? host.substr(0, 40) + "...(" + std::to_string(host.size()) + " chars)" : host;
  for (char& c : shown) {
    if (c == '\0') c = '@';
  }
  return shown;
}

// A host name the resolver refuses without asking a name server: a label
// of 64 characters, a name of more than 253, empty labels.
struct HostileName {
  std::string host;
  // Must fail, with the same error on every path.  Else the system
  // decides: a name server that drops queries makes each such lookup
  // take up to 30 s (seen in CI), so these get fewer lookups, and their
  // errors (a timeout, an unknown name) need not match exactly.
  bool refusedLocally;
};

std::vector<HostileName> hostileNames() {
  const std::string label63(63, 'a');
  return {{std::string(64, 'x') + ".localhost", true},
          {label63 + "." + label63 + "." + label63 + "." + label63 + ".invalid", true},  // 263 chars
          {std::string(100000, 'h'), true},
          {"a..b", true},
          {"..", true},
          {"localhost..", true},
          // These may reach the name server (none answers here): the
          // system's answer, whatever it is, on every path.
          {"[::1]", false},
          {"a%b", false},
          {"h\xc3\xa9llo.invalid", false},
          {"localhost.", false}};
}

class ResolveAdversarialTest : public CppUnit::TestFixture {
  CPPUNIT_TEST_SUITE(ResolveAdversarialTest);
  CPPUNIT_TEST(hostileNamesGiveOneAnswerOnEveryPath);
  CPPUNIT_TEST(badEndpointsAreRefusedByEveryCallThatTakesOne);
  CPPUNIT_TEST(edgePortsAreKept);
  CPPUNIT_TEST(lenientNumericFormsResolveAndConnectToLoopback);
  CPPUNIT_TEST(aRequestedFamilyIsTheOnlyFamilyReturned);
  CPPUNIT_TEST(cancelRacingCompletionHandsTheEventBackOnce);
  CPPUNIT_TEST(cancelOnAnotherChannelDoesNothing);
  CPPUNIT_TEST(callbackRepostsItsOwnEventRoundAfterRound);
  CPPUNIT_TEST(callbackDestroysItsOwnEvent);
  CPPUNIT_TEST(channelDestroyedUnderHundredsOfLookups);
  CPPUNIT_TEST(hundredsOfResolvesFromThreadsAndTasksWithCancels);
  CPPUNIT_TEST(connectByNameInTasksCancelledMidLookup);
  CPPUNIT_TEST(listenAndBindByNameInTasksCancelledMidLookup);
  CPPUNIT_TEST(connectByNameAsTheChannelShutsDown);
  CPPUNIT_TEST(connectByNameWithoutTimeLeft);
  CPPUNIT_TEST(deadlinesRacingLookupsInATask);
  CPPUNIT_TEST(postRacingShutdown);
  CPPUNIT_TEST_SUITE_END();

 public:
  void setUp() override {
    descriptorsAtStart_ = evchan::test::openDescriptorCountBesidesNameServerSockets();
    threadsAtStart_ = threadCount();
    channel_ = evchan::test::createOrSkip(EventChannel::Options());
  }

  // Lookups a cancel or a shutdown abandoned end on their own, and their
  // threads with them; the system resolver may hold a descriptor as it
  // ends (its sockets to the name server are not counted at all).
  void tearDown() override {
    channel_.reset();
    int descriptors = -1;
    int threads = -1;
    const bool settled = eventually(
        [&] {
          descriptors = evchan::test::openDescriptorCountBesidesNameServerSockets();
          threads = threadCount();
          return descriptors <= descriptorsAtStart_ && threads <= threadsAtStart_;
        },
        60s);
    CPPUNIT_ASSERT_MESSAGE("left behind: " + std::to_string(descriptors) + " descriptors (" +
                               std::to_string(descriptorsAtStart_) + " at the start), " + std::to_string(threads) +
                               " threads (" + std::to_string(threadsAtStart_) + ")",
                           settled);
  }

  // Each name at once as a ResolveEvent, by resolve() on a thread and in a
  // task (and, for the names refused locally, by TcpSocket::connect() in a
  // task and the throwing resolve()): one answer, never a crash.
  void hostileNamesGiveOneAnswerOnEveryPath() {
    const std::vector<HostileName> names = hostileNames();
    const int port = 9;
    std::vector<std::unique_ptr<ResolveEvent>> events;
    std::vector<std::future<Outcome>> onThreads;
    std::vector<Outcome> inTasks(names.size());
    std::vector<Outcome> connects(names.size());
    std::vector<TaskHandle> tasks;
    {
      evchan::test::ReclaimOnExit reclaim(*channel_);
      std::atomic<int> eventsBack{0};
      for (std::size_t i = 0; i < names.size(); ++i) {
        const Endpoint endpoint(names[i].host, port);
        events.push_back(std::make_unique<ResolveEvent>(endpoint));
        events.back()->setCallback([&](Event&) { eventsBack.fetch_add(1); });
        channel_->post(*events.back());
        onThreads.push_back(std::async(std::launch::async, [endpoint] { return resolveHere(endpoint); }));
        tasks.push_back(evchan::test::spawnOrSkip(*channel_, [&, i, endpoint] {
          inTasks[i] = resolveHere(endpoint);
          if (!names[i].refusedLocally) return;
          TcpSocket socket = TcpSocket::connect(endpoint, generous(60s), connects[i].ec);
          if (!connects[i].ec && !socket.isOpen()) connects[i].ec = Errc::not_open;
        }));
      }
      for (TaskHandle& task : tasks) evchan::test::joinWithin(task, 120s);
      CPPUNIT_ASSERT(eventually([&] { return eventsBack.load() == static_cast<int>(names.size()); }, 120s));
    }
    for (std::size_t i = 0; i < names.size(); ++i) {
      const std::string name = shortName(names[i].host);
      const Outcome onThread = onThreads[i].get();
      const Outcome byEvent{events[i]->error(), events[i]->addresses()};
      const auto same = [&](const Outcome& other) {
        if (names[i].refusedLocally) return other == onThread;
        return !other.ec == !onThread.ec && other.addresses == onThread.addresses;
      };
      CPPUNIT_ASSERT_MESSAGE(name + ": event " + byEvent.text() + ", thread " + onThread.text(), same(byEvent));
      CPPUNIT_ASSERT_MESSAGE(name + ": task " + inTasks[i].text() + ", thread " + onThread.text(), same(inTasks[i]));
      if (onThread.ec) {
        CPPUNIT_ASSERT_MESSAGE(name + ": failed " + onThread.text() + " with addresses", onThread.addresses.empty());
      } else {
        CPPUNIT_ASSERT_MESSAGE(name + ": not loopback: " + onThread.text(), allLoopback(onThread.addresses, port));
      }
      if (names[i].refusedLocally) {
        CPPUNIT_ASSERT_MESSAGE(name + " resolved: " + onThread.text(), onThread.ec && onThread.addresses.empty());
        // connect() reports the resolver's error, not one of its own.
        CPPUNIT_ASSERT_MESSAGE(name + ": connect " + describe(connects[i].ec) + ", resolve " + describe(onThread.ec),
                               connects[i].ec == onThread.ec);
        // The throwing form throws that error.
        try {
          evchan::resolve(Endpoint(names[i].host, port));
          CPPUNIT_FAIL(name + ": resolve() did not throw");
        } catch (const evchan::SystemError& e) {
          CPPUNIT_ASSERT_MESSAGE(name + ": threw " + describe(e.code()), e.code() == onThread.ec);
        }
      }
    }
  }

  // A NUL in the host, an empty host, a port out of range: refused before
  // any lookup by every call that takes an Endpoint, on a thread and in a
  // task, with the same error.
  void badEndpointsAreRefusedByEveryCallThatTakesOne() {
    const struct {
      Endpoint endpoint;
      Errc expected;
    } cases[] = {{Endpoint(std::string(1, '\0'), 80), Errc::bad_endpoint},
                 {Endpoint(std::string("\0localhost", 10), 80), Errc::bad_endpoint},
                 {Endpoint(std::string("localhost\0", 10), 80), Errc::bad_endpoint},
                 {Endpoint(std::string("127.0.0.1\0", 10), 80), Errc::bad_endpoint},
                 {Endpoint(std::string("::1\0evil", 8), 80), Errc::bad_endpoint},
                 {Endpoint("", 80), Errc::empty_host},
                 {Endpoint("localhost", INT_MAX), Errc::port_out_of_range},
                 {Endpoint("localhost", INT_MIN), Errc::port_out_of_range},
                 {Endpoint("127.0.0.1", 65536), Errc::port_out_of_range},
                 {Endpoint("::1", -1), Errc::port_out_of_range}};
    for (const auto& c : cases) {
      const std::string name = shortName(c.endpoint.host) + ":" + std::to_string(c.endpoint.port);
      // As a ResolveEvent: refused at post(), never in flight.
      ResolveEvent event(c.endpoint);
      std::error_code posted;
      channel_->post(event, posted);
      CPPUNIT_ASSERT_MESSAGE(name + ": post " + describe(posted), posted == c.expected && !event.inFlight());
      try {
        channel_->post(event);
        CPPUNIT_FAIL(name + ": post() did not throw");
      } catch (const evchan::SystemError& e) {
        CPPUNIT_ASSERT_MESSAGE(name + ": post threw " + describe(e.code()), e.code() == c.expected);
      }
      // The calls that resolve, here and in a task.
      for (bool inTask : {false, true}) {
        std::vector<std::error_code> results;
        auto calls = [&] {
          std::error_code ec;
          CPPUNIT_ASSERT(evchan::resolve(c.endpoint, AddressFamily::Unspecified, ec).empty());
          results.push_back(ec);
          TcpSocket socket = TcpSocket::connect(c.endpoint, 5s, ec);
          CPPUNIT_ASSERT(!socket.isOpen());
          results.push_back(ec);
          UdpSocket udp = UdpSocket::open(AddressFamily::IPv4);
          udp.bind(c.endpoint, ec);
          results.push_back(ec);
        };
        if (inTask) {
          TaskHandle task = evchan::test::spawnOrSkip(*channel_, calls);
          evchan::test::joinWithin(task);
        } else {
          calls();
        }
        const char* const what[] = {"resolve", "connect", "UdpSocket::bind"};
        CPPUNIT_ASSERT_EQUAL(std::size_t(3), results.size());
        for (std::size_t i = 0; i < results.size(); ++i) {
          CPPUNIT_ASSERT_MESSAGE(name + (inTask ? " in a task: " : ": ") + what[i] + " " + describe(results[i]),
                                 results[i] == c.expected);
        }
      }
    }
  }

  // Ports 0 and 65535 are valid: kept as given on a name and on a number.
  void edgePortsAreKept() {
    evchan::test::ReclaimOnExit reclaim(*channel_);
    for (int port : {0, 1, 65535}) {
      for (const char* host : {"localhost", "127.0.0.1", kShortLoopback}) {
        ResolveEvent event(Endpoint(host, port));
        channel_->post(event);
        CPPUNIT_ASSERT(channel_->getEvent(generous(30s)) == &event);
        ASSERT_NO_ERROR(event.error());
        const Outcome outcome{event.error(), event.addresses()};
        CPPUNIT_ASSERT_MESSAGE(std::string(host) + ":" + std::to_string(port) + ": " + outcome.text(),
                               allLoopback(event.addresses(), port));
      }
    }
  }

  // The short and hexadecimal IPv4 forms and the IPv4-mapped IPv6 form are
  // not the strict numeric hosts resolved at post(); the C resolver reads
  // them, and a connect by such a name reaches a listener on 127.0.0.1.
  void lenientNumericFormsResolveAndConnectToLoopback() {
    TcpListener listener = TcpListener::listen(Endpoint("127.0.0.1", 0));
    const int port = listener.port();
    // glibc reads every IPv4 form here (inet_aton); every IPv6 resolver
    // reads the mapped ones.  Elsewhere a form the resolver refuses is
    // skipped.
    const struct {
      const char* host;
      bool everywhere;
    } forms[] = {{"127.1", kGlibc},      {"2130706433", kGlibc},       {"0x7f.1", kGlibc},
                 {"0x7f000001", kGlibc}, {"0177.0.0.1", kGlibc},       {"::ffff:127.0.0.1", true},
                 {"::ffff:7f00:1", true}, {"0:0:0:0:0:ffff:127.0.0.1", true}};
    for (const auto& form : forms) {
      const Endpoint endpoint(form.host, port);
      const Outcome onThread = resolveHere(endpoint);
      if (onThread.ec && !form.everywhere) continue;  // not this system's C resolver
      const std::vector<Address> expected{Address::fromNumeric("127.0.0.1", port, AddressFamily::IPv4)};
      CPPUNIT_ASSERT_MESSAGE(std::string(form.host) + ": " + onThread.text(), onThread.addresses == expected);
      ResolveEvent event(endpoint);
      {
        evchan::test::ReclaimOnExit reclaim(*channel_);
        channel_->post(event);
        CPPUNIT_ASSERT(channel_->getEvent(generous(30s)) == &event);
      }
      CPPUNIT_ASSERT_MESSAGE(form.host, (Outcome{event.error(), event.addresses()} == onThread));
      channel_ = evchan::test::createOrSkip(EventChannel::Options());
      for (bool inTask : {false, true}) {
        std::error_code ec;
        Address peer;
        auto connect = [&] {
          TcpSocket socket = TcpSocket::connect(endpoint, generous(30s), ec);
          if (!ec) peer = socket.peerAddress();
        };
        if (inTask) {
          TaskHandle task = evchan::test::spawnOrSkip(*channel_, connect);
          evchan::test::joinWithin(task, 60s);
        } else {
          connect();
        }
        ASSERT_NO_ERROR(ec);
        CPPUNIT_ASSERT_EQUAL_MESSAGE(form.host, expected[0].toString(), peer.toString());
        TcpSocket accepted = listener.accept();
        CPPUNIT_ASSERT(accepted.isOpen());
      }
    }
  }

  // A lookup asked for one family returns addresses of that family only,
  // or none (an error): a literal of the other family, a mapped one too.
  void aRequestedFamilyIsTheOnlyFamilyReturned() {
    const struct {
      const char* host;
      AddressFamily family;
    } cases[] = {{"::ffff:127.0.0.1", AddressFamily::IPv6}, {"::ffff:7f00:1", AddressFamily::IPv6},
                 {"::1", AddressFamily::IPv4},              {"127.0.0.1", AddressFamily::IPv6},
                 {kShortLoopback, AddressFamily::IPv6},     {"localhost", AddressFamily::IPv4},
                 {"::ffff:127.0.0.1", AddressFamily::IPv4}};
    evchan::test::ReclaimOnExit reclaim(*channel_);
    for (const auto& c : cases) {
      const std::string name = std::string(c.host) + (c.family == AddressFamily::IPv4 ? " (IPv4)" : " (IPv6)");
      const Endpoint endpoint(c.host, 7);
      ResolveEvent event(endpoint, c.family);
      channel_->post(event);
      CPPUNIT_ASSERT(channel_->getEvent(generous(30s)) == &event);
      const Outcome byEvent{event.error(), event.addresses()};
      const Outcome onThread = resolveHere(endpoint, c.family);
      CPPUNIT_ASSERT_MESSAGE(name + ": event " + byEvent.text() + ", thread " + onThread.text(), byEvent == onThread);
      for (const Address& address : byEvent.addresses) {
        CPPUNIT_ASSERT_MESSAGE(name + " gave " + address.toString(), address.family() == c.family);
      }
      CPPUNIT_ASSERT_MESSAGE(name + ": " + byEvent.text(), !byEvent.ec == !byEvent.addresses.empty());
    }
  }

  // post() then cancel() at once, staggered so that the cancel lands
  // before, during and after the lookup: the event comes back exactly
  // once, cancelled (no addresses) or resolved, as cancel() said; a second
  // cancel() does nothing; it may be re-posted at once; and it is
  // destroyed as soon as it is back, while an abandoned lookup may still
  // run (which must never touch it: ASan watches).
  void cancelRacingCompletionHandsTheEventBackOnce() {
    constexpr int kRounds = 400;
    int cancelled = 0;
    // The channel's own threads and any other, not the resolver's: none yet.
    const int threadsBesidesWorkers = threadCount() - channel_->poolStats().current;
    for (int round = 0; round < kRounds; ++round) {
      const int port = 1000 + round;
      auto event = std::make_unique<ResolveEvent>(Endpoint(round % 2 ? "localhost" : kShortLoopback, port),
                                                  AddressFamily::IPv4);
      channel_->post(*event);
      evchan::test::stagger((round % 40) * (round % 40));  // 0 to 1521 steps
      const bool wasCancelled = channel_->cancel(*event);
      const bool again = channel_->cancel(*event);
      Event* back = channel_->getEvent(generous(30s));
      const std::string at = "round " + std::to_string(round) + ": ";
      CPPUNIT_ASSERT_MESSAGE(at + "not handed back", back == event.get());
      CPPUNIT_ASSERT_MESSAGE(at + "cancelled twice", !again);
      CPPUNIT_ASSERT_MESSAGE(at + "handed back twice", channel_->getEvent(0s) == nullptr);
      const Outcome outcome{event->error(), event->addresses()};
      if (wasCancelled) {
        ++cancelled;
        CPPUNIT_ASSERT_MESSAGE(at + "cancel() said yes: " + outcome.text(),
                               outcome.ec == std::errc::operation_canceled && outcome.addresses.empty());
        if (round % 3 == 0) {  // at once into a lookup of its own
          channel_->post(*event);
          CPPUNIT_ASSERT(channel_->getEvent(generous(30s)) == event.get());
          const Outcome reposted{event->error(), event->addresses()};
          CPPUNIT_ASSERT_MESSAGE(at + "re-posted: " + reposted.text(),
                                 !reposted.ec && allLoopback(reposted.addresses, port));
        }
      } else {
        CPPUNIT_ASSERT_MESSAGE(at + "cancel() said no: " + outcome.text(),
                               !outcome.ec && allLoopback(outcome.addresses, port));
      }
      event.reset();
    }
    // Once every abandoned lookup has ended (the resolver threads gone),
    // nothing more comes back.
    const auto besidesWorkers = [&] { return threadCount() - channel_->poolStats().current; };
    CPPUNIT_ASSERT(threadCount() < 0 || eventually([&] { return besidesWorkers() <= threadsBesidesWorkers; }, 60s));
    CPPUNIT_ASSERT(channel_->getEvent(0s) == nullptr);
    // Not a timing assertion: only that the cancels did not all miss.
    std::printf("[resolve-adversarial] %d of %d lookups cancelled\n", cancelled, kRounds);
  }

  void cancelOnAnotherChannelDoesNothing() {
    std::unique_ptr<EventChannel> other = evchan::test::createOrSkip(EventChannel::Options());
    ResolveEvent never(Endpoint("localhost", 1));
    CPPUNIT_ASSERT(!channel_->cancel(never));
    evchan::test::ReclaimOnExit reclaim(*channel_);
    for (int round = 0; round < 50; ++round) {
      ResolveEvent event(Endpoint("localhost", 2));
      channel_->post(event);
      CPPUNIT_ASSERT(!other->cancel(event));
      CPPUNIT_ASSERT(channel_->getEvent(generous(30s)) == &event);
      ASSERT_NO_ERROR(event.error());
      CPPUNIT_ASSERT(allLoopback(event.addresses(), 2));
    }
  }

  // The callback re-posts its event (numeric hosts complete inside that
  // post(), names later) and tries to cancel it, which it cannot: its own
  // completion is under way.
  void callbackRepostsItsOwnEventRoundAfterRound() {
    constexpr int kRounds = 300;
    std::atomic<int> completions{0};
    std::atomic<int> selfCancels{0};
    std::mutex mutex;
    std::string wrong;
    ResolveEvent event(Endpoint("localhost", 1), AddressFamily::IPv4);
    evchan::test::ReclaimOnExit reclaim(*channel_);
    event.setCallback([&](Event& back) {
      auto& lookup = static_cast<ResolveEvent&>(back);
      // Counted once checked: the test reads the checks' results as soon
      // as it sees the last count.  Completions come one at a time.
      const int n = completions.load() + 1;
      if (lookup.error() || !allLoopback(lookup.addresses(), n)) {
        std::lock_guard<std::mutex> lock(mutex);
        if (wrong.empty()) wrong = "completion " + std::to_string(n) + ": " + describe(lookup.error());
      }
      if (channel_->cancel(back)) selfCancels.fetch_add(1);
      completions.store(n);
      if (n == kRounds) return;
      const char* const hosts[] = {"localhost", "127.0.0.1", kShortLoopback};
      lookup.setEndpoint(Endpoint(hosts[n % 3], n + 1), AddressFamily::IPv4);
      std::error_code ec;
      channel_->post(back, ec);
      if (ec) {
        std::lock_guard<std::mutex> lock(mutex);
        if (wrong.empty()) wrong = "re-post " + std::to_string(n) + ": " + describe(ec);
        completions.store(kRounds);
      }
    });
    channel_->post(event);
    CPPUNIT_ASSERT_MESSAGE(std::to_string(completions.load()) + " completions",
                           eventually([&] { return completions.load() >= kRounds && !event.inFlight(); }, 120s));
    std::lock_guard<std::mutex> lock(mutex);
    CPPUNIT_ASSERT_MESSAGE(wrong, wrong.empty());
    CPPUNIT_ASSERT_EQUAL(kRounds, completions.load());
    CPPUNIT_ASSERT_EQUAL(0, selfCancels.load());
  }

  // Handed to its callback, an event may be destroyed there (event.h): the
  // callback deletes its own event, the std::function running it with it,
  // and neither the channel nor an abandoned lookup may touch it after
  // (ASan watches).  The last rounds are still under way at shutdown().
  void callbackDestroysItsOwnEvent() {
    constexpr int kEvents = 400;
    const std::string refused = std::string(64, 'x') + ".localhost";
    const std::string hosts[] = {"localhost", "127.0.0.1", kShortLoopback, refused};
    std::atomic<int> completions{0};
    std::atomic<int> wrong{0};
    for (int i = 0; i < kEvents; ++i) {
      auto* event = new ResolveEvent(Endpoint(hosts[i % 4], i));
      std::atomic<int>* done = &completions;
      std::atomic<int>* bad = &wrong;
      event->setCallback([done, bad, i](Event& back) {
        auto* lookup = static_cast<ResolveEvent*>(&back);
        const bool right = lookup->error() == std::errc::operation_canceled
                               ? lookup->addresses().empty()
                               : i % 4 == 3 ? lookup->error() && lookup->addresses().empty()
                                            : !lookup->error() && allLoopback(lookup->addresses(), i);
        // Deleting the event destroys this lambda: its captures first.
        std::atomic<int>* const doneCount = done;
        std::atomic<int>* const badCount = bad;
        delete lookup;
        if (!right) badCount->fetch_add(1);
        doneCount->fetch_add(1);
      });
      std::error_code ec;
      channel_->post(*event, ec);
      if (ec) {
        delete event;
        CPPUNIT_FAIL("post " + std::to_string(i) + ": " + describe(ec));
      }
    }
    channel_->shutdown();
    CPPUNIT_ASSERT_MESSAGE(std::to_string(completions.load()) + " of " + std::to_string(kEvents) + " came back",
                           eventually([&] { return completions.load() == kEvents; }));
    CPPUNIT_ASSERT_EQUAL(0, wrong.load());
  }

  // Channels destroyed (no shutdown() first) with hundreds of lookups
  // queued or running, some just cancelled: every event is back, once,
  // with an answer or operation_canceled, and nothing is left running.
  void channelDestroyedUnderHundredsOfLookups() {
    constexpr int kRounds = 8;
    constexpr int kLookups = 200;
    const std::string refused = std::string(64, 'x') + ".localhost";
    const std::string hosts[] = {"localhost", kShortLoopback, "127.0.0.1", refused};
    for (int round = 0; round < kRounds; ++round) {
      std::vector<std::unique_ptr<ResolveEvent>> events;
      std::vector<std::unique_ptr<std::atomic<int>>> calls;
      {
        std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(2);
        for (int i = 0; i < kLookups; ++i) {
          events.push_back(std::make_unique<ResolveEvent>(Endpoint(hosts[i % 4], i)));
          calls.push_back(std::make_unique<std::atomic<int>>(0));
          if (i % 2 == 0) {
            std::atomic<int>* count = calls.back().get();
            events.back()->setCallback([count](Event&) { count->fetch_add(1); });
          }
          channel->post(*events.back());
          if (i % 5 == 4) channel->cancel(*events[static_cast<std::size_t>(i - round % 5)]);
        }
      }
      for (int i = 0; i < kLookups; ++i) {
        const ResolveEvent& event = *events[static_cast<std::size_t>(i)];
        const std::string at = "round " + std::to_string(round) + ", lookup " + std::to_string(i) + " (" +
                               shortName(event.endpoint().host) + "): ";
        CPPUNIT_ASSERT_MESSAGE(at + "still in flight", !event.inFlight());
        if (i % 2 == 0) CPPUNIT_ASSERT_EQUAL_MESSAGE(at + "callbacks", 1, calls[static_cast<std::size_t>(i)]->load());
        const Outcome outcome{event.error(), event.addresses()};
        const bool right = outcome.ec == std::errc::operation_canceled
                               ? outcome.addresses.empty()
                               : i % 4 == 3 ? outcome.ec && outcome.addresses.empty()
                                            : !outcome.ec && allLoopback(outcome.addresses, i);
        CPPUNIT_ASSERT_MESSAGE(at + outcome.text(), right);
      }
    }
  }

  // Threads call resolve() while tasks resolve on the channel's resolver
  // threads, hundreds of lookups queued, and a third of the tasks are
  // cancelled as they start: cancelled ones end resolved or cancelled,
  // the others resolved.
  void hundredsOfResolvesFromThreadsAndTasksWithCancels() {
    constexpr int kThreads = 6;
    constexpr int kPerThread = 40;
    constexpr int kTasks = 240;
    struct TaskResult {
      std::atomic<bool> started{false};
      std::atomic<int> resolved{0};
      std::atomic<bool> sawCancel{false};
      std::string wrong;
    };
    std::vector<std::unique_ptr<TaskResult>> results;
    std::vector<TaskHandle> tasks;
    std::atomic<int> threadFailures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          const Outcome outcome = resolveHere(Endpoint(i % 2 ? "localhost" : kShortLoopback, t * 100 + i));
          if (outcome.ec || !allLoopback(outcome.addresses, t * 100 + i)) threadFailures.fetch_add(1);
        }
      });
    }
    for (int i = 0; i < kTasks; ++i) {
      results.push_back(std::make_unique<TaskResult>());
      TaskResult* result = results.back().get();
      tasks.push_back(evchan::test::spawnOrSkip(*channel_, [result, i] {
        result->started = true;
        for (int step = 0; step < 3; ++step) {
          const int port = i * 3 + step;
          const Outcome outcome = resolveHere(Endpoint(step % 2 ? kShortLoopback : "localhost", port));
          if (outcome.ec == std::errc::operation_canceled) {
            result->sawCancel = true;
            return;
          }
          if (outcome.ec || !allLoopback(outcome.addresses, port)) {
            result->wrong = "step " + std::to_string(step) + ": " + outcome.text();
            return;
          }
          result->resolved.fetch_add(1);
        }
      }));
      if (i % 3 == 0) {  // before it runs, or in one of its lookups
        if (i % 2 == 0) CPPUNIT_ASSERT(eventually([&] { return result->started.load(); }));
        evchan::test::stagger(i % 5);
        tasks.back().cancel();
      }
    }
    for (std::thread& thread : threads) thread.join();
    for (TaskHandle& task : tasks) evchan::test::joinWithin(task, 120s);
    CPPUNIT_ASSERT_EQUAL(0, threadFailures.load());
    int cancelledSeen = 0;
    for (int i = 0; i < kTasks; ++i) {
      const TaskResult& result = *results[static_cast<std::size_t>(i)];
      const std::string at = "task " + std::to_string(i) + ": ";
      CPPUNIT_ASSERT_MESSAGE(at + result.wrong, result.wrong.empty());
      if (i % 3 == 0) {
        CPPUNIT_ASSERT_MESSAGE(at + "neither resolved nor cancelled", result.sawCancel || result.resolved == 3);
        if (result.sawCancel) ++cancelledSeen;
      } else {
        CPPUNIT_ASSERT_MESSAGE(at + "cancelled, never asked to be", !result.sawCancel);
        CPPUNIT_ASSERT_EQUAL_MESSAGE(at, 3, result.resolved.load());
      }
    }
    std::printf("[resolve-adversarial] %d of %d cancelled tasks saw the cancel\n", cancelledSeen, kTasks / 3 + 1);
  }

  // TcpSocket::connect() by name in tasks cancelled as they start: each
  // ends connected (to the listener) or cancelled with a closed socket.
  void connectByNameInTasksCancelledMidLookup() {
    TcpListener listener = TcpListener::listen(Endpoint("127.0.0.1", 0));
    const int port = listener.port();
    constexpr int kTasks = 120;
    std::vector<std::string> outcomes(kTasks);
    std::vector<TaskHandle> tasks;
    for (int i = 0; i < kTasks; ++i) {
      auto started = std::make_shared<std::atomic<bool>>(false);
      tasks.push_back(evchan::test::spawnOrSkip(*channel_, [&, i, port, started] {
        started->store(true);
        std::error_code ec;
        TcpSocket socket = TcpSocket::connect(Endpoint("localhost", port), generous(60s), ec);
        if (ec == std::errc::operation_canceled) {
          outcomes[static_cast<std::size_t>(i)] = socket.isOpen() ? "cancelled, socket open" : "cancelled";
        } else if (ec) {
          outcomes[static_cast<std::size_t>(i)] = describe(ec);
        } else {
          std::error_code peerError;
          const Address peer = socket.peerAddress(peerError);
          outcomes[static_cast<std::size_t>(i)] =
              !peerError && peer.port() == port ? "connected" : "connected to " + peer.toString();
        }
      }));
      // Before the task runs, or as its lookup or connect is under way.
      if (i % 4 != 3) {
        if (i % 4 != 0) CPPUNIT_ASSERT(eventually([&] { return started->load(); }));
        evchan::test::stagger(i % 6);
        tasks.back().cancel();
      }
    }
    for (TaskHandle& task : tasks) evchan::test::joinWithin(task, 120s);
    int cancelled = 0;
    for (int i = 0; i < kTasks; ++i) {
      const std::string& outcome = outcomes[static_cast<std::size_t>(i)];
      const std::string at = "task " + std::to_string(i) + ": " + outcome;
      if (i % 4 == 3) {
        CPPUNIT_ASSERT_MESSAGE(at, outcome == "connected");
      } else {
        CPPUNIT_ASSERT_MESSAGE(at, outcome == "connected" || outcome == "cancelled");
        if (outcome == "cancelled") ++cancelled;
      }
    }
    std::printf("[resolve-adversarial] %d of %d connects cancelled\n", cancelled, kTasks * 3 / 4);
  }

  // TcpListener::listen() and UdpSocket::bind() by name in tasks
  // cancelled before they run or in the lookup: each ends listening
  // (bound) on loopback or cancelled, with nothing left open.
  void listenAndBindByNameInTasksCancelledMidLookup() {
    constexpr int kTasks = 80;
    std::vector<std::string> outcomes(kTasks);
    std::vector<TaskHandle> tasks;
    for (int i = 0; i < kTasks; ++i) {
      auto started = std::make_shared<std::atomic<bool>>(false);
      tasks.push_back(evchan::test::spawnOrSkip(*channel_, [&outcomes, i, started] {
        started->store(true);
        std::string& outcome = outcomes[static_cast<std::size_t>(i)];
        std::error_code ec;
        if (i % 2 == 0) {
          TcpListener listener = TcpListener::listen(Endpoint("localhost", 0), 16, ec);
          if (!ec) outcome = listener.isOpen() && listener.port() > 0 ? "done" : "listening nowhere";
        } else {
          UdpSocket socket = UdpSocket::open(AddressFamily::IPv4);
          socket.bind(Endpoint("localhost", 0), ec);
          if (!ec) outcome = socket.localAddress().host() == "127.0.0.1" ? "done" : socket.localAddress().toString();
        }
        if (ec) outcome = ec == std::errc::operation_canceled ? "cancelled" : describe(ec);
      }));
      if (i % 4 != 3) {
        if (i % 4 != 0) CPPUNIT_ASSERT(eventually([&] { return started->load(); }));
        evchan::test::stagger(i % 6);
        tasks.back().cancel();
      }
    }
    for (TaskHandle& task : tasks) evchan::test::joinWithin(task, 120s);
    int cancelled = 0;
    for (int i = 0; i < kTasks; ++i) {
      const std::string& outcome = outcomes[static_cast<std::size_t>(i)];
      const std::string at = "task " + std::to_string(i) + (i % 2 ? " (bind): " : " (listen): ") + outcome;
      CPPUNIT_ASSERT_MESSAGE(at, outcome == "done" || (i % 4 != 3 && outcome == "cancelled"));
      if (outcome == "cancelled") ++cancelled;
    }
    std::printf("[resolve-adversarial] %d of %d listens and binds cancelled\n", cancelled, kTasks * 3 / 4);
  }

  // Tasks connecting by name again and again when the channel shuts down:
  // shutdown() returns (every task ends), each task's last connect having
  // succeeded or failed with operation_canceled or channel_shut_down.
  void connectByNameAsTheChannelShutsDown() {
    TcpListener listener = TcpListener::listen(Endpoint("127.0.0.1", 0));
    const int port = listener.port();
    constexpr int kTasks = 30;
    constexpr int kConnectsEach = 8;  // all fit in the listen backlog: nothing accepts
    std::atomic<int> connected{0};
    std::vector<std::error_code> ends(kTasks);
    std::vector<TaskHandle> tasks;
    for (int i = 0; i < kTasks; ++i) {
      tasks.push_back(evchan::test::spawnOrSkip(*channel_, [&, i, port] {
        for (int n = 0; n < kConnectsEach; ++n) {
          std::error_code ec;
          const Endpoint endpoint(n % 2 ? "localhost" : kShortLoopback, port);
          TcpSocket socket = TcpSocket::connect(endpoint, generous(60s), ec);
          if (ec) {
            ends[static_cast<std::size_t>(i)] = ec;
            return;
          }
          connected.fetch_add(1);
        }
      }));
    }
    CPPUNIT_ASSERT(eventually([&] { return connected.load() >= kTasks; }, 60s));
    channel_->shutdown();
    for (TaskHandle& task : tasks) CPPUNIT_ASSERT(task.done());
    for (int i = 0; i < kTasks; ++i) {
      const std::error_code& ec = ends[static_cast<std::size_t>(i)];
      CPPUNIT_ASSERT_MESSAGE("task " + std::to_string(i) + ": " + describe(ec),
                             !ec || ec == std::errc::operation_canceled || ec == Errc::channel_shut_down);
    }
  }

  // In a task, a connect by name with no time left fails with timed_out
  // (the lookup alone would take longer), one with a negative timeout
  // with Errc::negative_timeout; neither leaves a socket open.
  void connectByNameWithoutTimeLeft() {
    TcpListener listener = TcpListener::listen(Endpoint("127.0.0.1", 0));
    const int port = listener.port();
    std::error_code zero;
    std::error_code negative;
    bool open = false;
    TaskHandle task = evchan::test::spawnOrSkip(*channel_, [&] {
      TcpSocket first = TcpSocket::connect(Endpoint("localhost", port), evchan::Duration::zero(), zero);
      TcpSocket second = TcpSocket::connect(Endpoint("localhost", port), -1ms, negative);
      open = first.isOpen() || second.isOpen();
    });
    evchan::test::joinWithin(task);
    ASSERT_ERROR(std::errc::timed_out, zero);
    ASSERT_ERROR(Errc::negative_timeout, negative);
    CPPUNIT_ASSERT(!open);
  }

  // A task's deadline (this_task::withTimeout) ends a lookup under way
  // (its ResolveEvent lives on the task's stack, which goes on): each
  // round resolves or times out; a deadline already passed times out a
  // name and lets a numeric host, which needs no wait, resolve.
  void deadlinesRacingLookupsInATask() {
    constexpr int kRounds = 300;
    std::string wrong;
    int timedOut = 0;
    std::error_code passedName;
    std::error_code passedNumber;
    TaskHandle task = evchan::test::spawnOrSkip(*channel_, [&] {
      for (int round = 0; round < kRounds && wrong.empty(); ++round) {
        const int port = 2000 + round;
        const Endpoint endpoint(round % 2 ? "localhost" : kShortLoopback, port);
        std::error_code ec;
        std::vector<Address> addresses;
        try {
          addresses = evchan::this_task::withTimeout(std::chrono::microseconds((round % 25) * 4),
                                                     [&] { return evchan::resolve(endpoint); });
        } catch (const evchan::SystemError& e) {
          ec = e.code();
        }
        if (ec == std::errc::timed_out && addresses.empty()) {
          ++timedOut;
        } else if (ec || !allLoopback(addresses, port)) {
          wrong = "round " + std::to_string(round) + ": " + Outcome{ec, addresses}.text();
        }
      }
      evchan::this_task::withTimeout(-1ms, [&] {
        evchan::resolve(Endpoint("localhost", 1), AddressFamily::Unspecified, passedName);
        evchan::resolve(Endpoint("127.0.0.1", 1), AddressFamily::Unspecified, passedNumber);
      });
    });
    evchan::test::joinWithin(task, 120s);
    CPPUNIT_ASSERT_MESSAGE(wrong, wrong.empty());
    ASSERT_ERROR(std::errc::timed_out, passedName);
    ASSERT_NO_ERROR(passedNumber);
    std::printf("[resolve-adversarial] %d of %d lookups timed out\n", timedOut, kRounds);
  }

  // One thread posts lookups while another shuts the channel down: each
  // post() is refused (channel_shut_down, not in flight) or accepted, and
  // an accepted event comes back, once, resolved or cancelled, by the
  // time the channel is destroyed.
  void postRacingShutdown() {
    constexpr int kRounds = 12;
    constexpr int kEvents = 500;
    const char* const hosts[] = {"localhost", "127.0.0.1", kShortLoopback};
    int accepted = 0;
    int cancelled = 0;
    for (int round = 0; round < kRounds; ++round) {
      std::vector<std::unique_ptr<ResolveEvent>> events;
      std::vector<std::unique_ptr<std::atomic<int>>> calls;
      std::vector<std::error_code> posted(kEvents);
      for (int i = 0; i < kEvents; ++i) {
        events.push_back(std::make_unique<ResolveEvent>(Endpoint(hosts[i % 3], i)));
        calls.push_back(std::make_unique<std::atomic<int>>(0));
        if (i % 2 == 0) {
          std::atomic<int>* count = calls.back().get();
          events.back()->setCallback([count](Event&) { count->fetch_add(1); });
        }
      }
      {
        std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(2);
        std::atomic<int> progress{0};
        std::thread poster([&] {
          for (std::size_t i = 0; i < kEvents; ++i) {
            channel->post(*events[i], posted[i]);
            progress.store(static_cast<int>(i) + 1);
          }
        });
        // Some posts in, most to come, and a varying step more.
        // (A spin: eventually() sleeps a millisecond, time for every post.)
        const int before = 1 + (round % 10) * 10;
        while (progress.load() < before) std::this_thread::yield();
        evchan::test::stagger(round % 4);
        channel->shutdown();
        poster.join();
      }
      for (int i = 0; i < kEvents; ++i) {
        const ResolveEvent& event = *events[static_cast<std::size_t>(i)];
        const std::error_code& post = posted[static_cast<std::size_t>(i)];
        const int count = calls[static_cast<std::size_t>(i)]->load();
        const std::string at = "round " + std::to_string(round) + ", event " + std::to_string(i) + ": ";
        CPPUNIT_ASSERT_MESSAGE(at + "still in flight", !event.inFlight());
        CPPUNIT_ASSERT_MESSAGE(at + "callback ran " + std::to_string(count) + " times", count <= 1);
        if (post) {
          CPPUNIT_ASSERT_MESSAGE(at + "post " + describe(post), post == Errc::channel_shut_down && count == 0);
          continue;
        }
        const Outcome outcome{event.error(), event.addresses()};
        CPPUNIT_ASSERT_MESSAGE(at + outcome.text(), outcome.ec == std::errc::operation_canceled
                                                        ? outcome.addresses.empty()
                                                        : !outcome.ec && allLoopback(outcome.addresses, i));
        ++accepted;
        if (outcome.ec) ++cancelled;
      }
    }
    std::printf("[resolve-adversarial] %d of %d posts accepted, %d of them cancelled\n", accepted, kRounds * kEvents,
                cancelled);
  }

 private:
  std::unique_ptr<EventChannel> channel_;
  int descriptorsAtStart_ = -1;
  int threadsAtStart_ = -1;
};

CPPUNIT_TEST_SUITE_REGISTRATION(ResolveAdversarialTest);

}  // namespace
