"""Verification: rerun an entry's pruner on secret seeds and compare with its public-seed records.

A public-seed result can be reproduced by anyone, and so can its hosts: a pruner that re-plants
seeds 0..N-1 and matches its host finds the planted ticket without pruning anything. Under a
secret seed key (plantbench.seal) that is impossible, so an honest pruner scores about the same
on secret seeds as on public ones, and one that games the public seeds does not.

The rule, per task, density and score (normalised weak, normalised strong, recall): the entry
passes when mean_public - mean_secret <= max(FLOOR, K * sqrt(sd_public^2 / n_public +
sd_secret^2 / n_secret)), with sample standard deviations (0 for a single run). Recall is a
share of the ticket's m entries, so it moves in steps of 1/m: on a small ticket a few seeds can
all land on the same step and show no spread at all. Its standard deviations are therefore at
least the binomial one, sqrt(p (1 - p) / m), with p the mean recall over both sides' runs (the
spread of a pruner that keeps each ticket entry independently with probability p). One-sided:
scoring better on secret seeds is no sign of gaming. A run that fails on secret seeds where no
run failed on public seeds fails the verification too.
"""

from __future__ import annotations

import json
import math
import statistics
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .config import SweepConfig
from .errors import PlantbenchError
from .fileio import atomic_write_bytes
from .leaderboard import verified
from .leaderboard.ranking import density_key
from .leaderboard.results import latest_per_run, read_runs
from .paths import RUNS_FILE
from .sandbox import describe
from .seal import SeedKey, load_key

DEFAULT_SEEDS = 3  # secret seed indices 0..2: a third to a half of a public sweep's cost
FLOOR = 0.15  # the smallest gap that fails: more than seed noise of a score in [0, 1] on 3 + 5 seeds
K = 4.0  # standard errors of the gap allowed: false alarms rare over ~100 comparisons per entry
METRICS = verified.METRICS
LABELS = {"normalized_weak": "normalised weak", "normalized_strong": "normalised strong", "recall": "recall"}


def sample_sd(values: list[float]) -> float:
    """Sample standard deviation (ddof 1); 0 for fewer than two values."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


def tolerance(public: list[float], secret: list[float], floor: float = FLOOR, k: float = K,
              steps: int | None = None) -> float:
    """The largest public-minus-secret gap of means that still verifies (both sides non-empty).

    steps: for a share of `steps` entries (recall: the ticket's size), the binomial standard
    deviation at the pooled mean is the least spread assumed on either side (see the module).
    """
    least = 0.0
    if steps:
        p = min(1.0, max(0.0, math.fsum(public + secret) / len(public + secret)))
        least = math.sqrt(p * (1 - p) / steps)
    se = math.sqrt(max(sample_sd(public), least) ** 2 / len(public)
                   + max(sample_sd(secret), least) ** 2 / len(secret))
    return max(floor, k * se)


def consistent(public: list[float], secret: list[float], floor: float = FLOOR, k: float = K,
               steps: int | None = None) -> bool:
    """Whether the secret-seed scores back the public ones (see the module's rule)."""
    gap = math.fsum(public) / len(public) - math.fsum(secret) / len(secret)
    return gap <= tolerance(public, secret, floor, k, steps)


@dataclass
class Cell:
    """One task and density: the scores of its ok runs and its failed runs, on one side."""

    values: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in METRICS})
    failed: int = 0
    ticket: bool = False
    ticket_size: int | None = None  # the steps of recall (see tolerance)

    def add(self, rec: dict) -> None:
        self.ticket = self.ticket or density_key(rec["density_target"]) == density_key(rec["ticket_density"])
        self.ticket_size = rec["ticket_size"] if isinstance(rec.get("ticket_size"), int) else self.ticket_size
        if rec["status"] != "ok":
            self.failed += 1
            return
        for m in METRICS:
            self.values[m].append(float(rec[m]))

    def stats(self, m: str) -> dict:
        v = self.values[m]
        return {"n": len(v), "mean": math.fsum(v) / len(v) if v else None, "sd": sample_sd(v) if v else None}


@dataclass
class Verification:
    verdict: str  # verified or failed
    reason: str | None
    rows: list[tuple[str, float, Cell, Cell, bool]]  # task, density, public, secret, ok
    path: Path | None  # the verification.json written (None for a stale entry: nothing was run)


def cells(records: list[dict]) -> dict[tuple[str, float], Cell]:
    out: dict[tuple[str, float], Cell] = defaultdict(Cell)
    for r in records:
        out[(r["task"], density_key(r["density_target"]))].add(r)
    return out


def judge_cells(public: dict, secret: dict) -> tuple[list, str | None]:
    """Rows (task, density, public, secret, ok) and the reason of the worst failure (None: verified)."""
    rows, worst = [], (0.0, None)
    for (task, d) in sorted(public):
        pub, sec = public[(task, d)], secret.get((task, d), Cell())
        where = f"{task} at " + ("the ticket's density" if pub.ticket else f"density {d:g}")
        ok = True
        if sec.failed and not pub.failed:
            ok, worst = False, max(worst, (math.inf, f"{where}: {sec.failed} run(s) failed on secret seeds, "
                                                    "none on public seeds"), key=lambda w: w[0])
        for m in METRICS:
            a, b = pub.values[m], sec.values[m]
            if a and not b and not sec.failed:
                ok, worst = False, max(worst, (math.inf, f"{where}: no secret-seed runs"), key=lambda w: w[0])
            steps = pub.ticket_size if m == "recall" else None
            if not (a and b) or consistent(a, b, steps=steps):
                continue
            ma, mb = math.fsum(a) / len(a), math.fsum(b) / len(b)
            allowed = tolerance(a, b, steps=steps)
            reason = (f"{where}: {LABELS[m]} {ma:.2f} on public seeds, {mb:.2f} on secret seeds "
                      f"(allowed gap {allowed:.2f})")
            excess = (ma - mb) - allowed
            ok, worst = False, max(worst, (excess, reason), key=lambda w: w[0])
        rows.append((task, d, pub, sec, ok))
    return rows, worst[1]


