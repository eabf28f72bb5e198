"""The static web leaderboard: leaderboard/site/, HTML pages and their assets, all written here.

`site_files(root)` gives every file of the site as bytes, keyed by its path under SITE_DIR:
index.html (the ranking per suite, per-task tables, plots, the planted tickets), one page per
entry (entries/<slug>.html: its runs, arguments, source hash, its masks drawn against the ticket)
and assets/ (CSS and the script that sorts and filters). No request leaves the folder: there is
no CDN and no build step, so the site opens from the file system as it does on GitHub Pages.
The same records give the same bytes (everything is sorted; the only dates are the records'),
so `check` compares the files byte for byte, as it does the README.
"""

from __future__ import annotations

import hashlib
import math
from html import escape
from importlib import resources
from pathlib import Path

from ..metrics import format_metric
from ..paths import PLOTS_DIR, plot_stem
from .appendix import appendix_specs, site_guide, suite_order
from .files import GENERATED_LIMIT, UnsafeFileError, kind, read_bytes
from .files import entries as folder_entries
from .ranking import (
    Board,
    Entry,
    TaskInfo,
    aggregate,
    args_key,
    mean,
    ranking,
    reference_score,
    sparsest_win,
    std,
    ticket_score,
)
from .readme import REFERENCE_LABELS, _col, _num
from .results import Loaded, latest_per_run, printable, read_references, read_results
from .site_pages import entry_page, masks_of, task_graph
from .verified import STATES
from .verified import state as verified_state

SITE_DIR = "site"
ASSETS = ("site.css", "site.js")
TITLE = "plantbench leaderboard"


def slug(text: str) -> str:
    """A file-name-safe form of a suite, task or entry name."""
    out = "".join(c if c.isalnum() or c in ".-" else "-" for c in text.replace("@", "-v"))
    while "--" in out:
        out = out.replace("--", "-")
    return out.strip("-")


def entry_slug(e: Entry) -> str:
    """entries/<slug>.html: suite and pruner, and a hash of the arguments its name shows (those that
    tell it apart from the same pruner's other entries) when there are any."""
    shown = e.args if e.shown is None else e.shown
    tail = f"-{hashlib.sha256(args_key(shown).encode()).hexdigest()[:8]}" if shown else ""
    return f"{slug(e.suite)}_{slug(e.pruner)}{tail}"


def page(title: str, body: list[str], prefix: str = "") -> str:
    """A whole HTML page around body; prefix leads from the page's folder to the site's root."""
    return "\n".join([
        "<!doctype html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>", f'<link rel="stylesheet" href="{prefix}assets/site.css">',
        f'<script src="{prefix}assets/site.js" defer></script>', "</head>", "<body>",
        '<a class="skip" href="#main">Skip to the tables</a>', *body, "</body>", "</html>", ""])


def site_files(root: str | Path) -> dict[str, bytes]:
    """Every file of the site, path under SITE_DIR -> bytes, from root's results and references."""
    root = Path(root)
    records, _ = read_results(root)
    references, _ = read_references(root)
    board = aggregate(records, references)
    latest = latest_per_run(records)
    ref_items = list(references)
    files = {f"assets/{name}": resources.files(__package__).joinpath("assets", name).read_bytes() for name in ASSETS}
    files["index.html"] = index_page(root, board, ref_items).encode("utf-8")
    for suite, listed in board.entries.items():
        for e in listed:
            mine = [item for key, item in latest.items() if key[:3] == (e.suite, e.pruner, args_key(e.args))]
            html = entry_page(root, e, board.tasks[suite], mine, ref_items, entry_slug(e))
            files[f"entries/{entry_slug(e)}.html"] = html.encode("utf-8")
    return dict(sorted(files.items()))


# --- index.html --------------------------------------------------------------------------------


