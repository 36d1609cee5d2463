// SPDX-License-Identifier: Apache-2.0
// DefaultSigpipe on Windows hosts, which have no SIGPIPE: a send to a
// closed peer can only fail with an error, which is what the tests check.
#include "support/default_sigpipe.h"

namespace evchan::test {

struct DefaultSigpipe::Saved {};

DefaultSigpipe::DefaultSigpipe() = default;

DefaultSigpipe::~DefaultSigpipe() = default;

std::string DefaultSigpipe::whatKeepsSigpipeHarmless() { return ""; }

}  // namespace evchan::test
