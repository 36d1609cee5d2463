// SPDX-License-Identifier: Apache-2.0
// growth_bench: how the cost of an echo round trip grows with the number
// of connections.
//
//   growth_bench [--connections 1,10,100,1000,10000] [--duration SECONDS]
//                [--rounds N] [--warmup SECONDS]
//
// 64-byte echo ping-pong over 127.0.0.1 in a closed loop (each connection
// sends a message and waits for its whole echo before the next), at each
// connection count, against the hand-written epoll loop, evchan's epoll
// callbacks and evchan's task server (one task per connection; the default
// pool and one worker).  The servers run in this process; the load
// generator (echo_bench's: one epoll thread) runs in a child forked before
// any thread exists, so that each process holds only its own side of the
// connections (the descriptor limit is per process).  The child tells the
// parent over a pipe when its measured interval starts and ends; the
// server's CPU time per round trip is this process's CPU time over that
// interval (the main thread only waits on the pipe) divided by the round
// trips the child counted.  The measured time of a cell is split over a
// few rounds, each running every server once; a cell reports the median.
//
// Target (issue 15): the task server's CPU per round trip grows by at most
// 1.5x from 100 to 10,000 connections.  Exits 1 if a server or the child
// failed, 2 on a usage error; a missed target is reported, not an error.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
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
#include <string>
#include <thread>
#include <vector>

#include "load_generator.h"
#include "scale_common.h"
#include "servers/echo_server.h"

