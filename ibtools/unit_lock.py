"""One process per unit: an exclusive lock file for each unit of a shared sweep cache.

Several sweeps may share one cache directory (two terminals, two machines on a shared file
system): a unit is trained only by the process that holds its lock file
(``locks/<name>.lock`` in the cache, taken by :meth:`ibtools.result_cache.ResultCache.lock`).
The lock is an ``fcntl`` lock, which the system releases when its holder exits or dies, so a
lock is never left stale. On systems without ``fcntl`` (not POSIX) units are not locked.
"""

from __future__ import annotations

import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: units are not locked
    fcntl = None

__all__ = ["UnitLock"]


class UnitLock:
    """An exclusive ``fcntl.flock`` on a unit's lock file, released by :meth:`release` or when
    the process ends (killed included): there are no stale locks to clean up by hand.

    The lock file is removed on release. A process that opened it just before would then hold a
    lock on a removed file, so :meth:`acquire` checks after locking that the path still names the
    file it locked, and retries otherwise.
    """

    def __init__(self, path: Path, fd: int):
        self.path, self.fd = path, fd

    @classmethod
    def acquire(cls, path: Path, wait: bool = False) -> "UnitLock | None":
        """Lock ``path`` (created, with its folder, if missing): a :class:`UnitLock`, or None if
        another process holds it and ``wait`` is False (with ``wait``, block until it is free)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
                except BlockingIOError:
                    os.close(fd)
                    return None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"pid {os.getpid()} on {os.uname().nodename if hasattr(os, 'uname') else '?'}\n".encode())
                return cls(path, fd)
            os.close(fd)  # the holder removed the file while we waited: lock the new one

    def release(self) -> None:
        """Remove the lock file and drop the lock (a second call does nothing)."""
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self.fd)  # closing drops the flock
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
