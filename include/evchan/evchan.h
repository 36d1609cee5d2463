// The whole public API of evchan in one include.
#ifndef EVCHAN_EVCHAN_H
#define EVCHAN_EVCHAN_H

#include <evchan/address.h>
#include <evchan/duration.h>
#include <evchan/endpoint.h>
#include <evchan/error.h>
#include <evchan/system_error.h>
#include <evchan/tcp_listener.h>
#include <evchan/tcp_socket.h>

#endif  // EVCHAN_EVCHAN_H
