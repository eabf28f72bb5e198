"""The result record: one self-describing JSON line per run, with its mask packed in an .npz beside it.

Schema version history (bump SCHEMA_VERSION with a line here on any change to the fields):
  1: first release. Later, still 1, two optional fields that records written before them lack:
     plantbench_version (the plantbench that wrote the record, whose own code the pruner source
     hash leaves out), and seed_key (the seed key's fingerprint), carried by the records of
     sweeps run with a secret seed key only. Later, still 1, four optional fields carried only
     by runs of a task or suite loaded from a user's file (never by leaderboard records):
     task_from_file and task_source_sha256 (the task file's sha256), suite_from_file and
     suite_source_sha256 (the suite TOML's sha256).
"""

from __future__ import annotations

import hashlib
import json
import platform
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ._version import __version__
from .errors import RecordError
from .fileio import append_jsonl, atomic_savez, exclusive_lock, read_jsonl
from .metrics import Metric
from .paths import MASKS_DIR, RUNS_FILE

SCHEMA_VERSION = 1
LOCK_FILE = ".plantbench.lock"  # in a results folder while a sweep writes it; removed when it ends


@dataclass(frozen=True)
class Field:
    """One field of the record: its name, the type(s) its value must have, and who carries it."""

    name: str
    kind: type | tuple[type, ...]
    ok_only: bool = False  # carried by ok records only; failed records stop at `error`
    optional: bool = False  # added after records were written without it: may be absent


# The record's fields in the order make_record builds them (runs.jsonl sorts keys); documented
# in docs/results.md.
SCHEMA = (
    Field("schema", int), Field("run_id", str),
    Field("pruner", str), Field("pruner_args", dict), Field("pruner_source_sha256", str),
    Field("plantbench_version", str, optional=True),
    Field("seed_key", str, optional=True),  # the secret seed key's fingerprint (plantbench.seal)
    # A task or suite from a user's file (plantbench.taskfile, plantbench.suitefile): flag and sha256.
    Field("task_from_file", bool, optional=True), Field("task_source_sha256", str, optional=True),
    Field("suite_from_file", bool, optional=True), Field("suite_source_sha256", str, optional=True),
    Field("suite", str), Field("task", str), Field("depth", int), Field("widths", list),
    Field("ticket_density", float), Field("ticket_size", int), Field("metric", str),
    Field("protocol", dict), Field("device", str), Field("versions", dict),
    Field("seed", int), Field("density_target", float), Field("created", str),
    Field("status", str), Field("error", (str, type(None))),
    Field("density", float, True), Field("bias_density", float, True),
    Field("effective_density", float, True), Field("collapsed_layers", list, True),
    Field("strong", float, True), Field("weak", float, True),
    Field("normalized_strong", float, True), Field("normalized_weak", float, True),
    Field("recall", float, True), Field("precision", float, True), Field("f1", float, True),
    Field("layer_recall", list, True), Field("neuron_recall", float, True),
    Field("references", dict, True), Field("timings", dict, True), Field("mask_file", str, True),
)
REFERENCE_KEYS = ("ticket_strong", "ticket_weak", "dense_strong", "dense_weak", "chance")
# What an ok record copies from the judge's scores of its mask.
JUDGED = ("density", "bias_density", "effective_density", "collapsed_layers", "strong", "weak",
          "recall", "precision", "f1", "layer_recall", "neuron_recall")


def run_id(pruner: str, pruner_args: dict, suite: str, task: str, widths: list[int], seed: int,
           density_target: float, seed_key: str | None = None) -> str:
    """The identity of a run: a hash of what defines it (not of when or where it ran).

    seed_key: the fingerprint of a secret seed key (plantbench.seal), None for public seeds,
    whose run ids it leaves as they were.
    """
    fields = {"pruner": pruner, "args": pruner_args, "suite": suite, "task": task,
              "widths": list(widths), "seed": seed, "density": round(float(density_target), 12)}
    if seed_key is not None:
        fields["seed_key"] = seed_key
    key = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def versions() -> dict:
    """What wrote a record. `cpu` is the instruction set torch dispatches to (AVX2, AVX512, ...): with
    the same torch it selects the same kernels, so retraining reproduces the record bit for bit."""
    return {"plantbench": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "cpu": torch.backends.cpu.get_cpu_capability()}


