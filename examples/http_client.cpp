// SPDX-License-Identifier: Apache-2.0
// http_client: fetches one page over HTTP/1.1 (or HTTPS) from a task, with
// a deadline for each attempt and retries with exponential backoff.
//
//   http_client HOST PORT PATH [--attempts N] [--timeout-ms MS]
//                              [--tls] [--ca FILE]
//
// Prints the response body on stdout and exits 0 on a 2xx answer; a 4xx
// answer is final (exit 1); connection failures, timeouts and 5xx answers
// are retried up to N attempts in all (default 4), waiting 100 ms, 200 ms,
// 400 ms, ... in between.  MS (default 2000) bounds a whole attempt:
// connect, request, headers and body together.
//
// --tls speaks HTTPS: a TlsStream over the TcpSocket, the server's
// certificate verified against the system's CA store (or, with --ca, the
// PEM CAs in FILE) and against HOST.  A failed verification is final, not
// retried; a connection cut without TLS's close_notify (TlsErrc::truncated:
// the body may be incomplete) is retried like any other broken attempt.
#include <evchan/evchan.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace std::chrono_literals;

constexpr std::size_t kMaxLine = 8 * 1024;
constexpr std::size_t kMaxBody = 16 * 1024 * 1024;

struct Response {
  int status = 0;
  std::string body;
};

// An answer that retrying cannot change.
struct FinalFailure {
  std::string why;
};

