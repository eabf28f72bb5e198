"""The web leaderboard: its pages against the records, its links, its bytes, and a real browser."""

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from plantbench.leaderboard import aggregate, build, check, ranking, read_results, write_references
from plantbench.leaderboard.readme import REFERENCE_LABELS
from plantbench.leaderboard.results import read_references
from plantbench.leaderboard.site import SITE_DIR, entry_slug, site_files
from plantbench.runner import SweepConfig, sweep

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A leaderboard with two real entries (magnitude, random) on relu and circle, seed 0, built once."""
    root = tmp_path_factory.mktemp("siteboard")
    for pruner in ("magnitude", "random"):
        sweep(SweepConfig(pruner, suite="quick", tasks=["relu", "circle"], seeds=1, device="cpu",
                          out=root / "results" / pruner, jobs=1))
    write_references(root)
    build(root)
    return root


@pytest.fixture
def board(built, tmp_path):
    return shutil.copytree(built, tmp_path / "board")


class Tables(HTMLParser):
    """Rows of the ranking tables: (tbody class, row attributes, [(cell attributes, text)])."""

    def __init__(self):
        super().__init__()
        self.rows, self.body, self.row, self.cell, self.in_ranking = [], None, None, None, False
        self.sort_heads, self.links = [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("a", "img", "link", "script"):
            self.links.append(a.get("href") or a.get("src"))
        if tag == "table":
            self.in_ranking = "ranking" in (a.get("class") or "")
        elif tag == "tbody" and self.in_ranking:
            self.body = a.get("class")
        elif tag == "tr" and self.body:
            self.row = (self.body, a, [])
        elif tag in ("td", "th") and self.row is not None:
            self.cell = [a, ""]
        elif tag == "th" and self.in_ranking and "data-key" in a:
            self.sort_heads.append([a, []])
        elif tag == "button" and self.sort_heads and self.row is None:
            self.sort_heads[-1][1].append(tag)

    def handle_data(self, data):
        if self.cell is not None:
            self.cell[1] += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None and self.row is not None:
            self.row[2].append((self.cell[0], self.cell[1].strip()))
            self.cell = None
        elif tag == "tr" and self.row is not None:
            self.rows.append(self.row)
            self.row = None
        elif tag == "tbody":
            self.body = None
        elif tag == "table":
            self.in_ranking = False


def parse(html: str) -> Tables:
    t = Tables()
    t.feed(html)
    return t


def entries(t: Tables):
    return [(attrs, cells) for body, attrs, cells in t.rows if body == "entries"]


def test_the_ranking_rows_match_the_records(built):
    board = aggregate(read_results(built)[0], read_references(built)[0])
    t = parse((built / SITE_DIR / "index.html").read_text())
    ranked = ranking(board.entries["quick@1"], board.tasks["quick@1"])
    rows = entries(t)
    assert [cells[1][1] for _, cells in rows] == [e.name for e, _, _ in ranked]
    for (attrs, cells), (e, score, covered) in zip(rows, ranked):
        assert attrs["data-pruner"] == e.name
        assert float(cells[2][0]["data-value"]) == score and cells[2][1] == f"{score:.3f}"
        assert cells[-4][1] == f"{covered}/2" and cells[-1][1] == "not yet"  # no verification.json
    refs = [(attrs, cells) for body, attrs, cells in t.rows if body == "references"]
    assert [cells[1][1] for _, cells in refs] == list(REFERENCE_LABELS.values())
    assert all(attrs["class"] == "reference" and cells[0][1] == "reference" for attrs, cells in refs)
    assert float(refs[0][1][2][0]["data-value"]) == 1.0  # the planted ticket scores 1
    assert len(t.sort_heads) == len(rows[0][1]) and all(b == ["button"] for _, b in t.sort_heads)


def test_every_relative_link_resolves_and_nothing_is_fetched_from_outside(built):
    site = built / SITE_DIR
    pages = sorted(site.rglob("*.html"))
    assert len(pages) == 1 + 2  # index and one page per entry
    for page in pages:
        text = page.read_text()
        assert not re.search(r"""(src|href)=["'](https?:)?//""", text), page
        for link in parse(text).links:
            target = link.split("#")[0]
            if target:
                assert (page.parent / target).resolve().exists(), (page.name, link)
    links = parse((site / "entries" / "quick-v1_magnitude.html").read_text()).links
    assert "../../results/magnitude/runs.jsonl" in links
    assert any(link.startswith("../../results/magnitude/masks/") and link.endswith(".npz") for link in links)


def test_an_entry_page_draws_its_mask_against_the_ticket(built):
    text = (built / SITE_DIR / "entries" / "quick-v1_random.html").read_text()
    recs = [json.loads(line) for line in (built / "results" / "random" / "runs.jsonl").read_text().splitlines()]
    assert recs[0]["pruner_source_sha256"] in text
    for task in ("relu@1", "circle@1"):
        r = next(r for r in recs if r["task"] == task and r["seed"] == 0 and r["density_target"] == r["ticket_density"])
        both = round(r["recall"] * r["ticket_size"])
        kept = round(r["density"] * r["ticket_size"] / r["ticket_density"])
        graph = text[text.index(f'id="graph-{task.replace("@", "-v")}"'):]
        assert f"kept, and in the ticket: {both}<" in graph and f"kept, not in the ticket: {kept - both}<" in graph
        assert f"in the ticket, not kept: {r['ticket_size'] - both}<" in graph
        assert graph.count('class="edges-overlap"') >= (1 if both else 0)