def index_page(root: Path, board: Board, refs: list[Loaded]) -> str:
    suites = suite_order(board.entries)
    tasks = sorted({i.task for s in suites for i in board.tasks[s]})
    names = sorted({e.name for s in suites for e in board.entries[s]})
    body = [f"<header><h1>{TITLE}</h1>",
            "<p>Pruners search a random host network for the sparse <em>ticket</em> planted in it. "
            "Each entry is scored on every planted network of a suite; the <em>score</em> of a run is the "
            "better of its normalised strong (untrained) and weak (trained) scores, at most 1: the planted "
            "ticket's own mask scores 1, chance 0. <em>Recall</em> is the fraction of the ticket's weights a "
            "mask kept. The reference rows are judged like entries and are not ranked. The same numbers, "
            "as Markdown: <a href=\"../README.md\">README.md</a>. Each entry's page links its records and masks "
            "and draws its masks against the planted ticket.</p></header>",
            _filters(suites, tasks, names), '<main id="main">', *site_guide(board, appendix_specs(board))]
    if not suites:
        body.append("<p>No results yet.</p>")
    for suite in suites:
        entries, infos = board.entries[suite], board.tasks[suite]
        body += [f'<section class="suite" data-suite="{escape(suite)}" id="{slug(suite)}">',
                 f"<h2>Suite {escape(suite)}</h2>",
                 *_ranking_table(suite, entries, infos, board.references.get(suite, {}))]
        for info in infos:
            body += _task_section(root, suite, entries, info, refs)
        body.append("</section>")
    body.append("</main>")
    return page(TITLE, body)


def _select(name: str, label: str, options: list[str]) -> str:
    opts = "".join(f'<option value="{escape(o)}">{escape(o)}</option>' for o in options)
    return (f'<label for="filter-{name}">{label}</label> <select id="filter-{name}" data-filter="{name}">'
            f'<option value="">all</option>{opts}</select>')


def _filters(suites: list[str], tasks: list[str], names: list[str]) -> str:
    return ('<form class="filters" role="search" aria-label="Filter the tables">'
            + " ".join([_select("suite", "Suite", suites), _select("task", "Task", tasks),
                        _select("pruner", "Pruner", names)])
            + ' <p class="status" aria-live="polite" id="filter-status"></p></form>')


def _td(value: float | None, text: str | None = None, bold: bool = False) -> str:
    """A numeric cell: the shown text, and the exact value in data-value for sorting (empty = none)."""
    ok = value is not None and math.isfinite(value)
    shown = escape(text if text is not None else _num(value))
    shown = f"<strong>{shown}</strong>" if bold else shown
    return f'<td data-value="{repr(float(value)) if ok else ""}">{shown}</td>'


def _verified_td(state: str) -> str:
    """The verification state (plantbench.leaderboard.verified), sorting verified first."""
    return _td(float(STATES.index(state)), state)


def _th_sort(key: str, label: str, current: str | None = None) -> str:
    sort = ' aria-sort="ascending"' if key == current else ""
    return f'<th scope="col" data-key="{key}"{sort}><button type="button">{escape(label)}</button></th>'


def _ranking_table(suite: str, entries: list[Entry], infos: list[TaskInfo], refs: dict[str, Entry]) -> list[str]:
    cols = [("rank", "#"), ("pruner", "pruner"), ("score", "score @ ticket"), ("weak", "norm. weak @ ticket"),
            ("strong", "norm. strong @ ticket"), ("recall", "recall @ ticket")]
    cols += [(f"win-{slug(i.task)}", f"sparsest win: {i.task.partition('@')[0]}") for i in infos]
    cols += [("tasks", "tasks"), ("seeds", "seeds"), ("failed", "failed runs"), ("verified", "verified")]
    head = "".join(_th_sort(k, label, "rank") for k, label in cols)
    rows = [_reference_row(refs[p], infos) for p in REFERENCE_LABELS if p in refs]
    body = []
    for rank, (e, score, covered) in enumerate(ranking(entries, infos), start=1):
        wins = [sparsest_win(e, i) for i in infos]
        cells = [f'<td data-value="{rank}">{rank}</td>',
                 f'<th scope="row"><a href="entries/{entry_slug(e)}.html">{escape(e.name)}</a></th>',
                 _td(score), *(_td(mean(ticket_score(e, i, f) for i in infos))
                               for f in ("normalized_weak", "normalized_strong", "recall")),
                 *(_td(w, _col(w, i)) if w is not None else _td(None) for w, i in zip(wins, infos)),
                 _td(covered, f"{covered}/{len(infos)}"), _td(e.seeds(), str(e.seeds())), _td(e.failed, str(e.failed)),
                 _verified_td(verified_state(e.folders, e.sources))]
        body.append(f'<tr data-pruner="{escape(e.name)}">{"".join(cells)}</tr>')
    heat = plot_stem(suite, None, "heatmap")
    return ['<div class="scroll">', f'<table class="ranking" id="ranking-{slug(suite)}">',
            f"<caption>Ranking on suite {escape(suite)}: means over seeds, then over tasks, at the ticket's "
            "density. Sort by any column with its button; the reference rows stay on top.</caption>",
            f"<thead><tr>{head}</tr></thead>", '<tbody class="references">', *rows, "</tbody>",
            '<tbody class="entries">', *body, "</tbody>", "</table>", "</div>",
            f'<figure class="heatmap"><a href="../{PLOTS_DIR}/{heat}.svg"><img src="../{PLOTS_DIR}/{heat}.png" '
            f'alt="Heatmap of the score at the ticket\'s density, pruner by task, suite {escape(suite)}" '
            'loading="lazy"></a><figcaption>Score at the ticket\'s density, pruner by task.</figcaption></figure>']


