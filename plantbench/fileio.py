"""Atomic file writes and append-only JSON lines: nothing plantbench writes is ever half-written.

Files are created with the permissions the umask gives any new file (0644 under umask 022),
records are standard JSON (no NaN or Infinity), and one lock file lets one writer in at a time.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .errors import PlantbenchError

_UMASK_LOCK = threading.Lock()
TORN_SUFFIX = ".torn"  # set_aside_torn_line keeps cut-off fragments beside the file, in FILE.torn


def file_mode() -> int:
    """The permissions a new file gets: 0o666 less the umask (0644 under umask 022)."""
    return 0o666 & ~_umask()


def _umask() -> int:
    """This process's umask, read without changing it where Linux allows."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over the target."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, file_mode())  # mkstemp makes 0600; a result file is as readable as any other
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_savez(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez_compressed, atomically."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def append_jsonl(path: str | Path, records: list[dict]) -> None:
    """Append whole lines and fsync; an earlier complete line is never touched. ValueError, before
    anything is written, for a record that standard JSON cannot hold (NaN, Infinity).

    A file that does not end in a newline ends in a torn line (a write cut short): its fragment
    is first moved aside (see set_aside_torn_line), so the new lines start on a line of their own
    and no complete record is lost."""
    if not records:
        return
    data = "".join(json.dumps(r, sort_keys=True, allow_nan=False) + "\n" for r in records).encode()
    set_aside_torn_line(path)
    with open(path, "ab") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def torn_path(path: str | Path) -> Path:
    """Where set_aside_torn_line keeps the fragments cut from `path`: `path` + ".torn"."""
    path = Path(path)
    return path.with_name(path.name + TORN_SUFFIX)


def set_aside_torn_line(path: str | Path) -> int:
    """Move a torn last line (bytes after the last newline) to torn_path(path), then cut it off.

    The fragment is appended (with a newline) and fsynced there before the file is truncated to
    its last complete line, so a crash in between at worst leaves the fragment in both places.
    Says so once on stderr, naming both files. Returns the fragment's length (0: nothing torn).
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return 0
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return 0
            keep = _last_line_end(f, size)
            f.seek(keep)
            fragment = f.read()
    except FileNotFoundError:
        return 0
    aside = torn_path(path)
    with open(aside, "ab") as f:
        f.write(fragment + b"\n")
        f.flush()
        os.fsync(f.fileno())
    with open(path, "r+b") as f:
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    print(f"plantbench: warning: {path} ended in a torn line ({len(fragment)} bytes without a newline, a write "
          f"cut short); moved it to {aside}", file=sys.stderr)
    return len(fragment)


def _last_line_end(f, size: int, block: int = 1 << 16) -> int:
    """The offset just past the file's last newline (0 if it has none), read backwards in blocks."""
    end = size
    while end > 0:
        start = max(0, end - block)
        f.seek(start)
        at = f.read(end - start).rfind(b"\n")
        if at >= 0:
            return start + at + 1
        end = start
    return 0


def read_jsonl(path: str | Path) -> tuple[list[dict], list[str]]:
    """All complete records, and a message for each line that does not parse. A last line
    without its newline is torn (its write was cut short): reported, never returned as a record,
    even when what was written of it parses."""
    records, problems = [], []
    path = Path(path)
    if not path.exists():
        return records, problems
    text = path.read_text()
    lines = text.splitlines()
    torn = bool(text) and not text.endswith("\n")
    for i, line in enumerate(lines, start=1):
        if torn and i == len(lines):
            problems.append(f"{path}:{i}: torn line (no newline at the end: a write cut short); its run is "
                            "not finished")
            break
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            problems.append(f"{path}:{i}: not valid JSON ({e.msg})")
    return records, problems


def check_writable(path: str | Path) -> Path:
    """The path if its folder exists (or can be made) and is writable, and the path itself is
    absent or a regular file; else OSError with the reason."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    if not parent.is_dir():
        raise NotADirectoryError(f"{parent} is not a folder")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory")
    if path.exists() and not path.is_file():  # /dev/null, a pipe: never replaced by a file
        raise OSError(f"{path} is not a regular file")
    if not os.access(parent, os.W_OK):
        raise PermissionError(f"{parent} is not writable")
    return path


@contextlib.contextmanager
def exclusive_lock(path: str | Path, holder: str) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (fcntl.flock) for the block; removed at the end.

    Raises PlantbenchError, at once, while another process holds it. A process that dies
    releases its lock with it; the file it leaves behind locks nothing.
    """
    import fcntl

    path = Path(path)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise PlantbenchError(f"{holder} is in use by another plantbench run; wait for it to end, or use "
                                  "another --out") from None
        try:  # the file we locked must still be the one at the path (another run may have removed it)
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # while still locked, so no one locks the file on its way out
        os.close(fd)