def test_the_site_is_deterministic_and_check_compares_its_bytes(board):
    first = site_files(board)
    assert first == site_files(board) and "index.html" in first and "assets/site.js" in first
    assert check(board) == []
    site = board / SITE_DIR
    index = site / "index.html"
    index.write_text(index.read_text().replace("quick@1", "quick@2", 1))
    (site / "entries" / "quick-v1_random.html").unlink()
    (site / "entries" / "old.html").write_text("stale")
    problems = check(board)
    hint = "run `plantbench leaderboard build` and commit the result"
    assert f"{index}: out of date with the results; {hint}" in problems
    assert f"{site / 'entries' / 'quick-v1_random.html'}: missing; {hint}" in problems
    assert f"{site / 'entries' / 'old.html'}: no longer generated from the results; {hint}" in problems
    build(board)
    assert check(board) == [] and not (site / "entries" / "old.html").exists()


def test_a_new_record_changes_the_site(board):
    path = board / "results" / "random" / "runs.jsonl"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))
    assert any(p.startswith(f"{board / SITE_DIR / 'index.html'}: out of date") for p in check(board))


def test_entry_slugs_are_distinct_for_arguments(built):
    board = aggregate(read_results(built)[0])
    e = board.entries["quick@1"][0]
    other = type(e)(e.suite, e.pruner, {"rounds": 2})
    assert entry_slug(e) == f"quick-v1_{e.pruner}" and entry_slug(other).startswith(f"quick-v1_{e.pruner}-")


# --- in a real browser ----------------------------------------------------------------------------


def _browser() -> str | None:
    if os.environ.get("CHROME_BIN") and shutil.which(os.environ["CHROME_BIN"]):
        return os.environ["CHROME_BIN"]
    return next((b for b in BROWSERS if shutil.which(b)), None)


def _chromium(browser: str, url: str, *args: str) -> str:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           "--allow-file-access-from-files", *args, url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


@pytest.fixture(scope="module")
def browser():
    found = _browser()
    if found is None:
        pytest.skip("no headless Chromium here (apt-get install chromium): the site is not loaded in a browser")
    return found


def test_the_site_in_a_browser_sorts_filters_and_renders(built, browser, tmp_path):
    index = (built / SITE_DIR / "index.html").resolve()
    board = aggregate(read_results(built)[0], read_references(built)[0])
    ranked = ranking(board.entries["quick@1"], board.tasks["quick@1"])

    dom = _chromium(browser, index.as_uri() + "#sort=score&dir=asc", "--dump-dom")
    assert 'data-ready="true"' in dom  # the script ran
    t = parse(dom)
    rows = entries(t)
    scores = [float(cells[2][0]["data-value"]) for _, cells in rows]
    assert scores == sorted(scores) and [c[1][1] for _, c in rows] == [e.name for e, _, _ in
                                                                         sorted(ranked, key=lambda r: r[1])]
    assert [cells[1][1] for body, _, cells in t.rows if body == "references"] == list(REFERENCE_LABELS.values())
    heads = {a["data-key"]: a.get("aria-sort") for a, _ in t.sort_heads}
    assert heads["score"] == "ascending" and heads["rank"] is None

    dom = _chromium(browser, index.as_uri() + "#pruner=random&task=circle@1", "--dump-dom")
    shown = [a["data-pruner"] for a, _ in entries(parse(dom)) if "hidden" not in a]
    assert shown == ["random"]
    sections = re.findall(r'<section class="task"[^>]*data-task="([^"]+)"([^>]*)>', dom)
    assert {task: "hidden" in rest for task, rest in sections} == {"circle@1": False, "relu@1": True}
    assert "Ranking: 1 of 2 entries shown." in dom

    shot = tmp_path / "leaderboard.png"
    _chromium(browser, index.as_uri() + "#sort=score&dir=desc", f"--screenshot={shot}", "--window-size=1280,1600")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = np.frombuffer(data[16:24], dtype=">u4")
    assert (width, height) == (1280, 1600) and len(data) > 20_000  # a drawn page, not a blank one
    keep = os.environ.get("PLANTBENCH_SCREENSHOT_DIR")
    if keep:  # to look at it
        shutil.copy(shot, Path(keep) / shot.name)


def test_a_mask_file_outside_its_folder_is_not_drawn(board, tmp_path):
    path = board / "results" / "random" / "runs.jsonl"
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    outside = tmp_path / "elsewhere.npz"
    shutil.copy(board / "results" / "random" / recs[0]["mask_file"], outside)
    for r in recs:
        r["mask_file"] = "../../../elsewhere.npz"
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in recs))
    text = site_files(board)["entries/quick-v1_random.html"].decode()
    assert text.count("no readable mask of seed 0") == 2 and "kept, and in the ticket" not in text


def test_a_record_without_timings_still_gets_its_row(board):
    path = board / "results" / "random" / "runs.jsonl"
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    recs[0]["timings"] = {}
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in recs))
    text = site_files(board)["entries/quick-v1_random.html"].decode()
    assert text.count("<tr><td>") == len(recs)  # the runs table: one row per run


def test_a_link_in_the_site_is_refused_by_build_and_named_by_check(board, tmp_path):
    from plantbench.leaderboard.files import UnsafeFileError

    outside = tmp_path / "outside.html"
    outside.write_text("not the leaderboard's")
    index = board / SITE_DIR / "index.html"
    index.unlink()
    index.symlink_to(outside)
    assert any(p.startswith(f"{index}: a symbolic link") for p in check(board))
    with pytest.raises(UnsafeFileError, match="symbolic link"):
        build(board)
    assert outside.read_text() == "not the leaderboard's" and index.is_symlink()
    index.unlink()
    shutil.rmtree(board / SITE_DIR / "entries")
    (board / SITE_DIR / "entries").symlink_to(tmp_path)
    with pytest.raises(UnsafeFileError, match="symbolic link"):
        build(board)
    assert outside.exists()
