// SPDX-License-Identifier: Apache-2.0
// An `openssl` command (s_server, s_client) as a child process, the real
// peer of the TLS suites: its stdin a pipe the test writes, its stdout a
// pipe the test reads.  POSIX (posix_spawn).
#ifndef EVCHAN_TEST_SUPPORT_POSIX_OPENSSL_CHILD_H
#define EVCHAN_TEST_SUPPORT_POSIX_OPENSSL_CHILD_H

#include <sys/types.h>

#include <string>
#include <vector>

#include <evchan/tcp_socket.h>

namespace evchan::test {

class OpensslChild {
 public:
  /// Whether the `openssl` command is on the PATH.
  static bool installed();

  /// Starts `openssl arguments...`, its stderr thrown away (a CppUnit
  /// failure when it cannot be started).
  explicit OpensslChild(const std::vector<std::string>& arguments);
  /// Ends the child (SIGTERM) unless wait() reaped it, and reaps it.
  ~OpensslChild();
  OpensslChild(const OpensslChild&) = delete;
  OpensslChild& operator=(const OpensslChild&) = delete;

  void write(const std::string& text);
  void closeInput();
  /// Everything the child writes to stdout until it closes it.
  std::string readAll();
  /// Reads the child's stdout until `part` has appeared; false when it
  /// closed it first, or after a generous 20 s.
  bool waitForOutput(const std::string& part);
  /// The rest of the line that `marker` begins in the child's stdout
  /// (waiting for it as waitForOutput() does); empty when it did not come.
  std::string lineAfter(const std::string& marker);
  /// Waits (a generous 10 s at most, then SIGKILL) for the child's exit;
  /// its status as waitpid gives it.
  int wait();

 private:
  template <class Condition>
  bool readUntil(Condition condition);

  pid_t pid_ = -1;
  int stdin_ = -1;
  int stdout_ = -1;
  std::string seen_;  // read by waitForOutput()/lineAfter()
};

/// Connects to 127.0.0.1:`port` once a child listens there (retrying for a
/// generous 20 s, then a CppUnit failure).
TcpSocket connectWhenListening(int port);

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_POSIX_OPENSSL_CHILD_H
