"""A disk cache of the references (planted ticket, dense host) a run's record is normalised by.

A seed's references depend on the task, the host's depth and widths, the seed, the training
protocol and the code and torch build that computed them, never on the pruner: every pruner's
sweep of a suite needs the same ones. They are stored once per content key (the sha256 of
those facts, the source of the modules that compute them included) in a folder of strict JSON
files, one per task, host and seed:

    $PLANTBENCH_CACHE/references/       when PLANTBENCH_CACHE is set
    ~/.cache/plantbench/references/     otherwise ($XDG_CACHE_HOME/plantbench/references)

The folder can be deleted at any time. A file is written atomically and trusted only when it
reads back as the expected facts and well-formed scores; anything else (corrupt, truncated,
another layout, unreadable) is ignored, recomputed and replaced. Sweeps turn it off with
`--no-reference-cache`; `plantbench leaderboard check` never uses it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from pathlib import Path

import torch

from ._version import __version__
from .fileio import atomic_write_bytes

FORMAT = 1
#: The modules whose code a reference's scores come from; their source is part of the key.
_SOURCES = ("judge.py", "compact.py", "sparse.py", "train.py", "plant.py", "task.py", "network.py", "seeding.py")
_REFERENCE_KEYS = {"ticket_strong", "ticket_weak", "dense_strong", "dense_weak", "chance"}


def default_folder() -> Path:
    """Where the cache lives: $PLANTBENCH_CACHE/references, else the user's cache folder."""
    root = os.environ.get("PLANTBENCH_CACHE")
    if root:
        return Path(root) / "references"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "plantbench" / "references"


def _source_digest() -> str:
    here = Path(__file__).parent
    h = hashlib.sha256()
    for name in _SOURCES:
        h.update(name.encode() + b"\0" + (here / name).read_bytes())
    return h.hexdigest()


class ReferenceCache:
    """Get and put the references of one task, host and seed; `computed` counts the puts."""

    def __init__(self, folder: str | os.PathLike | None = None):
        self.folder = Path(folder) if folder is not None else default_folder()
        self.computed = 0
        self.hits = 0
        self._digest = None

    def facts(self, task_id: str, widths: list[int], seed: int, protocol, train: bool, device) -> dict:
        """Everything a seed's references depend on."""
        if self._digest is None:
            self._digest = _source_digest()
        device = torch.device(device)
        where = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        return {"format": FORMAT, "plantbench": __version__, "source_sha256": self._digest,
                "torch": torch.__version__, "device": where, "task": task_id, "depth": len(widths) + 1,
                "widths": [int(w) for w in widths], "seed": int(seed),
                "protocol": json.loads(json.dumps(dataclasses.asdict(protocol))), "train": bool(train)}

    def path(self, facts: dict) -> Path:
        key = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()
        return self.folder / f"{key}.json"

    def get(self, facts: dict) -> tuple[dict, dict] | None:
        """(references, reference_scores) stored for these facts, or None when absent or not trustworthy."""
        try:
            stored = json.loads(self.path(facts).read_bytes(), parse_constant=_reject)
        except (OSError, ValueError, UnicodeDecodeError):
            return None
        if not _well_formed(stored, facts):
            return None
        self.hits += 1
        return stored["references"], stored["reference_scores"]

    def put(self, facts: dict, references: dict, reference_scores: dict) -> None:
        """Store a seed's references; values standard JSON cannot hold are not stored."""
        self.computed += 1
        try:
            data = json.dumps({"facts": facts, "references": references, "reference_scores": reference_scores},
                              allow_nan=False).encode()  # key order kept: records hold it as it is
        except (TypeError, ValueError):
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.path(facts), data)
        except OSError:  # a cache that cannot be written only costs the recomputation
            pass


def _reject(name: str):
    raise ValueError(f"not standard JSON: {name}")


def _number(v, none_ok: bool) -> bool:
    if v is None:
        return none_ok
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _well_formed(stored, facts: dict) -> bool:
    """The file is for exactly these facts and holds finite scores of the expected shape."""
    if not isinstance(stored, dict) or stored.get("facts") != facts:
        return False
    refs, scores = stored.get("references"), stored.get("reference_scores")
    if not isinstance(refs, dict) or set(refs) != _REFERENCE_KEYS:
        return False
    train = facts["train"]
    if not all(_number(refs[k], none_ok=k.endswith("_weak") and not train) for k in refs):
        return False
    if train and not all(_number(refs[k], False) for k in ("ticket_weak", "dense_weak")):
        return False
    if not isinstance(scores, dict) or set(scores) != {"planted-ticket", "dense-host"}:
        return False
    return all(isinstance(s, dict) and _number(s.get("strong"), False) for s in scores.values())
