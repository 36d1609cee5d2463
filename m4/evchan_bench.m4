# SPDX-License-Identifier: Apache-2.0
# EVCHAN_CHECK_BENCH_PEERS
# ------------------------
# "make bench" (bench/echo_bench) compares evchan's echo server with
# servers written on other event libraries.  Each peer is optional: one
# that is not found is left out of the build and reported in the
# benchmark's table as "skipped: ... not installed", never a build error.
#   libuv       pkg-config libuv        (Debian: libuv1-dev)
#   libevent    pkg-config libevent_core (Debian: libevent-dev)
#   Boost.Asio  <boost/asio.hpp>, header-only (Debian: libboost-dev)
# Substitutes LIBUV_CFLAGS/LIBS, LIBEVENT_CFLAGS/LIBS and BOOST_CPPFLAGS
# (precious: set it for a Boost outside the default include path),
# and defines the conditionals EVCHAN_BENCH_LIBUV, EVCHAN_BENCH_LIBEVENT,
# EVCHAN_BENCH_ASIO.  --disable-bench-peers skips the look-up (the
# benchmark then runs the hand-written loop and evchan only).  PYTHON3 (the
# python3 command, empty when absent) draws the chart of "make bench".
AC_DEFUN([EVCHAN_CHECK_BENCH_PEERS], [
  AC_REQUIRE([PKG_PROG_PKG_CONFIG])
  AC_ARG_ENABLE([bench-peers],
    [AS_HELP_STRING([--disable-bench-peers],
      [do not look for libuv, libevent and Boost.Asio, the servers "make bench"
       compares evchan with @<:@default: look for each, use what is found@:>@])],
    [], [enable_bench_peers=yes])
  evchan_bench_libuv=no
  evchan_bench_libevent=no
  evchan_bench_asio=no
  AS_IF([test "x$enable_bench_peers" != xno], [
    PKG_CHECK_MODULES([LIBUV], [libuv >= 1.0], [evchan_bench_libuv=yes], [evchan_bench_libuv=no])
    PKG_CHECK_MODULES([LIBEVENT], [libevent_core >= 2.0], [evchan_bench_libevent=yes], [evchan_bench_libevent=no])
    # Header-only: nothing to link beyond the thread library.
    AC_LANG_PUSH([C++])
    evchan_save_CPPFLAGS=$CPPFLAGS
    CPPFLAGS="$CPPFLAGS $BOOST_CPPFLAGS"
    AC_CHECK_HEADER([boost/asio.hpp], [evchan_bench_asio=yes], [evchan_bench_asio=no])
    CPPFLAGS=$evchan_save_CPPFLAGS
    AC_LANG_POP([C++])
  ])
  AC_PATH_PROG([PYTHON3], [python3])
  AC_ARG_VAR([PYTHON3], [the python3 command that draws the chart of "make bench" (optional)])
  AC_ARG_VAR([BOOST_CPPFLAGS], [preprocessor flags for Boost.Asio (make bench), e.g. -I/opt/boost/include])
  AM_CONDITIONAL([EVCHAN_BENCH_LIBUV], [test "x$evchan_bench_libuv" = xyes])
  AM_CONDITIONAL([EVCHAN_BENCH_LIBEVENT], [test "x$evchan_bench_libevent" = xyes])
  AM_CONDITIONAL([EVCHAN_BENCH_ASIO], [test "x$evchan_bench_asio" = xyes])
])
