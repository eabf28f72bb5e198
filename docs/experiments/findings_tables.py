"""The tables and numbers of docs/paper_findings.md, computed from the leaderboard records.

Reads `results/<pruner>/runs.jsonl` and `references/runs.jsonl` under the leaderboard folder and
prints, for suite `paper@1`, means over seeds per pruner, task and density (the ticket's own
density is the column "ticket"). Records only, no training: plain python and json, and numpy
for the one table read from the mask files.

    python docs/experiments/findings_tables.py [LEADERBOARD_FOLDER]
"""

import json
import math
import sys
from collections import defaultdict
from pathlib import Path

SUITE = "paper@1"
DENSITIES = [0.5, 0.1, 0.05, 0.01, "ticket"]
LITERATURE = ["rigl", "set", "imp-fc", "imp-fc-rewind", "kd-ticket", "sketch-magnitude", "sketch-synflow",
              "synflow-multishot", "imp"]
MULTISHOT = ["grasp-multishot", "imp", "imp-fc", "imp-fc-rewind", "kd-ticket", "synflow-multishot"]
TRAINED_MASKS = ["edge-popup", "edge-popup-annealed", "gem-miner", "imp", "imp-fc", "imp-fc-rewind", "kd-ticket",
                 "rigl", "set"]


def read(path: Path):
    with path.open() as f:
        return [json.loads(line) for line in f if line.strip()]


def column(r) -> object:
    if math.isclose(r["density_target"], r["ticket_density"], rel_tol=1e-9):
        return "ticket"
    return r["density_target"]


def mean(values):
    values = [v for v in values if v is not None and math.isfinite(v)]
    return math.fsum(values) / len(values) if values else float("nan")


def fmt(v, spec=".3f"):
    if isinstance(v, float) and math.isnan(v):
        return "-"
    s = format(v, spec)
    return s[1:] if s.startswith("-") and float(s) == 0 else s


def collect(records):
    """(pruner, task, column, field) -> values over seeds, for ok runs of the suite."""
    cells = defaultdict(list)
    for r in records:
        if r["suite"] != SUITE or r["status"] != "ok":
            continue
        col = column(r)
        fields = {k: r[k] for k in ("strong", "weak", "normalized_strong", "normalized_weak", "recall", "precision")}
        fields["collapsed"] = 1.0 if r["collapsed_layers"] else 0.0
        for k, v in fields.items():
            cells[(r["pruner"], r["task"], col, k)].append(v)
    return cells


