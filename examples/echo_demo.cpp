// SPDX-License-Identifier: Apache-2.0
// echo_demo: an echo server on an EventChannel on a free loopback port, and
// clients that push a known byte stream through it and verify every byte.
//
//   echo_demo [--model tasks|events]
//             [--backend default|epoll|io_uring|poll|select|apr_pollset|aio]
//             [--connections N] [--megabytes M-per-connection]
//
// --model tasks (the default): one task per connection on both sides,
// written with plain blocking-looking calls (accept, readSome, writeAll),
// all on the channel's few worker threads.  --model events: the server is
// event callbacks (ReadEvent -> WriteEvent -> ReadEvent) and each client is
// a thread.
//
// SIGINT (Ctrl+C) or SIGTERM stops it early and cleanly: each client
// finishes the chunk under way, closes its side, and the figures cover what
// was echoed until then.
//
// Exits 0 when every byte came back intact (stopped early or not), 1 on a
// mismatch or error, 2 on a bad option (with the usage line).
#include <evchan/evchan.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <csignal>
#include <cstring>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr std::size_t kChunk = 64 * 1024;

// The byte at stream position `i` of connection `c`: the client checks
// what comes back without keeping a copy.
unsigned char patternByte(std::size_t c, std::uint64_t i) {
  return static_cast<unsigned char>((i * 7 + c * 13 + (i >> 11)) & 0xff);
}

// One server-side connection: read into the buffer, write it all back, repeat.
class EchoConnection {
 public:
  EchoConnection(evchan::EventChannel& channel, evchan::TcpSocket socket)
      : channel_(channel), socket_(std::move(socket)), read_(socket_, buffer_, sizeof buffer_),
        write_(socket_, buffer_, 0) {
    read_.setCallback([this](evchan::Event&) { onRead(); });
    write_.setCallback([this](evchan::Event&) { onWrite(); });
  }

  void start() { post(read_); }

 private:
  void onRead() {
    if (read_.error()) return socket_.close();  // end_of_stream once the client is done
    pending_ = read_.bytesTransferred();
    written_ = 0;
    write_.setBuffer(buffer_, pending_);
    post(write_);
  }

  void onWrite() {
    if (write_.error()) return socket_.close();
    written_ += write_.bytesTransferred();
    if (written_ < pending_) {  // a partial write: send the rest
      write_.setBuffer(buffer_ + written_, pending_ - written_);
      post(write_);
    } else {
      post(read_);
    }
  }

  void post(evchan::Event& event) {
    std::error_code ec;
    channel_.post(event, ec);
    if (ec) socket_.close();  // the channel is shutting down
  }

  evchan::EventChannel& channel_;
  evchan::TcpSocket socket_;
  char buffer_[kChunk];
  evchan::ReadEvent read_;
  evchan::WriteEvent write_;
  std::size_t pending_ = 0;
  std::size_t written_ = 0;
};

// What the clients share: the stop request (a caught signal) and the bytes
// echoed so far.
struct ClientRun {
  std::atomic<bool> stopping{false};
  std::atomic<std::uint64_t> echoed{0};
};

// One client: sends `total` bytes in chunks and checks each echoed chunk;
// stops after the chunk under way once `run.stopping` is set.
bool runClient(int port, std::size_t index, std::uint64_t total, ClientRun& run) {
  try {
    evchan::TcpSocket socket = evchan::TcpSocket::connect({"127.0.0.1", port}, std::chrono::seconds(5));
    socket.setNoDelay(true);
    socket.setTimeout(std::chrono::seconds(10));
    std::vector<unsigned char> out(kChunk), in(kChunk);
    for (std::uint64_t sent = 0; sent < total && !run.stopping.load(std::memory_order_relaxed);) {
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, total - sent));
      for (std::size_t i = 0; i < n; ++i) out[i] = patternByte(index, sent + i);
      socket.writeAll(out.data(), n);
      socket.readExactly(in.data(), n);
      if (std::memcmp(in.data(), out.data(), n) != 0) {
        std::fprintf(stderr, "connection %zu: echoed bytes differ near offset %llu\n", index,
                     static_cast<unsigned long long>(sent));
        return false;
      }
      sent += n;
      run.echoed.fetch_add(n, std::memory_order_relaxed);
    }
    socket.shutdownWrite();
    return true;
  } catch (const evchan::SystemError& e) {
    std::fprintf(stderr, "connection %zu: %s\n", index, e.what());
    return false;
  }
}

