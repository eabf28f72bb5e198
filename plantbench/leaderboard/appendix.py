"""The suites beside the headline on the leaderboard: the order of the suites, the guide at the top
of the README and the site (one line per suite, its registered description), and the two plots
that compare suites (normalised weak score across depth and across label noise).

`paper` is the headline suite. depth2, depth9, wide and noise repeat the paper's appendix
settings; teacher, digits and digits-wide go beyond the paper. A cross-suite plot is drawn only when the records of at least one appendix suite it
compares exist, so a leaderboard with `paper` entries alone is built exactly as before.
"""

from __future__ import annotations

import math

import numpy as np

from ..paths import PLOTS_DIR
from .breaking import GUIDE as BREAKING_GUIDE
from .breaking import breaking_specs
from .ranking import Board, TaskInfo, mean

HEADLINE = "paper"
# Suites in reading order after the headline (the paper's appendix settings, then the suites beyond
# the paper); unknown suites follow, sorted.
APPENDIX_ORDER = ("depth2", "depth9", "wide", "noise", "teacher", "digits", "digits-wide")
DEPTH_SUITES = ("depth2", "paper", "depth9")
NOISE_SUITE = "noise"
DEPTH_STEM, NOISE_STEM = "appendix_depth_weak", "appendix_noise_weak"
# (stem, what it shows) of the plots across suites or tasks, in the order the guides show them
GUIDE_PLOTS = ((DEPTH_STEM, "across depth"), (NOISE_STEM, "across label noise"), *BREAKING_GUIDE)


def _suite(name: str):
    from ..suite import SUITES

    return SUITES.get(name)


def suite_order(suites) -> list[str]:
    """Suite ids in reading order: the headline first, then the appendix suites, then the rest."""
    rank = {_suite(n).id: i for i, n in enumerate((HEADLINE, *APPENDIX_ORDER))}
    return sorted(suites, key=lambda s: (rank.get(s, len(rank)), s))


def error_bars(m, lo, hi) -> list:
    """matplotlib's yerr for means m with minima lo and maxima hi: the mean of equal values can lie an
    ulp outside them, and a negative bar is an error, so each bar is at least 0."""
    return [np.maximum(m - lo, 0.0), np.maximum(hi - m, 0.0)]


def _guide_text(board: Board) -> tuple[str, list[tuple[str, str]], str]:
    """The guide's opening sentence, (suite id, description) of every other suite with entries, and
    its closing sentence; the descriptions are the registry's."""
    headline = _suite(HEADLINE).id
    lead = (f"`{headline}` is the headline suite: Plant 'n' Seek's main setting (depth 4, the paper's 5; "
            "width 100). The other suites are read against it:")
    others = []
    for ident in suite_order(board.entries):
        if ident != headline:
            suite = _registered(ident)
            others.append((ident, suite.description if suite else "not a registered suite"))
    tail = ("Scores are normalised within each suite, by that suite's own planted ticket and chance, so a "
            "score compares across suites while a raw metric does not. Each suite has its own ranking below.")
    return lead, others, tail


def _registered(ident: str):
    from ..suite import SUITES

    return SUITES.at_version(ident)


def suite_guide(board: Board, stems) -> list[str]:
    """README lines ahead of the suites when there is more than one; none otherwise."""
    if len(board.entries) < 2:
        return []
    lead, others, tail = _guide_text(board)
    lines = ["## Suites", "", lead, "", *(f"- `{ident}`: {what}" for ident, what in others), "", tail, ""]
    for stem, what in GUIDE_PLOTS:
        if stem in stems:
            lines += [f"![normalised weak score at the ticket's density {what}]({PLOTS_DIR}/{stem}.png)", ""]
    return lines


def appendix_specs(board: Board) -> dict[str, dict]:
    """The cross-suite plot specs the records call for (stem -> spec)."""
    specs = {}
    by_name = {_suite(n).id: n for n in (*DEPTH_SUITES, NOISE_SUITE)}
    present = {by_name[s] for s in board.entries if s in by_name}
    if present & {"depth2", "depth9"}:
        points = {}
        for name in DEPTH_SUITES:
            suite = _suite(name)
            for info in board.tasks.get(suite.id, []):
                points.setdefault(info.task, {})[suite.depth] = (suite.id, info)
        specs[DEPTH_STEM] = _spec(board, points, "depth (weight layers; the paper's depth minus one)",
                                  "across depth")
    if NOISE_SUITE in present:
        suite = _suite(NOISE_SUITE)
        points = {"circle": {}}
        for info in board.tasks.get(suite.id, []):
            level = _noise_level(info.task)
            if level is not None:
                points["circle"][level] = (suite.id, info)
        specs[NOISE_STEM] = _spec(board, points, "fraction of labels moved to the next class", "across label noise")
    specs.update(breaking_specs(board))  # the teacher suite's plots across its tasks
    return specs