def _reference_row(e: Entry, infos: list[TaskInfo]) -> str:
    vals = [_td(mean(reference_score(e, i, f) for i in infos))
            for f in ("score", "normalized_weak", "normalized_strong", "recall")]
    covered = sum(math.isfinite(reference_score(e, i)) for i in infos)
    return (f'<tr class="reference" data-pruner="{escape(REFERENCE_LABELS[e.pruner])}">'
            '<td data-value=""><span class="badge">reference</span></td>'
            f'<th scope="row">{escape(REFERENCE_LABELS[e.pruner])}</th>{"".join(vals)}'
            + "".join(_td(None) for _ in infos)
            + f'{_td(covered, f"{covered}/{len(infos)}")}{_td(e.seeds(), str(e.seeds()))}{_td(e.failed, str(e.failed))}'
            f"{_td(None)}</tr>")


# --- per task ----------------------------------------------------------------------------------


def _spread_cell(vals: list[float], metric, bold: bool) -> str:
    m = mean(vals)
    if not math.isfinite(m):
        return _td(None)
    finite = [v for v in vals if v is not None and math.isfinite(v)]
    text = f"{format_metric(m, metric)} ± {format_metric(std(vals), metric)}"
    spread = (f"{len(finite)} seeds, min {format_metric(min(finite), metric)}, "
              f"max {format_metric(max(finite), metric)}")
    inner = f"<strong>{escape(text)}</strong>" if bold else escape(text)
    return f'<td data-value="{repr(float(m))}">{inner}<span class="spread">{escape(spread)}</span></td>'


def _metric_table(entries: list[Entry], info: TaskInfo, fld: str, title: str) -> list[str]:
    """Mean ± std over seeds per entry and density, with each cell's seed spread; best mean in bold."""
    metric = info.metric
    better = metric.better if fld != "recall" else (lambda a, b: a > b)
    best: dict[float, float] = {}
    for d in info.densities:
        for e in entries:
            m = mean(e.values(info.task, d, fld))
            if math.isfinite(m) and (d not in best or better(m, best[d])):
                best[d] = m
    head = "".join(f'<th scope="col">{escape(_col(d, info))}</th>' for d in info.densities)
    rows = []
    for e in sorted(entries, key=lambda e: e.name):
        cells = [_spread_cell(e.values(info.task, d, fld), metric if fld != "recall" else "accuracy",
                              mean(e.values(info.task, d, fld)) == best.get(d)) for d in info.densities]
        rows.append(f'<tr data-pruner="{escape(e.name)}"><th scope="row">{escape(e.name)}</th>{"".join(cells)}</tr>')
    return ['<div class="scroll">', '<table class="metric">',
            f"<caption>{escape(title)} (mean ± std over seeds, then the seed spread; best mean per density in "
            "bold).</caption>", f'<thead><tr><th scope="col">pruner</th>{head}</tr></thead>',
            "<tbody>", *rows, "</tbody></table></div>"]


