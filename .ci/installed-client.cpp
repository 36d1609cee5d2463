// SPDX-License-Identifier: Apache-2.0
// The program .ci/check-installed and .ci/check-installed-cmake build against
// an installed evchan: an echo over loopback through the public API.
#include <evchan/evchan.h>
#include <cstring>
#include <thread>
int main() {
  evchan::TcpListener listener = evchan::TcpListener::listen({"127.0.0.1", 0});
  std::thread server([&] {
    evchan::TcpSocket peer = listener.accept();
    char buffer[5];
    peer.readExactly(buffer, sizeof buffer);
    peer.writeAll(buffer, sizeof buffer);
  });
  evchan::TcpSocket client = evchan::TcpSocket::connect({"127.0.0.1", listener.port()});
  client.writeAll("hello", 5);
  char reply[5];
  client.readExactly(reply, sizeof reply);
  server.join();
  return std::memcmp(reply, "hello", 5) == 0 ? 0 : 1;
}
