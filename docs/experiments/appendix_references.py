"""The planted ticket's own scores on the appendix suites: their reference records, summarised.

For every task of each named suite it judges the two reference masks (the planted ticket's own,
the dense host) on the suite's seeds, exactly as `plantbench leaderboard references` does once a
suite has entries (plantbench.references.reference_group), writes the records and masks to
--out/<suite>/ and prints per task the mean ± std over seeds of the untrained planted ticket
(strong), the trained planted ticket and the trained dense host (weak), chance, and the seconds
it took.

    python docs/experiments/appendix_references.py --suite depth2 --suite depth9 --suite noise --out refs
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from plantbench.metrics import format_metric
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", action="append", required=True, help="a registered suite; repeatable")
    parser.add_argument("--out", default="appendix-references", help="folder for the records and masks")
    args = parser.parse_args()
    for name in args.suite:
        run(name, Path(args.out))


if __name__ == "__main__":
    main()
