// SPDX-License-Identifier: Apache-2.0
// A getaddrinfo() that takes 200 ms, preloaded (LD_PRELOAD) into
// test/slow_lookup_child by slow_lookup_test: every name lookup of that
// process is then slow, so that a lookup blocking a worker shows.  It
// counts its calls (evchan_slow_lookup_calls), which also tells the child
// that the preload is in effect, then calls the real getaddrinfo.  While
// the child holds them (evchan_slow_lookup_hold), lookups stay inside
// past their 200 ms until it lets them go, asleep (a child may hold
// hundreds at once); evchan_slow_lookup_inside says how many are inside.
// evchan_slow_lookup_let_go_through(n) lets the lookups numbered up to n
// (in the order of their calls, from 1) go while the others stay held,
// and evchan_slow_lookup_restart_most_at_once starts the count of the
// most at once over from those inside now.
#include <dlfcn.h>
#include <netdb.h>
#include <time.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <mutex>

extern "C" {
__attribute__((visibility("default"))) int evchan_slow_lookup_calls(void);
__attribute__((visibility("default"))) int evchan_slow_lookup_most_at_once(void);
__attribute__((visibility("default"))) int evchan_slow_lookup_inside(void);
__attribute__((visibility("default"))) void evchan_slow_lookup_hold(int held);
__attribute__((visibility("default"))) void evchan_slow_lookup_let_go_through(int call);
__attribute__((visibility("default"))) void evchan_slow_lookup_restart_most_at_once(void);
}

namespace {

std::atomic<int> calls{0};
std::atomic<int> inside{0};
std::atomic<int> mostAtOnce{0};
std::mutex holdMutex;
std::condition_variable released;
bool holding = false;  // under holdMutex
int letGoThrough = 0;  // under holdMutex: lookups with this number or below are not held

void countInside(int now) {
  for (int most = mostAtOnce.load(); now > most && !mostAtOnce.compare_exchange_weak(most, now);) {
  }
}

using GetAddrInfo = int (*)(const char*, const char*, const struct addrinfo*, struct addrinfo**);

}  // namespace

extern "C" {

int evchan_slow_lookup_calls(void) { return calls.load(); }
int evchan_slow_lookup_most_at_once(void) { return mostAtOnce.load(); }
int evchan_slow_lookup_inside(void) { return inside.load(); }
void evchan_slow_lookup_hold(int held) {
  {
    std::lock_guard<std::mutex> lock(holdMutex);
    holding = held != 0;
  }
  if (held == 0) released.notify_all();
}
void evchan_slow_lookup_let_go_through(int call) {
  {
    std::lock_guard<std::mutex> lock(holdMutex);
    letGoThrough = call;
  }
  released.notify_all();
}
void evchan_slow_lookup_restart_most_at_once(void) {
  mostAtOnce.store(0);
  countInside(inside.load());
}

__attribute__((visibility("default"))) int getaddrinfo(const char* node, const char* service,
                                                       const struct addrinfo* hints, struct addrinfo** result) {
  static const GetAddrInfo real = reinterpret_cast<GetAddrInfo>(dlsym(RTLD_NEXT, "getaddrinfo"));
  const int call = calls.fetch_add(1) + 1;
  countInside(inside.fetch_add(1) + 1);
  struct timespec delay = {0, 200 * 1000 * 1000};
  while (nanosleep(&delay, &delay) != 0 && errno == EINTR) {
  }
  {
    std::unique_lock<std::mutex> lock(holdMutex);
    released.wait(lock, [call] { return !holding || call <= letGoThrough; });
  }
  inside.fetch_sub(1);
  return real != nullptr ? real(node, service, hints, result) : EAI_SYSTEM;
}

}  // extern "C"