def make_header(pruner: str, pruner_args: dict, source_sha256: str, suite: str, task, depth: int,
                widths: list[int], ticket_size: int, ticket_density: float, protocol, device: str,
                seed_key: str | None = None, task_source: str | None = None,
                suite_source: str | None = None) -> dict:
    """The fields every run of a group shares, for make_record; task is a Task, protocol a Protocol.

    seed_key: the secret seed key's fingerprint, recorded only for keyed sweeps.
    task_source, suite_source: the sha256 of the task file or suite TOML the run's task or
    suite came from; recorded, with a flag, only for those.
    """
    extra = {} if seed_key is None else {"seed_key": seed_key}
    if task_source is not None:
        extra.update(task_from_file=True, task_source_sha256=task_source)
    if suite_source is not None:
        extra.update(suite_from_file=True, suite_source_sha256=suite_source)
    return {**extra, "pruner": pruner, "pruner_args": pruner_args, "pruner_source_sha256": source_sha256,
            "plantbench_version": __version__,
            "suite": suite, "task": task.id, "depth": depth, "widths": list(widths),
            "ticket_density": ticket_density, "ticket_size": ticket_size, "metric": task.metric.name,
            "protocol": protocol.to_dict(), "device": device, "versions": versions()}


def make_record(header: dict, run_id: str, seed: int, density_target: float, created: str, *,
                error: str | None = None, judged: dict | None = None, references: dict | None = None,
                timings: dict | None = None, mask_file: str | None = None,
                metric: Metric | None = None) -> dict:
    """One run's record, its keys in SCHEMA order.

    header: the fields shared by a group's runs (pruner, pruner_args, pruner_source_sha256,
    plantbench_version (optional),
    suite, task, depth, widths, ticket_density, ticket_size, metric, protocol, device,
    versions). A failed run passes `error`; an ok run passes `judged` (the judge's scores of
    its mask), its seed's `references`, `timings`, `mask_file` and the task's `metric`, which
    turns strong and weak into normalised scores against the planted ticket's strong metric.
    """
    values = {**header, "schema": SCHEMA_VERSION, "run_id": run_id, "seed": seed,
              "density_target": density_target, "created": created}
    if error is not None:
        values.update(status="failed", error=error)
    else:
        chance, ticket = references["chance"], references["ticket_strong"]
        values.update({k: judged[k] for k in JUDGED}, status="ok", error=None, references=references,
                      timings=timings, mask_file=mask_file,
                      normalized_strong=metric.normalise(judged["strong"], chance, ticket),
                      normalized_weak=metric.normalise(judged["weak"], chance, ticket))
    ok = error is None
    rec = {f.name: values.pop(f.name) for f in SCHEMA if (ok or not f.ok_only) and (f.name in values or not f.optional)}
    if values:
        raise ValueError(f"make_record: {', '.join(sorted(values))} not in the schema")
    return rec


def _float(x):
    return x if isinstance(x, float) else float(x) if isinstance(x, int) and not isinstance(x, bool) else x


