"""The leaderboard's plots: the data each one shows (its spec), drawing, and the digest that dates it.

A plot is drawn from its spec alone. Plots are drawn with a fixed SVG hash salt and no date or
software stamp, so on one machine their bytes repeat, but PNG and SVG bytes change with the
matplotlib and FreeType versions. So `build` writes a sha256 of the spec into each file's
metadata (`Description`), and `check` compares that digest instead of the bytes: a plot is out
of date when its digest differs, whatever renderer drew it.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import struct
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..errors import RecordError
from ..paths import plot_stem
from .appendix import appendix_specs, draw_across, error_bars
from .ranking import (
    Board,
    Entry,
    TaskInfo,
    density_key,
    density_label,
    mean,
    ranking,
    reference_score,
    ticket_score,
)
from .results import printable

PLOTS_VERSION = 3  # part of every plot's digest: bump it when the drawing code changes
PLOT_FORMATS = ("png", "svg")
DIGEST_TAG = "plantbench-plot-data-sha256:"
BANDS_UP_TO = 6  # more pruners than this get whiskers instead of shaded bands
DODGE = 0.008  # sideways nudge between pruners' whiskers, in decades of density
MAX_ENTRIES = 500  # rows (pruners) or columns (tasks) of one plot
MAX_PLOTS = 4000  # plot specs of one leaderboard


# --- specs ----------------------------------------------------------------------------------


def _finite(v: float) -> float | None:
    return v if v is not None and math.isfinite(v) else None


def plot_specs(board: Board) -> dict[str, dict]:
    """Stem -> the data one plot shows; a plot is drawn from its spec alone and named by it."""
    specs = {}
    for suite in sorted(board.entries):
        entries, infos = board.entries[suite], board.tasks[suite]
        for info in infos:
            for kind in ("weak", "strong", "recall"):
                specs[plot_stem(suite, info.task, kind)] = _metric_spec(board, suite, entries, info, kind)
        rows = [e for e, _, _ in ranking(entries, infos)]
        ticket = board.references.get(suite, {}).get("planted-ticket")
        reference = [["planted ticket (reference)", [_finite(reference_score(ticket, i)) for i in infos]]] if ticket else []
        specs[plot_stem(suite, None, "heatmap")] = {
            "kind": "heatmap", "suite": suite, "rows": [n for n, _ in reference] + [e.name for e in rows],
            "columns": [i.task for i in infos],
            "values": [v for _, v in reference] + [[_finite(ticket_score(e, i)) for i in infos] for e in rows]}
    specs.update(appendix_specs(board))  # the plots across suites; none for a single suite
    return specs


def _metric_spec(board: Board, suite: str, entries: list[Entry], info: TaskInfo, kind: str) -> dict:
    """One field (weak, strong or recall) against density: per entry the mean, min and max over seeds."""
    series = []
    for e in sorted(entries, key=lambda e: e.name):
        pts = []
        for d in sorted(info.densities):
            vals = [v for v in e.values(info.task, d, kind) if math.isfinite(v)]
            if vals:
                pts.append([d, mean(vals), min(vals), max(vals)])
        if pts:
            series.append({"name": e.name, "style": list(board.colours[e.name]), "points": pts})
    spec = {"kind": kind, "suite": suite, "task": info.task, "metric": info.metric.name,
            "log_y": info.metric.log_scale and kind != "recall",
            "higher_is_better": info.metric.higher_is_better or kind == "recall",
            "ticket_density": info.ticket_density, "densities": sorted(info.densities),
            "series": series}
    if kind != "recall":
        ref = info.references
        spec.update(ticket=_finite(ref["ticket_strong"]), dense=_finite(ref["dense_weak"]),
                    chance=_finite(ref["chance"]))
    return spec


def check_drawable(specs: dict[str, dict]) -> None:
    """RecordError unless every plot stays a sane size: a figure grows with its rows and columns,
    and records are anyone's, so thousands of made-up entries must not become a gigapixel image."""
    if len(specs) > MAX_PLOTS:
        raise RecordError(f"the records call for {len(specs)} plots, more than the {MAX_PLOTS} build draws")
    for stem, spec in sorted(specs.items()):
        rows = len(spec["rows"]) if spec["kind"] == "heatmap" else len(spec["series"])
        columns = len(spec.get("columns", ()))
        if rows > MAX_ENTRIES or columns > MAX_ENTRIES:
            raise RecordError(f"plot {stem}: {max(rows, columns)} entries or tasks, more than the {MAX_ENTRIES} "
                              "a plot shows")


def spec_digest(spec: dict) -> str:
    blob = json.dumps({"plots_version": PLOTS_VERSION, "spec": spec}, sort_keys=True, allow_nan=True)
    return hashlib.sha256(blob.encode()).hexdigest()


