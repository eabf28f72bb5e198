"""Aggregation and ranking: records grouped into entries (pruner and arguments) per suite and task.

An entry's score is the headline score (plantbench.metrics.headline: the better of the
normalised strong and weak scores, at most 1) at the ticket's density, averaged over seeds and
then over tasks; a density is *won* when the mean headline score there reaches WIN. The
reference records (the planted ticket's own mask, the dense host) are aggregated the same way
but kept apart: they are shown, never ranked.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..errors import PlantbenchError
from ..metrics import METRICS, Metric, headline
from ..references import reference_density
from .results import Loaded, latest_per_run

WIN = 0.95  # a density is "won" when the mean headline score reaches this
# Fields computed from a record's own (verified) fields rather than stored in it.
DERIVED = {"score": lambda r: headline(r["normalized_strong"], r["normalized_weak"])}
# Strong, distinct colours (tab10 without its grey, then Tol's muted and an ochre); past the
# seventeenth pruner the colours repeat with another line style. Markers cycle on their own period.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf",
           "#332288", "#117733", "#44AA99", "#999933", "#882255", "#CC6677", "#AA4499", "#DDAA33")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
LINESTYLES = ("-", "--", "-.", ":")


def args_key(args: dict) -> str:
    return json.dumps(args, sort_keys=True)


def display_name(pruner: str, args: dict) -> str:
    """'synflow' or 'synflow (rounds=1)': the name a reader sees for an entry."""
    if not args:
        return pruner
    return f"{pruner} ({', '.join(f'{k}={json.dumps(v)}' for k, v in sorted(args.items()))})"


def density_key(d: float) -> float:
    """A density as a dictionary key: equal up to float noise in the twelfth digit."""
    return round(float(d), 12)


def density_label(d: float, others: Iterable[float] = ()) -> str:
    """Two significant digits, more where that would read the same as another density's label."""
    labels = {f"{o:g}" for o in others if density_key(o) != density_key(d)}
    for digits in range(2, 7):
        text = f"{d:.{digits}g}"
        if text not in labels:
            return text
    return f"{d:.12g}"


def mean(values: Iterable[float]) -> float:
    """Mean of the finite values; NaN when there are none."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    return math.fsum(values) / len(values) if values else float("nan")


def std(values: Iterable[float]) -> float:
    """Population standard deviation of the finite values (ddof 0, as in plantbench.report)."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return float("nan")
    m = math.fsum(values) / len(values)
    return math.sqrt(math.fsum((v - m) ** 2 for v in values) / len(values))


