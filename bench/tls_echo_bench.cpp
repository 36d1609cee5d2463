// SPDX-License-Identifier: Apache-2.0
// tls_echo_bench: TLS echo over loopback, two servers in one run:
//   * evchan:       a task per connection, TlsStream over TcpSocket, on an
//                   EventChannel's workers;
//   * openssl+epoll: a single-threaded loop written for this bench, OpenSSL
//                   on non-blocking sockets (SSL_set_fd), level-triggered
//                   epoll, the usual WANT_READ/WANT_WRITE dance.
// The clients are threads of this process with blocking OpenSSL sockets,
// the same for both servers.  Two workloads: 64-byte ping-pong (round trips
// a second) and 64 KiB messages echoed (MiB a second).  The certificate is
// made in memory (P-256, self-signed); the clients do not verify it.
//
//   tls_echo_bench [--seconds S] [--connections N]
//
// Each cell is the better of two runs, measured from when every client has
// finished its handshake; the ratio is evchan / epoll loop.  Beside it the
// server's CPU time per round trip (the process's, less the client
// threads'), which a busy machine moves less than the rates.
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <evchan/evchan.h>

#include "servers/posix_listen.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  double seconds = 2;
  int connections = 16;
};

// ------------------------------------------------------------ certificate
struct Credentials {
  std::string certificatePem;
  std::string keyPem;
};

std::string bioText(BIO* bio) {
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(length));
}

Credentials makeCredentials() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* certificate = X509_new();
  ASN1_INTEGER_set(X509_get_serialNumber(certificate), 1);
  X509_gmtime_adj(X509_getm_notBefore(certificate), 0);
  X509_gmtime_adj(X509_getm_notAfter(certificate), 24 * 3600);
  X509_set_pubkey(certificate, key);
  X509_NAME* name = X509_get_subject_name(certificate);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(certificate, name);
  X509_sign(certificate, key, EVP_sha256());
  BIO* certificateBio = BIO_new(BIO_s_mem());
  BIO* keyBio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(certificateBio, certificate);
  PEM_write_bio_PrivateKey(keyBio, key, nullptr, nullptr, 0, nullptr, nullptr);
  Credentials credentials{bioText(certificateBio), bioText(keyBio)};
  BIO_free(certificateBio);
  BIO_free(keyBio);
  X509_free(certificate);
  EVP_PKEY_free(key);
  return credentials;
}

// ------------------------------------------------------------ servers
/// A running echo server on 127.0.0.1:port(), stopped by its destructor.
class Server {
 public:
  virtual ~Server() = default;
  virtual int port() const = 0;
};

class EvchanServer : public Server {
 public:
  explicit EvchanServer(const Credentials& credentials)
      : context_(evchan::TlsContext::Role::server),
        listener_(evchan::TcpListener::listen({"127.0.0.1", 0})),
        channel_(evchan::EventChannel::create()) {
    context_.useCertificateChainPem(credentials.certificatePem);
    context_.usePrivateKeyPem(credentials.keyPem);
    acceptor_ = channel_->spawn([this] {
      for (;;) {
        std::error_code ec;
        evchan::TcpSocket peer = listener_.accept(ec);
        if (ec) return;
        peer.setNoDelay(true);
        channel_->spawn([this](evchan::TcpSocket socket) {
          evchan::TlsStream stream(context_, std::make_unique<evchan::TcpSocket>(std::move(socket)));
          std::error_code error;
          stream.handshake({}, error);
          std::vector<char> buffer(64 * 1024);
          for (std::size_t n; !error && (n = stream.readSome(buffer.data(), buffer.size(), error)) > 0;) {
            stream.writeAll(buffer.data(), n, error);
          }
        }, std::move(peer));
      }
    });
  }
  ~EvchanServer() override {
    listener_.close();
    channel_->shutdown();
  }
  int port() const override { return listener_.port(); }

 private:
  evchan::TlsContext context_;
  evchan::TcpListener listener_;
  std::unique_ptr<evchan::EventChannel> channel_;
  evchan::TaskHandle acceptor_;
};

class EpollServer : public Server {
 public:
  explicit EpollServer(const Credentials& credentials) {
    ctx_ = SSL_CTX_new(TLS_server_method());
    BIO* certificate = BIO_new_mem_buf(credentials.certificatePem.data(), -1);
    BIO* key = BIO_new_mem_buf(credentials.keyPem.data(), -1);
    X509* x509 = PEM_read_bio_X509(certificate, nullptr, nullptr, nullptr);
    EVP_PKEY* pkey = PEM_read_bio_PrivateKey(key, nullptr, nullptr, nullptr);
    SSL_CTX_use_certificate(ctx_, x509);
    SSL_CTX_use_PrivateKey(ctx_, pkey);
    X509_free(x509);
    EVP_PKEY_free(pkey);
    BIO_free(certificate);
    BIO_free(key);
    listenFd_ = bench::listenLoopback(0, port_);
    epollFd_ = epoll_create1(EPOLL_CLOEXEC);
    ::pipe2(stopPipe_, O_CLOEXEC | O_NONBLOCK);
    watch(listenFd_, EPOLLIN);
    watch(stopPipe_[0], EPOLLIN);
    thread_ = std::thread([this] { run(); });
  }
  ~EpollServer() override {
    ::write(stopPipe_[1], "x", 1);
    thread_.join();
    for (auto& entry : connections_) {
      SSL_free(entry.second.ssl);
      ::close(entry.first);
    }
    ::close(listenFd_);
    ::close(epollFd_);
    ::close(stopPipe_[0]);
    ::close(stopPipe_[1]);
    SSL_CTX_free(ctx_);
  }
  int port() const override { return port_; }