// Out of descriptors (RLIMIT_NOFILE reached), accept() fails with
// too_many_files_open and leaves the connection queued: a loop that tries
// again at once spins on a core until a descriptor frees.  Both servers
// below wait instead, a short interval that grows while the condition
// lasts.
void reportOutOfDescriptors(const std::error_code& error, evchan::Duration delay) {
  std::fprintf(stderr, "accept: %s; trying again in %lld ms\n", error.message().c_str(),
               static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(delay).count()));
}

// One connection of the task-model server: it owns its socket (moved into
// the task) and echoes until the client is done.
void echoInTask(evchan::TcpSocket socket) {
  std::vector<char> buffer(kChunk);
  std::error_code ec;
  for (;;) {
    const std::size_t n = socket.readSome(buffer.data(), buffer.size(), ec);
    if (ec) return;  // end_of_stream once the client is done
    socket.writeAll(buffer.data(), n, ec);
    if (ec) return;
  }
}

// The task-model server: an acceptor task, then a task per connection in
// `connections` (a TaskGroup, which the caller joins).  acceptWithBackoff()
// suspends the acceptor task (not its worker) while the process is out of
// descriptors.
void serveWithTasks(evchan::TaskGroup& connections, evchan::TcpListener& listener, long count) {
  evchan::AcceptBackoff backoff;
  backoff.onWait = reportOutOfDescriptors;
  for (long i = 0; i < count; ++i) connections.spawn(echoInTask, listener.acceptWithBackoff(backoff));
}

bool parsePositive(const char* text, long& value) {
  char* end = nullptr;
  value = std::strtol(text, &end, 10);
  return end != text && *end == '\0' && value > 0;
}


int usage(const char* program) {
  std::fprintf(stderr,
               "usage: %s [--model tasks|events] [--backend default|epoll|io_uring|poll|select|apr_pollset|aio]"
               " [--connections N] [--megabytes M-per-connection]\n",
               program);
  return 2;
}

// Runs `count` clients (tasks or threads) and returns how many failed.
int runClients(evchan::EventChannel& channel, bool tasks, int port, long count, std::uint64_t perConnection,
               ClientRun& run) {
  std::atomic<int> failures{0};
  if (tasks) {
    std::vector<evchan::TaskHandle> clients;
    for (long i = 0; i < count; ++i) {
      clients.push_back(channel.spawn([&, i] {
        if (!runClient(port, static_cast<std::size_t>(i), perConnection, run)) ++failures;
      }));
    }
    for (evchan::TaskHandle& client : clients) client.join();
  } else {
    std::vector<std::thread> clients;
    for (long i = 0; i < count; ++i) {
      clients.emplace_back([&, i] {
        if (!runClient(port, static_cast<std::size_t>(i), perConnection, run)) ++failures;
      });
    }
    for (std::thread& client : clients) client.join();
  }
  return failures;
}

}  // namespace

