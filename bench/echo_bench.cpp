// SPDX-License-Identifier: Apache-2.0
// echo_bench: echo ping-pong and streaming over loopback against several
// echo servers.
//
//   echo_bench [--connections 1,100,1000] [--stream-connections 1,16]
//              [--workloads ping-pong,stream] [--duration SECONDS] [--rounds N]
//              [--warmup SECONDS] [--servers WORD,WORD...] [--csv FILE] [--list]
//
// For each connection count, every server is started in this process (its
// own threads, 127.0.0.1, a kernel-picked port) and driven by one load
// generator: a single-threaded, level-triggered epoll loop on the main
// thread with N connections, each sending a message and waiting for its
// whole echo before sending the next (a closed loop): 64-byte messages
// (ping-pong), then 64 KiB messages (stream; the servers echo them with
// 4 KiB reads, so a message is many reads and writes).  After a
// warm-up it counts the round trips completed in the measured interval.
// The load generator is the same code for every server, so the differences
// between rows are the servers'.  The measured time of a cell is split
// over a few rounds, and each round runs every server once, so that a
// burst of other load on a shared machine hits all servers alike; a cell
// reports the median round.
//
// Output: a table per connection count (round trips per second and its
// ratio to the hand-written epoll loop; CPU time the server spent per round
// trip and its ratio), then a summary of evchan's targets.  Exits 1 if a
// server failed (echoed wrong bytes, dropped a connection, would not
// start), 2 on a usage error; missing a target is reported, not an error.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "servers/echo_server.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kPingPongSize = 64;
constexpr std::size_t kStreamSize = 64 * 1024;

// A workload: the message size each connection sends and waits to get back.
struct Workload {
  std::string name;
  std::size_t messageSize;
  std::vector<int> connections;
};

// ------------------------------------------------------------ load generator

struct LoadResult {
  double roundTripsPerSecond = 0;
  std::uint64_t roundTrips = 0;
  double serverCpuSeconds = 0;  // CPU time of every thread but the load generator's
  double clientCpuSeconds = 0;  // the load generator's own
  double seconds = 0;           // the measured interval
  std::string error;            // non-empty: the server misbehaved
};

