// SPDX-License-Identifier: Apache-2.0
// spawn_bench: what starting and joining an empty task costs, with stacks
// coming from the pool (the first round warms it).
//
//   spawn_bench [--tasks N] [--threads N]
//
// Each figure is the best of 5 rounds of N tasks (default 100,000):
//  * in a task, one at a time: a task spawns an empty task and joins it,
//    N times (the latency of spawn + run + join);
//  * in a task, in batches of 200: spawn 200, join them, and again;
//  * from a plain thread, in batches of 200 (join blocks the thread);
//  * in a task, all N at once: N stacks alive together, beyond the 256 the
//    pool caches, so most come from mmap and go back with munmap.
// Target: under 500 ns per task with pooled stacks.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <evchan/evchan.h>

namespace {

using Clock = std::chrono::steady_clock;
constexpr double kTargetNs = 500.0;
constexpr long kBatch = 200;  // within the 256 stacks a pool caches

double nsPerTask(Clock::time_point start, long tasks) {
  return std::chrono::duration<double, std::nano>(Clock::now() - start).count() / static_cast<double>(tasks);
}

double oneAtATimeInTask(evchan::EventChannel& channel, long tasks) {
  double result = 0;
  channel
      .spawn([&] {
        const Clock::time_point start = Clock::now();
        for (long i = 0; i < tasks; ++i) channel.spawn([] {}).join();
        result = nsPerTask(start, tasks);
      })
      .join();
  return result;
}

// Spawns `tasks` empty tasks, `batch` at a time, joining each batch.
double batched(evchan::EventChannel& channel, long tasks, long batch) {
  std::vector<evchan::TaskHandle> handles;
  handles.reserve(static_cast<std::size_t>(std::min(tasks, batch)));
  const Clock::time_point start = Clock::now();
  for (long done = 0; done < tasks; done += batch) {
    for (long i = done; i < std::min(tasks, done + batch); ++i) handles.push_back(channel.spawn([] {}));
    for (evchan::TaskHandle& handle : handles) handle.join();
    handles.clear();
  }
  return nsPerTask(start, tasks);
}

double batchedInTask(evchan::EventChannel& channel, long tasks, long batch) {
  double result = 0;
  channel.spawn([&] { result = batched(channel, tasks, batch); }).join();
  return result;
}

template <class Measure>
double bestOfFive(Measure measure) {
  double best = 1e300;
  for (int round = 0; round < 5; ++round) best = std::min(best, measure());
  return best;
}

[[noreturn]] void usage() {
  std::fprintf(stderr, "usage: spawn_bench [--tasks N] [--threads N]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  long tasks = 100000;
  int threads = 0;
  for (int i = 1; i < argc; ++i) {
    if (i + 1 < argc && std::strcmp(argv[i], "--tasks") == 0) {
      tasks = std::strtol(argv[++i], nullptr, 10);
    } else if (i + 1 < argc && std::strcmp(argv[i], "--threads") == 0) {
      threads = static_cast<int>(std::strtol(argv[++i], nullptr, 10));
    } else {
      usage();
    }
  }
  if (tasks <= 0 || threads < 0) usage();

  evchan::EventChannel::Options options;
  options.initialThreads = threads;
  std::unique_ptr<evchan::EventChannel> channel = evchan::EventChannel::create(options);
  const int workers = channel->poolStats().initial;

  const double oneByOne = bestOfFive([&] { return oneAtATimeInTask(*channel, tasks); });
  const double inTask = bestOfFive([&] { return batchedInTask(*channel, tasks, kBatch); });
  const double fromThread = bestOfFive([&] { return batched(*channel, tasks, kBatch); });
  const double allAtOnce = bestOfFive([&] { return batchedInTask(*channel, tasks, tasks); });

  std::printf("spawn + join of an empty task, best of 5 rounds of %ld tasks, %d worker(s), %s backend\n", tasks,
              workers, channel->backendName());
  std::printf("%-34s %10s\n", "pattern", "ns/task");
  std::printf("%-34s %10.0f\n", "in a task, one at a time", oneByOne);
  std::printf("%-34s %10.0f\n", "in a task, batches of 200", inTask);
  std::printf("%-34s %10.0f\n", "plain thread, batches of 200", fromThread);
  std::printf("%-34s %10.0f\n", "in a task, all at once (mmap'ed)", allAtOnce);
  const double best = std::min({oneByOne, inTask, fromThread});
  std::printf("target: under %.0f ns per task: %.0f ns, the best pooled pattern (%s)\n", kTargetNs, best,
              best < kTargetNs ? "met" : "missed");
  return 0;
}