namespace {

constexpr std::size_t kMessageSize = 64;
constexpr double kTargetGrowth = 1.5;
constexpr int kPatienceSeconds = 120;  // 10,000 connects and the warm-up
const char* kTaskServer = "evchan tasks (epoll)";
const char* kLoopServer = "epoll loop (hand-written)";

// ---------------------------------------------------------------- pipes

// Parent to child: 'R' run a measurement, 'C' close its connections,
// 'Q' quit.
struct Command {
  char tag;
  int port;
  int connections;
  double warmup;
  double measure;
};

// Child to parent: 'S' the measured interval starts, 'E' it ended (or the
// run failed: error non-empty), 'D' the connections are closed.
struct Report {
  char tag;
  std::uint64_t roundTrips;
  double seconds;
  char error[160];
};

template <class T>
bool writeAll(int fd, const T& value) {
  return ::write(fd, &value, sizeof value) == static_cast<ssize_t>(sizeof value);
}

template <class T>
bool readWithin(int fd, T& value, int seconds) {
  pollfd p{fd, POLLIN, 0};
  int ready;
  do ready = ::poll(&p, 1, seconds * 1000);
  while (ready < 0 && errno == EINTR);
  if (ready <= 0) return false;
  return ::read(fd, &value, sizeof value) == static_cast<ssize_t>(sizeof value);
}

// ---------------------------------------------------------------- child

// The load generator's process: one run per 'R', plain system calls and
// one thread.
int childMain(int fromParent, int toParent) {
  scale_bench::raiseDescriptorLimit();
  for (;;) {
    Command command{};
    if (::read(fromParent, &command, sizeof command) != static_cast<ssize_t>(sizeof command)) return 10;
    if (command.tag == 'Q') return 0;
    if (command.tag != 'R') return 11;
    Report report{};
    {
      bench::LoadGenerator load(command.port, command.connections, kMessageSize);
      const bench::LoadResult result = load.run(command.warmup, command.measure, [&] {
        Report start{};
        start.tag = 'S';
        writeAll(toParent, start);
      });
      report.tag = 'E';
      report.roundTrips = result.roundTrips;
      report.seconds = result.seconds;
      std::snprintf(report.error, sizeof report.error, "%s", result.error.c_str());
      if (!writeAll(toParent, report)) return 12;
      // The server closes first (its side keeps the TIME_WAIT, not the
      // client's ephemeral ports, which 10,000 connections a run would
      // wear down).
      if (!readWithin(fromParent, command, kPatienceSeconds) || command.tag != 'C') return 13;
    }
    report.tag = 'D';
    if (!writeAll(toParent, report)) return 14;
  }
}

int reapChild(pid_t child) {
  int status = 0;
  for (int waited = 0; waited < 3000; ++waited) {
    const pid_t done = ::waitpid(child, &status, WNOHANG);
    if (done == child) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (done < 0) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(child, SIGKILL);
  ::waitpid(child, &status, 0);
  return -2;
}

// ---------------------------------------------------------------- parent

struct ServerEntry {
  std::string name;
  std::function<std::unique_ptr<bench::EchoServer>()> make;
};

std::vector<ServerEntry> servers() {
  return {
      {kLoopServer, bench::makeEpollServer},
      {"evchan epoll", [] { return bench::makeEvchanServer("epoll", 0); }},
      {kTaskServer, [] { return bench::makeEvchanTaskServer(0, "epoll"); }},
      {"evchan tasks (epoll; 1 worker)", [] { return bench::makeEvchanTaskServer(1, "epoll"); }},
  };
}

struct Run {
  bool ok = false;
  double rate = 0;        // round trips per second
  double cpuPerTrip = 0;  // seconds of server CPU per round trip
  std::string error;
};

class Parent {
 public:
  Parent(int toChild, int fromChild) : toChild_(toChild), fromChild_(fromChild) {}

  // One server at one connection count; `lost` set when the child no
  // longer answers (nothing more can run).
  Run run(const ServerEntry& entry, int connections, double warmup, double measure, bool& lost) {
    Run run;
    std::unique_ptr<bench::EchoServer> server;
    int port = 0;
    try {
      server = entry.make();
      port = server->start(0);
    } catch (const std::exception& e) {
      run.error = std::string("start: ") + e.what();
      return run;
    }
    Command command{'R', port, connections, warmup, measure};
    Report report{};
    double cpuStart = 0;
    if (!writeAll(toChild_, command) || !readWithin(fromChild_, report, kPatienceSeconds)) {
      lost = true;
      run.error = "the load generator's process does not answer";
      return run;
    }
    if (report.tag == 'S') {
      cpuStart = bench::cpuSeconds(CLOCK_PROCESS_CPUTIME_ID);
      if (!readWithin(fromChild_, report, kPatienceSeconds)) {
        lost = true;
        run.error = "the load generator's process does not answer";
        return run;
      }
    }
    const double cpuEnd = bench::cpuSeconds(CLOCK_PROCESS_CPUTIME_ID);
    if (report.tag != 'E') {
      lost = true;
      run.error = "unexpected report from the load generator";
      return run;
    }
    server->stop();
    command.tag = 'C';
    Report closed{};
    if (!writeAll(toChild_, command) || !readWithin(fromChild_, closed, kPatienceSeconds) || closed.tag != 'D') {
      lost = true;
    }
    if (report.error[0] != '\0') {
      run.error = report.error;
      return run;
    }
    if (report.roundTrips == 0 || report.seconds <= 0) {
      run.error = "no round trips";
      return run;
    }
    run.ok = true;
    run.rate = static_cast<double>(report.roundTrips) / report.seconds;
    run.cpuPerTrip = (cpuEnd - cpuStart) / static_cast<double>(report.roundTrips);
    return run;
  }

 private:
  const int toChild_;
  const int fromChild_;
};

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// A cell: the median of a server's runs at one connection count.
struct Cell {
  std::vector<Run> runs;
  bool ok = false;
  double rate = 0, cpuPerTrip = 0;
  std::string error;

  bool failed() const { return !runs.empty() && !runs.back().ok; }
  void summarize() {
    std::vector<double> rates, cpus;
    for (const Run& r : runs) {
      if (!r.ok) {
        error = r.error;
        return;
      }
      rates.push_back(r.rate);
      cpus.push_back(r.cpuPerTrip);
    }
    if (rates.empty()) return;
    ok = true;
    rate = median(rates);
    cpuPerTrip = median(cpus);
  }
};

std::string grouped(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.0f", value);
  const std::string digits = text;
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: growth_bench [--connections 1,10,100,1000,10000] [--duration SECONDS] [--rounds N]\n"
               "                    [--warmup SECONDS]\n"
               "  --duration  measured time per server and connection count, split over the rounds\n"
               "              (default 3 s, 3 rounds); each run is preceded by a warm-up (0.3 s)\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> counts{1, 10, 100, 1000, 10000};
  double duration = 3, warmup = 0.3;
  int rounds = 3;
  for (int i = 1; i < argc; ++i) {
    if (i + 1 >= argc) usage();
    const std::string arg = argv[i];
    const std::string value = argv[++i];
    try {
      if (arg == "--connections") {
        counts.clear();
        std::stringstream stream(value);
        for (std::string part; std::getline(stream, part, ',');) {
          const int count = std::stoi(part);
          if (count <= 0) usage();
          counts.push_back(count);
        }
      } else if (arg == "--duration") {
        duration = std::stod(value);
      } else if (arg == "--rounds") {
        rounds = std::stoi(value);
      } else if (arg == "--warmup") {
        warmup = std::stod(value);
      } else {
        usage();
      }
    } catch (const std::logic_error&) {
      usage();
    }
  }
  if (counts.empty() || duration <= 0 || warmup < 0 || rounds < 1) usage();
  const long fdLimit = scale_bench::raiseDescriptorLimit();

  // The load generator's process, forked before any thread exists.
  int down[2], up[2];
  if (::pipe(down) != 0 || ::pipe(up) != 0) {
    std::perror("pipe");
    return 1;
  }
  const pid_t child = ::fork();
  if (child < 0) {
    std::perror("fork");
    return 1;
  }
  if (child == 0) {
    ::close(down[1]);
    ::close(up[0]);
    ::_exit(childMain(down[0], up[1]));
  }
  ::close(down[0]);
  ::close(up[1]);
  Parent parent(down[1], up[0]);

  const double slice = duration / rounds;
  std::printf("growth_bench: 64-byte echo over 127.0.0.1, closed loop; load generator (one epoll thread) in a\n"
              "forked process; per server and connection count %d interleaved rounds of %.2f s after %.2f s\n"
              "warm-up; %u CPUs, descriptor limit %ld per process\n\n",
              rounds, slice, warmup, std::thread::hardware_concurrency(), fdLimit);
  std::fflush(stdout);

  const std::vector<ServerEntry> entries = servers();
  std::map<int, std::map<std::string, Cell>> cells;  // [connections][server]
  bool failed = false, lost = false;
  for (int connections : counts) {
    std::map<std::string, Cell>& row = cells[connections];
    if (connections + 64 > fdLimit) {
      for (const ServerEntry& entry : entries) {
        row[entry.name].error = "skipped: the descriptor limit is " + std::to_string(fdLimit);
      }
      continue;
    }
    for (int round = 0; round < rounds && !lost; ++round) {
      for (std::size_t i = 0; i < entries.size() && !lost; ++i) {
        const ServerEntry& entry = entries[(i + static_cast<std::size_t>(round)) % entries.size()];
        Cell& cell = row[entry.name];
        if (cell.failed()) continue;
        cell.runs.push_back(parent.run(entry, connections, warmup, slice, lost));
      }
    }
    for (auto& named : row) {
      named.second.summarize();
      if (!named.second.ok && named.second.error.rfind("skipped", 0) != 0) failed = true;
    }
    std::printf("measured %d connection%s\n", connections, connections == 1 ? "" : "s");
    std::fflush(stdout);
  }
  std::printf("\n");

  // The tables: round trips per second, and server CPU per round trip.
  for (int table = 0; table < 2; ++table) {
    std::printf(table == 0 ? "round trips per second (median)\n" : "server CPU per round trip, us (median)\n");
    std::printf("%-32s", "server");
    for (int connections : counts) std::printf(" %11d", connections);
    std::printf("\n");
    for (const ServerEntry& entry : entries) {
      std::printf("%-32s", entry.name.c_str());
      for (int connections : counts) {
        const Cell& cell = cells[connections][entry.name];
        if (!cell.ok) {
          std::printf(" %11s", "-");
          continue;
        }
        if (table == 0) {
          std::printf(" %11s", grouped(cell.rate).c_str());
        } else {
          std::printf(" %11.2f", cell.cpuPerTrip * 1e6);
        }
      }
      std::printf("\n");
    }
    std::printf("\n");
  }
  for (const auto& row : cells) {
    for (const auto& named : row.second) {
      if (!named.second.ok) {
        std::printf("%s at %d: %s\n", named.first.c_str(), row.first,
                    named.second.error.empty() ? "not run" : named.second.error.c_str());
      }
    }
  }

  // CPU per round trip at 10,000 connections over 100 (lower is better).
  const auto growth = [&](const std::string& server) -> std::string {
    const auto low = cells.find(100), high = cells.find(10000);
    if (low == cells.end() || high == cells.end()) return "";
    const Cell& a = low->second[server];
    const Cell& b = high->second[server];
    if (!a.ok || !b.ok || a.cpuPerTrip <= 0) return "";
    char text[32];
    std::snprintf(text, sizeof text, "%.2f", b.cpuPerTrip / a.cpuPerTrip);
    return text;
  };
  std::printf("server CPU per round trip at 10,000 connections over 100 (lower is better)\n");
  for (const ServerEntry& entry : entries) {
    const std::string g = growth(entry.name);
    std::printf("%-32s %11s\n", entry.name.c_str(), g.empty() ? "not run" : g.c_str());
  }
  std::printf("\n");
  const std::string target = growth(kTaskServer);
  if (target.empty()) {
    std::printf("target: %s CPU per round trip growth from 100 to 10,000 connections: not run\n", kTaskServer);
  } else {
    std::printf("target: %s CPU per round trip growth from 100 to 10,000 connections: %s (target at most %.2f): "
                "%s\n",
                kTaskServer, target.c_str(), kTargetGrowth, std::stod(target) <= kTargetGrowth ? "met" : "missed");
    // What the sockets alone cost: at 10,000 connections each round trip
    // finds its socket's kernel state cold, whatever the server.
    const std::string floor = growth(kLoopServer);
    if (!floor.empty()) {
      std::printf("        beside it the hand-written loop's own growth: %s; the task server's over the loop's: %.2f\n",
                  floor.c_str(), std::stod(target) / std::stod(floor));
    }
  }

  Command quit{'Q', 0, 0, 0, 0};
  writeAll(down[1], quit);
  const int status = reapChild(child);
  if (status != 0) {
    std::printf("FAILED: the load generator's process ended with status %d\n", status);
    failed = true;
  }
  if (lost) failed = true;
  ::close(down[1]);
  ::close(up[0]);
  if (failed) std::printf("growth_bench: FAILED\n");
  return failed ? 1 : 0;
}
