"""Checking a leaderboard folder, as CI does: records, their masks, and the generated files.

`check(root)` validates every record, recomputes from the stored masks what they determine, and
compares README.md and the plots with a fresh build. It never runs submitted code and never
unpickles: records are read with a strict JSON parser (plantbench.jsonsafe), masks member by
member after their sizes are checked (plantbench.leaderboard.masks), and only regular files
inside the leaderboard folder are opened (plantbench.leaderboard.files).

The recomputation (plantbench.leaderboard.recompute) re-plants every host and judges every
stored mask, entries and reference records alike, with training: every number the ranking uses
(strong, weak, the references each record carries, normalized_strong, normalized_weak,
ticket_size, ticket_density) is recomputed. Its tolerances, measured on the `quick` suite and the
committed `paper` leaderboard:
  * counts-derived fields (density, bias_density, effective_density, recall, precision, f1,
    layer_recall, neuron_recall, ticket_density) are ratios of integers computed in float64:
    equal within 1e-9, collapsed_layers and ticket_size exactly.
  * the strong metric. Judging the same mask alone instead of in a batch moves an MSE by up to
    2e-9 relative (BLAS blocking); running the forward pass in float64 instead of float32 moved
    it by up to 7e-7 relative, an upper bound for another device's float32 rounding. MSEs must
    agree within STRONG_RTOL = 1e-5 relative (1e-12 absolute), ten times that bound. Accuracies
    are counts over the test split and recompute exactly with the torch version that wrote the
    record; with another, they may differ by one test sample (a near-tie logit): 1 / n_test.
  * chance is recomputed exactly (1e-12 relative); normalized_strong and normalized_weak must
    equal Metric.normalise of the record's own values within 1e-9.
  * weak, references.ticket_weak and references.dense_weak are retrained under the suite's
    protocol, each mask with its own batch order (seeded by its run id, as when it was judged).
    A network's training does not depend on its batch mates, so a record from this platform (the
    torch build, CPU instruction set and device cpu checking it) retrains exactly. Records written
    before 2026-11-24 may not: their sweeps computed a network alone in its batch with other torch
    kernels (train.LONE_PAIR). On the leaderboard of that day (7,087 records) 142 weak values of
    such records differed: by at most 3.4e-4 relative on `paper`, 3.6e-6 on `depth2` and 1.9e-6
    on `depth9`, besides two depth-9 entries whose deviations had grown to 35% and which were
    regenerated. They must agree within WEAK_RTOL = 1e-3 relative, three times the largest.
    A record from another platform gets WEAK_NORM_TOL
    = 0.3 on the normalised scale (rounding differences grown by training moved values by up to
    0.281 when batch mates still mattered, docs/leaderboard.md), and its
    entry's mean deviation above retraining is bounded (recompute.bias_problems).
  * time: the whole check of that leaderboard took 4 min on 2 CPU cores (2 processes).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from ..paths import LEADERBOARD_DIR, PLOTS_DIR, README, REFERENCES_DIR, RUNS_FILE
from ..records import run_id
from ..references import REFERENCE_PRUNERS, reference_density, reference_run_ids
from .build import generate
from .files import GENERATED_LIMIT, UnsafeFileError, entries, kind, read_bytes
from .plots import PLOT_FORMATS, digest_in, spec_digest
from .ranking import args_key, density_key
from .recompute import recompute
from .results import Loaded, leaderboard_root, printable, read_references, read_results
from .site import site_problems


def _g(v) -> str:
    return f"{v:.10g}" if isinstance(v, float) else repr(v)


def _registered(registry, ident: str, item, out: list[str]):
    """The registered entry named by `name@version`, or None with a problem appended."""
    name, _, version = ident.partition("@")
    if name not in registry:
        out.append(item.problem(f"unknown {registry.kind} {ident!r}"))
        return None
    entry = registry.get(name)
    if str(entry.version) != version:
        out.append(item.problem(f"{registry.kind} {ident} does not exist (registered: {entry.id})"))
        return None
    return entry


def _identity_problems(item: Loaded, reference: bool = False) -> tuple[list[str], bool]:
    """run_id, registered suite and task versions, and agreement with the suite's definition.

    reference: the record is a reference record, so its pruner must be one of the reference
    masks and its density that mask's (the ticket's, or 1) rather than a point of the grid.
    Returns the problems and whether the run can still be re-judged (its task@version exists).
    """
    from ..suite import SUITES
    from ..task import TASKS

    r, out = item.rec, []
    from_file = [k for k in ("task", "suite") if r.get(f"{k}_from_file") or f"{k}_source_sha256" in r]
    if from_file:
        what = " and ".join(from_file)
        out.append(item.problem(f"its {what} came from a user's file (--task FILE.py, --suite FILE.toml): only "
                                "registered tasks and suites go on the leaderboard"))
        return out, False
    expected = run_id(r["pruner"], r["pruner_args"], r["suite"], r["task"], r["widths"], r["seed"], r["density_target"])
    if r["run_id"] != expected:
        out.append(item.problem(f"run_id does not match its fields (they give {expected})"))
    suite = _registered(SUITES, r["suite"], item, out)
    task = _registered(TASKS, r["task"], item, out)
    tname = r["task"].partition("@")[0]
    if task is not None and r["metric"] != task.metric.name:
        out.append(item.problem(f"metric {r['metric']!r} but task {task.id} is scored by {task.metric.name!r}"))
    if suite is None or task is None:
        return out, False
    if tname not in suite.tasks:
        out.append(item.problem(f"task {tname!r} is not in suite {suite.id}"))
        return out, False
    # Only a registered suite's host and seeds are re-planted: a record cannot make check build a
    # host of its choosing, whatever its other problems.
    judgeable = r["depth"] == suite.depth and list(r["widths"]) == suite.widths and 0 <= r["seed"] < suite.seeds
    if r["depth"] != suite.depth or list(r["widths"]) != suite.widths:
        out.append(item.problem(f"host depth {r['depth']}, widths {_short(r['widths'])} but suite {suite.id} has "
                                f"depth {suite.depth}, widths {suite.widths}; not re-judged"))
    if json.loads(json.dumps(suite.protocol.to_dict())) != r["protocol"]:
        out.append(item.problem(f"protocol {_short(r['protocol'])} differs from suite {suite.id}'s"))
    if not 0 <= r["seed"] < suite.seeds:
        out.append(item.problem(f"seed {r['seed']} is outside suite {suite.id} (seeds 0..{suite.seeds - 1}); "
                                "not re-judged"))
    if reference:
        out += _reference_identity(item, suite, tname)
    elif density_key(r["density_target"]) not in {density_key(d) for d in suite.grid(tname)}:
        out.append(item.problem(f"density {_g(r['density_target'])} is not on suite {suite.id}'s grid for {tname}"))
    return out, judgeable


def _short(value, limit: int = 200) -> str:
    """str(value), cut to limit characters: a record's lists and dicts can be long."""
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _reference_identity(item: Loaded, suite, tname: str) -> list[str]:
    """A reference record names a reference mask, takes no arguments and sits at that mask's density."""
    r = item.rec
    if r["pruner"] not in REFERENCE_PRUNERS:
        return [item.problem(f"pruner {r['pruner']!r} is not a reference ({', '.join(REFERENCE_PRUNERS)})")]
    out = [item.problem("a reference record takes no pruner_args")] if r["pruner_args"] else []
    density = reference_density(r["pruner"], suite.ticket_density(tname))
    if density_key(r["density_target"]) != density_key(density):
        out.append(item.problem(f"density {_g(r['density_target'])} but {r['pruner']} has density {_g(density)}"))
    return out


