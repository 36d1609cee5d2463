// SPDX-License-Identifier: Apache-2.0
// http_server: a small HTTP/1.1 server on evchan tasks, one task per
// connection, with keep-alive and pipelining (requests are answered in
// order as they are read from a BufferedReader).
//
//   http_server [PORT]        (default 8080; 0 picks a free port)
//
// Prints "listening on 127.0.0.1:PORT" once it accepts connections.
// Routes:  GET /            a greeting
//          GET /hello/NAME  "Hello, NAME!"
//          POST /echo       the request body back
//          anything else    404; a malformed request gets 400 and the
//                           connection is closed.
// An idle connection is closed after 30 s; a whole request (headers and
// body) must arrive within 10 s of its first byte.  SIGINT or SIGTERM
// stops it the canonical way (see echo_server.cpp): no new connections,
// 2 s for the requests under way, the rest cancelled, exit 0.
#include <evchan/evchan.h>

#include <cctype>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

using namespace std::chrono_literals;

constexpr std::size_t kMaxLine = 8 * 1024;
constexpr std::size_t kMaxHeaders = 100;
constexpr std::size_t kMaxBody = 1024 * 1024;

struct Request {
  std::string method, target, version;
  std::size_t contentLength = 0;
  bool keepAlive = true;
  std::string body;
};

// A request the server refuses (400), with the reason for the log.
struct BadRequest {
  std::string why;
};

std::string lowercase(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r')) text.remove_suffix(1);
  return text;
}

// Reads one request; false at a clean end of the connection before it.
bool readRequest(evchan::BufferedReader& reader, Request& request) {
  std::error_code ec;
  std::string line = reader.readLine(kMaxLine, ec);
  if (ec == evchan::Errc::end_of_stream) return false;
  if (ec) throw evchan::SystemError(ec, "read request line");
  // Everything after the first byte of a request must come in time.
  evchan::this_task::DeadlineScope deadline(10s);
  line = std::string(trim(line));
  const std::size_t space1 = line.find(' '), space2 = line.rfind(' ');
  if (space1 == std::string::npos || space1 == space2) throw BadRequest{"malformed request line"};
  request.method = line.substr(0, space1);
  request.target = line.substr(space1 + 1, space2 - space1 - 1);
  request.version = line.substr(space2 + 1);
  if (request.version != "HTTP/1.1" && request.version != "HTTP/1.0") throw BadRequest{"unsupported version"};
  request.keepAlive = request.version == "HTTP/1.1";
  for (std::size_t count = 0;; ++count) {
    if (count == kMaxHeaders) throw BadRequest{"too many headers"};
    const std::string header = reader.readLine(kMaxLine);
    const std::string_view field = trim(header);
    if (field.empty()) break;
    const std::size_t colon = field.find(':');
    if (colon == std::string_view::npos) throw BadRequest{"malformed header"};
    const std::string name = lowercase(trim(field.substr(0, colon)));
    const std::string value = lowercase(trim(field.substr(colon + 1)));
    if (name == "content-length") {
      char* end = nullptr;
      const unsigned long long length = std::strtoull(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || length > kMaxBody) throw BadRequest{"bad Content-Length"};
      request.contentLength = static_cast<std::size_t>(length);
    } else if (name == "transfer-encoding") {
      throw BadRequest{"chunked request bodies are not supported"};
    } else if (name == "connection") {
      if (value == "close") request.keepAlive = false;
      if (value == "keep-alive") request.keepAlive = true;
    }
  }
  request.body.resize(request.contentLength);
  if (request.contentLength > 0) reader.readExactly(request.body.data(), request.contentLength);
  return true;
}

void respond(evchan::Stream& stream, int status, std::string_view reason, std::string_view body, bool keepAlive) {
  const std::string head = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) +
                           "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
                           (keepAlive ? "\r\n\r\n" : "\r\nConnection: close\r\n\r\n");
  // Head and body in one gather write.
  stream.writeAll({{head.data(), head.size()}, {body.data(), body.size()}});
}

void serve(evchan::TcpSocket socket) {
  socket.setTimeout(30s);  // an idle keep-alive connection goes after this
  evchan::BufferedReader reader(socket);
  try {
    for (;;) {
      Request request;
      if (!readRequest(reader, request)) return;
      if (request.method == "GET" && request.target == "/") {
        respond(socket, 200, "OK", "Hello from evchan\n", request.keepAlive);
      } else if (request.method == "GET" && request.target.rfind("/hello/", 0) == 0) {
        respond(socket, 200, "OK", "Hello, " + request.target.substr(7) + "!\n", request.keepAlive);
      } else if (request.method == "POST" && request.target == "/echo") {
        respond(socket, 200, "OK", request.body, request.keepAlive);
      } else {
        respond(socket, 404, "Not Found", "no such page\n", request.keepAlive);
      }
      if (!request.keepAlive) return;
    }
  } catch (const BadRequest& bad) {
    std::error_code ec;
    const std::string body = bad.why + "\n";
    const std::string head = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: " +
                             std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
    socket.writeAll({{head.data(), head.size()}, {body.data(), body.size()}}, ec);  // the client may be gone
  } catch (const evchan::SystemError& e) {
    // Timeouts, resets and oversized lines end the connection quietly;
    // cancellation (shutdown) must go on unwinding the task.
    if (e.code() == std::errc::operation_canceled) throw;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int port = argc > 1 ? std::atoi(argv[1]) : 8080;
  try {
    evchan::SignalSet stop({SIGINT, SIGTERM});  // first, before any thread exists
    evchan::TcpListener listener = evchan::TcpListener::listen({"127.0.0.1", port});
    std::unique_ptr<evchan::EventChannel> channel = evchan::EventChannel::create();
    {
      evchan::TaskGroup connections(*channel);
      evchan::TaskHandle acceptor = channel->spawn([&] {
        for (;;) connections.spawn(serve, listener.acceptWithBackoff());
      });
      std::printf("listening on 127.0.0.1:%d\n", listener.port());
      std::fflush(stdout);
      stop.wait();
      // Stop accepting, give the connections 2 s to finish the requests
      // they are answering, then cancel the rest (idle keep-alives).
      acceptor.cancel();
      try {
        acceptor.join();
      } catch (const evchan::SystemError& e) {
        if (e.code() != std::errc::operation_canceled) throw;
      }
      listener.close();
      evchan::TaskHandle deadline = channel->spawn([&] {
        evchan::this_task::sleepFor(2s);
        connections.cancel();
      });
      connections.join();
      deadline.cancel();
    }
    channel->shutdown();
    std::printf("stopped\n");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "http_server: %s\n", e.what());
    return 1;
  }
}