def table(title, cells, pruners, task, field, spec=".3f", columns=DENSITIES):
    print(f"\n### {title}\n")
    print("| pruner | " + " | ".join(str(c) for c in columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for p in pruners:
        if not any(cells.get((p, task, c, field)) for c in columns):
            continue
        print(f"| {p} | " + " | ".join(fmt(mean(cells.get((p, task, c, field), [])), spec) for c in columns) + " |")


def helix_paths(root, records, pruner, sizes=(1, 100, 100, 100, 3)):
    """Per seed at density 0.5 on Helix: outputs reachable from the input, and hidden units on an input-output path."""
    import numpy as np  # only here: the masks are packed bits in .npz files

    out = []
    for r in sorted(records, key=lambda r: r["seed"]):
        if r["pruner"] != pruner or r["task"] != "helix@1" or r["density_target"] != 0.5:
            continue
        with np.load(root / "results" / pruner / r["mask_file"]) as z:
            ws = [np.unpackbits(z[f"{r['run_id']}__w{i}"], count=a * b).astype(bool).reshape(b, a)
                  for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]
        fwd = [np.ones(sizes[0], bool)]
        for w in ws:
            fwd.append(w[:, fwd[-1]].any(1))
        bwd = [np.ones(sizes[-1], bool)]
        for w in reversed(ws):
            bwd.insert(0, w[bwd[0], :].any(0))
        out.append((r["seed"], int(fwd[-1].sum()), [int((f & b).sum()) for f, b in zip(fwd[1:-1], bwd[1:-1])]))
    return out


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "leaderboard")
    records, counts, failed = [], {}, {}
    for f in sorted((root / "results").glob("*/runs.jsonl")):
        rows = [r for r in read(f) if r["suite"] == SUITE]
        records += rows
        counts[f.parent.name] = len(rows)
        failed[f.parent.name] = sum(r["status"] != "ok" for r in rows)
    pruners = sorted({r["pruner"] for r in records})
    cells = collect(records)
    refs = [r for r in read(root / "references" / "runs.jsonl") if r["suite"] == SUITE]

    print("## Records\n")
    for p in pruners:
        print(f"{p}: {counts.get(p, 0)} runs, {failed.get(p, 0)} not ok")

    print("\n## References (means over seeds)\n")
    for task in ("circle@1", "relu@1", "helix@1"):
        ticket = [r for r in refs if r["task"] == task and r["pruner"] == "planted-ticket"]
        dense = [r for r in refs if r["task"] == task and r["pruner"] == "dense-host"]
        spec = ".3f" if task == "circle@1" else ".2e"
        print(f"{task}: ticket untrained {fmt(mean(r['strong'] for r in ticket), spec)}, "
              f"ticket trained under its mask {fmt(mean(r['weak'] for r in ticket), spec)}, "
              f"dense trained {fmt(mean(r['weak'] for r in dense), spec)}, "
              f"chance {fmt(mean(r['references']['chance'] for r in ticket), '.3f')}, "
              f"ticket density {ticket[0]['ticket_density']:.2g}")

    table("Circle, weak accuracy", cells, pruners, "circle@1", "weak")
    table("Circle, normalised weak", cells, pruners, "circle@1", "normalized_weak")
    table("ReLU, normalised weak", cells, pruners, "relu@1", "normalized_weak")
    table("Helix, normalised weak", cells, pruners, "helix@1", "normalized_weak")
    table("Helix, weak MSE", cells, pruners, "helix@1", "weak", ".2e")
    for task in ("circle@1", "relu@1", "helix@1"):
        table(f"{task}, layer collapse, fraction of seeds", cells, pruners, task, "collapsed")
    table("Circle, strong accuracy", cells, pruners, "circle@1", "strong")
    for task in ("circle@1", "relu@1", "helix@1"):
        table(f"{task}, normalised strong", cells, pruners, task, "normalized_strong")
    for task in ("circle@1", "relu@1", "helix@1"):
        table(f"{task}, recall", cells, pruners, task, "recall")
    table("Circle, recall of the multi-shot methods", cells, MULTISHOT, "circle@1", "recall")
    table("Circle, strong accuracy of masks from trained weights", cells, TRAINED_MASKS, "circle@1", "strong")

    print("\n### grasp on helix@1 at density 0.5, weak MSE per seed\n")
    print(", ".join(f"seed {r['seed']}: {r['weak']:.3f}" for r in sorted(
        (r for r in records if r["pruner"] == "grasp" and r["task"] == "helix@1" and r["density_target"] == 0.5),
        key=lambda r: r["seed"])))

    print("\n### Helix at density 0.5: outputs reached from the input, units on an input-output path per hidden layer\n")
    for p in ("grasp", "grasp-multishot"):
        for seed, reached, active in helix_paths(root, records, p):
            print(f"{p} seed {seed}: {reached} of 3 outputs reached, active units {active}")

    print("\n### The lottery-ticket literature's methods: normalised weak at 0.1 / 0.01 / ticket, recall at ticket\n")
    print("| pruner | task | 0.1 | 0.01 | ticket | recall at ticket |")
    print("|---|---|---|---|---|---|")
    for p in LITERATURE:
        for task in ("circle@1", "relu@1", "helix@1"):
            if not cells.get((p, task, "ticket", "recall")):
                continue
            nw = [fmt(mean(cells.get((p, task, c, "normalized_weak"), []))) for c in (0.1, 0.01, "ticket")]
            print(f"| {p} | {task.partition('@')[0]} | " + " | ".join(nw)
                  + f" | {fmt(mean(cells[(p, task, 'ticket', 'recall')]))} |")

    print("\n### Timings: sum over the suite's runs, seconds (pruner / judge / both)\n")
    print("| pruner | pruner seconds | judge seconds | total |")
    print("|---|---|---|---|")
    for p in pruners:
        rows = [r for r in records if r["pruner"] == p]
        ps = math.fsum(r["timings"].get("pruner_seconds") or 0.0 for r in rows)
        js = math.fsum(r["timings"].get("judge_seconds") or 0.0 for r in rows)
        print(f"| {p} | {ps:.0f} | {js:.0f} | {ps + js:.0f} |")


if __name__ == "__main__":
    main()
