// SPDX-License-Identifier: Apache-2.0
// Run by slow_lookup_test with test/.libs/slow_getaddrinfo.so preloaded,
// so that every getaddrinfo() of this process takes 200 ms.  One scenario
// per run (argv[1]); it prints what it measured to stdout as "name=value"
// lines and exits 0, or writes why it failed to stderr and exits 1, or
// exits 77 when the preload is not in effect.
//
//   probe     the preload is in effect and a lookup is slow
//   numeric   numeric hosts never call getaddrinfo, in a task or not
//   ticker    on a one-worker channel a task ticks every millisecond while
//             another resolves a name, and connects by name; then, for
//             comparison, while it calls getaddrinfo itself on the worker
//   cancel    a ResolveEvent under way is cancelled by the channel's
//             shutdown and freed; resolve() in a task by shutdown; a
//             connect(Endpoint) in a task by its timeout
//   limit     lookups started while cancelled ones are still inside
//             getaddrinfo: when those come out, no more than 4 live
//             lookups run at once
//   cancel-ahead  a lookup waiting behind 4 under way starts when those
//             are cancelled, while they are still inside getaddrinfo
//   late-cancel  in rounds, a task's resolve() held in the lookup is
//             cancelled by another thread as its channel shuts down: the
//             task resumes once, on a worker, before shutdown() returns
#include <dlfcn.h>
#include <netdb.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>
#include <thread>

#include <evchan/evchan.h>

#include "support/race_scheduling.h"
#include "support/slowdown.h"

namespace {

using Clock = std::chrono::steady_clock;
using evchan::Endpoint;
using evchan::test::stagger;
using evchan::test::Watchdog;
#if defined(__linux__)
using evchan::test::becomeIdlePriority;
using evchan::test::OneCpu;
using evchan::test::sleepPrecisely;
#endif

int (*slowLookupCalls)() = nullptr;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "slow_lookup_child: %s\n", what.c_str());
  std::exit(1);
}

void check(bool condition, const std::string& what) {
  if (!condition) fail(what);
}

long millisecondsSince(Clock::time_point start) {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
}

std::unique_ptr<evchan::EventChannel> oneWorkerChannel() {
  evchan::EventChannel::Options options;
  options.initialThreads = 1;
  options.maxThreads = 1;  // no spare thread can hide a blocked worker
  return evchan::EventChannel::create(options);
}

int probe() {
  const int before = slowLookupCalls();
  const Clock::time_point start = Clock::now();
  std::error_code ec;
  evchan::resolve(Endpoint("localhost", 80), evchan::AddressFamily::Unspecified, ec);
  std::printf("lookup_ms=%ld\n", millisecondsSince(start));
  check(slowLookupCalls() > before, "resolve(localhost) did not call the preloaded getaddrinfo");
  check(millisecondsSince(start) >= 190, "the preloaded getaddrinfo was not slow");
  return 0;
}

// Each resolution of a numeric host: one address, and no getaddrinfo call.
void expectNumeric(const std::string& host, const std::string& expected, const char* where) {
  const int before = slowLookupCalls();
  const std::vector<evchan::Address> addresses = evchan::resolve(Endpoint(host, 8080));
  check(slowLookupCalls() == before, std::string(where) + ": resolve(" + host + ") called getaddrinfo");
  check(addresses.size() == 1 && addresses[0].host() == expected && addresses[0].port() == 8080,
        std::string(where) + ": resolve(" + host + ") gave " + (addresses.empty() ? "nothing" : addresses[0].toString()));
}

void numericResolutions(const char* where, int port) {
  expectNumeric("127.0.0.1", "127.0.0.1", where);
  expectNumeric("::1", "::1", where);
  expectNumeric("2001:DB8:0:0::1", "2001:db8::1", where);
  const int before = slowLookupCalls();
  evchan::TcpSocket socket = evchan::TcpSocket::connect(Endpoint("127.0.0.1", port));
  check(slowLookupCalls() == before, std::string(where) + ": connect(127.0.0.1) called getaddrinfo");
  check(socket.isOpen(), std::string(where) + ": connect(127.0.0.1) failed");
}

