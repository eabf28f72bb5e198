"""How far the weak metric moves when training rounds differently: float64 against float32.

Another torch version or device rounds training's float32 arithmetic differently; training the
same masks in float64 is a reproducible proxy for that. For each task of a suite and the first
SEEDS seeds, judges the planted ticket, the dense host and up to PER_TASK entries of the
leaderboard (every `stride`-th ok record, so all pruners and densities appear) in both
precisions, through the same judge check uses, and prints the largest deviation of the weak
metric on the normalised scale (normalised by the float32 references).

    python docs/experiments/weak_precision.py [LEADERBOARD_FOLDER] [SUITE] [SEEDS] [PER_TASK]
"""

import dataclasses
import sys
import time

import torch

from plantbench.judge import Entry, judge_with_references
from plantbench.leaderboard.masks import open_masks
from plantbench.leaderboard.results import leaderboard_root, read_results
from plantbench.plant import plant_task
from plantbench.seeding import stable_int
from plantbench.suite import get_suite
from plantbench.task import get_task


def doubled(obj):
    """A PlantedNetwork or Dataset with its floating tensors in float64."""
    def cast(v):
        if isinstance(v, torch.Tensor) and v.is_floating_point():
            return v.double()
        if isinstance(v, list):
            return [cast(t) for t in v]
        return v
    return dataclasses.replace(obj, **{f.name: cast(getattr(obj, f.name)) for f in dataclasses.fields(obj)})


def task_deviations(suite, name: str, items, seeds: list[int]) -> list[tuple[str, float]]:
    """(what, |normalised weak in float64 - in float32|) for each network judged."""
    task = get_task(name)
    masks, problems = open_masks(items, [task.n_in, *suite.widths, task.n_out])
    assert not problems, problems
    nets = {s: plant_task(task, suite.depth, suite.widths, s) for s in seeds}
    data = {s: task.dataset(s) for s in seeds}
    entries = [Entry(it.rec["seed"], w, b, stable_int(it.rec["run_id"])) for it, w, b in masks]
    single = judge_with_references(task, nets, data, entries, suite.protocol, "cpu", chunk=256, seeds=seeds)
    double = judge_with_references(task, {s: doubled(n) for s, n in nets.items()},
                                   {s: doubled(d) for s, d in data.items()}, entries, suite.protocol, "cpu",
                                   chunk=256, seeds=seeds)

    def norm(value, s):
        ref = single.references[s]
        return task.metric.normalise(value, ref["chance"], ref["ticket_strong"])

    out = []
    for (it, _, _), a, b in zip(masks, single.scores, double.scores):
        s = it.rec["seed"]
        out.append((f"{it.rec['pruner']} density {it.rec['density_target']:.3g} seed {s}",
                    abs(norm(a["weak"], s) - norm(b["weak"], s))))
    for s in seeds:
        for ref in ("ticket_weak", "dense_weak"):
            out.append((f"{ref} seed {s}", abs(norm(single.references[s][ref], s) - norm(double.references[s][ref], s))))
    return out


def main(root="leaderboard", suite_id="paper", n_seeds="5", per_task="40") -> None:
    suite, n_seeds, per_task = get_suite(suite_id.partition("@")[0]), int(n_seeds), int(per_task)
    seeds = list(range(min(n_seeds, suite.seeds)))
    records = [it for it in read_results(leaderboard_root(root))[0]
               if it.rec.get("status") == "ok" and it.rec.get("suite") == suite.id and it.rec.get("seed") in seeds]
    for name in suite.tasks:
        of_task = [it for it in records if it.rec["task"].partition("@")[0] == name]
        chosen = of_task[::max(1, len(of_task) // per_task)][:per_task]
        start = time.perf_counter()
        found = sorted(task_deviations(suite, name, chosen, seeds), key=lambda x: -x[1])
        print(f"{name}: {len(found)} networks, {time.perf_counter() - start:.0f} s; largest normalised weak "
              f"deviations float64 vs float32: " + "; ".join(f"{what}: {d:.3g}" for what, d in found[:3]))


if __name__ == "__main__":
    main(*sys.argv[1:])