double cpuSeconds(clockid_t clock) {
  timespec t{};
  ::clock_gettime(clock, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

class LoadGenerator {
 public:
  LoadGenerator(int port, int connections, std::size_t messageSize)
      : port_(port), connections_(connections), size_(messageSize) {}
  ~LoadGenerator() {
    for (Client& c : clients_) {
      if (c.fd >= 0) ::close(c.fd);
    }
    if (epollFd_ >= 0) ::close(epollFd_);
  }

  LoadResult run(double warmupSeconds, double measureSeconds) {
    // Named while it drives a server, so that per-thread profiles (perf
    // stat --per-thread, top -H) tell it from the server's threads, which
    // started earlier and keep the process's name.
    char name[16] = {};
    ::pthread_getname_np(::pthread_self(), name, sizeof name);
    ::pthread_setname_np(::pthread_self(), "loadgen");
    LoadResult result;
    try {
      connectAll();
      result = loop(warmupSeconds, measureSeconds);
    } catch (const std::exception& e) {
      result.error = e.what();
    }
    ::pthread_setname_np(::pthread_self(), name);
    return result;
  }

 private:
  struct Client {
    int fd = -1;
    std::uint64_t sequence = 0;
    std::size_t sent = 0;      // of the current message
    std::size_t received = 0;  // of its echo
    std::vector<unsigned char> out;
    std::vector<unsigned char> in;
  };

  [[noreturn]] static void fail(const std::string& what) { throw std::runtime_error(what); }
  [[noreturn]] static void failErrno(const std::string& what) {
    throw std::system_error(errno, std::generic_category(), what);
  }

  void connectAll() {
    epollFd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epollFd_ < 0) failErrno("epoll_create1");
    clients_.resize(static_cast<std::size_t>(connections_));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port_));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (std::size_t i = 0; i < clients_.size(); ++i) {
      Client& c = clients_[i];
      c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (c.fd < 0) failErrno("client socket");
      // Blocking connect: on loopback it completes as soon as the kernel
      // queues the connection for accept (the backlog is large enough).
      if (::connect(c.fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) failErrno("client connect");
      const int one = 1;
      ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      ::fcntl(c.fd, F_SETFL, ::fcntl(c.fd, F_GETFL) | O_NONBLOCK);
      c.out.resize(size_);
      c.in.resize(size_);
      for (std::size_t b = 0; b < size_; ++b) c.out[b] = static_cast<unsigned char>(i * 31 + b * 7);
      epoll_event event{};
      event.events = EPOLLIN;
      event.data.ptr = &c;
      if (::epoll_ctl(epollFd_, EPOLL_CTL_ADD, c.fd, &event) != 0) failErrno("epoll_ctl");
    }
  }

  // Sends (the rest of) the client's current message.
  void send(Client& c) {
    while (c.sent < size_) {
      const ssize_t n = ::send(c.fd, c.out.data() + c.sent, size_ - c.sent, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          watch(c, EPOLLIN | EPOLLOUT);  // rare: finish when there is room
          return;
        }
        failErrno("client send");
      }
      c.sent += static_cast<std::size_t>(n);
    }
  }

  void watch(Client& c, std::uint32_t events) {
    epoll_event event{};
    event.events = events;
    event.data.ptr = &c;
    ::epoll_ctl(epollFd_, EPOLL_CTL_MOD, c.fd, &event);
  }

  void startMessage(Client& c) {
    ++c.sequence;
    std::memcpy(c.out.data(), &c.sequence, sizeof c.sequence);  // every message differs
    c.sent = c.received = 0;
    send(c);
  }

  // True when a whole echo arrived (and was checked).
  bool receive(Client& c) {
    const ssize_t n = ::recv(c.fd, c.in.data() + c.received, size_ - c.received, 0);
    if (n == 0) fail("the server closed a connection");
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return false;
      failErrno("client recv");
    }
    c.received += static_cast<std::size_t>(n);
    if (c.received < size_) return false;
    if (c.sent < size_ || std::memcmp(c.in.data(), c.out.data(), size_) != 0) fail("the echo differs from the message");
    return true;
  }

  LoadResult loop(double warmupSeconds, double measureSeconds) {
    for (Client& c : clients_) startMessage(c);
    std::vector<epoll_event> events(1024);
    const auto toDuration = [](double s) {
      return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
    };
    bool measuring = false;
    std::uint64_t count = 0;
    Clock::time_point now = Clock::now();
    Clock::time_point phaseStart = now;
    Clock::time_point phaseEnd = now + toDuration(warmupSeconds);
    Clock::time_point lastProgress = now;
    double processCpuStart = 0, threadCpuStart = 0;
    for (;;) {
      const int ready = ::epoll_wait(epollFd_, events.data(), static_cast<int>(events.size()), 100);
      if (ready < 0 && errno != EINTR) failErrno("epoll_wait");
      for (int i = 0; i < ready; ++i) {
        Client& c = *static_cast<Client*>(events[i].data.ptr);
        if ((events[i].events & EPOLLOUT) && c.sent < size_) {
          send(c);
          if (c.sent == size_) watch(c, EPOLLIN);
        }
        if ((events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && receive(c)) {
          ++count;
          startMessage(c);
        }
      }
      now = Clock::now();
      if (ready > 0) {
        lastProgress = now;
      } else if (now - lastProgress > std::chrono::seconds(5)) {
        fail("no echo for 5 s");
      }
      if (now < phaseEnd) continue;
      if (!measuring) {
        measuring = true;
        count = 0;
        phaseStart = now;
        phaseEnd = now + toDuration(measureSeconds);
        processCpuStart = cpuSeconds(CLOCK_PROCESS_CPUTIME_ID);
        threadCpuStart = cpuSeconds(CLOCK_THREAD_CPUTIME_ID);
        continue;
      }
      // The process's CPU time less this thread's is the server's: its
      // threads are the only others alive (each cell joins its server).
      const double clientCpu = cpuSeconds(CLOCK_THREAD_CPUTIME_ID) - threadCpuStart;
      const double processCpu = cpuSeconds(CLOCK_PROCESS_CPUTIME_ID) - processCpuStart;
      LoadResult result;
      result.roundTrips = count;
      result.seconds = std::chrono::duration<double>(now - phaseStart).count();
      result.roundTripsPerSecond = static_cast<double>(count) / result.seconds;
      result.clientCpuSeconds = clientCpu;
      result.serverCpuSeconds = processCpu - clientCpu;
      return result;
    }
  }

  const int port_;
  const int connections_;
  const std::size_t size_;
  int epollFd_ = -1;
  std::vector<Client> clients_;
};

