// SPDX-License-Identifier: Apache-2.0
// context_switch_bench: the one-way cost of a context switch, evchan's
// FiberContext (both implementations) beside raw Boost.Context fcontext and
// raw swapcontext, measured in one run.
//
//   context_switch_bench [--switches N]
#include <boost/context/detail/fcontext.hpp>
#include <ucontext.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "task/context/fiber_context.h"
#include "posix/stack_pool.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace fctx = boost::context::detail;
using evchan::detail::ContextKind;
using evchan::detail::FiberContext;

long gRounds = 0;

// ---- evchan FiberContext: the fiber bounces straight back each round.
struct EvchanBounce {
  FiberContext* caller;
  std::unique_ptr<FiberContext> fiber;
  static void run(void* argument) {
    auto* self = static_cast<EvchanBounce*>(argument);
    for (;;) self->fiber->switchTo(*self->caller);
  }
};

double evchanNanosPerSwitch(ContextKind kind, long rounds) {
  evchan::detail::StackPool pool(64 * 1024);
  evchan::detail::Stack stack;
  if (pool.acquire(stack)) return -1;
  std::unique_ptr<FiberContext> self = evchan::detail::makeThreadContext(kind);
  EvchanBounce bounce{self.get(), nullptr};
  bounce.fiber = evchan::detail::makeFiberContext(kind, stack.usable, &EvchanBounce::run, &bounce);
  self->switchTo(*bounce.fiber);  // warm: the first entry
  const auto start = Clock::now();
  for (long i = 0; i < rounds; ++i) self->switchTo(*bounce.fiber);
  const double ns = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
  // The fiber is parked forever in its loop; dropping it is fine for a benchmark.
  bounce.fiber.release();
  stack = evchan::detail::Stack();  // leaked on purpose with the fiber
  return ns / (2.0 * rounds);
}

// ---- raw fcontext
void rawFcontextEntry(fctx::transfer_t from) {
  for (;;) from = fctx::jump_fcontext(from.fctx, nullptr);
}

double rawFcontextNanosPerSwitch(long rounds) {
  std::vector<char> stack(64 * 1024);
  fctx::fcontext_t fiber = fctx::make_fcontext(stack.data() + stack.size(), stack.size(), rawFcontextEntry);
  fiber = fctx::jump_fcontext(fiber, nullptr).fctx;
  const auto start = Clock::now();
  for (long i = 0; i < rounds; ++i) fiber = fctx::jump_fcontext(fiber, nullptr).fctx;
  const double ns = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
  return ns / (2.0 * rounds);
}

// ---- raw swapcontext
ucontext_t gMain, gFiber;
void rawUcontextEntry() {
  for (;;) swapcontext(&gFiber, &gMain);
}

double rawUcontextNanosPerSwitch(long rounds) {
  std::vector<char> stack(64 * 1024);
  getcontext(&gFiber);
  gFiber.uc_stack.ss_sp = stack.data();
  gFiber.uc_stack.ss_size = stack.size();
  gFiber.uc_link = nullptr;
  makecontext(&gFiber, rawUcontextEntry, 0);
  swapcontext(&gMain, &gFiber);
  const auto start = Clock::now();
  for (long i = 0; i < rounds; ++i) swapcontext(&gMain, &gFiber);
  const double ns = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
  return ns / (2.0 * rounds);
}

// Best of five: the machine is shared, the minimum is the least disturbed.
template <class Measure>
double best(Measure measure) {
  double result = 1e300;
  for (int i = 0; i < 5; ++i) result = std::min(result, measure());
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  long switches = 2000000;
  if (argc == 3 && std::strcmp(argv[1], "--switches") == 0) {
    switches = std::strtol(argv[2], nullptr, 10);
  } else if (argc != 1) {
    std::fprintf(stderr, "usage: %s [--switches N]\n", argv[0]);
    return 2;
  }
  const long rounds = std::max(1L, switches / 2);
  gRounds = rounds;
  const double rawBoost = best([&] { return rawFcontextNanosPerSwitch(rounds); });
  const double rawUcontext = best([&] { return rawUcontextNanosPerSwitch(rounds); });
  const double evchanBoost = best([&] { return evchanNanosPerSwitch(ContextKind::BoostContext, rounds); });
  const double evchanUcontext = best([&] { return evchanNanosPerSwitch(ContextKind::Ucontext, rounds); });

  std::printf("one-way context switch, best of 5 runs of %ld switches\n", 2 * rounds);
  std::printf("%-28s %10s %12s\n", "context", "ns/switch", "vs raw fctx");
  std::printf("%-28s %10.1f %12.2f\n", "raw Boost.Context fcontext", rawBoost, 1.0);
  std::printf("%-28s %10.1f %12.2f\n", "raw swapcontext", rawUcontext, rawUcontext / rawBoost);
  std::printf("%-28s %10.1f %12.2f\n", "evchan boost (default)", evchanBoost, evchanBoost / rawBoost);
  std::printf("%-28s %10.1f %12.2f\n", "evchan ucontext", evchanUcontext, evchanUcontext / rawBoost);
  std::printf("target: evchan boost within 2x of raw fcontext: %.2fx (%s)\n", evchanBoost / rawBoost,
              evchanBoost <= 2 * rawBoost ? "met" : "missed");
  return 0;
}