def _generated_problems(root: Path) -> list[str]:
    """Problems where README.md or plots/ differ from a fresh build of the same records.

    Only regular files are read, each at most GENERATED_LIMIT bytes: a link or device in their
    place is a problem, never followed.
    """
    readme, specs = generate(root)
    hint = "run `plantbench leaderboard build` and commit the result"
    out = []
    path = root / README
    what = kind(root, README)
    if what == "missing":
        out.append(f"{path}: missing; {hint}")
    elif what != "file":
        out.append(f"{path}: {what}; the leaderboard holds a regular README.md only")
    else:
        try:
            if read_bytes(root, README, GENERATED_LIMIT) != readme.encode("utf-8"):
                out.append(f"{path}: out of date with the results; {hint}")
        except UnsafeFileError as e:
            out.append(str(e))
    plots = root / PLOTS_DIR
    try:
        found = [(name, what) for name, what in entries(root, PLOTS_DIR) if Path(name).suffix in (".png", ".svg")]
    except UnsafeFileError as e:
        return out + [str(e)]
    for name, what in found:
        if what != "file":
            out.append(f"{plots / name}: {what}; the leaderboard holds regular plot files only")
    have = {name for name, _ in found}
    wanted = {f"{stem}.{fmt}": spec for stem, spec in specs.items() for fmt in PLOT_FORMATS}
    for name in sorted(set(wanted) - have):
        out.append(f"{plots / name}: missing; {hint}")
    for name in sorted(have - set(wanted)):
        out.append(f"{plots / name}: no longer generated from the results; {hint}")
    for name in sorted(have & set(wanted)):
        if dict(found)[name] == "file" and _plot_digest(root, name) != spec_digest(wanted[name]):
            out.append(f"{plots / name}: out of date with the results; {hint}")
    return out


