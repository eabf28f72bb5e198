"""Secret seeds and the sealed pruner process: what keeps a leaderboard result from being re-planted.

Public seeds are indices 0..N-1: anyone can plant the host of seed 3, so a pruner can too, and
find the planted ticket by matching its own host against seeds 0..49. Under a seed key each
run's planting, data and pruner-generator seeds derive from
HMAC-SHA256(key, "plantbench|suite|task|index") instead; without the key the host of a run
cannot be re-planted. Records keep the index and the key's fingerprint, never a derived seed.

Sealing keeps the derived seeds out of the pruner's process: it starts in an empty temporary
folder, without plantbench's environment variables, and the processes that know the seeds (the
coordinator and its workers) are made non-dumpable on Linux, so that a process of the same user
cannot read their memory, environment or open files through /proc.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sys
from pathlib import Path

from .errors import PlantbenchError

MIN_KEY_BYTES = 32
MAX_KEY_BYTES = 1 << 16  # a key file larger than this is a mistake (a data file named by accident)
FINGERPRINT_CHARS = 16
ENV_PREFIXES = ("PLANTBENCH",)  # environment variables the pruner's process does not inherit


class SeedKeyError(PlantbenchError):
    """A seed key that cannot be used: missing, unreadable or too short (never shows its content)."""


class SeedKey:
    """A secret seed key: derives run seeds; its repr and str show the fingerprint only."""

    __slots__ = ("_key", "fingerprint")

    def __init__(self, key: bytes):
        if not isinstance(key, bytes) or len(key) < MIN_KEY_BYTES:
            raise SeedKeyError(f"a seed key needs at least {MIN_KEY_BYTES} bytes")
        self._key = key
        self.fingerprint = fingerprint(key)

    def derive(self, suite: str, task: str, index: int) -> int:
        """The 63-bit seed of run `index` of a task of a suite, in place of the public index."""
        msg = f"plantbench|{suite}|{task}|{int(index)}".encode()
        digest = hmac.new(self._key, msg, hashlib.sha256).digest()
        return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)

    def __repr__(self) -> str:
        return f"SeedKey(fingerprint={self.fingerprint!r})"

    __str__ = __repr__

    def __eq__(self, other) -> bool:
        return isinstance(other, SeedKey) and hmac.compare_digest(self._key, other._key)

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __reduce__(self):  # a key is never pickled: it stays in the process that read it
        raise TypeError("a SeedKey cannot be pickled")


def fingerprint(key: bytes) -> str:
    """The first 16 hex digits of sha256 over a domain-separated hash of the key (safe to publish)."""
    inner = hashlib.sha256(b"plantbench-seed-key\x00" + key).digest()
    return hashlib.sha256(b"plantbench-seed-key-fingerprint\x00" + inner).hexdigest()[:FINGERPRINT_CHARS]


def load_key(source: str | os.PathLike | SeedKey, stdin=None) -> SeedKey:
    """A key from a file, or from standard input when source is "-" (its path then is nowhere).

    SeedKeyError, one line and without the file's content, when it is missing, unreadable or short.
    """
    if isinstance(source, SeedKey):
        return source
    if str(source) == "-":
        data = (stdin or sys.stdin.buffer).read(MAX_KEY_BYTES + 1)
        where = "the seed key on standard input"
    else:
        where = f"seed key file {source}"
        try:
            with open(Path(source), "rb") as f:
                data = f.read(MAX_KEY_BYTES + 1)
        except OSError as e:
            raise SeedKeyError(f"{where}: cannot read it ({e.strerror or type(e).__name__})") from None
    data = data.strip() if isinstance(data, bytes) else b""
    if len(data) < MIN_KEY_BYTES:
        raise SeedKeyError(f"{where}: {len(data)} bytes; a key needs at least {MIN_KEY_BYTES} "
                           "(e.g. `head -c 32 /dev/urandom | base64 > KEY`)")
    if len(data) > MAX_KEY_BYTES:
        raise SeedKeyError(f"{where}: more than {MAX_KEY_BYTES} bytes; is this the key file?")
    return SeedKey(data)


def make_undumpable() -> bool:
    """Linux: mark this process non-dumpable (prctl PR_SET_DUMPABLE 0), best effort.

    A non-dumpable process's /proc/<pid>/environ, mem, fd and cwd belong to root, so a pruner
    running as the same user cannot read the derived seeds out of the process that holds them.
    Returns whether the call succeeded.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(4, 0, 0, 0, 0) == 0  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError):
        return False


def child_env(env: dict[str, str]) -> dict[str, str]:
    """The environment a pruner's process gets: the parent's without plantbench's own variables."""
    return {k: v for k, v in env.items() if not k.upper().startswith(ENV_PREFIXES)}
