# SPDX-License-Identifier: Apache-2.0
# CMake toolchain file: cross-compiling evchan (and its dependencies) for
# 64-bit Windows with Debian's mingw-w64 (posix threads flavour), e.g.
#   cmake -S win32 -B build-win64 -DCMAKE_TOOLCHAIN_FILE=win32/mingw-w64.cmake \
#         -DEVCHAN_WIN32_DEPS=/path/to/windows/prefix
# EVCHAN_WIN32_DEPS (a cache variable or the environment variable of that
# name) is the prefix holding APR, APR-util and CppUnit built for Windows.
# Programs built here run through Wine when CMake has to run them.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(EVCHAN_MINGW_TRIPLET x86_64-w64-mingw32)
# The -posix compilers give std::thread and std::mutex (winpthreads).
set(CMAKE_C_COMPILER ${EVCHAN_MINGW_TRIPLET}-gcc-posix)
set(CMAKE_CXX_COMPILER ${EVCHAN_MINGW_TRIPLET}-g++-posix)
set(CMAKE_RC_COMPILER ${EVCHAN_MINGW_TRIPLET}-windres)

set(CMAKE_FIND_ROOT_PATH /usr/${EVCHAN_MINGW_TRIPLET})
if(NOT EVCHAN_WIN32_DEPS AND DEFINED ENV{EVCHAN_WIN32_DEPS})
  set(EVCHAN_WIN32_DEPS "$ENV{EVCHAN_WIN32_DEPS}")
endif()
if(EVCHAN_WIN32_DEPS)
  list(APPEND CMAKE_FIND_ROOT_PATH "${EVCHAN_WIN32_DEPS}")
endif()
# Libraries and headers only from the Windows roots, never the Linux host's.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

find_program(EVCHAN_WINE NAMES wine wine64)
if(EVCHAN_WINE)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${EVCHAN_WINE}")
endif()