def _task_section(root: Path, suite: str, entries: list[Entry], info: TaskInfo, refs: list[Loaded]) -> list[str]:
    metric, ref = info.metric, info.references
    direction = "higher" if metric.higher_is_better else "lower"
    plots = []
    for which in ("weak", "strong", "recall"):
        stem = plot_stem(suite, info.task, which)
        plots.append(f'<figure><a href="../{PLOTS_DIR}/{stem}.svg"><img src="../{PLOTS_DIR}/{stem}.png" '
                     f'alt="{escape(info.task)}: {which} against density, suite {escape(suite)}" loading="lazy"></a>'
                     f"<figcaption>{which} against density (PNG; the link opens the SVG).</figcaption></figure>")
    ticket = masks_of([r for r in refs if r.rec["pruner"] == "planted-ticket"], suite, info.task)
    graph = task_graph(ticket, None, f"{info.task}, seed 0: the planted ticket") if ticket else \
        "<p>No reference record of the planted ticket for seed 0.</p>"
    refs_row = "".join(f"<td>{escape(format_metric(ref[k], metric))}</td>"
                       for k in ("ticket_strong", "ticket_weak", "dense_weak", "chance"))
    return [f'<section class="task" data-suite="{escape(suite)}" data-task="{escape(info.task)}" '
            f'id="{slug(suite)}_{slug(info.task)}">', f"<h3>{escape(info.task)} <small>suite {escape(suite)}</small></h3>",
            f"<p>Metric: {metric.name} ({direction} is better). Ticket: {info.ticket_size} weights, density "
            f"{info.ticket_density:.4g}.</p>",
            '<table class="refs"><caption>References (mean over seeds)</caption><thead><tr>'
            '<th scope="col">planted ticket, untrained</th><th scope="col">planted ticket, trained</th>'
            '<th scope="col">dense host, trained</th><th scope="col">chance</th></tr></thead>'
            f"<tbody><tr>{refs_row}</tr></tbody></table>",
            *_metric_table(entries, info, "weak", "Weak: test metric after training under the mask"),
            *_metric_table(entries, info, "strong", "Strong: test metric without training"),
            *_metric_table(entries, info, "recall", "Recall of the ticket's weights"),
            '<div class="figures">', *plots, "</div>",
            f'<figure class="ticket">{graph}<figcaption>The planted ticket of seed 0 in the host; each entry\'s '
            "page draws its own mask of that network against it.</figcaption></figure>", "</section>"]


def _tree(root: Path, rel: str = SITE_DIR) -> list[tuple[str, str]]:
    """(path under SITE_DIR, kind) of everything in root/site, walked without following a link."""
    out = []
    for name, what in folder_entries(root, rel):
        path = f"{rel}/{name}"
        out.append((path[len(SITE_DIR) + 1:], what))
        if what == "dir":
            out += _tree(root, path)
    return out


def site_outputs_problem(root: str | Path) -> str | None:
    """Why build must not write root/site: it, or something in it, is a link or not a regular
    file or real folder, so writing or deleting there could reach outside root."""
    root = Path(root)
    top = kind(root, SITE_DIR)
    if top not in ("missing", "dir"):
        return f"{root / SITE_DIR}: {top}"
    for name, what in _tree(root) if top == "dir" else []:
        if what not in ("file", "dir"):
            return f"{root / SITE_DIR / name}: {what}"
    return None


def site_problems(root: str | Path) -> list[str]:
    """Where root/site differs from a fresh build: a missing, changed or no longer generated file.

    Only regular files in real folders are read, each at most GENERATED_LIMIT bytes.
    """
    root = Path(root)
    site = root / SITE_DIR
    hint = "run `plantbench leaderboard build` and commit the result"
    wanted = site_files(root)
    try:
        found = dict(_tree(root))
    except UnsafeFileError as e:
        return [str(e)]
    have = {name for name, what in found.items() if what != "dir"}
    out = [f"{site / name}: {found[name]}; the site holds regular files only"
           for name in sorted(have) if found[name] != "file"]
    out += [f"{site / name}: missing; {hint}" for name in sorted(set(wanted) - have)]
    out += [f"{site / name}: no longer generated from the results; {hint}" for name in sorted(have - set(wanted))]
    for name in sorted(have & set(wanted)):
        if found[name] == "file":
            try:
                if read_bytes(root, f"{SITE_DIR}/{name}", GENERATED_LIMIT) != wanted[name]:
                    out.append(f"{site / name}: out of date with the results; {hint}")
            except UnsafeFileError as e:
                out.append(str(e))
    return out


def write_site(root: str | Path) -> list[Path]:
    """Write root/site from root's records, removing files it no longer generates; the paths written.

    UnsafeFileError, before anything is written, when root/site holds a link or a special file.
    """
    from ..fileio import atomic_write_bytes

    root = Path(root)
    why = site_outputs_problem(root)
    if why:
        raise UnsafeFileError(f"{printable(why)}; build writes regular files in real folders only, "
                              "remove it and build again")
    site = root / SITE_DIR
    files = site_files(root)
    for name, what in _tree(root) if site.is_dir() else []:
        if what == "file" and name not in files:
            (site / name).unlink()
    written = []
    for name, data in files.items():
        path = site / name
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
        written.append(path)
    return written
