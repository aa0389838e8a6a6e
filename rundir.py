"""One writer per run directory.

A process that writes a run directory holds `<run_dir>/running.lock`: an exclusive `flock` on a
file that names the holder (host and pid). The kernel releases the lock when the process ends,
however it ends, so a lock left behind by a killed process is free at once: there is no stale
lock to detect and no takeover to race. (flock is advisory and local: it does not guard a run
directory on a network file system shared by several machines.)

`open_run_dir` is what a training script calls (through lago_utils/run.py's Run) before it
writes anything: it takes the lock, and refuses a directory that already holds a run (a summary
or TensorBoard event files) unless `overwrite` asks to clear it, so that two runs never mix their
curves or their summaries. `write_summary` is what it calls last: summary.json, stamped with the
scripts' REVISION.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Optional

LOCK = "running.lock"
# the revision of what the training scripts compute: bumped by any change that alters a run's numbers, so that
# the grid never takes a summary of another revision for a run of this one (2: the guidance KL by
# torch.distributions.kl_divergence, which rounds otherwise than revision 1's formulas)
REVISION = 2
RUN_FILES = ("summary.json", "events.out.tfevents.*")  # what a finished or started run leaves


class RunDirError(Exception):
    """A run directory that is in use or already holds a run: one sentence for the user."""


class Lock:
    """An exclusive lock on `path`, held until `release()` or the end of the process."""

    def __init__(self, path: Path, fd: int):
        self.path, self.fd = path, fd

    def release(self) -> None:
        if self.fd < 0:
            return
        self.path.unlink(missing_ok=True)  # while still held: a waiter that opened this file retries on a new one
        os.close(self.fd)
        self.fd = -1


def acquire(directory: str | os.PathLike, name: str = LOCK) -> Optional[Lock]:
    """Take the lock file `name` in `directory` without waiting; None if another process holds it."""
    path = Path(directory) / name
    attempts = 0
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            attempts += 1
            if attempts == 5:
                return None
            time.sleep(0.05)  # `holder()` of another process may hold a shared lock for a moment
            continue
        try:  # the previous holder may have removed the file after we opened it: lock the file that is there
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"{socket.gethostname()} {os.getpid()}\n".encode())
    return Lock(path, fd)


def holder(directory: str | os.PathLike, name: str = LOCK) -> Optional[str]:
    """`host pid` of the process that holds the lock file `name` in `directory`, or None if nobody does."""
    path = Path(directory) / name
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return os.read(fd, 256).decode(errors="replace").strip() or "another process"
    finally:
        os.close(fd)


def existing_run_files(directory: str | os.PathLike) -> list[Path]:
    return sorted(path for pattern in RUN_FILES for path in Path(directory).glob(pattern))


def open_run_dir(run_dir: str | os.PathLike, overwrite: bool = False) -> Lock:
    """Lock `run_dir` for this process (made if needed); refuse it if another process writes it, or if it
    holds a run and `overwrite` is False. With `overwrite`, the old summary and event files are removed."""
    directory = Path(run_dir)
    if directory.exists() and not directory.is_dir():
        raise RunDirError(f"--run-dir {run_dir} is a file, not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # under a file, under /proc, no permission
        raise RunDirError(f"--run-dir {run_dir} cannot be created ({error.strerror or error})") from error
    lock = acquire(directory)
    if lock is None:
        raise RunDirError(f"--run-dir {run_dir} is being written by another run ({holder(directory) or 'that just ended'}); "
                          "wait for it or choose another --run-dir")
    found = existing_run_files(directory)
    if found and not overwrite:
        lock.release()
        raise RunDirError(f"--run-dir {run_dir} already holds a run ({', '.join(p.name for p in found[:3])}); "
                          "pass --overwrite to replace it, or choose another --run-dir")
    for path in found:
        path.unlink()
    atexit.register(lock.release)
    if threading.current_thread() is threading.main_thread():  # Ctrl-C: one line, not a traceback
        signal.signal(signal.SIGINT, lambda signum, frame: sys.exit(
            f"interrupted: {run_dir} keeps the TensorBoard events logged so far and no summary.json; "
            "run the same command with --overwrite to start the run again"))
    return lock


def write_summary(run_dir: str | os.PathLike, summary: dict) -> Path:
    """Write `summary` with the REVISION to <run_dir>/summary.json, through a temporary file; its path."""
    path = Path(run_dir) / "summary.json"
    tmp = path.with_name("summary.json.tmp")
    tmp.write_text(json.dumps({"revision": REVISION, **summary}, indent=2))
    tmp.replace(path)
    return path
