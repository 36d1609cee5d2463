// SPDX-License-Identifier: Apache-2.0
// file_bench: random 4 KiB reads at queue depth 32 from a large file, the
// same workload through each engine in one run:
//   * pread in a thread pool: 32 plain threads, each one read at a time;
//   * evchan's backends: 32 FileReadEvents kept in flight on a channel,
//     each re-posted from its callback (io_uring submits IORING_OP_READ;
//     aio performs them with POSIX aio; epoll runs each pread on a worker
//     the pool counts as blocked).
//
//   file_bench [--file PATH] [--megabytes N] [--seconds S] [--depth N]
//
// The file (default /tmp/evchan-file-bench.dat, 1 GiB) is created once,
// filled, and kept for later runs.  It is read through the page cache: on
// a machine with memory to spare the numbers are the engines' overheads,
// not the disk's.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <evchan/evchan.h>

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kBlock = 4096;

struct Options {
  std::string path = "/tmp/evchan-file-bench.dat";
  std::uint64_t megabytes = 1024;
  double seconds = 2.0;
  int depth = 32;
};

struct Result {
  std::string engine;
  double iops = 0;
  std::string note;
};

[[noreturn]] void usage() {
  std::fprintf(stderr, "usage: file_bench [--file PATH] [--megabytes N] [--seconds S] [--depth N]\n");
  std::exit(2);
}

// Creates (or reuses) the file at its full size, every block written.
bool prepareFile(const Options& options) {
  const std::uint64_t size = options.megabytes << 20;
  std::error_code ec;
  evchan::File file = evchan::File::open(options.path, evchan::kFileRead | evchan::kFileWrite | evchan::kFileCreate, ec);
  if (ec) {
    std::fprintf(stderr, "file_bench: %s: %s\n", options.path.c_str(), ec.message().c_str());
    return false;
  }
  if (file.size() >= size) return true;
  std::printf("creating %s (%llu MiB)...\n", options.path.c_str(), static_cast<unsigned long long>(options.megabytes));
  std::vector<char> chunk(1 << 20);
  for (std::size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<char>(i * 131 + 7);
  for (std::uint64_t offset = 0; offset < size; offset += chunk.size()) {
    chunk[0] = static_cast<char>(offset >> 20);
    file.writeAt(offset, chunk.data(), chunk.size(), ec);
    if (ec) {
      std::fprintf(stderr, "file_bench: writing: %s\n", ec.message().c_str());
      return false;
    }
  }
  file.sync();
  return true;
}

std::uint64_t randomBlockOffset(std::mt19937_64& random, std::uint64_t blocks) {
  return (random() % blocks) * kBlock;
}

Result preadThreads(const Options& options) {
  evchan::File file = evchan::File::open(options.path, evchan::kFileRead);
  const std::uint64_t blocks = file.size() / kBlock;
  std::atomic<bool> stop{false};
  std::atomic<long> reads{0}, failures{0};
  std::vector<std::thread> threads;
  const Clock::time_point start = Clock::now();
  for (int t = 0; t < options.depth; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 random(t + 1);
      std::vector<char> buffer(kBlock);
      long mine = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        std::error_code ec;
        if (file.readAt(randomBlockOffset(random, blocks), buffer.data(), kBlock, ec) != kBlock) ++failures;
        ++mine;
      }
      reads += mine;
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(options.seconds));
  stop = true;
  for (std::thread& thread : threads) thread.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  return Result{"pread, " + std::to_string(options.depth) + " threads", reads / elapsed,
                failures ? std::to_string(failures.load()) + " FAILED" : ""};
}