// ------------------------------------------------------------ servers

struct ServerEntry {
  std::string name;
  std::function<std::unique_ptr<bench::EchoServer>()> make;  // empty: not built
  std::string missing;                                       // why it is not built
};

std::vector<ServerEntry> allServers() {
  std::vector<ServerEntry> servers;
  servers.push_back({"epoll loop (hand-written)", bench::makeEpollServer, {}});
  for (const char* backend : {"epoll", "io_uring", "poll", "select", "apr_pollset"}) {
    servers.push_back({std::string("evchan ") + backend, [backend] { return bench::makeEvchanServer(backend, 0); }, {}});
  }
  // Diagnostic rows: one worker thread, i.e. without the leader/follower
  // hand-offs between workers (and, for io_uring, every submission batched
  // into the poller's own io_uring_enter), against the default pool.
  servers.push_back({"evchan epoll (1 worker)", [] { return bench::makeEvchanServer("epoll", 1); }, {}});
  servers.push_back({"evchan io_uring (1 worker)", [] { return bench::makeEvchanServer("io_uring", 1); }, {}});
  servers.push_back({"evchan tasks (epoll)", [] { return bench::makeEvchanTaskServer(0, "epoll"); }, {}});
  servers.push_back({"evchan tasks (io_uring)", [] { return bench::makeEvchanTaskServer(0, "io_uring"); }, {}});
  // Diagnostic row: what the stuck-worker monitor costs a busy task server.
  servers.push_back(
      {"evchan tasks (epoll, no monitor)", [] { return bench::makeEvchanTaskServer(0, "epoll", false); }, {}});
#ifdef BENCH_HAVE_LIBUV
  servers.push_back({"libuv", bench::makeLibuvServer, {}});
#else
  servers.push_back({"libuv", nullptr, "libuv not installed (Debian: libuv1-dev; then re-run configure)"});
#endif
#ifdef BENCH_HAVE_LIBEVENT
  servers.push_back({"libevent", bench::makeLibeventServer, {}});
#else
  servers.push_back({"libevent", nullptr, "libevent not installed (Debian: libevent-dev; then re-run configure)"});
#endif
#ifdef BENCH_HAVE_ASIO
  servers.push_back({"boost.asio", bench::makeAsioServer, {}});
#else
  servers.push_back({"boost.asio", nullptr, "Boost.Asio not installed (Debian: libboost-dev; then re-run configure)"});
#endif
  return servers;
}

const char* kBaseline = "epoll loop (hand-written)";

// One run of one server at one connection count: a measurement, or why
// there is none.
struct Run {
  bool ok = false;
  double rate = 0;              // round trips per second
  double serverCpuPerTrip = 0;  // seconds of server CPU per round trip
  double clientBusy = 0;        // the load generator's CPU share, 0..1
  std::string text;             // "skipped: ..." or "FAILED: ..."
  std::string note;
};

Run runOnce(const ServerEntry& entry, int connections, std::size_t messageSize, double warmup, double duration) {
  Run run;
  if (!entry.make) {
    run.text = "skipped: " + entry.missing;
    return run;
  }
  std::unique_ptr<bench::EchoServer> server;
  int port = 0;
  try {
    server = entry.make();
    const std::string cannot = server->cannotServe(connections);
    if (!cannot.empty()) {
      run.text = "skipped: " + cannot;
      return run;
    }
    port = server->start(0);
  } catch (const std::system_error& e) {
    // Not compiled in, or (io_uring) the kernel refuses it.
    const bool unavailable = e.code() == std::errc::function_not_supported ||
                             e.code() == std::errc::operation_not_permitted || e.code() == std::errc::permission_denied;
    run.text = (unavailable ? "skipped: not available: " : "FAILED: start: ") + std::string(e.what());
    return run;
  } catch (const std::exception& e) {
    run.text = std::string("FAILED: start: ") + e.what();
    return run;
  }
  LoadResult result;
  {
    LoadGenerator load(port, connections, messageSize);
    result = load.run(warmup, duration);
  }  // closes the client connections before the server stops
  server->stop();
  run.note = server->note();
  if (!result.error.empty()) {
    run.text = "FAILED: " + result.error;
    return run;
  }
  run.ok = true;
  run.rate = result.roundTripsPerSecond;
  if (result.roundTrips > 0) run.serverCpuPerTrip = result.serverCpuSeconds / static_cast<double>(result.roundTrips);
  run.clientBusy = result.clientCpuSeconds / result.seconds;
  return run;
}

