"""The planted ticket's own scores on the appendix suites: their reference records, summarised.

For every task of each named suite it judges the two reference masks (the planted ticket's own,
the dense host) on the suite's seeds, exactly as `plantbench leaderboard references` does once a
suite has entries (plantbench.references.reference_group), writes the records and masks to
--out/<suite>/ and prints per task the mean ± std over seeds of the untrained planted ticket
(strong), the trained planted ticket and the trained dense host (weak), chance, and the seconds
it took.

    python docs/experiments/appendix_references.py --suite depth2 --suite depth9 --suite noise --out refs

With --untrained it only scores the untrained planted ticket (seconds) and writes nothing.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from plantbench.judge import metric_of
from plantbench.metrics import format_metric
from plantbench.plant import plant_task
from plantbench.records import ResultStore
from plantbench.references import reference_group
from plantbench.suite import get_suite
from plantbench.task import get_task


def summary(values: list[float], metric) -> str:
    m = math.fsum(values) / len(values)
    sd = math.sqrt(math.fsum((v - m) ** 2 for v in values) / len(values))
    return f"{format_metric(m, metric)} ± {format_metric(sd, metric)}"


def run(suite_name: str, out: Path) -> None:
    suite = get_suite(suite_name)
    print(f"\n{suite.id}: depth {suite.depth}, width {suite.width}, seeds 0..{suite.seeds - 1}")
    print("| task | ticket weights | ticket density | metric | planted ticket, untrained | "
          "planted ticket, trained | dense host, trained | chance | seconds |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|")
    for tname in suite.tasks:
        task = get_task(tname)
        start = time.perf_counter()
        res = reference_group(suite, tname, range(suite.seeds))
        seconds = time.perf_counter() - start
        ResultStore(out / suite.name).save(res.records, res.masks, res.mask_name)
        ticket = [r for r in res.records if r["pruner"] == "planted-ticket"]
        dense = [r for r in res.records if r["pruner"] == "dense-host"]
        m = task.metric
        print(f"| {task.id} | {ticket[0]['ticket_size']} | {ticket[0]['ticket_density']:.3g} | {m.name} | "
              f"{summary([r['strong'] for r in ticket], m)} | {summary([r['weak'] for r in ticket], m)} | "
              f"{summary([r['weak'] for r in dense], m)} | "
              f"{summary([r['references']['chance'] for r in ticket], m)} | {seconds:.0f} |", flush=True)


def untrained(suite_name: str) -> None:
    """The untrained planted ticket alone (no training, so seconds, not minutes): its test metric
    under the judge's readout, per task, mean ± std over the suite's seeds, and chance."""
    suite = get_suite(suite_name)
    print(f"\n{suite.id}: depth {suite.depth}, width {suite.width}, seeds 0..{suite.seeds - 1}")
    print("| task | ticket weights | ticket density | metric | planted ticket, untrained | chance |")
    print("|---|---:|---:|---|---:|---:|")
    for tname in suite.tasks:
        task, scores, chance = get_task(tname), [], []
        for seed in range(suite.seeds):
            net, d = plant_task(task, suite.depth, suite.widths, seed), task.dataset(seed)
            weights = [(w * m)[None] for w, m in zip(net.weights, net.ticket_weights)]
            biases = [(b * m)[None] for b, m in zip(net.biases, net.ticket_biases)]
            scores.append(float(metric_of(task, weights, biases, d.x_train[None], d.y_train[None],
                                          d.x_test[None], d.y_test[None])[0]))
            chance.append(task.chance(d.y_train, d.y_test))
        m = task.metric
        print(f"| {task.id} | {net.ticket_size} | {net.ticket_density:.3g} | {m.name} | {summary(scores, m)} | "
              f"{summary(chance, m)} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", action="append", required=True, help="a registered suite; repeatable")
    parser.add_argument("--out", default="appendix-references", help="folder for the records and masks")
    parser.add_argument("--untrained", action="store_true", help="only the untrained planted ticket; no records")
    args = parser.parse_args()
    for name in args.suite:
        untrained(name) if args.untrained else run(name, Path(args.out))


if __name__ == "__main__":
    main()