def validate_record(rec: dict, where: str) -> None:
    """Raise RecordError naming the file, the run and the field that breaks the schema."""
    run = rec.get("run_id", "?")
    run = run if isinstance(run, str) and len(run) <= 64 else "?"
    if rec.get("schema") != SCHEMA_VERSION:
        raise RecordError(f"{where}: run {run}: schema {repr(rec.get('schema'))[:40]}, expected {SCHEMA_VERSION}")
    if rec.get("status") not in ("ok", "failed"):
        raise RecordError(f"{where}: run {run}: status must be 'ok' or 'failed', got {repr(rec.get('status'))[:40]}")
    ok = rec["status"] == "ok"
    for name, kind in ((f.name, f.kind) for f in SCHEMA if (ok or not f.ok_only) and (f.name in rec or not f.optional)):
        if name not in rec:
            raise RecordError(f"{where}: run {run}: missing field {name!r}")
        value = _float(rec[name]) if kind is float else rec[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise RecordError(f"{where}: run {run}: field {name!r} has type {type(rec[name]).__name__}")
    if rec["status"] == "ok":
        missing = [k for k in REFERENCE_KEYS if k not in rec["references"]]
        if missing:
            raise RecordError(f"{where}: run {run}: references lack {', '.join(missing)}")
        for k in REFERENCE_KEYS:
            _check_items(f"references.{k}", [rec["references"][k]], float, where, run)
        _check_items("layer_recall", rec["layer_recall"], float, where, run)
        _check_items("collapsed_layers", rec["collapsed_layers"], int, where, run)


def _check_items(name: str, values: list, kind: type, where: str, run) -> None:
    """Every value a number of the kind (an int counts as a float, a bool as neither)."""
    for v in values:
        ok = isinstance(v, int) if kind is int else isinstance(v, (int, float))
        if not ok or isinstance(v, bool):
            raise RecordError(f"{where}: run {run}: field {name!r} holds a {type(v).__name__}, expected {kind.__name__}s")


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
        self._masks: dict[str, dict[str, int] | None] = {}  # mask file -> array sizes (None: unreadable)

    @property
    def runs_path(self) -> Path:
        return self.root / RUNS_FILE

    def records(self) -> tuple[list[dict], list[str]]:
        return read_jsonl(self.runs_path)

    def finished(self) -> dict[str, dict]:
        """run_id -> the latest successful record; failed runs are not finished and run again, nor
        is a torn last line (a write cut short: read_jsonl reports it and never returns it)."""
        done = {}
        for rec in self.records()[0]:
            if rec.get("status") == "ok":
                done[rec["run_id"]] = rec
        return done

    def lock(self):
        """A context in which this process alone writes the folder (PlantbenchError if another does)."""
        self.root.mkdir(parents=True, exist_ok=True)
        return exclusive_lock(self.root / LOCK_FILE, str(self.root))

    def has_mask(self, rec: dict, sizes: list[int]) -> bool:
        """Whether an ok record's mask is in its file: every layer's key, of the host's size."""
        rel = rec.get("mask_file")
        if not isinstance(rel, str) or not rel.startswith(f"{MASKS_DIR}/") or "/" in rel[len(MASKS_DIR) + 1:]:
            return False
        if rel not in self._masks:
            self._masks[rel] = _array_sizes(self.root / rel)
        arrays = self._masks[rel]
        run = rec.get("run_id")
        if arrays is None:
            return False
        for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            if arrays.get(f"{run}__w{l}") != (n_in * n_out + 7) // 8:
                return False
            bias = arrays.get(f"{run}__b{l}")
            if bias is not None and bias != (n_out + 7) // 8:
                return False
        return True

    def save(self, records: list[dict], masks: dict[str, np.ndarray], name: str) -> None:
        """Write the group's masks (atomically, first), then append its records."""
        self.root.mkdir(parents=True, exist_ok=True)
        if masks:
            (self.root / MASKS_DIR).mkdir(exist_ok=True)
            atomic_savez(self.root / MASKS_DIR / name, masks)
        append_jsonl(self.runs_path, records)
        self._masks.pop(f"{MASKS_DIR}/{name}", None)


def _array_sizes(path: Path) -> dict[str, int] | None:
    """name -> length of every array in an npz, or None when it is missing or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: int(npz[k].size) for k in npz.files}
    except (OSError, ValueError, EOFError, KeyError, RuntimeError, zipfile.BadZipFile):
        return None
