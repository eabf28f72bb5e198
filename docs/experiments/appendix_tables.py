"""The tables of the appendix and beyond-the-paper sections of docs/paper_findings.md, from records.

Reads every `results/*/runs.jsonl` and `references/runs.jsonl` under the leaderboard folder and
prints means over seeds, per pruner, for the suites that repeat the paper's appendix (depth2,
paper and depth9 side by side; wide; noise) and for the teacher and digits suites. The column
"ticket" is the ticket's own density. Records only, no training: plain python and json.

    python docs/experiments/appendix_tables.py [LEADERBOARD_FOLDER]
"""

import sys
from collections import defaultdict
from pathlib import Path

from findings_tables import column, fmt, mean, read  # the paper tables' helpers, same folder

DEPTHS = [("depth2@1", 2), ("paper@1", 4), ("depth9@1", 9)]
NOISE = [("circle-noise0@1", "0"), ("circle-noise0.001@1", "0.001"), ("circle-noise0.01@1", "0.01"),
         ("circle-noise0.1@1", "0.1")]
FIELDS = ("weak", "strong", "normalized_weak", "normalized_strong", "recall")


def collect(records):
    """(suite, task, pruner, column, field) -> values over seeds, for ok runs."""
    cells = defaultdict(list)
    for r in records:
        if r["status"] != "ok":
            continue
        key = (r["suite"], r["task"], r["pruner"], column(r))
        for k in FIELDS:
            cells[(*key, k)].append(r[k])
        cells[(*key, "collapsed")].append(1.0 if r["collapsed_layers"] else 0.0)
    return cells


def grid(title, header, rows):
    """A markdown table: rows are (label, [cell, ...]); a row whose cells are all '-' is left out."""
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|---" * len(header) + "|")
    for label, values in rows:
        if any(v != "-" for v in values):
            print(f"| {label} | " + " | ".join(values) + " |")


def cell(cells, suite, task, pruner, col, field, spec=".3f"):
    return fmt(mean(cells.get((suite, task, pruner, col, field), [])), spec)


def across(cells, pruners, points, field, col="ticket", spec=".3f"):
    """Rows of one field at one column across (suite, task) points."""
    return [(p, [cell(cells, s, t, p, col, field, spec) for s, t in points]) for p in pruners]


def per_density(cells, pruners, suite, task, field, columns, spec=".3f"):
    return [(p, [cell(cells, suite, task, p, c, field, spec) for c in columns]) for p in pruners]


