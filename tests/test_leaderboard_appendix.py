"""The leaderboard across suites: the suite guide, suite order, and the plots across depth and noise."""

import json
import math

import pytest

from plantbench.leaderboard import aggregate, build, read_results, render_plot, render_readme
from plantbench.leaderboard.appendix import DEPTH_STEM, NOISE_STEM, suite_order
from plantbench.leaderboard.plots import embedded_digest, plot_specs, spec_digest
from plantbench.records import run_id
from plantbench.runner import SweepConfig, sweep
from plantbench.suite import SUITES, get_suite
from plantbench.task import get_task


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """One real record (random on quick/relu) whose fields the made-up records reuse."""
    out = tmp_path_factory.mktemp("tpl") / "random"
    sweep(SweepConfig("random", suite="quick", tasks=["relu"], seeds=1, device="cpu", out=out, jobs=1))
    return json.loads((out / "runs.jsonl").read_text().splitlines()[0])


def fake(template, suite_name, task_name, pruner, seed, weak_score, density=None):
    """A record of `pruner` on a registered suite and task at its ticket density (or `density`)."""
    suite, task = get_suite(suite_name), get_task(task_name)
    d = suite.ticket_density(task_name) if density is None else density
    rec = dict(template, suite=suite.id, task=task.id, depth=suite.depth, widths=suite.widths, pruner=pruner,
               pruner_args={}, seed=seed, density_target=d, ticket_density=suite.ticket_density(task_name),
               normalized_weak=weak_score, metric=task.metric.name)
    rec["run_id"] = run_id(pruner, {}, suite.id, task.id, suite.widths, seed, d)
    return rec


def board_of(tmp_path, recs):
    out = tmp_path / "results" / "all"
    out.mkdir(parents=True)
    (out / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    records, problems = read_results(tmp_path)
    assert problems == []
    return aggregate(records)


def depth_records(template):
    # magnitude loses the ticket with depth; random is 0.5 at depth 4 only (no depth-2 or depth-9 runs).
    weak = {"depth2": 0.9, "paper": 0.6, "depth9": 0.2}
    recs = [fake(template, s, t, "magnitude", seed, w + 0.1 * seed) for s, w in weak.items()
            for t in ("relu", "circle") for seed in (0, 1)]
    recs += [fake(template, "paper", "circle", "random", 0, 0.5)]
    return recs


def test_depth_plot_from_made_up_records(template, tmp_path):
    board = board_of(tmp_path, depth_records(template))
    specs = plot_specs(board)
    assert NOISE_STEM not in specs
    spec = specs[DEPTH_STEM]
    assert spec["x"] == [2, 4, 9] and [p["task"] for p in spec["panels"]] == ["circle@1", "relu@1"]
    circle = {s["name"]: s["points"] for s in spec["panels"][0]["series"]}
    assert circle["magnitude"] == [[2, pytest.approx(0.95), 0.9, 1.0], [4, pytest.approx(0.65), 0.6, 0.7],
                                   [9, pytest.approx(0.25), 0.2, pytest.approx(0.3)]]
    assert circle["random"] == [[4, 0.5, 0.5, 0.5]]
    assert [s["name"] for s in spec["panels"][1]["series"]] == ["magnitude"]  # random never ran relu
    png = render_plot(spec)["png"]
    assert png.startswith(b"\x89PNG") and spec_digest(spec).encode() in png


def test_noise_plot_reads_the_level_from_the_task(template, tmp_path):
    levels = {"circle-noise0": 1.0, "circle-noise0.001": 0.9, "circle-noise0.01": 0.7, "circle-noise0.1": 0.3}
    recs = [fake(template, "noise", t, "snip", 0, w) for t, w in levels.items()]
    spec = plot_specs(board_of(tmp_path, recs))[NOISE_STEM]
    assert spec["x"] == [0.0, 0.001, 0.01, 0.1]
    [panel] = spec["panels"]
    assert panel["series"] == [{"name": "snip", "points": [[x, w, w, w] for x, w in zip(spec["x"], levels.values())]}]
    assert DEPTH_STEM not in plot_specs(board_of(tmp_path / "b", recs))


def test_readme_puts_the_headline_first_with_a_guide(template, tmp_path):
    recs = depth_records(template) + [fake(template, "noise", "circle-noise0.1", "snip", 0, 0.3)]
    text = render_readme(board_of(tmp_path, recs))
    heads = [line for line in text.splitlines() if line.startswith("## ")]
    assert heads == ["## Suites", "## Suite paper@1", "## Suite depth2@1", "## Suite depth9@1", "## Suite noise@1"]
    guide = text.split("## Suites")[1].split("## Suite paper@1")[0]
    assert "`paper@1` is the headline suite" in guide
    bullets = [line for line in guide.splitlines() if line.startswith("- ")]
    assert bullets == [f"- `{n}@1`: {SUITES.get(n).description}" for n in ("depth2", "depth9", "noise")]
    assert f"plots/{DEPTH_STEM}.png" in guide and f"plots/{NOISE_STEM}.png" in guide
    assert suite_order(["wide@1", "zzz@3", "digits@1", "noise@1", "paper@1", "teacher@1", "aaa@1"]) == [
        "paper@1", "wide@1", "noise@1", "teacher@1", "digits@1", "aaa@1", "zzz@3"]


def test_a_paper_only_board_has_no_guide_and_no_cross_suite_plots(template, tmp_path):
    recs = [fake(template, "paper", "circle", "magnitude", 0, 0.6)]
    board = board_of(tmp_path, recs)
    assert "## Suites" not in render_readme(board)
    assert not {DEPTH_STEM, NOISE_STEM} & set(plot_specs(board))


def test_build_writes_the_cross_suite_plots(template, tmp_path):
    board_of(tmp_path, depth_records(template))  # writes tmp_path/results
    build(tmp_path)
    plot = tmp_path / "plots" / f"{DEPTH_STEM}.png"
    assert plot.is_file() and embedded_digest(plot) == spec_digest(plot_specs(aggregate(read_results(tmp_path)[0]))[DEPTH_STEM])
    assert f"plots/{DEPTH_STEM}.png" in (tmp_path / "README.md").read_text()
    index = (tmp_path / "site" / "index.html").read_text()
    assert f'<img src="../plots/{DEPTH_STEM}.png"' in index and "paper@1 is the headline suite" in index
    order = [index.index(f'data-suite="{s}"') for s in ("paper@1", "depth2@1", "depth9@1")]
    assert order == sorted(order)


def test_plots_draw_a_mean_that_rounds_past_its_equal_values(template, tmp_path):
    # three equal values whose float mean lies an ulp above them: a negative error bar for
    # matplotlib unless clamped, in the whisker plots (more pruners than get bands) and across depth
    v = next(i / 997 for i in range(1, 997) if math.fsum([i / 997] * 3) / 3 > i / 997)
    recs = []
    for k in range(7):
        for suite in ("paper", "depth2"):
            for seed in range(3):
                rec = fake(template, suite, "circle", f"pruner-{k}", seed, v)
                recs.append(dict(rec, recall=v, weak=v))
    specs = plot_specs(board_of(tmp_path, recs))
    for stem in ("paper-v1_circle-v1_recall", "paper-v1_circle-v1_weak", DEPTH_STEM):
        assert render_plot(specs[stem])["png"].startswith(b"\x89PNG")
