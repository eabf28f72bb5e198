"""How closely retraining reproduces the weak metrics of a leaderboard's records.

Re-judges every ok record (entries and reference records) exactly as `plantbench leaderboard
check` does (plantbench.leaderboard.recompute.rejudged: one batch per suite, task and seed, chunks of
JUDGE_CHUNK networks) and prints, per field, the largest relative deviation between the recorded
and the recomputed value, and the largest deviation on the normalised scale; then, per entry,
the mean signed normalised weak deviation (recorded minus retrained) and its standard error,
which bound what rounding does to an entry on average (recompute.bias_problems); then every
record whose deviation exceeds WEAK_RTOL.

    python docs/experiments/weak_reproduction.py [LEADERBOARD_FOLDER [TASK [SEED]]]

TASK (a name such as relu) and SEED restrict it to those records, to measure on a sample.
"""

import math
import sys
import time
from collections import defaultdict

import torch

from plantbench.leaderboard.recompute import WEAK_RTOL, rejudged
from plantbench.leaderboard.results import leaderboard_root, read_references, read_results
from plantbench.metrics import METRICS

FIELDS = ("weak", "ticket_weak", "dense_weak", "strong")


def deviations(rec: dict, got: dict, refs: dict) -> dict[str, tuple[float, float]]:
    """field -> (relative deviation, deviation of the normalised value) of one record."""
    metric = METRICS[rec["metric"]]
    chance, ticket = refs["chance"], refs["ticket_strong"]
    recorded = {"weak": rec["weak"], "strong": rec["strong"], **{k: rec["references"][k] for k in FIELDS[1:3]}}
    computed = {"weak": got["weak"], "strong": got["strong"], **{k: refs[k] for k in FIELDS[1:3]}}
    out = {}
    for name in FIELDS:
        a, b = float(recorded[name]), float(computed[name])
        rel = abs(a - b) / abs(b) if b else abs(a - b)
        out[name] = (rel, abs(metric.normalise(a, chance, ticket) - metric.normalise(b, chance, ticket)))
    return out


def main(root: str = "leaderboard", task: str | None = None, seed: str | None = None) -> None:
    root = leaderboard_root(root)

    def chosen(item) -> bool:
        r = item.rec
        return r.get("status") == "ok" and (task is None or r["task"].partition("@")[0] == task) and (
            seed is None or r["seed"] == int(seed))

    entries = [item for item in read_results(root)[0] if chosen(item)]
    refs = [item for item in read_references(root)[0] if chosen(item)]
    start, cpu = time.perf_counter(), time.process_time()
    worst: dict[str, tuple[float, float]] = {name: (0.0, 0.0) for name in FIELDS}
    beyond = []
    count = 0
    signed = defaultdict(list)
    for problems, judged in rejudged(entries, refs):
        for line in problems:
            print(line)
        for item, got, ref, _, _ in judged:
            count += 1
            metric, r = METRICS[item.rec["metric"]], item.rec
            signed[(r["suite"], r["pruner"])].append(
                metric.normalise(r["weak"], ref["chance"], ref["ticket_strong"])
                - metric.normalise(got["weak"], ref["chance"], ref["ticket_strong"]))
            for name, (rel, norm) in deviations(item.rec, got, ref).items():
                worst[name] = (max(worst[name][0], rel), max(worst[name][1], norm))
                if name != "strong" and rel > WEAK_RTOL:
                    beyond.append(f"{item.where}: run {item.rec['run_id']}: {name} relative deviation {rel:.3g}, "
                                  f"normalised {norm:.3g}")
    print(f"{count} records re-judged with training in {time.perf_counter() - start:.0f} s "
          f"({time.process_time() - cpu:.0f} s of CPU time, {torch.get_num_threads()} threads)")
    for name, (rel, norm) in worst.items():
        print(f"{name:12s} max relative deviation {rel:.3g}, on the normalised scale {norm:.3g}")
    print("entry: mean signed normalised weak deviation, its standard error, records")
    for (suite, pruner), devs in sorted(signed.items(), key=lambda kv: -abs(math.fsum(kv[1]) / len(kv[1]))):
        n, mean = len(devs), math.fsum(devs) / len(devs)
        se = math.sqrt(math.fsum((d - mean) ** 2 for d in devs) / (n - 1) / n) if n > 1 else float("nan")
        print(f"  {suite} {pruner:22s} {mean:+.4f}  se {se:.4f}  n {n}")
    print(f"{len(beyond)} values beyond WEAK_RTOL = {WEAK_RTOL:g}")
    for line in beyond:
        print(line)


if __name__ == "__main__":
    main(*sys.argv[1:])