def _entry(entry: Path) -> list[dict]:
    runs = entry / RUNS_FILE
    if not runs.is_file():
        raise PlantbenchError(f"{entry}: no {RUNS_FILE}; --entry names a results folder")
    items, bad = read_runs(runs)
    if bad:
        raise PlantbenchError(f"{entry}: {bad[0]}")
    records = [i.rec for i in latest_per_run(items).values()]
    if not records:
        raise PlantbenchError(f"{runs}: no records")
    for name in ("pruner", "suite", "pruner_args"):
        if len({json.dumps(r[name], sort_keys=True) for r in records}) > 1:
            raise PlantbenchError(f"{runs}: records of more than one {name}; verify one entry at a time")
    if any("seed_key" in r for r in records):
        raise PlantbenchError(f"{runs}: records made with a seed key; an entry holds public-seed records")
    return records


def verify(pruner: str, entry: str | Path, key: str | Path | SeedKey, seeds: int | None = None,
           out: str | Path | None = None, jobs: int | None = None, device: str = "auto",
           progress=None) -> Verification:
    """Rerun the entry's pruner (same arguments, suite, tasks, densities) on `seeds` secret
    seed indices, compare, and write entry/verification.json. A stale entry (the pruner's source
    changed since its records) fails without running anything and writes nothing."""
    entry, seeds = Path(entry), DEFAULT_SEEDS if seeds is None else seeds
    records = _entry(entry)
    if any(r.get("task_from_file") or r.get("suite_from_file") for r in records):
        raise PlantbenchError(f"{entry} holds runs of a task or suite loaded from a file; those are one's own "
                              "experiments, never verified or ranked")
    key = load_key(key)
    spec, _ = describe(pruner, records[0]["pruner_args"])  # the pruner's code runs in its own process
    first = records[0]
    if spec.name != first["pruner"]:
        raise PlantbenchError(f"{entry} holds runs of {first['pruner']}, not of {spec.name}")
    recorded = sorted({r["pruner_source_sha256"] for r in records})
    if recorded != [spec.source_sha256]:
        return Verification("failed", f"stale entry: the records were made from source sha256 {recorded[0][:12]}, "
                            f"{spec.name} is now {spec.source_sha256[:12]}; rerun the entry first", [], None)
    with tempfile.TemporaryDirectory(prefix="plantbench-verify-") as tmp:
        secret = _run(spec.ref, first, records, key, seeds, Path(out) if out else Path(tmp), jobs, device, progress)
    rows, reason = judge_cells(cells(records), cells(secret))
    verdict = "verified" if reason is None else "failed"
    doc = {"format": verified.FORMAT, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "seed_key": key.fingerprint, "pruner": spec.name, "pruner_source_sha256": spec.source_sha256,
           "suite": first["suite"], "seeds": seeds, "verdict": verdict, "reason": reason,
           "summary": [{"task": t, "density": d, "ticket": sec.ticket or pub.ticket, "runs": len(sec.values[METRICS[0]])
                        + sec.failed, "failed": sec.failed, "ok": ok, **{m: sec.stats(m) for m in METRICS}}
                       for t, d, pub, sec, ok in rows]}
    path = entry / verified.FILE
    atomic_write_bytes(path, (json.dumps(doc, indent=1, sort_keys=True, allow_nan=False) + "\n").encode())
    return Verification(verdict, reason, rows, path)


def _run(ref, first, records, key, seeds, out, jobs, device, progress) -> list[dict]:
    """The secret-seed records: one sweep per task, over the densities the entry has for it."""
    from .runner import sweep
    from .suite import SUITES
    from .task import TASKS

    by_task: dict[str, set[float]] = defaultdict(set)
    for r in records:
        by_task[r["task"]].add(r["density_target"])
    suite = SUITES.at_version(first["suite"])
    gone = [t for t in by_task if TASKS.at_version(t) is None] + ([] if suite else [first["suite"]])
    if gone:
        raise PlantbenchError(f"the entry's {gone[0]} is not registered at that version here; it cannot be rerun")
    found = []
    for task_id, densities in sorted(by_task.items()):
        config = SweepConfig(ref, first["pruner_args"], suite=suite.name, tasks=(TASKS.at_version(task_id).name,),
                             densities=tuple(sorted(densities)), seeds=seeds, device=device, out=out, jobs=jobs,
                             seed_key=key)
        result = sweep(config, progress)
        found += [r for r in result.previous + result.records if r["task"] == task_id]
    return found


def table(v: Verification) -> list[list[str]]:
    """The per-task rows `plantbench verify` prints: means on public | secret seeds."""
    def shown(x: float | None) -> str:
        return "-" if x is None else f"{round(x, 3) + 0.0:.3f}"  # + 0.0: a mean that rounds to zero reads 0.000

    def pair(pub: Cell, sec: Cell, m: str) -> str:
        return f"{shown(pub.stats(m)['mean'])} | {shown(sec.stats(m)['mean'])}"
    return [[t, "ticket" if pub.ticket else f"{d:g}", *(pair(pub, sec, m) for m in METRICS),
             f"{pub.failed} | {sec.failed}", "ok" if ok else "FAIL"] for t, d, pub, sec, ok in v.rows]


HEADER = ["task", "density", "norm. weak pub | sec", "norm. strong pub | sec", "recall pub | sec",
          "failed pub | sec", ""]
