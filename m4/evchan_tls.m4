# SPDX-License-Identifier: Apache-2.0
# EVCHAN_CHECK_TLS
# ----------------
# TlsStream and TlsContext (src/net/tls_*.cpp) need OpenSSL 3, found by
# pkg-config (openssl >= 3.0), or else by AC_CHECK_LIB on libssl and
# libcrypto.  --with-tls=auto (the default) builds TLS when OpenSSL is
# there, yes insists, no leaves it out.
#   EVCHAN_TLS             AM_CONDITIONAL: TLS is built
#   EVCHAN_HAVE_TLS        1 or 0, for include/evchan/tls_support.h
#   OPENSSL_CFLAGS/LIBS    from pkg-config (or -lssl -lcrypto)
#   EVCHAN_PC_OPENSSL      "openssl" for evchan.pc's Requires.private
#   EVCHAN_PC_OPENSSL_LIBS the fallback's libraries for its Libs.private
AC_DEFUN([EVCHAN_CHECK_TLS], [
  AC_ARG_WITH([tls],
    [AS_HELP_STRING([--with-tls=auto|yes|no],
      [build TlsStream and TlsContext on OpenSSL 3 @<:@default: auto@:>@])],
    [], [with_tls=auto])
  AS_CASE(["x$with_tls"],
    [xauto|xyes|xno], [],
    [AC_MSG_ERROR([bad value "$with_tls" for --with-tls (auto, yes or no)])])
  evchan_tls=no
  evchan_tls_pc=no
  EVCHAN_PC_OPENSSL=
  EVCHAN_PC_OPENSSL_LIBS=
  AS_IF([test "x$with_tls" != xno], [
    PKG_CHECK_MODULES([OPENSSL], [openssl >= 3.0], [evchan_tls=yes; evchan_tls_pc=yes], [
      # No pkg-config file: look for the libraries and a 3.x header.
      evchan_tls_saved_LIBS=$LIBS
      AC_CHECK_LIB([crypto], [OPENSSL_init_crypto], [
        AC_CHECK_LIB([ssl], [SSL_CTX_new_ex], [
          AC_CHECK_HEADER([openssl/ssl.h], [
            OPENSSL_CFLAGS=
            OPENSSL_LIBS="-lssl -lcrypto"
            evchan_tls=yes])], [], [-lcrypto])])
      LIBS=$evchan_tls_saved_LIBS
    ])
    AS_IF([test "x$evchan_tls" = xno && test "x$with_tls" = xyes],
      [AC_MSG_ERROR([--with-tls: OpenSSL >= 3.0 not found (Debian: libssl-dev)])])
    AS_IF([test "x$evchan_tls" = xno],
      [AC_MSG_WARN([OpenSSL >= 3.0 not found: TlsStream is not built])])
  ])
  AS_IF([test "x$evchan_tls" = xyes], [
    EVCHAN_HAVE_TLS=1
    # pkg-config's name when pkg-config found it; else the fallback's
    # libraries go to Libs.private.
    AS_IF([test "x$evchan_tls_pc" = xyes], [EVCHAN_PC_OPENSSL=openssl],
      [EVCHAN_PC_OPENSSL_LIBS=$OPENSSL_LIBS])
  ], [EVCHAN_HAVE_TLS=0])
  AC_SUBST([OPENSSL_CFLAGS])
  AC_SUBST([OPENSSL_LIBS])
  AC_SUBST([EVCHAN_HAVE_TLS])
  AC_SUBST([EVCHAN_PC_OPENSSL])
  AC_SUBST([EVCHAN_PC_OPENSSL_LIBS])
  AM_CONDITIONAL([EVCHAN_TLS], [test "x$evchan_tls" = xyes])
])
