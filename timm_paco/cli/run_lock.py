"""A run folder belongs to one process: an exclusive lock on ``<folder>/.run.lock`` held for the run's life.

The lock is the kernel's (``fcntl.flock``): it goes with the process however that ends (an exception, Ctrl-C,
``kill -9``), so a lock file left by a killed run is stale by construction and the next run takes it. The file
names its holder (process id, host, start time) for the refusal message of a second run. The folders this process
made only to hold the lock are removed again if the run leaves nothing else in them.
"""
import atexit
import fcntl
import os
import socket
import time
from typing import Dict, List

from timm_paco.cli.usage import UsageError

__all__ = ['LOCK_FILE', 'RunLock', 'lock_run_folder', 'release_run_locks']

LOCK_FILE = '.run.lock'


class RunLock:
    """The held lock of one run folder; ``release()`` (also at interpreter exit) gives it back."""

    def __init__(self, folder: str, fd: int, made: List[str]):
        self.folder, self._fd, self._made = folder, fd, made  # made: the folders made for it, deepest first

    @property
    def path(self) -> str:
        return os.path.join(self.folder, LOCK_FILE)

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.remove(self.path)
        except OSError:
            pass
        os.close(self._fd)  # closing the descriptor drops the flock
        self._fd = None
        for folder in self._made:
            try:
                os.rmdir(folder)  # only if empty: the run wrote nothing there
            except OSError:
                break


_held: Dict[str, RunLock] = {}  # folder -> the lock this process holds on it


def _holder(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip() or 'another process'
    except OSError:
        return 'another process'


def lock_run_folder(folder: str, flag: str) -> RunLock:
    """Take ``folder``'s lock (making the folder if needed) for this process's life; a ``UsageError`` naming ``flag``
    and the holder when another live process holds it. Taking it again in the same process returns the held lock."""
    folder = os.path.abspath(folder)
    if folder in _held and _held[folder]._fd is not None:
        return _held[folder]
    made, parent = [], folder
    while not os.path.isdir(parent):
        made.append(parent)
        parent = os.path.dirname(parent)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UsageError(f'{flag}: {folder} is in use by a running training ({_holder(path)}); wait for it to end, '
                         f'or choose another {flag}') from None
    os.ftruncate(fd, 0)
    os.write(fd, f'pid {os.getpid()} on {socket.gethostname()}, since {time.strftime("%Y-%m-%d %H:%M:%S")}'
                 .encode())
    lock = _held[folder] = RunLock(folder, fd, made)
    atexit.register(lock.release)
    return lock


def release_run_locks() -> None:
    """Give back every run-folder lock this process holds (a trainer's ``main`` on its way out)."""
    for folder in list(_held):
        _held.pop(folder).release()