int main(int argc, char** argv) {
  long connections = 8, megabytes = 8;
  bool tasks = true;
  evchan::EventChannel::Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 == argc) return usage(argv[0]);
    const char* value = argv[++i];
    if (arg == "--model") {
      if (std::string(value) != "tasks" && std::string(value) != "events") return usage(argv[0]);
      tasks = std::string(value) == "tasks";
    } else if (arg == "--backend") {
      if (!evchan::backendFromName(value, options.backend)) return usage(argv[0]);
    } else if (arg == "--connections" || arg == "--megabytes") {
      if (!parsePositive(value, arg == "--connections" ? connections : megabytes)) return usage(argv[0]);
    } else {
      return usage(argv[0]);
    }
  }

  try {
    // First, before any thread exists: from here on SIGINT and SIGTERM are
    // caught (a thread below waits for them) instead of ending the process.
    std::optional<evchan::SignalSet> stop;
    stop.emplace(std::initializer_list<int>{SIGINT, SIGTERM});
    std::unique_ptr<evchan::EventChannel> channel = evchan::EventChannel::create(options);
    evchan::TcpListener listener = evchan::TcpListener::listen({"127.0.0.1", 0});
    std::printf("echo server on %s, EventChannel backend %s, %s\n", listener.localAddress().toString().c_str(),
                channel->backendName(), tasks ? "one task per connection on both sides" : "event callbacks, client threads");
    std::fflush(stdout);

    // The server side: tasks, or an AcceptEvent whose callback starts a
    // callback-driven connection and accepts again.
    std::mutex connectionsMutex;
    std::list<EchoConnection> server;
    long accepted = 0;
    evchan::AcceptEvent accept(listener);
    // The event model's back-off: out of descriptors, a timer re-posts the
    // accept after a delay that doubles (1 ms .. 1 s) while it lasts.
    evchan::TimerEvent acceptRetry(std::chrono::milliseconds(1));
    evchan::Duration retryDelay = std::chrono::milliseconds(1);
    acceptRetry.setCallback([&](evchan::Event&) {
      if (!acceptRetry.error()) channel->post(accept);
    });
    evchan::TaskHandle acceptor;
    std::optional<evchan::TaskGroup> connectionTasks;
    if (tasks) {
      connectionTasks.emplace(*channel);
      acceptor = channel->spawn([&] { serveWithTasks(*connectionTasks, listener, connections); });
    } else {
      accept.setCallback([&](evchan::Event&) {
        if (accept.error() == std::errc::too_many_files_open ||
            accept.error() == std::errc::too_many_files_open_in_system) {
          reportOutOfDescriptors(accept.error(), retryDelay);
          acceptRetry.setDelay(retryDelay);
          retryDelay = std::min<evchan::Duration>(retryDelay * 2, std::chrono::seconds(1));
          channel->post(acceptRetry);
          return;
        }
        if (accept.error()) return;
        retryDelay = std::chrono::milliseconds(1);
        EchoConnection* connection;
        {
          std::lock_guard<std::mutex> lock(connectionsMutex);
          connection = &server.emplace_back(*channel, accept.takeSocket());
          ++accepted;
        }
        connection->start();
        if (accepted < connections) channel->post(accept);
      });
      channel->post(accept);
    }

    // A signal asks the clients to stop.  The watcher is a thread, so that
    // it works in both models and in builds without tasks; it looks for
    // the end of the run between waits.
    ClientRun run;
    std::atomic<bool> finished{false};
    int stoppedBy = 0;
    std::thread watcher([&] {
      while (!finished.load()) {
        std::error_code ec;
        const int signal = stop->waitFor(std::chrono::milliseconds(50), ec);
        if (ec) return;
        if (signal != 0) {
          stoppedBy = signal;
          run.stopping = true;
          return;
        }
      }
    });

    const std::uint64_t perConnection = static_cast<std::uint64_t>(megabytes) << 20;
    const auto started = std::chrono::steady_clock::now();
    const int failures = runClients(*channel, tasks, listener.port(), connections, perConnection, run);
    const double seconds = std::chrono::duration<double, std::chrono::seconds::period>(
                               std::chrono::steady_clock::now() - started).count();
    finished = true;
    watcher.join();
    // From here on SIGINT and SIGTERM take their default action again: a
    // Ctrl+C during a shutdown that hangs still ends the demo.
    stop.reset();
    if (tasks) {
      acceptor.join();
      connectionTasks->join();  // each ends at its client's end of stream
    }
    const evchan::ThreadPoolStats pool = channel->poolStats();
    channel->shutdown();  // completes what is still pending before the connections go

    if (stoppedBy != 0) std::printf("stopped early by signal %d\n", stoppedBy);
    const double megabytesMoved = 2.0 * static_cast<double>(run.echoed.load()) / (1 << 20);
    std::printf("%ld connections, %.0f MiB echoed (sent and received), %.3f s, %.1f MiB/s, %s\n", connections,
                megabytesMoved, seconds, megabytesMoved / seconds,
                failures == 0 ? "every byte verified" : "MISMATCH");
    std::printf("pool: %d threads (initial %d, peak %d, max %d), %d CPUs detected, %llu started\n", pool.current,
                pool.initial, pool.peak, pool.maxThreads, pool.cpuParallelism,
                static_cast<unsigned long long>(pool.started));
    return failures == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "echo_demo: %s\n", e.what());
    return 1;
  }
}
