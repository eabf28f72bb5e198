"""Sweeps: plan the runs of a suite, seek and judge them group by group, record and resume.

A group is every pending run of one task on one host architecture. Its pruner calls run in the
pruner's own process (plantbench.sandbox): all of its problems in one call of `prune_group` when
the pruner has its own, else (or when that call fails) one by one, each on its own PruneProblem;
then the judge scores all of its masks, and the references, in one batch. Groups are independent, so
they spread over processes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from . import refcache, sandbox, suitefile, taskfile
from .config import SweepConfig
from .errors import MaskError, ParameterError, PlantbenchError
from .executor import default_jobs, execute, sigterm_as_interrupt
from .fileio import check_writable
from .judge import Entry, judge_with_references
from .loading import PrunerSpec
from .paths import mask_file, mask_name
from .plant import plant_task
from .records import ResultStore, make_header, make_record, pack_mask, run_id
from .seal import SeedKey, load_key, make_undumpable
from .seeding import stable_int
from .seek import SeekFailure, SeekResult, problem_payload, seek_group_in, seek_in, split_mask
from .suite import get_suite
from .task import get_task
from .train import Protocol


@dataclass(frozen=True)
class RunSpec:
    """One run: its id, its seed index (recorded), its density and the seed it is planted from.

    plant_seed is the index itself for public seeds; under a seed key it is derived from the key
    (plantbench.seal) and never recorded, printed or shown (hence repr=False).
    """

    run_id: str
    seed: int
    density: float
    plant_seed: int | None = field(default=None, repr=False, compare=False)

    @property
    def planted(self) -> int:
        return self.seed if self.plant_seed is None else self.plant_seed


@dataclass(frozen=True)
class Group:
    """The pending runs of one task and host, with everything a worker needs to do them."""

    pruner: PrunerSpec
    pruner_args: tuple[tuple[str, object], ...]
    suite: str
    task: str
    depth: int
    widths: tuple[int, ...]
    protocol: Protocol
    device: str
    runs: tuple[RunSpec, ...]
    run_timeout: float = 3600.0
    reference_cache: str | None = None  # the reference cache's folder; None computes every reference
    seed_key: str | None = None  # the seed key's fingerprint (None: public seeds)
    task_file: taskfile.TaskSpec | None = None  # a task from a user's file: workers load it from here
    suite_source: str | None = None  # the sha256 of the suite's TOML file, for a suite from a file

    @property
    def args(self) -> dict:
        return dict(self.pruner_args)


@dataclass
class GroupResult:
    """A group's records, its runs' packed masks, and the file (in the masks folder) they go to."""

    records: list[dict]
    masks: dict[str, np.ndarray]
    mask_name: str
    interrupted: bool = False  # Ctrl-C stopped the group: these are the runs pruned before it


def resolve_device(device: str) -> str:
    """"auto" becomes cuda where there is a GPU, else cpu; asking for a missing GPU is an error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ParameterError("device", "CUDA is not available on this machine (use cpu or auto)", "cuda")
    if device not in ("cpu", "cuda"):
        raise ParameterError("device", "expected auto, cpu or cuda", repr(device))
    return device


def device_label(device: str) -> str:
    return f"cuda ({torch.cuda.get_device_name()})" if device == "cuda" else "cpu"


def plan(config: SweepConfig, pruner: PrunerSpec, device: str = "cpu", key: SeedKey | None = None,
         args: dict | None = None) -> list[Group]:
    """Every run the config asks for, grouped by task; its tasks, densities and seeds narrow the suite.

    A run is planned once: a task named twice, or densities equal after rounding, add nothing.
    key: the secret seed key (plantbench.seal) the runs are planted from; None for public seeds.
    args: the pruner's constructor arguments as recorded, every default filled in (sandbox.describe);
        None: the config's arguments as given.
    """
    suite = get_suite(config.validate().suite)
    densities = tuple(config.densities) or None
    n_seeds = suite.seeds if config.seeds is None else config.seeds
    args = dict(config.args if args is None else args)
    # Cached references are filed under the planting seed: never for secret seeds.
    cache = str(refcache.default_folder()) if config.reference_cache and key is None else None
    groups, seen = [], set()
    for t in dict.fromkeys(config.tasks or suite.tasks):
        task = get_task(t)
        widths = tuple(suite.widths)
        runs = []
        fp = key.fingerprint if key is not None else None
        for s in range(n_seeds):
            planted = key.derive(suite.id, task.id, s) if key is not None else None
            for d in suite.grid(t, densities):
                rid = run_id(pruner.name, args, suite.id, task.id, list(widths), s, d, seed_key=fp)
                if rid not in seen:
                    seen.add(rid)
                    runs.append(RunSpec(rid, s, d, planted))
        groups.append(Group(pruner, tuple(args.items()), suite.id, t, suite.depth, widths, suite.protocol, device,
                            tuple(runs), float(config.run_timeout), cache, fp, taskfile.spec_of(t),
                            suite.source_sha256))
    return groups


