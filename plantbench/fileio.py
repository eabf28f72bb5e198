"""Atomic file writes and append-only JSON lines: nothing plantbench writes is ever half-written."""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over the target."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
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
    """Append whole lines and fsync; an earlier line is never touched."""
    if not records:
        return
    data = "".join(json.dumps(r, sort_keys=True, allow_nan=True) + "\n" for r in records).encode()
    with open(path, "ab") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | Path) -> tuple[list[dict], list[str]]:
    """All complete records, and a message for each line that does not parse."""
    records, problems = [], []
    path = Path(path)
    if not path.exists():
        return records, problems
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            problems.append(f"{path}:{i}: not valid JSON ({e.msg})")
    return records, problems


def check_writable(path: str | Path) -> Path:
    """The path if its folder exists (or can be made) and is writable; else OSError with the reason."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory")
    if not os.access(parent, os.W_OK):
        raise PermissionError(f"{parent} is not writable")
    return path
