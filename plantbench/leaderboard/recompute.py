"""Recomputing every number a record holds from its stored mask: re-plant, re-judge, retrain.

`recompute(entries, references)` groups the records by suite and task, re-plants each seed's
host, and judges every stored mask together with each seed's planted ticket and dense host in
one judge_with_references call per group (in chunks of JUDGE_CHUNK networks, to bound memory),
with training: so an entry's `weak`, the `references` it carries (ticket and dense, strong and
weak, chance), its `normalized_*`, `ticket_size` and `ticket_density` are all recomputed, the
same way for entries and for reference records. Each disagreement is one problem naming the
record (file, line and run) and the field.

Tolerances (see plantbench.leaderboard.check for how they were measured):
  * counts-derived fields: COUNT_TOL absolute; collapsed_layers and ticket_size exactly.
  * strong: MSEs within STRONG_RTOL relative; accuracies exactly, or within one test sample when
    the record was written by another torch build than the one checking it.
  * weak (and references.ticket_weak, references.dense_weak): within WEAK_RTOL relative when the
    record comes from this platform (same_platform); else within WEAK_NORM_TOL on the normalised
    scale, with the entry's mean deviation bounded (bias_problems).
  * normalized_strong and normalized_weak: Metric.normalise of the record's own values within
    1e-9; those values are themselves checked against the recomputation above.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import statistics
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed

import torch

from ..errors import PlantbenchError
from ..metrics import METRICS
from ..seeding import stable_int
from .masks import open_masks
from .results import Loaded

COUNT_FIELDS = ("density", "bias_density", "effective_density", "recall", "precision", "f1",
                "neuron_recall")
COUNT_TOL = 1e-9
STRONG_RTOL = 1e-5
STRONG_ATOL = 1e-12
JUDGE_CHUNK = 256  # networks per judge call during check, to bound memory
WEAK_RTOL = 1e-3  # weak metrics retrained on the platform that wrote the record: 3x the largest measured (check.py)
WEAK_NORM_TOL = 0.3  # another platform: normalised weak scores within this (check.py)
BIAS_FLOOR = 0.02  # an entry's mean normalised weak above retraining, records from other platforms
BIAS_SES = 4.0  # ... or this many standard errors of that mean, whichever is larger


def same_build(rec: dict) -> bool:
    """Whether the record was written by the torch version checking it (accuracies then recompute
    exactly)."""
    versions = rec.get("versions")
    return isinstance(versions, dict) and versions.get("torch") == torch.__version__


def same_platform(rec: dict) -> bool:
    """Whether the record was judged on the CPU by this torch build dispatching to this instruction
    set: then training, independent of batch mates, reproduces its weak values to WEAK_RTOL."""
    versions = rec.get("versions")
    return (same_build(rec) and rec.get("device") == "cpu"
            and versions.get("cpu") == torch.backends.cpu.get_cpu_capability())


def _same(a: float, b: float, rtol: float, atol: float) -> bool:
    if a is None or b is None:
        return a is b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= atol + rtol * abs(b)


def _g(v) -> str:
    return f"{v:.10g}" if isinstance(v, float) else repr(v)


def _f(v):
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


def recompute(entries: list[Loaded], references: list[Loaded], jobs: int | None = None,
              progress: Callable[[int, int], None] | None = None) -> list[str]:
    """Problems of every ok record whose suite, task and host check can re-plant (see the module).

    The work is split by suite, task and seed (each seed's masks are judged with that seed's own
    ticket and dense host; a network's training does not depend on its batch mates, so the split
    changes nothing) and spread over `jobs` processes, one torch thread each [default: the CPU
    cores, at most the number of parts]. progress: called with (records done, records) as parts end.
    """
    parts = _parts(entries, references)
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(parts)))
    total, done, found = sum(len(p[2]) + len(p[3]) for p in parts), 0, [None] * len(parts)

    def finished(i, result):  # kept in the parts' order, whichever ends first
        nonlocal done
        found[i] = result
        done += len(parts[i][2]) + len(parts[i][3])
        if progress:
            progress(done, total)

    if jobs == 1:
        for i, part in enumerate(parts):
            finished(i, _problems(part))
    else:
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch state
        with ProcessPoolExecutor(jobs, mp_context=context, initializer=_one_thread) as pool:
            futures = {pool.submit(_problems, part): i for i, part in enumerate(parts)}
            for future in as_completed(futures):
                finished(futures[future], future.result())
    deviations = defaultdict(list)
    for _, devs in found:
        for key, d in devs:
            deviations[key].append(d)
    return [p for problems, _ in found for p in problems] + bias_problems(deviations)


def _one_thread() -> None:
    torch.set_num_threads(1)


def _problems(part: tuple) -> tuple[list[str], list[tuple]]:
    """The part's problems, and (entry, recorded minus retrained normalised weak) of each of its
    records from another platform."""
    problems, judged = _rejudge(*part)
    deviations = []
    for item, got, refs, net, n_test in judged:
        planted = {**refs, "ticket_size": net.ticket_size, "ticket_density": net.ticket_density}
        problems += _compare(item, got, planted, n_test) + _compare_weak(item, got, refs)
        if not same_platform(item.rec):
            r, metric = item.rec, METRICS[item.rec["metric"]]
            chance, ticket = refs["chance"], refs["ticket_strong"]
            dev = metric.normalise(_f(r["weak"]), chance, ticket) - metric.normalise(got["weak"], chance, ticket)
            if math.isfinite(dev):
                deviations.append((f"{r['suite']} {r['pruner']} {json.dumps(r['pruner_args'], sort_keys=True)}", dev))
    return problems, deviations


def bias_problems(deviations: dict[str, list[float]]) -> list[str]:
    """Entries whose records from other platforms score above retraining on average.

    Another platform's rounding moves a retrained weak score either way, by up to WEAK_NORM_TOL
    per record, and about zero on average; records all moved up are an edit, not rounding. An
    entry fails when its mean deviation exceeds the largest of BIAS_FLOOR, BIAS_SES standard errors
    of the mean, and WEAK_NORM_TOL / sqrt(n) (the per-record bound, averaged over n records)."""
    out = []
    for key, devs in sorted(deviations.items()):
        n, mean = len(devs), statistics.fmean(devs)
        se = statistics.stdev(devs) / math.sqrt(n) if n > 1 else 0.0
        bound = max(BIAS_FLOOR, BIAS_SES * se, WEAK_NORM_TOL / math.sqrt(n))
        if mean > bound:
            out.append(f"entry {key}: weak lies {mean:.3f} above retraining on average over {n} records from "
                       f"another platform (bound {bound:.3f}); rounding scatters around zero")
    return out


def _parts(entries: list[Loaded], references: list[Loaded]) -> list[tuple]:
    """(suite, task id, its entries, its reference records) per suite, task and seed, largest first
    so that the last part to start is a small one."""
    from ..suite import SUITES

    groups: dict[tuple, tuple[list, list]] = defaultdict(lambda: ([], []))
    for item in entries:
        groups[(item.rec["suite"], item.rec["task"], item.rec["seed"])][0].append(item)
    for item in references:
        groups[(item.rec["suite"], item.rec["task"], item.rec["seed"])][1].append(item)
    parts = [(SUITES.at_version(suite_id), task_id, group, refs)
             for (suite_id, task_id, _), (group, refs) in sorted(groups.items(), key=lambda kv: repr(kv[0]))]
    return sorted(parts, key=lambda part: -(len(part[2]) + len(part[3])))


def rejudged(entries: list[Loaded], references: list[Loaded]):
    """Per suite, task and seed: (problems found before judging, [(record, its recomputed scores,
    its seed's recomputed references, its planted network, test-split size)]).

    The problems are those of masks that cannot be read or hosts that cannot be re-planted, and
    reference records whose stored mask is not the reference mask they name.
    """
    for part in _parts(entries, references):
        yield _rejudge(*part)


def _rejudge(suite, task_id: str, group: list[Loaded], refs: list[Loaded]) -> tuple[list[str], list[tuple]]:
    """One suite and task: judge and retrain its stored masks with the references, in one batch."""
    from ..judge import Entry, judge_with_references
    from ..plant import plant_task
    from ..task import get_task

    task = get_task(task_id.partition("@")[0])
    sizes = [task.n_in, *suite.widths, task.n_out]
    masks, problems = open_masks(group, sizes)
    ref_masks, found = open_masks(refs, sizes)
    problems += found
    seeds = sorted({item.rec["seed"] for item, _, _ in masks + ref_masks})
    if not seeds:
        return problems, []
    try:
        nets = {s: plant_task(task, suite.depth, suite.widths, s) for s in seeds}
    except PlantbenchError as e:
        return problems + [item.problem(f"cannot re-plant the host: {e}") for item, _, _ in masks + ref_masks], []
    data = {s: task.dataset(s) for s in seeds}
    n_test = int(data[seeds[0]].y_test.shape[0])
    # An entry's batch order is seeded by its run id, as when it was judged.
    batch = [Entry(item.rec["seed"], w, b, stable_int(item.rec["run_id"])) for item, w, b in masks]
    judged = judge_with_references(task, nets, data, batch, suite.protocol, "cpu", chunk=JUDGE_CHUNK, seeds=seeds)
    out = []
    for (item, _, _), got in zip(masks, judged.scores):
        s = item.rec["seed"]
        out.append((item, got, judged.references[s], nets[s], n_test))
    for item, weights, biases in ref_masks:
        s, pruner = item.rec["seed"], item.rec["pruner"]
        if not _is_reference_mask(pruner, nets[s], weights, biases):
            problems.append(item.problem(f"the stored mask is not the {pruner} mask of seed {s}"))
        out.append((item, judged.reference_scores[s][pruner], judged.references[s], nets[s], n_test))
    return problems, out


def _compare(item: Loaded, got: dict, refs: dict, n_test: int) -> list[str]:
    """Problems where the record disagrees with what its mask and planted network give, untrained."""
    r, out = item.rec, []

    def differ(name, recorded, computed):
        out.append(item.problem(f"{name} {_g(recorded)} but the mask gives {_g(computed)}"))

    for name in COUNT_FIELDS:
        if not _same(_f(r[name]), got[name], 0.0, COUNT_TOL):
            differ(name, r[name], got[name])
    layer = r["layer_recall"]
    if len(layer) != len(got["layer_recall"]) or not all(
            _same(_f(a), b, 0.0, COUNT_TOL) for a, b in zip(layer, got["layer_recall"])):
        differ("layer_recall", layer, got["layer_recall"])
    if r["collapsed_layers"] != got["collapsed_layers"]:
        differ("collapsed_layers", r["collapsed_layers"], got["collapsed_layers"])
    if r["ticket_size"] != refs["ticket_size"]:
        out.append(item.problem(f"ticket_size {r['ticket_size']} but the planted network has {refs['ticket_size']}"))
    if not _same(_f(r["ticket_density"]), refs["ticket_density"], 0.0, COUNT_TOL):
        out.append(item.problem(f"ticket_density {_g(r['ticket_density'])} but the planted network has "
                                f"{_g(refs['ticket_density'])}"))

    metric = METRICS[r["metric"]]
    if metric.log_scale:
        rtol, atol = STRONG_RTOL, STRONG_ATOL
    else:  # accuracies are counts: exact, or one test sample (a near-tie logit) from another build
        rtol, atol = 0.0, (1e-12 if same_build(r) else 1.0 / n_test + 1e-12)
    if not _same(_f(r["strong"]), got["strong"], rtol, atol):
        differ("strong", r["strong"], got["strong"])
    ref = r["references"]
    for name in ("ticket_strong", "dense_strong"):
        if not _same(_f(ref[name]), refs[name], rtol, atol):
            out.append(item.problem(f"references.{name} {_g(ref[name])} but the planted network gives {_g(refs[name])}"))
    if not _same(_f(ref["chance"]), refs["chance"], 1e-12, 0.0):
        out.append(item.problem(f"references.chance {_g(ref['chance'])} but the data give {_g(refs['chance'])}"))
    for name, raw in (("normalized_strong", "strong"), ("normalized_weak", "weak")):
        expected = metric.normalise(_f(r[raw]), _f(ref["chance"]), _f(ref["ticket_strong"]))
        if not _same(_f(r[name]), expected, 1e-9, 1e-9):
            out.append(item.problem(f"{name} {_g(r[name])} but the record's own values give {_g(expected)}"))
    return out


def _same_weak(item: Loaded, recorded: float, computed: float, chance: float, ticket: float) -> bool:
    """Weak metrics agree within WEAK_RTOL relative when the record comes from this platform
    (same_platform), else within WEAK_NORM_TOL on the normalised scale (and the entry's mean
    deviation within bias_problems' bound). See check.py for what was measured."""
    if _same(_f(recorded), computed, WEAK_RTOL, 1e-12):
        return True
    if same_platform(item.rec):
        return False
    metric = METRICS[item.rec["metric"]]
    a, b = metric.normalise(_f(recorded), chance, ticket), metric.normalise(computed, chance, ticket)
    return _same(a, b, 0.0, WEAK_NORM_TOL)


def _compare_weak(item: Loaded, got: dict, refs: dict) -> list[str]:
    """A record's weak metric and its references' weak values against a retraining."""
    r, out = item.rec, []
    chance, ticket = refs["chance"], refs["ticket_strong"]
    if not _same_weak(item, r["weak"], got["weak"], chance, ticket):
        out.append(item.problem(f"weak {_g(r['weak'])} but retraining the mask gives {_g(got['weak'])}"))
    for name in ("ticket_weak", "dense_weak"):
        if not _same_weak(item, r["references"][name], refs[name], chance, ticket):
            out.append(item.problem(f"references.{name} {_g(r['references'][name])} but retraining gives "
                                    f"{_g(refs[name])}"))
    return out


def _is_reference_mask(pruner: str, net, weights: list[torch.Tensor], biases: list[torch.Tensor] | None) -> bool:
    """The planted ticket's weights and biases exactly, or every weight with no bias mask."""
    if pruner == "planted-ticket":
        return biases is not None and all(torch.equal(a, b.cpu()) for a, b in zip(weights, net.ticket_weights)) \
            and all(torch.equal(a, b.cpu()) for a, b in zip(biases, net.ticket_biases))
    return biases is None and all(bool(w.all()) for w in weights)