def balance(groups: list[Group], workers: int) -> list[Group]:
    """Split each group into blocks of whole seeds so that the groups spread evenly over the workers.

    The fewest blocks per group that make the number of groups a multiple of the workers (at
    most `workers` blocks, at most one per seed): few blocks keep the judge's stacked batches
    (and a pruner's whole-group batches) large. The paper suite's 3 tasks on 2 workers become 6
    groups. A run's record does not depend on its group (the judge's rule), except the name of
    the mask file it points to.
    """
    if workers <= 1 or not groups:
        return list(groups)
    blocks = workers // math.gcd(len(groups), workers)
    out = []
    for g in groups:
        seeds = sorted({r.seed for r in g.runs})
        n = min(blocks, len(seeds))
        for part in np.array_split(np.array(seeds), n):
            chosen = set(part.tolist())
            out.append(dataclasses.replace(g, runs=tuple(r for r in g.runs if r.seed in chosen)))
    return out


def run_group(group: Group, on_run: Callable[[str], None] | None = None, interruptible: bool = False) -> GroupResult:
    """Seek every run of the group, then judge them together with the references.

    A pruner that fails (raises, returns a bad mask, runs past the time limit, kills its
    process) fails only its own run, which is recorded with the reason. With `interruptible`,
    Ctrl-C stops the seeking and the runs pruned so far are judged and returned (interrupted).
    """
    task = get_task(group.task)
    seeked, failures, stopped = _seek_all(group, task, on_run, interruptible)
    if on_run:
        on_run(f"judge {group.task}" + (" (interrupted; judging the runs already pruned)" if stopped else ""))
    widths = list(group.widths)
    # Planting seeds, not indices: under a seed key they are the secret ones (see RunSpec).
    seeds = sorted({r.planted for r in group.runs if r.run_id in seeked})
    nets = {s: plant_task(task, group.depth, widths, s, device=group.device) for s in seeds}
    data = {s: task.dataset(s) for s in seeds}
    judged = [r for r in group.runs if r.run_id in seeked]
    entries = [Entry(r.planted, *seeked[r.run_id][1], stable_int(r.run_id)) for r in judged]
    cache = refcache.ReferenceCache(group.reference_cache) if group.reference_cache else None
    scores, refs, _ = judge_with_references(task, nets, data, entries, group.protocol, group.device, cache=cache)
    scores = dict(zip((r.run_id for r in judged), scores))

    header = _header(group, task, nets[seeds[0]] if seeds else None)
    done = [r for r in group.runs if r.run_id in seeked or r.run_id in failures]
    name = mask_name(group.task, (r.run_id for r in done))
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    records, masks = [], {}
    for run in done:
        if run.run_id in failures:
            records.append(make_record(header, run.run_id, run.seed, run.density, now, error=failures[run.run_id]))
            continue
        result, (weights, biases) = seeked[run.run_id]
        s = scores[run.run_id]
        timings = {"pruner_seconds": result.seconds, "pruner_epochs": result.epochs,
                   "judge_seconds": s["judge_seconds"]}
        rec = make_record(header, run.run_id, run.seed, run.density, now, judged=s, references=refs[run.planted],
                          timings=timings, mask_file=mask_file(name), metric=task.metric)
        bad = _not_finite(rec)
        if bad:
            rec = make_record(header, run.run_id, run.seed, run.density, now, error=bad)
        else:
            masks.update(pack_mask(run.run_id, weights, biases))
        records.append(rec)
    return GroupResult(records, masks, name, stopped)