def references(refs, suite, task):
    """(ticket untrained, ticket trained, dense trained, chance, ticket density) means over seeds."""
    ticket = [r for r in refs if r["suite"] == suite and r["task"] == task and r["pruner"] == "planted-ticket"]
    dense = [r for r in refs if r["suite"] == suite and r["task"] == task and r["pruner"] == "dense-host"]
    if not ticket:
        return None
    return (mean(r["strong"] for r in ticket), mean(r["weak"] for r in ticket), mean(r["weak"] for r in dense),
            mean(r["references"]["chance"] for r in ticket), ticket[0]["ticket_density"])


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "leaderboard")
    records = [r for f in sorted((root / "results").glob("*/runs.jsonl")) for r in read(f)]
    refs = read(root / "references" / "runs.jsonl")
    cells = collect(records)
    by_suite = defaultdict(set)
    for r in records:
        by_suite[r["suite"]].add(r["pruner"])
    print("## Entries per suite\n")
    for suite in sorted(by_suite):
        print(f"{suite}: {len(by_suite[suite])} pruners")

    depth_pruners = sorted(by_suite["depth2@1"] | by_suite["depth9@1"])
    header = ["pruner"] + [f"depth {d}" for _, d in DEPTHS]
    for task in ("relu@1", "circle@1", "helix@1"):
        points = [(s, task) for s, _ in DEPTHS]
        grid(f"{task}: normalised weak at the ticket's density", header,
             across(cells, depth_pruners, points, "normalized_weak"))
        grid(f"{task}: normalised weak at density 0.01", header,
             across(cells, depth_pruners, points, "normalized_weak", col=0.01))
    grid("layer collapse at the ticket's density, fraction of runs over the three tasks", header,
         [(p, [fmt(mean([v for t in ("relu@1", "circle@1", "helix@1")
                         for v in cells.get((s, t, p, "ticket", "collapsed"), [])])) for s, _ in DEPTHS])
          for p in depth_pruners])
    grid("layer collapse at density 0.01, fraction of runs over the three tasks", header,
         [(p, [fmt(mean([v for t in ("relu@1", "circle@1", "helix@1")
                         for v in cells.get((s, t, p, 0.01, "collapsed"), [])])) for s, _ in DEPTHS])
          for p in depth_pruners])
    grid("recall at the ticket's density, Circle", header,
         across(cells, depth_pruners, [(s, "circle@1") for s, _ in DEPTHS], "recall"))

    wide = sorted(by_suite["wide@1"])
    ref = references(refs, "wide@1", "circle@1")
    if ref:
        print(f"\nwide@1 circle: ticket untrained {ref[0]:.3f}, ticket trained {ref[1]:.3f}, dense trained "
              f"{ref[2]:.3f}, chance {ref[3]:.3f}, ticket density {ref[4]:.2g}")
    columns = [0.1, 0.01, 0.001, "ticket"]
    header = ["pruner", *map(str, columns)]
    for field in ("normalized_weak", "weak", "recall", "collapsed"):
        grid(f"wide@1 (Circle, width 1000, depth 5): {field}", header,
             per_density(cells, wide, "wide@1", "circle@1", field, columns))
    grid("Circle at the ticket's density: paper (width 100, depth 4) against wide (width 1000, depth 5), "
         "normalised weak", ["pruner", "paper", "wide"],
         across(cells, wide, [("paper@1", "circle@1"), ("wide@1", "circle@1")], "normalized_weak"))

    noise = sorted(by_suite["noise@1"])
    header = ["pruner"] + [f"noise {n}" for _, n in NOISE]
    print("\n### noise@1 references\n")
    for task, level in NOISE:
        ref = references(refs, "noise@1", task)
        if ref:
            print(f"noise {level}: ticket untrained {ref[0]:.3f}, ticket trained {ref[1]:.3f}, "
                  f"dense trained {ref[2]:.3f}, chance {ref[3]:.3f}")
    points = [("noise@1", t) for t, _ in NOISE]
    for col in ("ticket", 0.01, 0.1):
        grid(f"noise@1: normalised weak at density {col}", header, across(cells, noise, points, "normalized_weak", col))
        grid(f"noise@1: weak accuracy at density {col}", header, across(cells, noise, points, "weak", col))

    teacher = sorted(by_suite["teacher@1"])
    tasks = sorted({r["task"] for r in records if r["suite"] == "teacher@1"})
    if tasks:
        print("\n### teacher@1 references\n")
        for task in tasks:
            ref = references(refs, "teacher@1", task)
            if ref:
                print(f"{task}: ticket untrained {ref[0]:.4g}, ticket trained {ref[1]:.4g}, dense trained "
                      f"{ref[2]:.4g}, chance {ref[3]:.4g}, ticket density {ref[4]:.2g}")
        header = ["pruner"] + [t.partition("@")[0].removeprefix("teacher-") for t in tasks]
        points = [("teacher@1", t) for t in tasks]
        for col in ("ticket", 0.01):
            grid(f"teacher@1: normalised weak at density {col}", header,
                 across(cells, teacher, points, "normalized_weak", col))
        grid("teacher@1: recall at the ticket's density", header, across(cells, teacher, points, "recall"))

    columns = [0.5, 0.1, 0.05, 0.01, "ticket"]
    header = ["pruner", *map(str, columns)]
    for suite in ("digits@1", "digits-wide@1"):
        pruners = sorted(by_suite[suite])
        ref = references(refs, suite, "digits@1")
        if ref:
            print(f"\n{suite}: ticket untrained {ref[0]:.3f}, ticket trained {ref[1]:.3f}, dense trained "
                  f"{ref[2]:.3f}, chance {ref[3]:.3f}, ticket density {ref[4]:.2g}")
        for field in ("weak", "normalized_weak", "strong", "recall"):
            grid(f"{suite}: {field}", header, per_density(cells, pruners, suite, "digits@1", field, columns))


if __name__ == "__main__":
    main()