 private:
  struct Connection {
    SSL* ssl = nullptr;
    std::vector<char> pending;  // read, not yet written back
    std::size_t written = 0;
  };

  void watch(int fd, std::uint32_t events, int op = EPOLL_CTL_ADD) {
    epoll_event event{};
    event.events = events;
    event.data.fd = fd;
    epoll_ctl(epollFd_, op, fd, &event);
  }

  void close(int fd) {
    SSL_free(connections_[fd].ssl);
    connections_.erase(fd);
    ::close(fd);
  }

  // Writes what is pending; false when the connection is gone.
  bool flush(int fd, Connection& c) {
    while (c.written < c.pending.size()) {
      const int n = SSL_write(c.ssl, c.pending.data() + c.written, static_cast<int>(c.pending.size() - c.written));
      if (n > 0) {
        c.written += static_cast<std::size_t>(n);
        continue;
      }
      const int error = SSL_get_error(c.ssl, n);
      if (error == SSL_ERROR_WANT_WRITE) {
        watch(fd, EPOLLOUT, EPOLL_CTL_MOD);
        return true;
      }
      if (error == SSL_ERROR_WANT_READ) return true;
      return false;
    }
    c.pending.clear();
    c.written = 0;
    watch(fd, EPOLLIN, EPOLL_CTL_MOD);
    return true;
  }

  // Reads and echoes until OpenSSL wants more; false when the connection is gone.
  bool serve(int fd, Connection& c) {
    if (!c.pending.empty()) return flush(fd, c);
    char buffer[64 * 1024];
    for (;;) {
      const int n = SSL_read(c.ssl, buffer, sizeof buffer);
      if (n > 0) {
        c.pending.assign(buffer, buffer + n);
        if (!flush(fd, c)) return false;
        if (!c.pending.empty()) return true;  // wait for EPOLLOUT
        continue;
      }
      const int error = SSL_get_error(c.ssl, n);
      if (error == SSL_ERROR_WANT_READ) return true;
      if (error == SSL_ERROR_WANT_WRITE) {
        watch(fd, EPOLLOUT, EPOLL_CTL_MOD);
        return true;
      }
      ERR_clear_error();
      return false;
    }
  }