// A server's cell in a table: the median of its runs (the runs of all
// servers are interleaved, round by round, so that a burst of other load on
// the machine hits every server alike rather than one).
struct Cell {
  bool ok = false;
  double rate = 0, rateMin = 0, rateMax = 0;
  double serverCpuPerTrip = 0;
  double clientBusy = 0;
  std::string text;
  std::string note;
  std::vector<Run> runs;

  bool done() const { return !runs.empty() && !runs.back().ok; }  // skipped or failed: no more rounds

  void summarize() {
    std::vector<double> rates, cpus, busy;
    for (const Run& r : runs) {
      if (!r.ok) {
        text = r.text;
        return;
      }
      rates.push_back(r.rate);
      cpus.push_back(r.serverCpuPerTrip);
      busy.push_back(r.clientBusy);
      note = r.note;
    }
    if (rates.empty()) return;
    ok = true;
    rate = median(rates);
    rateMin = *std::min_element(rates.begin(), rates.end());
    rateMax = *std::max_element(rates.begin(), rates.end());
    serverCpuPerTrip = median(cpus);
    clientBusy = median(busy);
  }

  static double median(std::vector<double> values) {
    std::sort(values.begin(), values.end());
    const std::size_t n = values.size();
    return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
  }
};

std::string formatRate(double rate) {
  char text[32];
  std::snprintf(text, sizeof text, "%.0f", rate);
  std::string digits = text, grouped;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) grouped += ',';
    grouped += digits[i];
  }
  return grouped;
}

std::string formatRatio(double ratio) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f", ratio);
  return text;
}

// ------------------------------------------------------------ command line

struct Options {
  std::vector<int> connections{1, 100, 1000};       // ping-pong
  std::vector<int> streamConnections{1, 16};        // streaming 64 KiB
  std::vector<std::string> workloads{"ping-pong", "stream"};
  double duration = 2.0;  // measured seconds per cell, split over the rounds
  double warmup = 0.2;    // before each run
  int rounds = 4;
  std::vector<std::string> servers;  // empty: all
  bool baseline = true;              // run the hand-written loop even when not picked
  std::string csv;                   // also write the tables here (empty: no)
  bool list = false;
};

[[noreturn]] void usage(const char* argv0, int status = 2) {
  std::fprintf(status == 0 ? stdout : stderr,
               "usage: %s [--connections 1,100,1000] [--stream-connections 1,16] [--workloads ping-pong,stream]\n"
               "          [--duration SECONDS] [--rounds N] [--warmup SECONDS]\n"
               "          [--servers WORD,WORD...] [--no-baseline] [--csv FILE] [--list]\n"
               "  --workloads   ping-pong: 64-byte messages; stream: 64 KiB messages, each echoed in full\n"
               "                before the next (--stream-connections connections)\n"
               "  --duration  measured time per server and connection count, split over N interleaved\n"
               "              rounds (default 2 s, 4 rounds); each run is preceded by a warm-up (0.2 s)\n"
               "  --servers   only the servers whose name contains one of the words (=NAME: is exactly\n"
               "              NAME), and the hand-written loop unless --no-baseline\n"
               "  --csv       also write every table's rows to FILE (one row per server and cell;\n"
               "              bench/plot-echo-bench draws them)\n",
               argv0);
  std::exit(status);
}

std::vector<std::string> splitCommas(const std::string& text) {
  std::vector<std::string> parts;
  std::stringstream stream(text);
  for (std::string part; std::getline(stream, part, ',');) {
    if (!part.empty()) parts.push_back(part);
  }
  return parts;
}