def _plot_digest(root: Path, name: str) -> str | None:
    try:
        return digest_in(name, read_bytes(root, f"{PLOTS_DIR}/{name}", GENERATED_LIMIT))
    except UnsafeFileError:
        return None  # too large: reported as out of date


def check(root: str | Path = LEADERBOARD_DIR, progress: Callable[[int, int], None] | None = None) -> list[str]:
    """Every problem with a leaderboard folder, one line each naming the file and the run; [] = ok.

    progress: called with (records re-judged, records to re-judge) as the recomputation advances."""
    root = leaderboard_root(root)
    records, problems = read_results(root)
    entries, found = _screen(records, reference=False)
    problems += found
    references, found = read_references(root)
    problems += found
    refs, found = _screen(references, reference=True)
    problems += found
    problems += _missing_references(root, entries, refs)
    problems += recompute(entries, refs, progress=progress)  # every mask re-judged, weak metrics retrained
    problems += _verification_problems(records)
    problems += _generated_problems(root)
    problems += site_problems(root)  # the web leaderboard, byte for byte
    return [_line(p) for p in problems]


def _verification_problems(records: list[Loaded]) -> list[str]:
    """Each results folder's verification.json, where there is one: its format (strictly), and
    that it names the pruner, suite and source sha256 of the folder's records."""
    from .verified import check_folder

    by_folder: dict[tuple, list[dict]] = defaultdict(list)
    for item in records:
        by_folder[(item.folder, item.root)].append(item.rec)
    return [p for (folder, root), recs in sorted(by_folder.items(), key=str) for p in check_folder(folder, recs, root)]


def _line(problem: str, limit: int = 2000) -> str:
    """A problem as one printable line of bounded length (records and file names are anyone's)."""
    text = printable(problem)
    return text if len(text) <= limit else text[:limit] + "..."


def _screen(records: list[Loaded], reference: bool) -> tuple[list[Loaded], list[str]]:
    """Identity problems, duplicates and mixed sources; returns the ok records that can be re-judged."""
    problems: list[str] = []
    first_ok: dict[str, Loaded] = {}
    sources: dict[tuple, tuple[str, Loaded]] = {}
    unique = []
    for item in records:
        found, judgeable = _identity_problems(item, reference)
        problems += found
        r = item.rec
        if r["status"] != "ok":
            if reference:
                problems.append(item.problem("a reference record must be ok"))
            continue
        if r["run_id"] in first_ok:
            problems.append(item.problem(f"duplicate: an ok record of this run is already at {first_ok[r['run_id']].where}"))
            continue
        first_ok[r["run_id"]] = item
        if judgeable:
            unique.append(item)
        if reference:
            continue
        entry = (r["suite"], r["pruner"], args_key(r["pruner_args"]))
        sha, seen = sources.setdefault(entry, (r["pruner_source_sha256"], item))
        if sha != r["pruner_source_sha256"]:
            problems.append(item.problem(f"pruner source sha256 {r['pruner_source_sha256'][:12]} differs from "
                                         f"{sha[:12]} at {seen.where}: one entry must come from one pruner source"))
    return unique, problems


def _registered_suite(ident: str):
    """The registered suite named by name@version, or None."""
    from ..suite import SUITES

    return SUITES.at_version(ident)


def _missing_references(root: Path, entries: list[Loaded], refs: list[Loaded]) -> list[str]:
    """One problem per suite, task and seed of an entry that lacks its two reference records."""
    have = {item.rec["run_id"] for item in refs}
    where = root / REFERENCES_DIR / RUNS_FILE
    out, seen = [], set()
    for item in entries:
        r = item.rec
        key = (r["suite"], r["task"], r["seed"])
        suite = _registered_suite(r["suite"])
        tname = r["task"].partition("@")[0]
        if key in seen or suite is None or tname not in suite.tasks:
            continue
        seen.add(key)
        missing = [p for p, rid in reference_run_ids(suite, tname, r["seed"]).items() if rid not in have]
        if missing:
            out.append(f"{where}: no {' or '.join(missing)} record for suite {suite.id}, task {r['task']}, seed "
                       f"{r['seed']}; run `plantbench leaderboard references` and commit the result")
    return out