  void run() {
    epoll_event events[256];
    for (;;) {
      const int ready = epoll_wait(epollFd_, events, 256, -1);
      for (int i = 0; i < ready; ++i) {
        const int fd = events[i].data.fd;
        if (fd == stopPipe_[0]) return;
        if (fd == listenFd_) {
          for (int peer; (peer = ::accept4(listenFd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) {
            bench::setNoDelay(peer);
            Connection& c = connections_[peer];
            c.ssl = SSL_new(ctx_);
            SSL_set_fd(c.ssl, peer);
            SSL_set_accept_state(c.ssl);
            watch(peer, EPOLLIN);
          }
          continue;
        }
        auto found = connections_.find(fd);
        if (found != connections_.end() && !serve(fd, found->second)) close(fd);
      }
    }
  }

  SSL_CTX* ctx_ = nullptr;
  int listenFd_ = -1;
  int port_ = 0;
  int epollFd_ = -1;
  int stopPipe_[2] = {-1, -1};
  std::unordered_map<int, Connection> connections_;
  std::thread thread_;
};

// ------------------------------------------------------------ clients
double cpuSeconds(int who) {
  rusage usage{};
  ::getrusage(who, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

/// One run: round trips, the measured time, and the server's CPU time in
/// it (the process's, less the client threads' own).
struct Run {
  std::uint64_t trips = 0;
  double seconds = 0;
  double serverCpu = 0;
  double rate() const { return seconds > 0 ? static_cast<double>(trips) / seconds : 0; }
  double cpuPerTrip() const { return trips > 0 ? serverCpu / static_cast<double>(trips) : 0; }
};

/// Runs `connections` client threads against `port`, each echoing
/// `message` bytes at a time; measures `seconds` from when every client has
/// connected and finished its handshake.
Run drive(int port, int connections, std::size_t message, double seconds) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  std::atomic<std::uint64_t> trips{0};
  std::atomic<bool> failed{false};
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::atomic<bool> stop{false};
  std::mutex cpuLock;
  double clientCpu = 0;
  std::vector<std::thread> clients;
  for (int i = 0; i < connections; ++i) {
    clients.emplace_back([&] {
      const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in address{};
      address.sin_family = AF_INET;
      address.sin_port = htons(static_cast<std::uint16_t>(port));
      address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      SSL* ssl = SSL_new(ctx);
      if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        failed = true;
      } else {
        bench::setNoDelay(fd);
        SSL_set_fd(ssl, fd);
        if (SSL_connect(ssl) != 1) failed = true;
      }
      ++ready;
      while (!go.load()) std::this_thread::yield();
      const double cpuBefore = cpuSeconds(RUSAGE_THREAD);
      std::vector<char> out(message, 'x'), in(message);
      std::uint64_t done = 0;
      while (!failed && !stop.load(std::memory_order_relaxed)) {
        if (SSL_write(ssl, out.data(), static_cast<int>(message)) != static_cast<int>(message)) {
          failed = true;
          break;
        }
        for (std::size_t got = 0; got < message;) {
          const int n = SSL_read(ssl, in.data() + got, static_cast<int>(message - got));
          if (n <= 0) {
            failed = true;
            break;
          }
          got += static_cast<std::size_t>(n);
        }
        ++done;
      }
      trips += done;
      SSL_shutdown(ssl);
      SSL_free(ssl);
      ::close(fd);
      const double cpu = cpuSeconds(RUSAGE_THREAD) - cpuBefore;
      std::lock_guard<std::mutex> lock(cpuLock);
      clientCpu += cpu;
    });
  }
  while (ready.load() < connections) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  Run run;
  const double cpuBefore = cpuSeconds(RUSAGE_SELF);
  const auto begin = Clock::now();
  go = true;
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  run.seconds = std::chrono::duration<double>(Clock::now() - begin).count();
  for (std::thread& client : clients) client.join();
  run.serverCpu = cpuSeconds(RUSAGE_SELF) - cpuBefore - clientCpu;
  run.trips = trips;
  SSL_CTX_free(ctx);
  if (failed) std::fprintf(stderr, "tls_echo_bench: a client failed\n");
  return run;
}

/// The better of two runs (the higher rate), and the lower server CPU per
/// round trip of the two.
template <class ServerType>
Run measure(const Credentials& credentials, int connections, std::size_t message, double seconds, double& cpuPerTrip) {
  Run best;
  cpuPerTrip = 0;
  for (int round = 0; round < 2; ++round) {
    ServerType server(credentials);
    const Run run = drive(server.port(), connections, message, seconds);
    if (run.rate() > best.rate()) best = run;
    if (cpuPerTrip == 0 || (run.trips > 0 && run.cpuPerTrip() < cpuPerTrip)) cpuPerTrip = run.cpuPerTrip();
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--seconds" && i + 1 < argc) {
      options.seconds = std::atof(argv[++i]);
    } else if (arg == "--connections" && i + 1 < argc) {
      options.connections = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: tls_echo_bench [--seconds S] [--connections N]\n");
      return 2;
    }
  }
  if (options.seconds <= 0 || options.connections <= 0) return 2;
  const Credentials credentials = makeCredentials();
  std::printf("TLS echo over loopback (TLS 1.3, P-256): %d client threads, %.1f s a run, best of 2\n",
              options.connections, options.seconds);
  std::printf("%-16s %16s %16s %7s %21s %7s\n", "workload", "evchan tasks", "openssl+epoll", "ratio",
              "server CPU/rt (us)", "ratio");
  struct Workload {
    const char* name;
    std::size_t message;
    const char* unit;
  };
  const Workload workloads[] = {{"64 B ping-pong", 64, "trips/s"}, {"64 KiB echo", 64 * 1024, "MiB/s"}};
  for (const Workload& w : workloads) {
    double evchanCpu = 0, epollCpu = 0;
    double evchanRate =
        measure<EvchanServer>(credentials, options.connections, w.message, options.seconds, evchanCpu).rate();
    double epollRate = measure<EpollServer>(credentials, options.connections, w.message, options.seconds, epollCpu).rate();
    if (w.message > 64) {
      evchanRate = evchanRate * static_cast<double>(w.message) / (1024 * 1024);
      epollRate = epollRate * static_cast<double>(w.message) / (1024 * 1024);
    }
    std::printf("%-16s %8.0f %-7s %8.0f %-7s %6.2fx %10.2f / %-8.2f %6.2fx\n", w.name, evchanRate, w.unit, epollRate,
                w.unit, epollRate > 0 ? evchanRate / epollRate : 0.0, evchanCpu * 1e6, epollCpu * 1e6,
                epollCpu > 0 ? evchanCpu / epollCpu : 0.0);
  }
  std::printf("ratio: evchan over the loop (higher is better); server CPU/rt: the server's CPU time per round trip,\n"
              "evchan / loop (the process's CPU less the client threads'; lower is better), the lower of the two runs\n");
  return 0;
}