# --- drawing --------------------------------------------------------------------------------


def _label(name: str) -> str:
    """An entry name as matplotlib must draw it: literally. A '$' would start mathtext (which can
    fail to parse), a control character would break the line."""
    return printable(name).replace("$", r"\$")


def _density_axis(ax, spec: dict) -> None:
    from matplotlib.ticker import FixedFormatter, FixedLocator, NullLocator

    ds = spec["densities"]
    ax.set_xscale("log")
    lo, hi = min(ds) / 1.6, max(ds) * 1.6
    ax.set_xlim(lo, hi)
    ticket = density_key(spec["ticket_density"])
    place = lambda d: math.log(d / lo) / math.log(hi / lo)  # noqa: E731  axis fraction
    crowded = any(abs(place(d) - place(spec["ticket_density"])) < 0.09 for d in ds if density_key(d) != ticket)
    labels = []
    for d in ds:
        if density_key(d) != ticket:
            labels.append(f"{d:g}")
        elif crowded:  # a row lower, so that it cannot run into its neighbour's label
            labels.append(f"\nticket {density_label(d, ds)}")
        else:
            labels.append(f"ticket\n{density_label(d, ds)}")
    ax.xaxis.set_major_locator(FixedLocator(ds))
    ax.xaxis.set_major_formatter(FixedFormatter(labels))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.axvline(spec["ticket_density"], color="0.75", lw=1, zorder=0)
    ax.set_xlabel("density (fraction of weights kept, log scale)")
    ax.grid(True, which="major", color="0.92", lw=0.8, zorder=0)


def _draw_series(ax, spec: dict) -> str:
    """Mean lines with their min-max spread: shaded bands for a few pruners, whiskers for many
    (overlapping bands turn to mud), each pruner nudged sideways so that its whiskers stay apart.
    Returns how the spread is drawn, for the title."""
    series = spec["series"]
    bands = len(series) <= BANDS_UP_TO
    for i, s in enumerate(series):
        colour, marker, ls = s["style"]
        d, m, lo, hi = (np.array(c, dtype=float) for c in zip(*s["points"]))
        if bands:
            ax.fill_between(d, lo, hi, color=colour, alpha=0.14, lw=0, zorder=1)
            ax.plot(d, m, color=colour, marker=marker, ls=ls, lw=1.6, ms=5, label=_label(s["name"]), zorder=3)
        else:
            x = d * 10 ** (DODGE * (i - (len(series) - 1) / 2))
            ax.errorbar(x, m, yerr=error_bars(m, lo, hi), color=colour, marker=marker, ls=ls, lw=1.3, ms=4.5,
                        elinewidth=0.9, capsize=0, label=_label(s["name"]), zorder=3)
    return "band: min-max" if bands else "bars: min-max"


def _draw_metric(fig, spec: dict) -> None:
    ax = fig.add_subplot()
    _density_axis(ax, spec)
    spread = _draw_series(ax, spec)
    better = "higher" if spec["higher_is_better"] else "lower"
    if spec.get("chance") is not None:
        ax.axhline(spec["chance"], color="0.35", ls=":", lw=1.4, label="chance", zorder=2)
    if spec.get("dense") is not None:
        ax.axhline(spec["dense"], color="0.35", ls="--", lw=1.4, label="dense host, trained", zorder=2)
    if spec.get("ticket") is not None:
        ax.plot([spec["ticket_density"]], [spec["ticket"]], marker="*", ms=17, color="#FFD700", mec="black",
                mew=0.9, ls="none", label="planted ticket", zorder=5, clip_on=False)
    if spec["log_y"]:
        ax.set_yscale("log")
    when = "after training under the mask (weak)" if spec["kind"] == "weak" else "without training (strong)"
    ax.set_ylabel(f"test {spec['metric']} ({better} is better)")
    ax.set_title(f"{spec['task']}: {spec['metric']} {when}\nsuite {spec['suite']}; line: mean over seeds, {spread}",
                 fontsize=10.5)


def _draw_recall(fig, spec: dict) -> None:
    ax = fig.add_subplot()
    _density_axis(ax, spec)
    ds = np.geomspace(min(spec["densities"]) / 1.6, min(1.0, max(spec["densities"]) * 1.6), 50)
    ax.plot(ds, ds, color="0.35", ls=":", lw=1.4, label="random mask (recall = density)", zorder=2)
    spread = _draw_series(ax, spec)
    ax.plot([spec["ticket_density"]], [1.0], marker="*", ms=17, color="#FFD700", mec="black", mew=0.9,
            ls="none", label="planted ticket", zorder=5, clip_on=False)
    ax.set_ylim(-0.03, 1.06)
    ax.set_ylabel("recall of the ticket's weights")
    ax.set_title(f"{spec['task']}: recall of the planted ticket\nsuite {spec['suite']}; line: mean over seeds, "
                 f"{spread}", fontsize=10.5)