Options parse(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(argv[0]);
      return argv[++i];
    };
    try {
      if (arg == "--connections" || arg == "--stream-connections") {
        std::vector<int>& list = arg == "--connections" ? options.connections : options.streamConnections;
        list.clear();
        for (const std::string& n : splitCommas(value())) {
          const int count = std::stoi(n);
          if (count <= 0) usage(argv[0]);
          list.push_back(count);
        }
      } else if (arg == "--workloads") {
        options.workloads = splitCommas(value());
        for (const std::string& w : options.workloads) {
          if (w != "ping-pong" && w != "stream") usage(argv[0]);
        }
      } else if (arg == "--duration") {
        options.duration = std::stod(value());
      } else if (arg == "--rounds") {
        options.rounds = std::stoi(value());
      } else if (arg == "--warmup") {
        options.warmup = std::stod(value());
      } else if (arg == "--servers") {
        options.servers = splitCommas(value());
      } else if (arg == "--csv") {
        options.csv = value();
      } else if (arg == "--no-baseline") {
        options.baseline = false;
      } else if (arg == "--help" || arg == "-h") {
        usage(argv[0], 0);
      } else if (arg == "--list") {
        options.list = true;
      } else {
        usage(argv[0]);
      }
    } catch (const std::logic_error&) {  // stoi/stod
      usage(argv[0]);
    }
  }
  if (options.duration <= 0 || options.warmup < 0 || options.rounds < 1 || options.connections.empty() ||
      options.streamConnections.empty() || options.workloads.empty()) {
    usage(argv[0]);
  }
  return options;
}

bool selected(const Options& options, const std::string& name) {
  if (options.servers.empty() || (name == kBaseline && options.baseline)) return true;
  for (const std::string& word : options.servers) {
    if (word[0] == '=' ? name == word.substr(1) : name.find(word) != std::string::npos) return true;
  }
  return false;
}

void printTable(const Workload& workload, int connections, const std::vector<ServerEntry>& servers,
                std::map<std::string, Cell>& cells, bool legend) {
  std::printf("== %s (%zu-byte messages), %d connection%s ==\n", workload.name.c_str(), workload.messageSize,
              connections, connections == 1 ? "" : "s");
  std::printf("%-26s %13s %7s %13s %12s %7s %8s %9s\n", "server", "round trips/s", "vs loop", "(min-max)",
              "server CPU/rt", "vs loop", "load-gen", "MiB/s");
  const Cell& base = cells[kBaseline];
  for (const ServerEntry& entry : servers) {
    const Cell& cell = cells[entry.name];
    if (!cell.ok) {
      std::printf("%-26s %13s  %s\n", entry.name.c_str(), "-", cell.text.c_str());
      continue;
    }
    char spread[48], cpu[32], busy[32];
    std::snprintf(spread, sizeof spread, "%.0fk-%.0fk", cell.rateMin / 1000, cell.rateMax / 1000);
    std::snprintf(cpu, sizeof cpu, "%.2f us", cell.serverCpuPerTrip * 1e6);
    std::snprintf(busy, sizeof busy, "%.0f%%", cell.clientBusy * 100);
    char mib[32];
    std::snprintf(mib, sizeof mib, "%.0f", cell.rate * static_cast<double>(workload.messageSize) / (1 << 20));
    std::printf("%-26s %13s %7s %13s %12s %7s %8s %9s\n", entry.name.c_str(), formatRate(cell.rate).c_str(),
                base.ok ? formatRatio(cell.rate / base.rate).c_str() : "n/a", spread, cpu,
                base.ok && base.serverCpuPerTrip > 0 ? formatRatio(cell.serverCpuPerTrip / base.serverCpuPerTrip).c_str()
                                                     : "n/a",
                busy, mib);
  }
  const Cell& evchan = cells["evchan epoll"];
  if (!evchan.note.empty()) std::printf("  (evchan epoll: %s)\n", evchan.note.c_str());
  if (legend) {
    std::printf(
        "  round trips/s: median of the rounds, (min-max) over them; vs loop: over the hand-written\n"
        "  loop's (higher is better).  server CPU/rt: CPU time (user + kernel) of the server's threads\n"
        "  per round trip, and vs loop its ratio to the loop's (lower is better).  load-gen: the load\n"
        "  generator thread's CPU share; near 100%% it is the bottleneck and the rates understate the\n"
        "  differences between servers (the CPU/rt column does not).  MiB/s: one direction's payload.\n");
  }
  std::printf("\n");
  std::fflush(stdout);
}