// Keeps `depth` reads in flight on a channel of `backend`.
Result channelReads(const Options& options, evchan::Backend backend) {
  evchan::EventChannel::Options channelOptions;
  channelOptions.backend = backend;
  std::error_code ec;
  std::unique_ptr<evchan::EventChannel> channel = evchan::EventChannel::create(channelOptions, ec);
  const std::string name = std::string("evchan ") + evchan::backendName(backend);
  if (!channel) return Result{name, 0, "not available: " + ec.message()};
  evchan::File file = evchan::File::open(options.path, evchan::kFileRead);
  const std::uint64_t blocks = file.size() / kBlock;

  struct Slot {
    std::vector<char> buffer = std::vector<char>(kBlock);
    std::unique_ptr<evchan::FileReadEvent> read;
    std::mt19937_64 random;
  };
  std::vector<Slot> slots(static_cast<std::size_t>(options.depth));
  std::atomic<bool> stop{false};
  std::atomic<long> reads{0}, failures{0}, outstanding{options.depth};
  for (std::size_t i = 0; i < slots.size(); ++i) {
    Slot& slot = slots[i];
    slot.random.seed(i + 1);
    slot.read = std::make_unique<evchan::FileReadEvent>(file, randomBlockOffset(slot.random, blocks),
                                                        slot.buffer.data(), kBlock);
    slot.read->setCallback([&, &slot = slot](evchan::Event&) {
      if (slot.read->error() || slot.read->bytesTransferred() != kBlock) ++failures;
      reads.fetch_add(1, std::memory_order_relaxed);
      std::error_code postError;
      if (!stop.load(std::memory_order_relaxed)) {
        slot.read->set(randomBlockOffset(slot.random, blocks), slot.buffer.data(), kBlock);
        channel->post(*slot.read, postError);
        if (!postError) return;
      }
      --outstanding;
    });
  }
  const Clock::time_point start = Clock::now();
  for (Slot& slot : slots) channel->post(*slot.read);
  std::this_thread::sleep_for(std::chrono::duration<double>(options.seconds));
  stop = true;
  const long counted = reads.load();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  while (outstanding.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const evchan::ThreadPoolStats stats = channel->poolStats();
  channel->shutdown();
  std::string note = "pool peak " + std::to_string(stats.peak) + " threads";
  if (failures) note += ", " + std::to_string(failures.load()) + " FAILED";
  return Result{name, counted / elapsed, note};
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const bool hasValue = i + 1 < argc;
    if (hasValue && std::strcmp(argv[i], "--file") == 0) {
      options.path = argv[++i];
    } else if (hasValue && std::strcmp(argv[i], "--megabytes") == 0) {
      options.megabytes = std::strtoull(argv[++i], nullptr, 10);
    } else if (hasValue && std::strcmp(argv[i], "--seconds") == 0) {
      options.seconds = std::strtod(argv[++i], nullptr);
    } else if (hasValue && std::strcmp(argv[i], "--depth") == 0) {
      options.depth = std::atoi(argv[++i]);
    } else {
      usage();
    }
  }
  if (options.megabytes == 0 || options.seconds <= 0 || options.depth <= 0) usage();
  if (!prepareFile(options)) return 1;

  std::printf("random %zu-byte reads, queue depth %d, %llu MiB file %s, %.1f s per engine (page cache warm)\n",
              kBlock, options.depth, static_cast<unsigned long long>(options.megabytes), options.path.c_str(),
              options.seconds);
  std::vector<Result> results;
  results.push_back(preadThreads(options));  // also warms the page cache for the others
  results.clear();
  results.push_back(preadThreads(options));
  for (evchan::Backend backend : {evchan::Backend::IoUring, evchan::Backend::Aio, evchan::Backend::Epoll}) {
    results.push_back(channelReads(options, backend));
  }
  std::printf("%-26s %12s %10s %9s  %s\n", "engine", "reads/s", "MiB/s", "vs pread", "");
  for (const Result& result : results) {
    std::printf("%-26s %12.0f %10.1f %9.2f  %s\n", result.engine.c_str(), result.iops,
                result.iops * kBlock / (1 << 20), results.front().iops > 0 ? result.iops / results.front().iops : 0,
                result.note.c_str());
  }
  bool failed = false;
  for (const Result& result : results) failed |= result.note.find("FAILED") != std::string::npos;
  return failed ? 1 : 0;
}
