// SPDX-License-Identifier: Apache-2.0
// accept_bench: connection churn over loopback.  Client threads connect,
// wait for the server to close, close, and connect again; the server
// accepts and closes at once.  A hand-written epoll loop (accept4 until
// EAGAIN, close) beside evchan's task server (an acceptor task on a
// TcpListener, default pool and one worker).
//
//   accept_bench [--clients N] [--duration SECONDS] [--rounds N]
//
// Each server runs --rounds rounds of --duration / --rounds seconds,
// interleaved with the others'; the table gives the median round's
// connections per second and the process's CPU per connection (clients
// included: the same for every server), each beside the loop's.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <evchan/evchan.h>

#include "servers/posix_listen.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  int clients = 2;
  double duration = 3.0;
  int rounds = 5;
};

/// A server listening on 127.0.0.1 until destroyed; port() says where.
class ChurnServer {
 public:
  virtual ~ChurnServer() = default;
  virtual int port() const = 0;
};

class EpollLoop final : public ChurnServer {
 public:
  EpollLoop() : listener_(bench::listenLoopback(0, port_)), epoll_(::epoll_create1(EPOLL_CLOEXEC)) {
    if (::pipe(stop_) != 0) throw std::system_error(errno, std::generic_category(), "pipe");
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = listener_;
    ::epoll_ctl(epoll_, EPOLL_CTL_ADD, listener_, &event);
    event.data.fd = stop_[0];
    ::epoll_ctl(epoll_, EPOLL_CTL_ADD, stop_[0], &event);
    thread_ = std::thread([this] { run(); });
  }
  ~EpollLoop() override {
    while (::write(stop_[1], "x", 1) < 0 && errno == EINTR) {
    }
    thread_.join();
    for (int fd : {listener_, epoll_, stop_[0], stop_[1]}) ::close(fd);
  }
  int port() const override { return port_; }

 private:
  void run() {
    epoll_event events[8];
    for (;;) {
      const int n = ::epoll_wait(epoll_, events, 8, -1);
      for (int i = 0; i < n; ++i) {
        if (events[i].data.fd == stop_[0]) return;
        for (;;) {
          const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break;
          ::close(fd);
        }
      }
    }
  }

  int port_ = 0;
  int listener_;
  int epoll_;
  int stop_[2] = {-1, -1};
  std::thread thread_;
};

class EvchanTasks final : public ChurnServer {
 public:
  explicit EvchanTasks(int workers) {
    evchan::EventChannel::Options options;
    options.initialThreads = workers;
    channel_ = evchan::EventChannel::create(options);
    listener_ = evchan::TcpListener::listen(evchan::Endpoint("127.0.0.1", 0));
    acceptor_ = channel_->spawn([this] {
      for (;;) {
        std::error_code ec;
        evchan::TcpSocket socket = listener_.accept(ec);  // closed at the end of the iteration
        if (ec) return;
      }
    });
  }
  ~EvchanTasks() override {
    listener_.close();
    acceptor_.join();
  }
  int port() const override { return listener_.port(); }

 private:
  std::unique_ptr<evchan::EventChannel> channel_;
  evchan::TcpListener listener_;
  evchan::TaskHandle acceptor_;
};

struct Round {
  double perSecond = 0;
  double cpuMicrosPerConnection = 0;
};

double processCpuMicros() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  auto micros = [](const timeval& t) { return t.tv_sec * 1e6 + t.tv_usec; };
  return micros(usage.ru_utime) + micros(usage.ru_stime);
}

/// `clients` threads churn connections to `port` for `seconds`.
Round churn(int port, int clients, double seconds) {
  std::atomic<bool> stop{false};
  std::atomic<long> connections{0};
  std::atomic<int> failures{0};
  const double cpuBefore = processCpuMicros();
  const Clock::time_point start = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&] {
      sockaddr_in address{};
      address.sin_family = AF_INET;
      address.sin_port = htons(static_cast<std::uint16_t>(port));
      address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      long made = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
          ++failures;
          if (fd >= 0) ::close(fd);
          continue;
        }
        char byte;
        while (::read(fd, &byte, 1) < 0 && errno == EINTR) {
        }
        ::close(fd);
        ++made;
      }
      connections += made;
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (std::thread& thread : threads) thread.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu = processCpuMicros() - cpuBefore;
  if (failures.load() > 0) std::fprintf(stderr, "accept_bench: %d connects failed\n", failures.load());
  Round round;
  const long made = std::max(1L, connections.load());
  round.perSecond = made / elapsed;
  round.cpuMicrosPerConnection = cpu / made;
  return round;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

Options parse(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const char* value = i + 1 < argc ? argv[i + 1] : nullptr;
    if (arg == "--clients" && value != nullptr) {
      options.clients = std::atoi(value), ++i;
    } else if (arg == "--duration" && value != nullptr) {
      options.duration = std::atof(value), ++i;
    } else if (arg == "--rounds" && value != nullptr) {
      options.rounds = std::atoi(value), ++i;
    } else {
      std::fprintf(stderr, "usage: accept_bench [--clients N] [--duration SECONDS] [--rounds N]\n");
      std::exit(2);
    }
  }
  if (options.clients < 1 || options.rounds < 1 || !(options.duration > 0)) {
    std::fprintf(stderr, "accept_bench: --clients and --rounds must be at least 1, --duration positive\n");
    std::exit(2);
  }
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = parse(argc, argv);
  struct Server {
    const char* name;
    std::function<std::unique_ptr<ChurnServer>()> make;
    std::vector<double> perSecond;
    std::vector<double> cpu;
  };
  std::vector<Server> servers = {
      {"epoll loop (hand-written)", [] { return std::make_unique<EpollLoop>(); }, {}, {}},
      {"evchan tasks", [] { return std::make_unique<EvchanTasks>(0); }, {}, {}},
      {"evchan tasks (1 worker)", [] { return std::make_unique<EvchanTasks>(1); }, {}, {}},
  };
  const double perRound = options.duration / options.rounds;
  std::printf("accept_bench: %d client threads connect, wait for the server's close, close; %d rounds of %.2f s "
              "per server, interleaved\n",
              options.clients, options.rounds, perRound);
  for (int round = 0; round < options.rounds; ++round) {
    for (Server& server : servers) {
      std::unique_ptr<ChurnServer> running = server.make();
      churn(running->port(), options.clients, 0.1);  // warm-up
      const Round measured = churn(running->port(), options.clients, perRound);
      server.perSecond.push_back(measured.perSecond);
      server.cpu.push_back(measured.cpuMicrosPerConnection);
    }
  }
  const double loopRate = median(servers[0].perSecond);
  const double loopCpu = median(servers[0].cpu);
  std::printf("%-28s %14s %8s %22s %8s\n", "server", "connections/s", "vs loop", "process CPU/conn (us)", "vs loop");
  for (const Server& server : servers) {
    const double rate = median(server.perSecond);
    const double cpu = median(server.cpu);
    std::printf("%-28s %14.0f %8.2f %22.2f %8.2f\n", server.name, rate, rate / loopRate, cpu, cpu / loopCpu);
  }
  std::printf("connections/s: median round, higher is better; process CPU per connection (the client threads'\n"
              "included, the same for every server), lower is better.\n");
  return 0;
}