std::string lowercase(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

struct Target {
  std::string host;
  int port = 0;
  std::string path;
#if EVCHAN_HAVE_TLS
  std::unique_ptr<evchan::TlsContext> tls;  // null: plain HTTP
#endif
};

// A connected stream to the target: the TCP connection itself, or a
// handshaken TlsStream that owns it.
std::unique_ptr<evchan::Stream> connect(const Target& target) {
  auto socket = std::make_unique<evchan::TcpSocket>(evchan::TcpSocket::connect({target.host, target.port}));
#if EVCHAN_HAVE_TLS
  if (target.tls) {
    auto tls = std::make_unique<evchan::TlsStream>(*target.tls, std::move(socket));
    std::error_code ec;
    tls->handshake(target.host, ec);
    // A certificate that does not verify stays that way on a retry.
    if (ec == evchan::TlsErrc::verification_failed) {
      throw FinalFailure{"tls handshake with " + target.host + ": " + ec.message()};
    }
    if (ec) throw evchan::SystemError(ec, "tls handshake", target.host);
    return tls;
  }
#endif
  return socket;
}

// One attempt: connect, send the request, read the whole response.
Response fetch(const Target& target) {
  std::unique_ptr<evchan::Stream> stream = connect(target);
  const std::string request = "GET " + target.path + " HTTP/1.1\r\nHost: " + target.host +
                              "\r\nConnection: close\r\nUser-Agent: evchan-example\r\n\r\n";
  stream->writeAll(request.data(), request.size());
  evchan::BufferedReader reader(*stream);
  const std::string statusLine = reader.readLine(kMaxLine);
  Response response;
  if (statusLine.rfind("HTTP/1.", 0) != 0 || statusLine.size() < 12) {
    throw FinalFailure{"not an HTTP response: " + statusLine};
  }
  response.status = std::atoi(statusLine.c_str() + 9);
  std::size_t length = 0;
  bool sized = false;
  for (;;) {
    std::string header = reader.readLine(kMaxLine);
    if (!header.empty() && header.back() == '\r') header.pop_back();
    if (header.empty()) break;
    const std::string name = lowercase(header.substr(0, header.find(':')));
    if (name == "content-length") {
      length = std::strtoull(header.c_str() + header.find(':') + 1, nullptr, 10);
      sized = true;
    }
  }
  if (sized) {
    if (length > kMaxBody) throw FinalFailure{"response body too large"};
    response.body.resize(length);
    reader.readExactly(response.body.data(), length);
  } else {
    // No length: the body runs to the end of the connection.
    char chunk[4096];
    std::error_code ec;
    for (;;) {
      const std::size_t got = reader.readSome(chunk, sizeof chunk, ec);
      if (ec == evchan::Errc::end_of_stream) break;
      if (ec) throw evchan::SystemError(ec, "read body");
      if (response.body.size() + got > kMaxBody) throw FinalFailure{"response body too large"};
      response.body.append(chunk, got);
    }
  }
  return response;
}

int run(const Target& target, int attempts, evchan::Duration timeout) {
  evchan::Duration backoff = 100ms;
  for (int attempt = 1;; ++attempt) {
    std::string failure;
    try {
      const Response response = evchan::this_task::withTimeout(timeout, [&] { return fetch(target); });
      if (response.status >= 200 && response.status < 300) {
        std::fwrite(response.body.data(), 1, response.body.size(), stdout);
        return 0;
      }
      if (response.status < 500) {
        std::fprintf(stderr, "http_client: HTTP %d (not retried)\n", response.status);
        return 1;
      }
      failure = "HTTP " + std::to_string(response.status);
    } catch (const FinalFailure& e) {
      std::fprintf(stderr, "http_client: %s\n", e.why.c_str());
      return 1;
    } catch (const evchan::SystemError& e) {
      failure = e.what();  // refused, reset, timed out: worth another try
    }
    if (attempt == attempts) {
      std::fprintf(stderr, "http_client: attempt %d of %d failed (%s); giving up\n", attempt, attempts,
                   failure.c_str());
      return 1;
    }
    std::fprintf(stderr, "http_client: attempt %d of %d failed (%s); retrying in %lld ms\n", attempt, attempts,
                 failure.c_str(),
                 static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(backoff).count()));
    evchan::this_task::sleepFor(backoff);
    backoff = std::min<evchan::Duration>(backoff * 2, 5s);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const char* usage = "usage: http_client HOST PORT PATH [--attempts N] [--timeout-ms MS] [--tls] [--ca FILE]\n";
  if (argc < 4) {
    std::fprintf(stderr, "%s", usage);
    return 2;
  }
  Target target;
  target.host = argv[1];
  target.port = std::atoi(argv[2]);
  target.path = argv[3];
  int attempts = 4;
  long timeoutMs = 2000;
  bool tls = false;
  std::string caFile;
  for (int i = 4; i < argc; ++i) {
    const bool valued = i + 1 < argc;
    if (std::strcmp(argv[i], "--tls") == 0) {
      tls = true;
    } else if (valued && std::strcmp(argv[i], "--attempts") == 0) {
      attempts = std::max(1, std::atoi(argv[++i]));
    } else if (valued && std::strcmp(argv[i], "--timeout-ms") == 0) {
      timeoutMs = std::max(1L, std::atol(argv[++i]));
    } else if (valued && std::strcmp(argv[i], "--ca") == 0) {
      caFile = argv[++i];
    } else {
      std::fprintf(stderr, "http_client: unknown or incomplete option %s\n%s", argv[i], usage);
      return 2;
    }
  }
  try {
    if (!caFile.empty() && !tls) {
      std::fprintf(stderr, "http_client: --ca needs --tls\n%s", usage);
      return 2;
    }
    if (tls) {
#if EVCHAN_HAVE_TLS
      target.tls = std::make_unique<evchan::TlsContext>(evchan::TlsContext::Role::client);
      if (!caFile.empty()) target.tls->loadCaFile(caFile);
#else
      std::fprintf(stderr, "http_client: this evchan was built without TLS\n");
      return 2;
#endif
    }
    std::unique_ptr<evchan::EventChannel> channel = evchan::EventChannel::create(evchan::EventChannel::Options());
    int status = 1;
    evchan::TaskHandle task =
        channel->spawn([&] { status = run(target, attempts, std::chrono::milliseconds(timeoutMs)); });
    task.join();
    return status;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "http_client: %s\n", e.what());
    return 1;
  }
}
