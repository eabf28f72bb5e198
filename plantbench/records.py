"""The result record: one self-describing JSON line per run, with its mask packed in an .npz beside it.

Schema version history (bump SCHEMA_VERSION with a line here on any change to the fields):
  1: first release.
"""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path

import numpy as np
import torch

from ._version import __version__
from .errors import RecordError
from .fileio import append_jsonl, atomic_savez, read_jsonl

SCHEMA_VERSION = 1
RUNS_FILE = "runs.jsonl"
MASKS_DIR = "masks"

# Field -> type(s) every record must carry; the schema documented in docs/results.md.
REQUIRED = {
    "schema": int, "run_id": str, "status": str, "error": (str, type(None)),
    "pruner": str, "pruner_args": dict, "pruner_source_sha256": str,
    "suite": str, "task": str, "depth": int, "widths": list, "seed": int,
    "density_target": float, "ticket_density": float, "ticket_size": int,
    "metric": str, "protocol": dict, "device": str, "versions": dict, "created": str,
}
OK_REQUIRED = {
    "density": float, "bias_density": float, "effective_density": float, "collapsed_layers": list,
    "strong": float, "weak": float, "normalized_strong": float, "normalized_weak": float,
    "recall": float, "precision": float, "f1": float, "layer_recall": list, "neuron_recall": float,
    "references": dict, "timings": dict, "mask_file": str,
}
REFERENCE_KEYS = ("ticket_strong", "ticket_weak", "dense_strong", "dense_weak", "chance")


def run_id(pruner: str, pruner_args: dict, suite: str, task: str, widths: list[int], seed: int,
           density_target: float) -> str:
    """The identity of a run: a hash of what defines it (not of when or where it ran)."""
    key = json.dumps({"pruner": pruner, "args": pruner_args, "suite": suite, "task": task,
                      "widths": list(widths), "seed": seed, "density": round(float(density_target), 12)},
                     sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def versions() -> dict:
    return {"plantbench": __version__, "torch": torch.__version__, "python": platform.python_version()}


def _float(x):
    return x if isinstance(x, float) else float(x) if isinstance(x, int) and not isinstance(x, bool) else x


def validate_record(rec: dict, where: str) -> None:
    """Raise RecordError naming the file, the run and the field that breaks the schema."""
    run = rec.get("run_id", "?")
    if rec.get("schema") != SCHEMA_VERSION:
        raise RecordError(f"{where}: run {run}: schema {rec.get('schema')!r}, expected {SCHEMA_VERSION}")
    fields = dict(REQUIRED)
    if rec.get("status") == "ok":
        fields.update(OK_REQUIRED)
    elif rec.get("status") != "failed":
        raise RecordError(f"{where}: run {run}: status must be 'ok' or 'failed', got {rec.get('status')!r}")
    for name, kind in fields.items():
        if name not in rec:
            raise RecordError(f"{where}: run {run}: missing field {name!r}")
        value = _float(rec[name]) if kind is float else rec[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise RecordError(f"{where}: run {run}: field {name!r} has type {type(rec[name]).__name__}")
    if rec["status"] == "ok":
        missing = [k for k in REFERENCE_KEYS if k not in rec["references"]]
        if missing:
            raise RecordError(f"{where}: run {run}: references lack {', '.join(missing)}")


# --- masks ------------------------------------------------------------------------------------


def pack_mask(run: str, weights: list[torch.Tensor], biases: list[torch.Tensor] | None) -> dict[str, np.ndarray]:
    """Bit-packed arrays for one run: {run}__w{l}, and {run}__b{l} when biases are masked."""
    arrays = {f"{run}__w{l}": np.packbits(w.cpu().numpy().astype(bool).reshape(-1)) for l, w in enumerate(weights)}
    if biases is not None:
        arrays.update({f"{run}__b{l}": np.packbits(b.cpu().numpy().astype(bool).reshape(-1)) for l, b in enumerate(biases)})
    return arrays


def unpack_mask(npz, run: str, sizes: list[int]) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
    """The run's mask from an opened npz, shaped by the host sizes; KeyError if absent."""
    weights, biases = [], []
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        bits = np.unpackbits(npz[f"{run}__w{l}"], count=n_in * n_out).astype(bool)
        weights.append(torch.from_numpy(bits.reshape(n_out, n_in)))
        key = f"{run}__b{l}"
        if key in npz.files:
            biases.append(torch.from_numpy(np.unpackbits(npz[key], count=n_out).astype(bool)))
    return weights, (biases or None)


class ResultStore:
    """A results folder: runs.jsonl (append-only) and masks/*.npz (written once, atomically)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @property
    def runs_path(self) -> Path:
        return self.root / RUNS_FILE

    def records(self) -> tuple[list[dict], list[str]]:
        return read_jsonl(self.runs_path)

    def finished(self) -> dict[str, dict]:
        """run_id -> the latest successful record; failed runs are not finished and run again."""
        done = {}
        for rec in self.records()[0]:
            if rec.get("status") == "ok":
                done[rec["run_id"]] = rec
        return done

    def save(self, records: list[dict], masks: dict[str, np.ndarray], name: str) -> None:
        """Write the group's masks (atomically, first), then append its records."""
        self.root.mkdir(parents=True, exist_ok=True)
        if masks:
            (self.root / MASKS_DIR).mkdir(exist_ok=True)
            atomic_savez(self.root / MASKS_DIR / name, masks)
        append_jsonl(self.runs_path, records)