def _draw_heatmap(fig, spec: dict) -> None:
    from matplotlib import colormaps

    ax = fig.add_subplot()
    values = np.array([[np.nan if v is None else v for v in row] for row in spec["values"]], dtype=float)
    values = values.reshape(len(spec["rows"]), len(spec["columns"]))
    cmap = colormaps["viridis"].with_extremes(bad="0.85")
    image = ax.imshow(np.clip(values, 0, 1), cmap=cmap, vmin=0, vmax=1, aspect="auto")
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            v = values[i, j]
            text = "n/a" if not math.isfinite(v) else f"{v:.2f}".replace("-0.00", "0.00")
            dark = math.isfinite(v) and v < 0.6
            ax.text(j, i, text, ha="center", va="center", fontsize=10, color="white" if dark else "black")
    ax.set_xticks(range(len(spec["columns"])), spec["columns"])
    ax.set_yticks(range(len(spec["rows"])), [_label(r) for r in spec["rows"]])
    ax.tick_params(length=0)
    ax.xaxis.tick_top()
    for side in ax.spines.values():
        side.set_visible(False)
    bar = fig.colorbar(image, ax=ax, fraction=0.05, pad=0.03)
    bar.set_label("score")
    ax.set_title(f"suite {spec['suite']}: score at the ticket's density\n"
                 "1 = planted ticket, 0 = chance; mean over seeds; colours clipped to [0, 1]", fontsize=10.5)


def render_plot(spec: dict, formats: Iterable[str] = PLOT_FORMATS) -> dict[str, bytes]:
    """One plot drawn once and saved in each format (PNG, SVG), stamped with its spec's digest."""
    import matplotlib
    from matplotlib.figure import Figure

    if spec["kind"] == "across":
        # tall enough for a legend line per pruner and the two reference lines
        size = (4.0 + 3.4 * max(1, len(spec["panels"])), max(4.6, 1.2 + 0.19 * (len(spec["series"]) + 2)))
    elif spec["kind"] == "heatmap":
        size = (3.2 + 1.3 * len(spec["columns"]) + 0.07 * max((len(r) for r in spec["rows"]), default=0),
                1.8 + 0.42 * max(1, len(spec["rows"])))
    else:
        size = (9.0, 5.0)
    description = DIGEST_TAG + spec_digest(spec)
    out = {}
    with matplotlib.rc_context({"svg.hashsalt": "plantbench-leaderboard", "font.size": 10}):
        fig = Figure(figsize=size, layout="constrained")
        if spec["kind"] == "heatmap":
            _draw_heatmap(fig, spec)
        elif spec["kind"] == "across":
            draw_across(fig, spec)
        else:
            (_draw_recall if spec["kind"] == "recall" else _draw_metric)(fig, spec)
            handles, labels = fig.axes[0].get_legend_handles_labels()
            names = [_label(x["name"]) for x in spec["series"]]
            order = sorted(range(len(labels)), key=lambda i: (labels[i] not in names, i))  # pruners first
            fig.legend([handles[i] for i in order], [labels[i] for i in order], loc="outside right upper",
                       fontsize=9, frameon=False)
        for fmt in formats:
            buf = io.BytesIO()
            meta = ({"Software": None, "Description": description} if fmt == "png"
                    else {"Date": None, "Creator": None, "Description": description})
            fig.savefig(buf, format=fmt, dpi=110, metadata=meta)
            out[fmt] = buf.getvalue()
    return out


def embedded_digest(path: Path) -> str | None:
    """The spec digest build wrote into a PNG (tEXt chunk) or SVG (dc:description); None if absent."""
    return digest_in(path.name, path.read_bytes())


def digest_in(name: str, data: bytes) -> str | None:
    """The spec digest in the bytes of a plot file called name (.png or .svg); None if absent."""
    if name.endswith(".png"):
        pos = 8
        while pos + 8 <= len(data):
            length, kind = struct.unpack(">I4s", data[pos:pos + 8])
            body = data[pos + 8:pos + 8 + length]
            if kind == b"tEXt":
                key, _, value = body.partition(b"\0")
                if key == b"Description" and value.startswith(DIGEST_TAG.encode()):
                    return value[len(DIGEST_TAG):].decode("ascii", "replace")
            if kind == b"IEND":
                break
            pos += 12 + length
        return None
    match = re.search(re.escape(DIGEST_TAG.encode()) + rb"([0-9a-f]{64})", data)
    return match.group(1).decode() if match else None
