// SPDX-License-Identifier: Apache-2.0
// The whole portable public API of evchan in one include: the same on every
// platform.  The platform-only headers are included on their own:
// <evchan/unix_socket.h> and <evchan/descriptor_events.h> (POSIX),
// <evchan/shm_stream.h> (Linux).
#ifndef EVCHAN_EVCHAN_H
#define EVCHAN_EVCHAN_H

#include <evchan/address.h>
#include <evchan/blocking.h>
#include <evchan/buffer.h>
#include <evchan/buffered_reader.h>
#include <evchan/condition_variable.h>
#include <evchan/dispatch_event.h>
#include <evchan/duration.h>
#include <evchan/endpoint.h>
#include <evchan/error.h>
#include <evchan/event.h>
#include <evchan/event_channel.h>
#include <evchan/file.h>
#include <evchan/file_events.h>
#include <evchan/mutex.h>
#include <evchan/notification.h>
#include <evchan/notify_event.h>
#include <evchan/resolve_event.h>
#include <evchan/signal_set.h>
#include <evchan/socket_events.h>
#include <evchan/stream.h>
#include <evchan/system_error.h>
#include <evchan/task.h>
#include <evchan/task_group.h>
#include <evchan/task_local.h>
#include <evchan/tcp_listener.h>
#include <evchan/tcp_socket.h>
#include <evchan/thread_identity.h>
#include <evchan/timer_event.h>
#include <evchan/version.h>
// UDP.
#include <evchan/datagram_events.h>
#include <evchan/udp_socket.h>

// TLS, when this build has it.
#include <evchan/tls_support.h>
#if EVCHAN_HAVE_TLS
#include <evchan/tls.h>
#endif

#endif  // EVCHAN_EVCHAN_H