// The header of the CSV file (--csv): one row per table row.  Rates in
// round trips per second; cpu_us is the server's CPU per round trip; the
// two vs_loop columns are the throughput ratio (higher is better) and the
// CPU ratio (lower is better) to the hand-written loop, empty without it;
// status is "ok" or why the cell has no figures.
constexpr const char* kCsvHeader =
    "workload,message_bytes,connections,server,round_trips_per_s,min,max,vs_loop,cpu_us,cpu_vs_loop,"
    "load_gen_busy,status\n";

// A field as CSV wants it: quoted when it holds a comma, quote or newline.
std::string csvField(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

void writeCsvRows(std::FILE* out, const Workload& workload, int connections, const std::vector<ServerEntry>& servers,
                  std::map<std::string, Cell>& cells) {
  const Cell& base = cells[kBaseline];
  for (const ServerEntry& entry : servers) {
    const Cell& cell = cells[entry.name];
    std::fprintf(out, "%s,%zu,%d,%s,", workload.name.c_str(), workload.messageSize, connections,
                 csvField(entry.name).c_str());
    if (!cell.ok) {
      std::fprintf(out, ",,,,,,,%s\n", csvField(cell.text.empty() ? "not run" : cell.text).c_str());
      continue;
    }
    std::fprintf(out, "%.0f,%.0f,%.0f,", cell.rate, cell.rateMin, cell.rateMax);
    if (base.ok && base.rate > 0) std::fprintf(out, "%.4f", cell.rate / base.rate);
    std::fprintf(out, ",%.3f,", cell.serverCpuPerTrip * 1e6);
    if (base.ok && base.serverCpuPerTrip > 0) std::fprintf(out, "%.4f", cell.serverCpuPerTrip / base.serverCpuPerTrip);
    std::fprintf(out, ",%.3f,ok\n", cell.clientBusy);
  }
  std::fflush(out);
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = parse(argc, argv);
  std::vector<ServerEntry> servers;
  for (ServerEntry& entry : allServers()) {
    if (selected(options, entry.name)) servers.push_back(std::move(entry));
  }
  if (options.list) {
    for (const ServerEntry& entry : servers) {
      std::printf("%-28s %s\n", entry.name.c_str(), entry.make ? "built" : ("skipped: " + entry.missing).c_str());
    }
    return 0;
  }
  std::vector<Workload> workloads;
  for (const std::string& name : options.workloads) {
    if (name == "ping-pong") workloads.push_back({name, kPingPongSize, options.connections});
    if (name == "stream") workloads.push_back({name, kStreamSize, options.streamConnections});
  }

  std::FILE* csv = nullptr;
  if (!options.csv.empty()) {
    csv = std::fopen(options.csv.c_str(), "w");
    if (csv == nullptr) {
      std::fprintf(stderr, "echo_bench: cannot write %s: %s\n", options.csv.c_str(), std::strerror(errno));
      return 2;
    }
    std::fputs(kCsvHeader, csv);
  }
  utsname host{};
  ::uname(&host);
  const double slice = options.duration / options.rounds;
  std::printf("echo_bench: echo over 127.0.0.1, closed loop (each connection sends a message and waits for\n"
              "all of its echo); per workload, server and connection count %d interleaved rounds of %.2f s\n"
              "measured after %.2f s warm-up\n",
              options.rounds, slice, options.warmup);
  std::printf("host: %s %s, %u CPUs; load generator: one epoll thread in this process, sharing the CPUs\n\n",
              host.sysname, host.release, std::thread::hardware_concurrency());
  std::fflush(stdout);

  // results[workload][connections][server name]
  std::map<std::string, std::map<int, std::map<std::string, Cell>>> results;
  bool failed = false;
  bool legend = true;
  for (const Workload& workload : workloads) {
    for (int connections : workload.connections) {
      std::map<std::string, Cell>& cells = results[workload.name][connections];
      for (int round = 0; round < options.rounds; ++round) {
        // Each round starts one server later, so no server always runs
        // right after another's teardown.
        for (std::size_t i = 0; i < servers.size(); ++i) {
          const ServerEntry& entry = servers[(i + static_cast<std::size_t>(round)) % servers.size()];
          Cell& cell = cells[entry.name];
          if (cell.done()) continue;
          cell.runs.push_back(runOnce(entry, connections, workload.messageSize, options.warmup, slice));
        }
      }
      for (auto& named : cells) {
        named.second.summarize();
        if (named.second.text.rfind("FAILED", 0) == 0) failed = true;
      }
      printTable(workload, connections, servers, cells, legend);
      if (csv != nullptr) writeCsvRows(csv, workload, connections, servers, cells);
      legend = false;
    }
  }

  // Ratios where higher is better: a/b for the rates; with `cpu`, b/a for
  // the CPU time per round trip (efficiency).
  const auto ratio = [&](const std::string& workload, int connections, const std::string& a, const std::string& b,
                         bool cpu) -> std::string {
    auto table = results.find(workload);
    if (table == results.end()) return "not run";
    auto row = table->second.find(connections);
    if (row == table->second.end()) return "not run";
    auto x = row->second.find(a), y = row->second.find(b);
    if (x == row->second.end() || y == row->second.end()) return "not run";
    for (auto it : {x, y}) {
      if (!it->second.ok) return "n/a (" + it->first + ": " + (it->second.text.empty() ? "not run" : it->second.text) + ")";
    }
    return formatRatio(cpu ? y->second.serverCpuPerTrip / x->second.serverCpuPerTrip : x->second.rate / y->second.rate);
  };
  // The targets: evchan's epoll backend and its task server within 0.9x of
  // the hand-written loop at 100 and 1000 connections, and ahead of libuv;
  // io_uring not slower than epoll on streaming.
  std::printf("== targets (throughput ratio; in brackets the same ratio for CPU per round trip) ==\n");
  for (int connections : {100, 1000}) {
    std::printf("evchan epoll vs epoll loop at %d: %s (target 0.9) [CPU efficiency %s]\n", connections,
                ratio("ping-pong", connections, "evchan epoll", kBaseline, false).c_str(),
                ratio("ping-pong", connections, "evchan epoll", kBaseline, true).c_str());
  }
  for (int connections : {100, 1000}) {
    std::printf("evchan tasks vs epoll loop at %d: %s (target 0.9) [CPU efficiency %s]\n", connections,
                ratio("ping-pong", connections, "evchan tasks (epoll)", kBaseline, false).c_str(),
                ratio("ping-pong", connections, "evchan tasks (epoll)", kBaseline, true).c_str());
  }
  std::printf("evchan epoll vs libuv at 100/1000: %s / %s (target > 1.0) [CPU efficiency %s / %s]\n",
              ratio("ping-pong", 100, "evchan epoll", "libuv", false).c_str(),
              ratio("ping-pong", 1000, "evchan epoll", "libuv", false).c_str(),
              ratio("ping-pong", 100, "evchan epoll", "libuv", true).c_str(),
              ratio("ping-pong", 1000, "evchan epoll", "libuv", true).c_str());
  for (const Workload& workload : workloads) {
    for (int connections : workload.connections) {
      const bool stream = workload.name == "stream";
      std::printf("%s at %d: io_uring vs epoll %s%s [CPU %s]; 1 worker: %s [CPU %s]; "
                  "2 vs 1 workers: epoll %s, io_uring %s\n",
                  workload.name.c_str(), connections,
                  ratio(workload.name, connections, "evchan io_uring", "evchan epoll", false).c_str(),
                  stream ? " (target >= 1.0)" : "",
                  ratio(workload.name, connections, "evchan io_uring", "evchan epoll", true).c_str(),
                  ratio(workload.name, connections, "evchan io_uring (1 worker)", "evchan epoll (1 worker)", false).c_str(),
                  ratio(workload.name, connections, "evchan io_uring (1 worker)", "evchan epoll (1 worker)", true).c_str(),
                  ratio(workload.name, connections, "evchan epoll", "evchan epoll (1 worker)", false).c_str(),
                  ratio(workload.name, connections, "evchan io_uring", "evchan io_uring (1 worker)", false).c_str());
    }
  }
  if (csv != nullptr && std::fclose(csv) != 0) {
    std::fprintf(stderr, "echo_bench: writing %s failed\n", options.csv.c_str());
    failed = true;
  }
  return failed ? 1 : 0;
}
