"""The teacher suite's breaking-point plots, from made-up records: drawn when they exist, absent otherwise."""

import json

import pytest
from test_leaderboard_appendix import board_of, fake

from plantbench.leaderboard import render_plot, render_readme
from plantbench.leaderboard.breaking import KNOBS, breaking_specs
from plantbench.leaderboard.plots import plot_specs, spec_digest
from plantbench.runner import SweepConfig, sweep

FANIN, WIDTH = KNOBS["fan_in"][0], KNOBS["width"][0]
# magnitude breaks as the teacher widens or reads more inputs; random is flat at 0.1 and ran fewer tasks.
MAGNITUDE = {"teacher-w8": 0.9, "teacher-w16": 0.7, "teacher-w32": 0.4, "teacher-k4": 0.5, "teacher-k8": 0.2}


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """One real record (random on quick/relu) whose fields the made-up records reuse."""
    out = tmp_path_factory.mktemp("tpl") / "random"
    sweep(SweepConfig("random", suite="quick", tasks=["relu"], seeds=1, device="cpu", out=out, jobs=1))
    return json.loads((out / "runs.jsonl").read_text().splitlines()[0])


def teacher_records(template):
    recs = [fake(template, "teacher", t, "magnitude", seed, w + 0.1 * seed) for t, w in MAGNITUDE.items()
            for seed in (0, 1)]
    recs += [fake(template, "teacher", t, "random", 0, 0.1) for t in ("teacher-w16", "teacher-k8", "teacher-easy")]
    # At a density other than the ticket's: not part of the breaking-point plot.
    recs += [fake(template, "teacher", "teacher-w8", "random", 0, 0.99, density=0.1)]
    return recs


def test_breaking_point_plots_from_made_up_records(template, tmp_path):
    specs = plot_specs(board_of(tmp_path, teacher_records(template)))
    fanin, width = specs[FANIN], specs[WIDTH]
    assert fanin["kind"] == width["kind"] == "across"
    assert fanin["x"] == [2, 4, 8] and width["x"] == [8, 16, 32]
    [panel] = fanin["panels"]
    assert panel["task"] == "regression: 16 in, 2 out, width 16, depth 4, noise 0.01"
    series = {s["name"]: s["points"] for s in panel["series"]}
    assert series["magnitude"] == [[2, pytest.approx(0.75), 0.7, pytest.approx(0.8)],
                                   [4, pytest.approx(0.55), 0.5, pytest.approx(0.6)],
                                   [8, pytest.approx(0.25), 0.2, pytest.approx(0.3)]]
    assert series["random"] == [[2, 0.1, 0.1, 0.1], [8, 0.1, 0.1, 0.1]]
    [panel] = width["panels"]
    assert panel["task"] == "regression: 16 in, 2 out, fan-in 2, depth 4, noise 0.01"
    series = {s["name"]: s["points"] for s in panel["series"]}
    assert [p[1] for p in series["magnitude"]] == [pytest.approx(0.95), pytest.approx(0.75), pytest.approx(0.45)]
    assert series["random"] == [[16, 0.1, 0.1, 0.1]]  # its 0.99 at density 0.1 is not at the ticket's density
    for spec in (fanin, width):
        png = render_plot(spec)["png"]
        assert png.startswith(b"\x89PNG") and spec_digest(spec).encode() in png


def test_the_readme_shows_them_beside_another_suite(template, tmp_path):
    recs = teacher_records(template) + [fake(template, "paper", "circle", "magnitude", 0, 0.5)]
    text = render_readme(board_of(tmp_path, recs))
    assert f"against the teacher's fan-in](plots/{FANIN}.png)" in text
    assert f"against the teacher's width](plots/{WIDTH}.png)" in text


def test_no_plot_without_a_ladder_or_without_teacher_records(template, tmp_path):
    # One task per ladder: nothing to compare along fan-in or width.
    recs = [fake(template, "teacher", t, "magnitude", 0, 0.5) for t in ("teacher-k8", "teacher-easy", "teacher-cls")]
    assert breaking_specs(board_of(tmp_path / "a", recs)) == {}
    # teacher-w16 completes a fan-in ladder (with teacher-k8) but no width ladder.
    recs += [fake(template, "teacher", "teacher-w16", "magnitude", 0, 0.5)]
    assert set(breaking_specs(board_of(tmp_path / "b", recs))) == {FANIN}
    # No teacher records at all: the plots are skipped and the others are as they were.
    paper = [fake(template, "paper", t, "magnitude", 0, 0.5) for t in ("relu", "circle")]
    board = board_of(tmp_path / "c", paper)
    assert breaking_specs(board) == {} and not {FANIN, WIDTH} & set(plot_specs(board))