int numeric() {
  // listen() on a numeric host, or on none (the wildcard), looks nothing up.
  const int calls = slowLookupCalls();
  evchan::TcpListener listener = evchan::TcpListener::listen(Endpoint("127.0.0.1", 0));
  const int port = listener.localAddress().port();
  evchan::TcpListener wildcard = evchan::TcpListener::listen(Endpoint("", 0));
  check(slowLookupCalls() == calls, "listen() on 127.0.0.1 or the wildcard called getaddrinfo");
  std::unique_ptr<evchan::EventChannel> channel = evchan::EventChannel::create();
  const Clock::time_point start = Clock::now();
  numericResolutions("thread", port);
  channel->spawn([port] { numericResolutions("task", port); }).join();
  const int before = slowLookupCalls();
  evchan::ResolveEvent event(Endpoint("::1", 443));
  channel->post(event);
  evchan::Event* back = channel->getEvent(std::chrono::seconds(0));  // numeric: complete at post()
  check(back == &event, "a numeric ResolveEvent was not complete at once");
  check(!event.error() && event.addresses().size() == 1 && event.addresses()[0].toString() == "[::1]:443",
        "numeric ResolveEvent: " + event.error().message());
  check(slowLookupCalls() == before, "a numeric ResolveEvent called getaddrinfo");
  // Every one of those would have cost 200 ms with a lookup.
  std::printf("numeric_ms=%ld\n", millisecondsSince(start));
  return 0;
}

struct Ticker {
  std::atomic<int> ticks{0};
  std::atomic<bool> stop{false};
};

// Runs `work` in a task while another task of the one-worker channel ticks
// every millisecond; prints the ticks and milliseconds `work` took.
void tickWhile(evchan::EventChannel& channel, const char* name, const std::function<void()>& work) {
  Ticker ticker;
  evchan::TaskHandle ticking = channel.spawn([&ticker] {
    while (!ticker.stop.load()) {
      evchan::this_task::sleepFor(std::chrono::milliseconds(1));
      ticker.ticks.fetch_add(1);
    }
  });
  long took = 0;
  int ticks = 0;
  channel
      .spawn([&] {
        evchan::this_task::sleepFor(std::chrono::milliseconds(20));  // the ticker is under way
        const int before = ticker.ticks.load();
        const Clock::time_point start = Clock::now();
        work();
        took = millisecondsSince(start);
        ticks = ticker.ticks.load() - before;
        ticker.stop.store(true);
      })
      .join();
  ticking.join();
  std::printf("%s_ms=%ld\n%s_ticks=%d\n", name, took, name, ticks);
}

int ticker() {
  std::unique_ptr<evchan::EventChannel> channel = oneWorkerChannel();
  int calls = slowLookupCalls();
  tickWhile(*channel, "resolve", [] {
    const std::vector<evchan::Address> addresses = evchan::resolve(Endpoint("localhost", 80));
    check(!addresses.empty(), "resolve(localhost) in a task found nothing");
  });
  check(slowLookupCalls() > calls, "resolve(localhost) in a task did not call getaddrinfo");
  evchan::TcpListener listener = evchan::TcpListener::listen(Endpoint("127.0.0.1", 0));
  calls = slowLookupCalls();
  tickWhile(*channel, "connect", [&] {
    evchan::TcpSocket socket = evchan::TcpSocket::connect(Endpoint("localhost", listener.localAddress().port()));
    check(socket.isOpen(), "connect(localhost) in a task failed");
  });
  check(slowLookupCalls() > calls, "connect(localhost) in a task did not call getaddrinfo");
  calls = slowLookupCalls();
  tickWhile(*channel, "listen", [] {
    evchan::TcpListener named = evchan::TcpListener::listen(Endpoint("localhost", 0));
    check(named.isOpen(), "listen(localhost) in a task failed");
  });
  check(slowLookupCalls() > calls, "listen(localhost) in a task did not call getaddrinfo");
  // What a lookup on the worker allows: the same call, made by the task itself.
  tickWhile(*channel, "blocking", [] {
    addrinfo* result = nullptr;
    if (getaddrinfo("localhost", "80", nullptr, &result) == 0) freeaddrinfo(result);
  });
  return 0;
}

