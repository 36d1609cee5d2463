// SPDX-License-Identifier: Apache-2.0
// File: positioned reads and writes of a regular file, blocking-looking
// like the sockets: inside a task they suspend the task, not the thread.
#ifndef EVCHAN_FILE_H
#define EVCHAN_FILE_H

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <system_error>

#include <evchan/export.h>

namespace evchan {

namespace detail {
struct FileState;
struct FileAccess;
}

/// How File::open() opens a file: a combination of these flags.
enum FileMode : unsigned {
  kFileRead = 1,       ///< open for reading
  kFileWrite = 2,      ///< open for writing
  kFileCreate = 4,     ///< create it if missing (mode 0644, less the umask)
  kFileTruncate = 8,   ///< cut it to zero length
  kFileExclusive = 16  ///< with kFileCreate: fail if it exists
};

/// An open file.  Move-only; the destructor closes it.  Every call comes in
/// the two forms of the sockets: one throws evchan::SystemError (naming the
/// operation and the path), the other takes an std::error_code& and is
/// noexcept.  Reads and writes are positioned (they never move a shared
/// offset), so several tasks or threads may use one File at once.
///
/// Inside a task the calls suspend the task: on the backends that complete
/// file operations themselves (aio, io_uring, iocp) as FileReadEvent /
/// FileWriteEvent posted to the task's channel; on the others through
/// evchan::blocking(), so the pool lends a spare thread meanwhile.
/// Outside a task they block the calling thread.
///
/// Thread safety: readAt(), writeAt() and the other calls may run from
/// several threads or tasks at once, and close() may be called from any
/// of them meanwhile: it refuses new calls (Errc::not_open), lets the ones
/// under way finish the read or write they began (one moving a buffer in
/// several steps stops before its next, with not_open and the bytes moved
/// so far), and closes the handle once they have left, so no call ever
/// touches a closed (or reused) descriptor.  The destructor and a move
/// must not race with other calls.  File has no cancel(), unlike the
/// sockets: a File is a regular file or a block
/// device, whose calls never wait for a peer, only for the disk, and a
/// disk read or write under way cannot be interrupted portably (pread on
/// POSIX, an aio request the kernel may have started); each call ends
/// when its IO does, which a working disk bounds.
class EVCHAN_API File {
 public:
  /// A closed file; every call on it fails with Errc::not_open.
  File() noexcept;
  /// Closes the file if open.
  ~File();
  /// Takes over `other`'s file; `other` is left closed.
  File(File&& other) noexcept;
  /// Closes this file, then takes over `other`'s; `other` is left closed.
  File& operator=(File&& other) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  ///@{
  /// Opens `path` with `mode` (FileMode flags; at least one of kFileRead
  /// and kFileWrite, else std::errc::invalid_argument).  Regular files and
  /// block devices only: a directory is std::errc::is_a_directory, a pipe,
  /// socket or character device std::errc::invalid_argument, found before
  /// anything is opened (their reads may wait forever, which no shutdown
  /// could cancel).  The open itself never waits for a pipe: on POSIX one
  /// put at the path after that check (whose open would wait for its
  /// other end) is opened non-blocking and then refused the same way, or,
  /// for writing only with no reader, may fail with
  /// std::errc::no_such_device_or_address.  It waits only as open(2)
  /// does for a regular file another process holds a lease on (Linux,
  /// fcntl F_SETLEASE, as Samba and NFS servers take): until the holder
  /// releases the lease or the kernel breaks it
  /// (/proc/sys/fs/lease-break-time, 45 s by default); inside a task as a
  /// blocking call (evchan::blocking()), the worker replaced meanwhile.
  /// Where /proc is not mounted that open fails instead, with
  /// std::errc::resource_unavailable_try_again.  On Windows
  /// a device name (`NUL`, `COM1`, `\\.\NUL`) is opened and then refused,
  /// as is any file whose type cannot be read.  A path with a NUL in it is
  /// std::errc::invalid_argument.
  static File open(const std::string& path, unsigned mode);
  static File open(const std::string& path, unsigned mode, std::error_code& ec) noexcept;
  ///@}

  ///@{
  /// Reads up to `size` bytes at `offset`: fewer only at the end of the
  /// file (0 at or beyond it, which is not an error).  An offset of 2^63
  /// or above is std::errc::invalid_argument here and in writeAt(), even
  /// for 0 bytes, as post() refuses a file event with one.
  std::size_t readAt(std::uint64_t offset, void* buffer, std::size_t size);
  std::size_t readAt(std::uint64_t offset, void* buffer, std::size_t size, std::error_code& ec) noexcept;
  ///@}

  ///@{
  /// Writes all `size` bytes at `offset`, extending the file as needed;
  /// returns how many were written (all of them unless `ec` is set).
  std::size_t writeAt(std::uint64_t offset, const void* buffer, std::size_t size);
  std::size_t writeAt(std::uint64_t offset, const void* buffer, std::size_t size, std::error_code& ec) noexcept;
  ///@}

  ///@{
  /// The file's size in bytes; a block device's is the device's size.
  std::uint64_t size() const;
  std::uint64_t size(std::error_code& ec) const noexcept;
  ///@}

  ///@{
  /// Makes written data durable (fdatasync, FlushFileBuffers).
  void sync();
  void sync(std::error_code& ec) noexcept;
  ///@}

  /// Closes the file; idempotent, and safe while other threads or tasks
  /// are in calls on it: those finish the IO they began (close() waits for
  /// them; a task waiting yields its worker), later calls fail with
  /// Errc::not_open.  A FileReadEvent or FileWriteEvent the caller posted
  /// is not cancelled by closing the file: on iocp and on the backends that
  /// run file IO on a worker, close() waits until its IO is done (one not
  /// started yet ends with Errc::not_open), so its buffer is left alone
  /// once close() returns; on aio and io_uring none may be in flight then.
  /// Those a task's readAt()/writeAt() posts are part of its call and are
  /// waited for.  The destructor closes the same way.
  void close() noexcept;
  /// False after close(), for a default-constructed or a moved-from File.
  bool isOpen() const noexcept;
  /// The path it was opened with; empty when closed.
  const std::string& path() const noexcept;

 private:
  friend struct detail::FileAccess;
  explicit File(std::unique_ptr<detail::FileState> state) noexcept;
  std::unique_ptr<detail::FileState> state_;
};

}  // namespace evchan

#endif  // EVCHAN_FILE_H