@dataclass
class Entry:
    """One pruner (name and arguments) on one suite, with its ok records per task and density."""

    suite: str
    pruner: str
    args: dict
    runs: dict[str, dict[float, list[dict]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    failed: int = 0
    created: str = ""
    sources: set[str] = field(default_factory=set)
    folders: set[tuple] = field(default_factory=set)  # (results folder, leaderboard root) of its records
    shown: dict | None = None  # the arguments its name shows (distinguishing_args); None: all of them

    @property
    def name(self) -> str:
        return display_name(self.pruner, self.args if self.shown is None else self.shown)

    @property
    def tasks(self) -> list[str]:
        return sorted(self.runs)

    def values(self, task: str, density: float, fld: str) -> list[float]:
        """One field (stored, or derived: "score") of every run of a task at a density."""
        get = DERIVED.get(fld, lambda r: r[fld])
        return [get(r) for r in self.runs.get(task, {}).get(density_key(density), [])]

    def seeds(self) -> int:
        return len({r["seed"] for t in self.runs.values() for rs in t.values() for r in rs})


@dataclass
class TaskInfo:
    """What a (suite, task) table needs besides the entries: its metric, grid and references."""

    task: str
    metric: Metric
    ticket_density: float
    ticket_size: int
    densities: list[float]  # highest first
    references: dict[str, float]  # means over seeds, from the reference records (NaN without them)


@dataclass
class Board:
    """Everything build draws, per suite."""

    entries: dict[str, list[Entry]]  # suite -> entries
    tasks: dict[str, list[TaskInfo]]  # suite -> tasks
    colours: dict[str, tuple[str, str, str]]  # entry name -> (colour, marker, linestyle)
    references: dict[str, dict[str, Entry]] = field(default_factory=dict)  # suite -> reference pruner -> rows


def aggregate(records: list[Loaded], references: list[Loaded] = ()) -> Board:
    """Group records by suite and entry (pruner and arguments); the last ok record of a run wins.

    references: the reference records (plantbench.references), grouped the same way per suite.
    """
    by_suite: dict[str, list[Entry]] = defaultdict(list)
    entries = _entries(records)
    for k in sorted(entries):
        by_suite[k[0]].append(entries[k])
    refs: dict[str, dict[str, Entry]] = defaultdict(dict)
    for (suite, pruner, _), e in sorted(_entries(references).items()):
        refs[suite][pruner] = e
    tasks = {suite: _task_infos(suite, es, refs.get(suite, {})) for suite, es in sorted(by_suite.items())}
    names = sorted({e.name for es in by_suite.values() for e in es})
    colours = {n: (PALETTE[i % len(PALETTE)], MARKERS[i % len(MARKERS)], LINESTYLES[(i // len(PALETTE)) % len(LINESTYLES)])
               for i, n in enumerate(names)}
    return Board(dict(by_suite), tasks, colours, {s: refs[s] for s in by_suite if s in refs})


def _entries(records: list[Loaded]) -> dict[tuple[str, str, str], Entry]:
    """(suite, pruner, arguments) -> its entry, holding the latest record of each run."""
    entries: dict[tuple[str, str, str], Entry] = {}
    for item in records:
        r = item.rec
        k = (r["suite"], r["pruner"], args_key(r["pruner_args"]))
        e = entries.setdefault(k, Entry(r["suite"], r["pruner"], dict(r["pruner_args"])))
        e.created = max(e.created, r["created"][:10])
        e.sources.add(r["pruner_source_sha256"])
        e.folders.add((item.folder, item.root))
    latest = {key: item.rec for key, item in latest_per_run(records).items()}
    for key, r in sorted(latest.items(), key=lambda kv: (kv[0][:3], kv[1]["task"], kv[1]["seed"], -kv[1]["density_target"])):
        k = key[:3]
        if r["status"] == "ok":
            entries[k].runs[r["task"]][density_key(r["density_target"])].append(r)
        else:
            entries[k].failed += 1
    distinguishing_args(list(entries.values()))
    return entries


def distinguishing_args(entries: list[Entry]) -> None:
    """Set each entry's `shown` arguments: none when it is its suite's only entry of that pruner,
    else those whose values differ among that pruner's entries. Records hold every constructor
    argument; a name shows only what tells entries apart."""
    by_pruner: dict[tuple[str, str], list[Entry]] = defaultdict(list)
    for e in entries:
        by_pruner[(e.suite, e.pruner)].append(e)
    for same in by_pruner.values():
        keys = {k for e in same for k in e.args}
        differ = {k for k in keys if len({json.dumps(e.args.get(k, _ABSENT)) for e in same}) > 1}
        for e in same:
            e.shown = {k: v for k, v in e.args.items() if k in differ}


_ABSENT = "\0absent"


def _task_infos(suite: str, entries: list[Entry], refs: dict[str, Entry]) -> list[TaskInfo]:
    """One TaskInfo per task the suite's entries ran: the grid is the suite's, if registered."""
    from ..suite import SUITES

    known = SUITES.at_version(suite)
    infos = []
    for task in sorted({t for e in entries for t in e.runs}):
        rs = [r for e in entries for d in e.runs.get(task, {}).values() for r in d]
        densities = {density_key(r["density_target"]) for r in rs}
        tname = task.partition("@")[0]
        if known is not None and tname in known.tasks:
            try:
                densities |= {density_key(d) for d in known.grid(tname)}
            except PlantbenchError:
                pass  # a task no longer registered: show the densities that were run
        infos.append(TaskInfo(task, METRICS[rs[0]["metric"]], rs[0]["ticket_density"], rs[0]["ticket_size"],
                              sorted(densities, reverse=True), _reference_means(refs, task, rs[0]["ticket_density"])))
    return infos


def _reference_means(refs: dict[str, Entry], task: str, ticket_density: float) -> dict[str, float]:
    """Means over seeds of the reference records' metrics; NaN where a reference is missing."""
    def of(pruner: str, fld: str) -> float:
        e = refs.get(pruner)
        return mean(e.values(task, reference_density(pruner, ticket_density), fld)) if e else float("nan")

    ticket = refs.get("planted-ticket")
    chance = [r["references"]["chance"] for r in ticket.runs.get(task, {}).get(density_key(ticket_density), [])] \
        if ticket else []
    return {"ticket_strong": of("planted-ticket", "strong"), "ticket_weak": of("planted-ticket", "weak"),
            "dense_strong": of("dense-host", "strong"), "dense_weak": of("dense-host", "weak"),
            "chance": mean(chance)}


def reference_score(e: Entry, info: TaskInfo, fld: str = "score") -> float:
    """Mean over seeds of a field of a reference entry, at its own density (ticket's, or 1)."""
    return mean(e.values(info.task, reference_density(e.pruner, info.ticket_density), fld))


def ticket_score(e: Entry, info: TaskInfo, fld: str = "score") -> float:
    """Mean over seeds of a field at the task's ticket density."""
    return mean(e.values(info.task, info.ticket_density, fld))


def sparsest_win(e: Entry, info: TaskInfo) -> float | None:
    """The lowest density whose mean headline score is at least WIN; None if none."""
    wins = [d for d in info.densities if mean(e.values(info.task, d, "score")) >= WIN]
    return min(wins) if wins else None


def ranking(entries: list[Entry], infos: list[TaskInfo]) -> list[tuple[Entry, float, int]]:
    """Entries best first by headline score at the ticket's density, averaged over tasks.

    Entries that cover every task of the suite rank above those that do not. Returns
    (entry, score, tasks covered).
    """
    rows = []
    for e in entries:
        scores = [ticket_score(e, i) for i in infos]
        covered = sum(math.isfinite(s) for s in scores)
        rows.append((e, mean(scores), covered))
    return sorted(rows, key=lambda r: (-r[2], -r[1] if math.isfinite(r[1]) else math.inf, r[0].name))


def order_by_metric(entries: list[Entry], info: TaskInfo) -> list[Entry]:
    """Entries best first by the weak metric at the ticket's density, in the metric's direction."""
    sign = -1 if info.metric.higher_is_better else 1

    def key(e):
        v = mean(e.values(info.task, info.ticket_density, "weak"))
        return (0, sign * v, e.name) if math.isfinite(v) else (1, 0.0, e.name)

    return sorted(entries, key=key)