def _noise_level(task_id: str) -> float | None:
    from ..task import TASKS

    task = TASKS.at_version(task_id)
    return None if task is None else float(task.noise)


def _spec(board: Board, points: dict[str, dict], xlabel: str, title: str) -> dict:
    """Panels (one per task) of series (one per pruner): x, mean, min and max over seeds of the
    normalised weak score at the suite's ticket density."""
    xs = sorted({x for per in points.values() for x in per})
    names = sorted({e.name for suite, _ in (v for per in points.values() for v in per.values())
                    for e in board.entries.get(suite, [])})
    panels = []
    for task in sorted(points):
        series = []
        for name in names:
            pts = []
            for x in sorted(points[task]):
                suite, info = points[task][x]
                vals = _weak_at_ticket(board, suite, info, name)
                if vals:
                    pts.append([x, mean(vals), min(vals), max(vals)])
            if pts:
                series.append({"name": name, "points": pts})
        panels.append({"task": task, "series": series})
    return {"kind": "across", "title": f"normalised weak score at the ticket's density {title}",
            "xlabel": xlabel, "x": xs, "series": [{"name": n, "style": list(board.colours[n])} for n in names],
            "panels": panels}


def _weak_at_ticket(board: Board, suite: str, info: TaskInfo, name: str) -> list[float]:
    for e in board.entries.get(suite, []):
        if e.name == name:
            return [v for v in e.values(info.task, info.ticket_density, "normalized_weak") if math.isfinite(v)]
    return []


def draw_across(fig, spec: dict) -> None:
    """One panel per task: x evenly spaced (noise 0 has no log position), y the normalised weak
    score, a line per pruner with its min-max whiskers; 1 is the planted ticket, 0 chance."""
    from .plots import _label

    xs = spec["x"]
    place = {x: i for i, x in enumerate(xs)}
    styles = {s["name"]: s["style"] for s in spec["series"]}
    # each pruner nudged sideways, the same way in every panel, so that its whiskers stay apart
    step = min(0.04, 0.6 / max(1, len(styles)))
    nudge = {name: step * (i - (len(styles) - 1) / 2) for i, name in enumerate(styles)}
    axes = fig.subplots(1, max(1, len(spec["panels"])), sharey=True, squeeze=False)[0]
    for ax, panel in zip(axes, spec["panels"]):
        for s in panel["series"]:
            colour, marker, ls = styles[s["name"]]
            x, m, lo, hi = (np.array(c, dtype=float) for c in zip(*s["points"]))
            pos = np.array([place[v] for v in x], dtype=float) + nudge[s["name"]]
            ax.errorbar(pos, m, yerr=error_bars(m, lo, hi), color=colour, marker=marker, ls=ls, lw=1.4, ms=5,
                        elinewidth=0.9, capsize=2, label=_label(s["name"]))
        ax.axhline(1.0, color="#B8860B", ls="--", lw=1.2, label="planted ticket")
        ax.axhline(0.0, color="0.35", ls=":", lw=1.2, label="chance")
        ax.set_xticks(range(len(xs)), [f"{v:g}" for v in xs])
        ax.set_xlim(-0.4, len(xs) - 0.6)
        ax.set_title(panel["task"], fontsize=10)
        ax.set_xlabel(spec["xlabel"], fontsize=9)
        ax.grid(True, color="0.92", lw=0.8)
    axes[0].set_ylabel("normalised weak score (mean over seeds; bars: min-max)")
    seen = {}  # a pruner missing from the first panel still gets its legend line
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    fig.legend(list(seen.values()), list(seen), loc="outside right upper", fontsize=9, frameon=False)
    fig.suptitle(spec["title"], fontsize=10.5, x=0.02, ha="left")  # clear of the legend on the right


def site_guide(board: Board, stems) -> list[str]:
    """The site's counterpart of suite_guide: HTML ahead of the suites, none for a single suite."""
    from html import escape

    if len(board.entries) < 2:
        return []
    lead, others, tail = _guide_text(board)
    items = "".join(f"<li><code>{escape(ident)}</code>: {escape(what)}</li>" for ident, what in others)
    html = ['<section class="suites" id="suites"><h2>Suites</h2>',
            f'<p>{escape(lead).replace("`", "")}</p><ul>{items}</ul><p>{escape(tail)}</p>']
    for stem, what in GUIDE_PLOTS:
        if stem in stems:
            html.append(f'<figure><a href="../{PLOTS_DIR}/{stem}.svg"><img src="../{PLOTS_DIR}/{stem}.png" '
                        f'alt="Normalised weak score at the ticket\'s density {what}, per pruner" loading="lazy"></a>'
                        f"<figcaption>Normalised weak score at the ticket's density {what}.</figcaption></figure>")
    return [*html, "</section>"]