def _not_finite(rec: dict) -> str | None:
    """Records are standard JSON: a value the judge could not make finite fails its run, named."""
    for name, value in rec.items():
        values = list(value.values()) if isinstance(value, dict) else value if isinstance(value, list) else [value]
        bad = [v for v in values if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            return f"the judge gave a non-finite {name} ({bad[0]}); a record cannot hold it"
    return None


def _seek_all(group: Group, task, on_run, interruptible: bool) -> tuple[dict[str, tuple], dict[str, str], bool]:
    """Each run's seek result and mask split by layer, the reason of each failed run, and
    whether Ctrl-C stopped the seeking (only when interruptible)."""
    seeked: dict[str, tuple] = {}
    failures: dict[str, str] = {}
    box = sandbox.sandbox_for(group.pruner, group.args, torch.get_num_threads())

    def record(run, result):
        if isinstance(result, SeekResult):
            seeked[run.run_id] = (result, split_mask(result.mask, group.depth))
        else:  # a pruner's failure is data, recorded with its run
            failures[run.run_id] = str(result) if isinstance(result, SeekFailure) else error_text(result)
        if on_run:
            on_run(f"seek {group.task}")

    def payload(run):
        return problem_payload(task, group.depth, list(group.widths), run.planted, run.density, group.device,
                               group.protocol)

    try:
        todo = list(group.runs)
        if len(todo) > 1 and box.batches():  # one call for all; if it fails, each run alone below
            results = seek_group_in(box, [payload(r) for r in todo], group.run_timeout * len(todo))
            for run, result in zip(todo, results or []):
                record(run, result)
            todo = todo if results is None else []
        for run in todo:
            try:
                result = seek_in(box, payload(run), group.run_timeout)
            except (SeekFailure, MaskError) as e:
                result = e
            record(run, result)
    except KeyboardInterrupt:  # at any point of the loop: what is pruned so far is kept
        if not interruptible:
            raise
        return seeked, failures, True
    return seeked, failures, False


def _header(group: Group, task, net) -> dict:
    """The record fields every run of the group shares; net is any of its planted networks."""
    widths = list(group.widths)
    if net is not None:
        ticket_density, ticket_size = net.ticket_density, net.ticket_size
    else:  # every run failed: nothing was planted, so count the ticket from the task
        ticket_size = task.target(group.depth).n_weights
        sizes = [task.n_in, *widths, task.n_out]
        ticket_density = ticket_size / sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return make_header(group.pruner.name, group.args, group.pruner.source_sha256, group.suite, task, group.depth,
                       widths, ticket_size, ticket_density, group.protocol, device_label(group.device),
                       seed_key=group.seed_key, suite_source=group.suite_source,
                       task_source=group.task_file.source_sha256 if group.task_file else None)


def error_text(e: BaseException) -> str:
    """A pruner's fault as its record names it: 'Type: message (at file:line)'."""
    text = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    return text.strip() + _where(e)


def _where(e: BaseException) -> str:
    """' (at file:line)' for the innermost frame of the user's code, when there is one."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if "plantbench" not in Path(f.filename).parts[-2:-1]]
    return f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""


@dataclass
class SweepResult:
    out: Path
    records: list[dict] = field(default_factory=list)  # written by this sweep
    skipped: int = 0
    previous: list[dict] = field(default_factory=list)  # finished before, for the summary

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.records if r["status"] == "failed"]


def sweep(config: SweepConfig, progress: Callable[[int, str], None] | None = None,
          on_plan: Callable[[int, int], None] | None = None) -> SweepResult:
    """Run (or resume) the sweep `config` defines; write every record the moment its group ends.

    Bad settings fail before any compute: the config's own checks, then the pruner's file,
    class and arguments, the device and the results folder. One sweep writes a results folder
    at a time (a lock file in it); a second stops with a one-line error.

    Ctrl-C (or SIGTERM) stops the sweep: groups finished are saved; in this process (jobs 1)
    the runs of the group in flight that were already pruned are judged and saved first. The
    pruner's processes and the worker processes end with the sweep, whatever stops it.

    Args:
        config: the sweep (see SweepConfig for each field).
        progress: called with (runs done, stage) as the sweep advances.
        on_plan: called once with (runs to do, runs skipped) before any compute.
    """
    config.validate()
    key = load_key(config.seed_key) if config.seed_key is not None else None
    files = suitefile.load_files(config)  # task and suite files (never with a key: validate refuses)
    # Fails fast on a broken file and on arguments the constructor refuses; the pruner's code runs
    # in a process of its own, never in this one, which derives seeds and plants.
    spec, args = sandbox.describe(config.pruner, config.args)
    device = config.device
    if not (config.executor == "dask" and config.scheduler and device in ("auto", "cuda")):
        device = resolve_device(device)  # on a remote Dask cluster the workers resolve it (_worker)
    store = ResultStore(config.out if config.out is not None else Path("results") / spec.name)
    try:
        check_writable(store.runs_path)
    except OSError as e:
        raise ParameterError("out", f"cannot write there ({e.strerror or e})", store.root) from None
    global _coordinator
    _coordinator = os.getpid()
    if key is not None:
        make_undumpable()  # the derived seeds live here: no /proc reading by a same-user process
    with contextlib.ExitStack() as stack:
        config = stack.enter_context(files.registered())  # file tasks and suites: for this sweep only
        stack.enter_context(store.lock())
        stack.callback(sandbox.close_all)
        sigterm_as_interrupt(stack)
        return _sweep(config, spec, args, device, store, progress, on_plan, key)


def _sweep(config, spec, args, device, store, progress, on_plan, key=None) -> SweepResult:
    _check_key(key, store)
    finished = store.finished()
    _check_source(spec, finished, store.root)
    suitefile.check_resume(config, finished, store.root)
    groups, skipped, previous = _pending(plan(config, spec, device, key, args), finished, store)
    if not config.scheduler:  # a --scheduler cluster's size is its own
        groups = balance(groups, config.jobs or default_jobs())
    if on_plan:
        on_plan(sum(len(g.runs) for g in groups), skipped)
    result = SweepResult(store.root, skipped=skipped, previous=previous)
    done = 0

    def inline(g: Group) -> GroupResult:  # in this process: progress run by run, Ctrl-C keeps what is pruned
        def tick(stage):
            nonlocal done
            done += stage.startswith("seek")
            if progress:
                progress(done, stage)
        return run_group(g, tick, interruptible=True)

    for _, res in execute(groups, _worker, config.executor, config.jobs, config.scheduler, inline):
        store.save(res.records, res.masks, res.mask_name)
        result.records += res.records
        done = len(result.records)
        if res.interrupted:
            raise KeyboardInterrupt
        if progress and res.records:
            progress(done, f"{res.records[0]['task']} saved")
    return result


def _check_source(spec: PrunerSpec, finished: dict[str, dict], root: Path) -> None:
    """Finished runs of this pruner made from another version of its source stop the resume."""
    old = sorted({r.get("pruner_source_sha256") for r in finished.values() if r.get("pruner") == spec.name}
                 - {spec.source_sha256})
    if old:
        raise PlantbenchError(f"{root} holds finished runs of {spec.name} made from other source (sha256 "
                              f"{old[0][:12]}, now {spec.source_sha256[:12]}); restore that file, or use another --out")


def _check_key(key: SeedKey | None, store: ResultStore) -> None:
    """A folder holds runs of one seed key (or public seeds) only: resuming with another is refused."""
    want = key.fingerprint if key is not None else None
    found = {r.get("seed_key") for r in store.records()[0]} - {want}
    if found:
        other = sorted(found, key=str)[0]
        held = "public-seed runs" if other is None else f"runs made with seed key {str(other)[:16]!r}"
        now = "public seeds" if want is None else f"seed key {want}"
        raise PlantbenchError(f"{store.root} holds {held}, not {now}; resume it with the same seed key, or use "
                              "another --out")


def _pending(groups: list[Group], finished: dict[str, dict], store: ResultStore) -> tuple[list[Group], int, list[dict]]:
    """The groups cut down to their runs without a usable record (one whose mask is in its file),
    the number skipped, and the records of those."""
    pending, skipped, previous = [], 0, []
    for g in groups:
        sizes = [get_task(g.task).n_in, *g.widths, get_task(g.task).n_out]
        usable = {r.run_id for r in g.runs if r.run_id in finished and store.has_mask(finished[r.run_id], sizes)}
        todo = tuple(r for r in g.runs if r.run_id not in usable)
        previous += [finished[r.run_id] for r in g.runs if r.run_id in usable]
        skipped += len(g.runs) - len(todo)
        if todo:
            pending.append(dataclasses.replace(g, runs=todo))
    return pending, skipped, previous


_coordinator: int | None = None  # the process running sweep(); a worker process is another


def _worker(group: Group) -> GroupResult:
    if os.getpid() != _coordinator:
        sandbox.watch_parent()  # a worker process outlives no coordinator
        if group.seed_key is not None:
            make_undumpable()  # it holds the group's derived seeds
    torch.set_num_threads(1)  # one core per worker; the workers share the machine
    with taskfile.registered([group.task_file] if group.task_file else []):
        return run_group(dataclasses.replace(group, device=resolve_device(group.device)))
