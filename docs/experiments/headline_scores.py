"""Candidate headline scores on the committed leaderboard, with the planted ticket's own mask as a row.

The experiment behind "The headline score" in docs/leaderboard.md. For every entry of a suite it
takes the runs at each task's ticket density and prints the mean over seeds, then over tasks, of
each candidate score; the first row is the planted ticket's own mask, read from the reference
records (leaderboard/references, judged like any entry). It reads records only.

    python docs/experiments/headline_scores.py [--suite paper@1] [--root leaderboard]
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict

from plantbench.leaderboard import read_results
from plantbench.leaderboard.results import read_references
from plantbench.metrics import METRICS, headline

# name -> score of one run from its metric values and references
CANDIDATES = {
    "weak / untrained ticket": lambda m, s, w, ref: m.normalise(w, ref["chance"], ref["ticket_strong"]),
    "strong / untrained ticket": lambda m, s, w, ref: m.normalise(s, ref["chance"], ref["ticket_strong"]),
    "weak / trained ticket": lambda m, s, w, ref: m.normalise(w, ref["chance"], ref["ticket_weak"]),
    "headline: better of the first two, at most 1": lambda m, s, w, ref: headline(
        m.normalise(s, ref["chance"], ref["ticket_strong"]), m.normalise(w, ref["chance"], ref["ticket_strong"])),
}


def mean(values) -> float:
    values = [v for v in values if math.isfinite(v)]
    return math.fsum(values) / len(values) if values else float("nan")


def at_ticket(records, suite: str):
    """entry name -> (candidate, task) -> scores over seeds, for the runs at the ticket's density."""
    table = defaultdict(lambda: defaultdict(list))
    configs = defaultdict(set)  # records hold every constructor argument: name a config only where a pruner has several
    for item in records:
        configs[item.rec["pruner"]].add(json.dumps(item.rec["pruner_args"], sort_keys=True))
    for item in records:
        r = item.rec
        if r["status"] != "ok" or r["suite"] != suite or round(r["density_target"], 12) != round(r["ticket_density"], 12):
            continue
        name = r["pruner"] + (f" {r['pruner_args']}" if len(configs[r["pruner"]]) > 1 else "")
        for c, f in CANDIDATES.items():
            table[name][(c, r["task"])].append(f(METRICS[r["metric"]], r["strong"], r["weak"], r["references"]))
    return table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", default="paper@1")
    p.add_argument("--root", default="leaderboard")
    a = p.parse_args()
    entries = at_ticket(read_results(a.root)[0], a.suite)
    reference = at_ticket(read_references(a.root)[0], a.suite).get("planted-ticket", {})
    tasks = sorted({t for rows in entries.values() for _, t in rows})
    head = list(CANDIDATES)[-1]
    header = ["mask at the ticket's density", *[f"headline: {t.partition('@')[0]}" for t in tasks],
              *[f"{c} (mean over tasks)" for c in CANDIDATES]]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" + "---:|" * (len(header) - 1))

    def row(label, scores):
        per_task = [f"{mean(scores[(head, t)]):.3f}" for t in tasks]
        overall = [f"{mean(mean(scores[(c, t)]) for t in tasks):.3f}" for c in CANDIDATES]
        print("| " + " | ".join([label, *per_task, *overall]).replace("-0.000", "0.000") + " |")

    row("**planted ticket (reference)**", reference)
    for name in sorted(entries, key=lambda n: -mean(mean(entries[n][(head, t)]) for t in tasks)):
        row(name, entries[name])


if __name__ == "__main__":
    main()
