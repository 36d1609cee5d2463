// SPDX-License-Identifier: Apache-2.0
// TLS on OpenSSL 3: the context, the stream and the errors in one include.
// Installed only when evchan was built with TLS (EVCHAN_HAVE_TLS in
// <evchan/tls_support.h>).
#ifndef EVCHAN_TLS_H
#define EVCHAN_TLS_H

#include <evchan/tls_context.h>
#include <evchan/tls_error.h>
#include <evchan/tls_stream.h>

#endif  // EVCHAN_TLS_H