int cancel() {
  // A ResolveEvent under way, cancelled by shutdown() and freed at once;
  // its lookup ends 200 ms later and must not touch it (ASan watches).
  std::unique_ptr<evchan::EventChannel> channel = evchan::EventChannel::create();
  auto* event = new evchan::ResolveEvent(Endpoint("localhost", 80));
  std::atomic<int> completions{0};
  std::error_code result;
  event->setCallback([&](evchan::Event& back) {
    result = back.error();
    completions.fetch_add(1);
  });
  const int calls = slowLookupCalls();
  channel->post(*event);
  while (slowLookupCalls() == calls) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const Clock::time_point start = Clock::now();
  channel->shutdown();
  std::printf("shutdown_ms=%ld\n", millisecondsSince(start));
  check(completions.load() == 1 && result == std::errc::operation_canceled,
        "shutdown did not cancel the ResolveEvent under way: " + result.message());
  check(!event->inFlight(), "the cancelled ResolveEvent is still in flight");
  delete event;
  channel.reset();

  // resolve() in a task, ended by the shutdown.
  channel = evchan::EventChannel::create();
  std::error_code inTask;
  std::atomic<bool> started{false};
  evchan::TaskHandle task = channel->spawn([&] {
    started.store(true);
    evchan::resolve(Endpoint("localhost", 80), evchan::AddressFamily::Unspecified, inTask);
  });
  while (!started.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  channel->shutdown();
  task.join();
  check(inTask == std::errc::operation_canceled, "resolve() in a task at shutdown: " + inTask.message());
  channel.reset();

  // connect(Endpoint) in a task: the lookup counts toward the timeout.
  channel = evchan::EventChannel::create();
  std::error_code timedOut;
  long took = 0;
  channel
      ->spawn([&] {
        const Clock::time_point begin = Clock::now();
        evchan::TcpSocket::connect(Endpoint("localhost", 80), std::chrono::milliseconds(50), timedOut);
        took = millisecondsSince(begin);
      })
      .join();
  std::printf("timeout_ms=%ld\n", took);
  check(timedOut == std::errc::timed_out, "connect(localhost, 50 ms) in a task: " + timedOut.message());
  check(took < 190, "connect(localhost, 50 ms) in a task waited for the lookup");
  channel.reset();
  // The lookups cancelled above end now, and find nothing to touch.
  std::this_thread::sleep_for(std::chrono::milliseconds(400));

  // Lookups cancelled while their threads are stuck in them (as many as
  // the resolver runs at once) must not hold up the next one: it starts
  // while they are still inside getaddrinfo, where the preload holds them
  // until the next one has started.  (Before, it waited for one of them to
  // come back: 4 at most at once.)
  using MostAtOnce = int (*)();
  using Hold = void (*)(int);
  const auto mostAtOnce = reinterpret_cast<MostAtOnce>(dlsym(RTLD_DEFAULT, "evchan_slow_lookup_most_at_once"));
  const auto hold = reinterpret_cast<Hold>(dlsym(RTLD_DEFAULT, "evchan_slow_lookup_hold"));
  check(mostAtOnce != nullptr && hold != nullptr, "the preload has no evchan_slow_lookup_most_at_once/hold");
  channel = evchan::EventChannel::create();
  std::vector<std::unique_ptr<evchan::ResolveEvent>> stuck;
  const int before = slowLookupCalls();
  hold(1);
  for (int i = 0; i < 4; ++i) {
    stuck.push_back(std::make_unique<evchan::ResolveEvent>(Endpoint("localhost", 80)));
    channel->post(*stuck.back());
  }
  while (slowLookupCalls() < before + 4) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  for (auto& event : stuck) check(channel->cancel(*event), "a lookup under way could not be cancelled");
  for (int i = 0; i < 4; ++i) check(channel->getEvent(std::chrono::seconds(5)) != nullptr, "a cancelled lookup did not come back");
  evchan::ResolveEvent next(Endpoint("localhost", 80));
  channel->post(next);
  const auto patience = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (slowLookupCalls() < before + 5 && std::chrono::steady_clock::now() < patience) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const bool nextStarted = slowLookupCalls() >= before + 5;
  hold(0);
  check(nextStarted, "the next lookup waited for a cancelled one's thread (it did not start in 10 s)");
  check(channel->getEvent(std::chrono::seconds(5)) == &next, "the next lookup did not come back");
  check(!next.error(), "the next lookup failed: " + next.error().message());
  std::printf("most_at_once=%d\n", mostAtOnce());
  check(mostAtOnce() >= 5, "the next lookup waited for a cancelled one's thread (" + std::to_string(mostAtOnce()) +
                               " lookups at most at once)");
  channel.reset();
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  return 0;
}

// Polls `condition` until it holds or a generous patience runs out.
bool eventually(const std::function<bool()>& condition) {
  const auto deadline = Clock::now() + evchan::test::generous(std::chrono::seconds(8));
  while (!condition()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// The resolver runs at most 4 lookups at once, not counting the threads
// stuck in cancelled ones.  4 lookups are held inside getaddrinfo and
// cancelled; 8 more are posted, of which 4 start (on new threads) and are
// held too, and 4 wait.  Then only the cancelled 4 are let go: their
// threads must not take the waiting lookups while the 4 live ones run.
// (Before, they did: 8 live lookups at once.)
int limit() {
  using Count = int (*)();
  using Set = void (*)(int);
  using Restart = void (*)();
  const auto hold = reinterpret_cast<Set>(dlsym(RTLD_DEFAULT, "evchan_slow_lookup_hold"));
  const auto inside = reinterpret_cast<Count>(dlsym(RTLD_DEFAULT, "evchan_slow_lookup_inside"));
  const auto mostAtOnce = reinterpret_cast<Count>(dlsym(RTLD_DEFAULT, "evchan_slow_lookup_most_at_once"));
  const auto letGoThrough = reinterpret_cast<Set>(dlsym(RTLD_DEFAULT, "evchan_slow_lookup_let_go_through"));
  const auto restartMostAtOnce =
      reinterpret_cast<Restart>(dlsym(RTLD_DEFAULT, "evchan_slow_lookup_restart_most_at_once"));
  check(hold != nullptr && inside != nullptr && mostAtOnce != nullptr && letGoThrough != nullptr &&
            restartMostAtOnce != nullptr,
        "the preload has no evchan_slow_lookup_hold/inside/most_at_once/let_go_through/restart_most_at_once");
  std::unique_ptr<evchan::EventChannel> channel = evchan::EventChannel::create();
  check(inside() == 0, "lookups inside getaddrinfo before the start");
  const int before = slowLookupCalls();
  hold(1);
  std::vector<std::unique_ptr<evchan::ResolveEvent>> cancelled;
  for (int i = 0; i < 4; ++i) {
    cancelled.push_back(std::make_unique<evchan::ResolveEvent>(Endpoint("localhost", 80)));
    channel->post(*cancelled.back());
  }
  check(eventually([&] { return inside() == 4; }), "the first 4 lookups did not all start");
  for (auto& event : cancelled) check(channel->cancel(*event), "a lookup under way could not be cancelled");
  for (int i = 0; i < 4; ++i) {
    evchan::Event* back = channel->getEvent(evchan::test::generous(std::chrono::seconds(5)));
    check(back != nullptr && back->error() == std::errc::operation_canceled, "a cancelled lookup did not come back");
  }
  std::vector<std::unique_ptr<evchan::ResolveEvent>> live;
  for (int i = 0; i < 8; ++i) {
    live.push_back(std::make_unique<evchan::ResolveEvent>(Endpoint("localhost", 80)));
    channel->post(*live.back());
  }
  check(eventually([&] { return inside() == 8; }), "4 of the next lookups did not start beside the cancelled ones");
  // Out of getaddrinfo: the lookups that came in and are no longer inside.
  const auto out = [&] { return slowLookupCalls() - before - inside(); };
  letGoThrough(before + 4);
  check(eventually([&] { return out() >= 4; }), "the cancelled lookups did not come out when let go");
  restartMostAtOnce();
  // Now only live lookups are inside.  A waiting one that starts while the
  // first 4 are held is one too many; give the cancelled ones' threads
  // time to (wrongly) start them all.
  const auto patience = Clock::now() + evchan::test::generous(std::chrono::milliseconds(500));
  while (slowLookupCalls() < before + 12 && Clock::now() < patience) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const int startedBeside = slowLookupCalls() - before - 8;
  hold(0);
  std::set<evchan::Event*> back;
  for (int i = 0; i < 8; ++i) {
    evchan::Event* event = channel->getEvent(evchan::test::generous(std::chrono::seconds(10)));
    check(event != nullptr, "only " + std::to_string(i) + " of the 8 live lookups came back");
    check(!event->error(), "a live lookup failed: " + event->error().message());
    back.insert(event);
  }
  check(back.size() == 8, "a live lookup came back twice");
  std::printf("started_beside_4=%d\nlive_at_once=%d\n", startedBeside, mostAtOnce());
  check(startedBeside == 0, std::to_string(startedBeside) + " waiting lookups started while 4 ran");
  check(mostAtOnce() <= 4, std::to_string(mostAtOnce()) + " live lookups ran at once");
  channel.reset();
  return 0;
}

// 5 lookups: 4 held inside getaddrinfo, 1 waiting for a thread.  When the
// 4 are cancelled, their threads stay stuck in getaddrinfo; the waiting one
// must start beside them, not wait for one of them to come back.  (Before,
// it waited: it never started while they were held.)
int cancelAhead() {
  using Count = int (*)();
  using Set = void (*)(int);
  const auto hold = reinterpret_cast<Set>(dlsym(RTLD_DEFAULT, "evchan_slow_lookup_hold"));
  const auto inside = reinterpret_cast<Count>(dlsym(RTLD_DEFAULT, "evchan_slow_lookup_inside"));
  check(hold != nullptr && inside != nullptr, "the preload has no evchan_slow_lookup_hold/inside");
  std::unique_ptr<evchan::EventChannel> channel = evchan::EventChannel::create();
  const int before = slowLookupCalls();
  hold(1);
  std::vector<std::unique_ptr<evchan::ResolveEvent>> events;
  for (int i = 0; i < 5; ++i) {
    events.push_back(std::make_unique<evchan::ResolveEvent>(Endpoint("localhost", 80)));
    channel->post(*events.back());
  }
  check(eventually([&] { return inside() == 4; }), "the first 4 lookups did not all start");
  for (int i = 0; i < 4; ++i) check(channel->cancel(*events[i]), "a lookup under way could not be cancelled");
  for (int i = 0; i < 4; ++i) {
    evchan::Event* back = channel->getEvent(evchan::test::generous(std::chrono::seconds(5)));
    check(back != nullptr && back->error() == std::errc::operation_canceled, "a cancelled lookup did not come back");
  }
  const bool started = eventually([&] { return slowLookupCalls() >= before + 5; });
  std::printf("waiting_one_started=%d\n", started ? 1 : 0);
  hold(0);
  check(started, "the waiting lookup did not start while the cancelled ones ahead of it were stuck");
  check(channel->getEvent(evchan::test::generous(std::chrono::seconds(10))) == events[4].get(),
        "the waiting lookup did not come back");
  check(!events[4]->error(), "the waiting lookup failed: " + events[4]->error().message());
  channel.reset();
  return 0;
}

// A task of a one-worker channel parks in resolve(localhost), whose lookup
// the preload holds; a plain thread cancels the task (which cancels the
// ResolveEvent) just as this thread shuts the channel down.  A cancel that
// took the event from the resolver just before the shutdown's sweep used
// to complete it after the workers had left: the task then ran on the
// cancelling thread, inside TaskHandle::cancel().
int lateCancel() {
  using Hold = void (*)(int);
  using Inside = int (*)();
  const auto hold = reinterpret_cast<Hold>(dlsym(RTLD_DEFAULT, "evchan_slow_lookup_hold"));
  const auto inside = reinterpret_cast<Inside>(dlsym(RTLD_DEFAULT, "evchan_slow_lookup_inside"));
  check(hold != nullptr && inside != nullptr, "the preload has no evchan_slow_lookup_hold/inside");
  // 600 rounds (about 3 s, a tenth of it letting held lookups go): before
  // the fix each of 12 runs hung, first between rounds 79 and 419.
  const int rounds = evchan::test::raceRounds(600, "EVCHAN_LATE_WAKE_ROUNDS");
  std::map<std::string, int> tally;
  const auto letGo = [&] {
    hold(0);
    check(eventually([&] { return inside() == 0; }), "held lookups did not come out of getaddrinfo");
  };
  for (int round = 0; round < rounds; ++round) {
    // Every lookup of 100 rounds stays inside getaddrinfo until they are
    // over: no more held threads than that at once.
    if (round % 100 == 0) {
      if (round > 0) letGo();
      hold(1);
    }
#if defined(__linux__)
    const bool oneCpu = round % 2 == 1;
#else
    const bool oneCpu = false;  // OneCpu and SCHED_IDLE are Linux's
#endif
    const std::string where = "round " + std::to_string(round) + (oneCpu ? " (one CPU)" : " (spread)");
#if defined(__linux__)
    std::optional<OneCpu> pinned;
    if (oneCpu) pinned.emplace();
#endif
    evchan::EventChannel::Options options;
    options.initialThreads = 1;
    std::unique_ptr<evchan::EventChannel> channel = evchan::EventChannel::create(options);
    std::atomic<bool> parked{false}, left{false}, ready{false}, go{false};
    std::atomic<int> ends{0};
    std::thread::id before, after, canceller;
    std::error_code ec;
    const int calls = slowLookupCalls();
    evchan::TaskHandle task = channel->spawn([&] {
      before = std::this_thread::get_id();
      parked = true;
      evchan::resolve(Endpoint("localhost", 80), evchan::AddressFamily::Unspecified, ec);
      after = std::this_thread::get_id();
      ++ends;
      left = true;
    });
    std::thread cancelling([&] {
#if defined(__linux__)
      if (oneCpu) becomeIdlePriority();
#endif
      canceller = std::this_thread::get_id();
      ready = true;
      while (!go.load()) std::this_thread::yield();
      task.cancel();
    });
    // In getaddrinfo, held there: the ResolveEvent is the resolver's, and
    // the task waits for it once the worker is idle.
    check(eventually([&] { return parked.load() && slowLookupCalls() > calls; }), where + ": no lookup started");
    check(eventually([&] {
            const evchan::ThreadPoolStats stats = channel->poolStats();
            return stats.idle == stats.current;
          }),
          where + ": the task never parked");
    bool leftBeforeReturn = false;
    {
      Watchdog watchdog(where);
      while (!ready.load()) std::this_thread::yield();
      go = true;
#if defined(__linux__)
      if (oneCpu) sleepPrecisely(round / 2 % 40);
#endif
      if (!oneCpu) stagger(round % 64);
      channel->shutdown();
      leftBeforeReturn = left.load();
      cancelling.join();
      check(eventually([&] { return task.done(); }), where + ": the task never ended");
      task.join();
      channel.reset();
    }
    check(ends.load() == 1, where + ": the wait ended " + std::to_string(ends.load()) + " times");
    check(ec == std::errc::operation_canceled, where + ": resolve() ended with " + ec.message());
    check(after != canceller, where + ": the task resumed on the cancelling thread");
    check(after != std::this_thread::get_id(), where + ": the task resumed on the thread that shut its channel down");
    check(before != canceller, where + ": the task started on the cancelling thread");
    check(leftBeforeReturn, where + ": shutdown() returned before its task ended");
    ++tally[oneCpu ? "one CPU" : "spread"];
  }
  letGo();
  std::printf("rounds=%d\n", rounds);
  for (const auto& [race, count] : tally) std::printf("# %s: %d\n", race.c_str(), count);
  // The released lookups' threads find their events gone and leave.
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  slowLookupCalls = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "evchan_slow_lookup_calls"));
  if (slowLookupCalls == nullptr) {
    std::fprintf(stderr, "slow_lookup_child: the slow getaddrinfo is not preloaded (LD_PRELOAD)\n");
    return 77;
  }
  const std::string scenario = argc > 1 ? argv[1] : "";
  try {
    if (scenario == "probe") return probe();
    if (scenario == "numeric") return numeric();
    if (scenario == "ticker") return ticker();
    if (scenario == "cancel") return cancel();
    if (scenario == "limit") return limit();
    if (scenario == "cancel-ahead") return cancelAhead();
    if (scenario == "late-cancel") return lateCancel();
  } catch (const std::exception& e) {
    fail(scenario + ": " + e.what());
  }
  fail("unknown scenario: " + scenario);
}
