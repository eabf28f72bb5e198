"""Results as data: load_results, `plantbench results`, compare_results and `plantbench compare` on real sweeps."""

import io
import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats

from plantbench import SweepConfig, UsageError, compare_results, load_results, sweep
from plantbench.analysis import paired_test
from plantbench.cli import cli
from plantbench.errors import RecordError
from plantbench.leaderboard import aggregate, read_results
from plantbench.leaderboard.results import read_references
from plantbench.metrics import headline


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """Two real quick-suite sweeps (2 seeds): magnitude and random."""
    root = tmp_path_factory.mktemp("sweeps")
    for name in ("magnitude", "random"):
        sweep(SweepConfig(pruner=name, suite="quick", out=str(root / name)))
    return root


def records(folder):
    return [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines()]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_load_results_has_one_row_per_run_with_flattened_columns(sweeps):
    frame = load_results(sweeps / "magnitude")
    recs = records(sweeps / "magnitude")
    assert len(frame) == len(recs) == 3 * 2 * 2  # tasks x (0.1 and the ticket's density) x seeds
    for col in ("references.ticket_strong", "references.chance", "timings.pruner_seconds", "timings.judge_seconds",
                "protocol.epochs", "versions.torch", "normalized_weak", "score"):
        assert col in frame.columns, col
    assert "references" not in frame.columns and "timings" not in frame.columns
    for row, rec in zip(frame.to_dict("records"), recs):
        assert row["run_id"] == rec["run_id"] and row["widths"] == rec["widths"]
        assert row["references.ticket_strong"] == rec["references"]["ticket_strong"]
        assert row["timings.pruner_seconds"] == rec["timings"]["pruner_seconds"]
        assert row["score"] == headline(rec["normalized_strong"], rec["normalized_weak"])


def test_load_results_reads_a_folder_its_file_and_a_leaderboard_alike(sweeps, tmp_path):
    board = tmp_path / "board"
    shutil.copytree(sweeps / "magnitude", board / "results" / "magnitude")
    a, b, c = (load_results(p) for p in (sweeps / "magnitude", sweeps / "magnitude" / "runs.jsonl", board))
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, c)


def test_a_retried_run_counts_once_and_a_failed_one_shows_as_failed(sweeps, tmp_path):
    folder = tmp_path / "resumed"
    shutil.copytree(sweeps / "magnitude", folder)
    recs = records(folder)
    retried = {**{k: v for k, v in recs[0].items() if k in ("schema", "run_id", "pruner", "pruner_args",
                                                               "pruner_source_sha256", "suite", "task", "depth",
                                                               "widths", "ticket_density", "ticket_size", "metric",
                                                               "protocol", "device", "versions", "seed",
                                                               "density_target", "created")},
               "status": "failed", "error": "RuntimeError: out of memory"}
    only_failed = {**retried, "run_id": "f" * 20}
    lines = [json.dumps(retried), *(json.dumps(r) for r in recs), json.dumps(retried), json.dumps(only_failed)]
    (folder / "runs.jsonl").write_text("\n".join(lines) + "\n")
    frame = load_results(folder)
    assert len(frame) == len(recs) + 1
    assert frame.loc[frame.run_id == recs[0]["run_id"], "status"].tolist() == ["ok"]
    failed = frame[frame.run_id == "f" * 20].iloc[0]
    assert failed["status"] == "failed" and failed["error"] == "RuntimeError: out of memory" and math.isnan(failed["score"])


def test_load_results_refuses_bad_input_in_one_line(sweeps, tmp_path):
    with pytest.raises(UsageError, match="no such file or folder"):
        load_results(tmp_path / "nowhere")
    with pytest.raises(UsageError, match="no runs.jsonl here"):
        load_results(tmp_path)
    bad = tmp_path / "bad"
    shutil.copytree(sweeps / "magnitude", bad)
    with open(bad / "runs.jsonl", "a") as f:
        f.write('{"schema": 1, "run_id": "x"\n')
    with pytest.raises(RecordError, match=r"1 unusable record line; first: .*runs.jsonl:13: not valid JSON"):
        load_results(bad)
    result = invoke("results", bad)
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1


def test_the_repository_leaderboard_reads_the_same_runs_as_its_tables():
    frame = load_results("leaderboard")
    board = aggregate(read_results("leaderboard")[0], read_references("leaderboard")[0])
    for entries in board.entries.values():
        for e in entries:
            mine = frame[(frame.pruner == e.pruner) & (frame.suite == e.suite)]
            assert len(mine[mine.status == "ok"]) == sum(len(rs) for t in e.runs.values() for rs in t.values()), \
                (e.suite, e.name)
            assert (mine.status != "ok").sum() == e.failed


def test_results_command_writes_csv_json_and_markdown(sweeps, tmp_path):
    frame = load_results(sweeps / "random")
    out = invoke("results", sweeps / "random", "--format", "csv")
    assert out.exit_code == 0, out.output
    csv = pd.read_csv(io.StringIO(out.output))
    assert list(csv.columns) == list(frame.columns) and len(csv) == len(frame)
    assert np.allclose(csv["references.ticket_strong"], frame["references.ticket_strong"])
    assert [json.loads(w) for w in csv["widths"]] == frame["widths"].tolist()
    target = tmp_path / "runs.json"
    out = invoke("results", sweeps / "random", "--format", "json", "--out", target)
    assert out.exit_code == 0 and f"wrote {target}" in out.output
    rows = json.loads(target.read_text())
    assert [r["run_id"] for r in rows] == frame["run_id"].tolist()
    assert rows[0]["timings.pruner_epochs"] == frame["timings.pruner_epochs"].iloc[0]
    md = invoke("results", sweeps / "random", "--format", "markdown").output.splitlines()
    assert md[0].startswith("| schema | run_id | pruner |") and md[1].startswith("| --- |") and len(md) == 2 + len(frame)


def test_compare_pairs_seeds_and_tests_the_differences(sweeps):
    a, b = load_results(sweeps / "magnitude"), load_results(sweeps / "random")
    table = compare_results(sweeps / "magnitude", sweeps / "random")
    assert len(table) == 3 * 2 * 3  # tasks x densities x fields
    assert set(table.field) == {"normalized_weak", "normalized_strong", "recall"} and set(table.n) == {2}
    def pick(f, r):
        return f[(f.task == r["task"]) & (np.isclose(f.density_target, r["density"]))].sort_values("seed")

    for r in table.to_dict("records"):
        va, vb = pick(a, r)[r["field"]].to_numpy(), pick(b, r)[r["field"]].to_numpy()
        assert r["diff"] == pytest.approx((vb - va).mean()) and r["mean_a"] == pytest.approx(va.mean())
        d = vb - va
        if np.all(d == 0):
            assert r["p"] == 1.0 and r["note"] == "identical on every seed"
        elif not np.all(d == d[0]):
            assert r["p"] == pytest.approx(stats.ttest_rel(vb, va).pvalue)
        assert r["ticket"] == bool(np.isclose(pick(a, r)["ticket_density"].iloc[0], r["density"]))


def test_compare_with_itself_and_with_one_seed(sweeps):
    same = compare_results(sweeps / "magnitude", sweeps / "magnitude")
    assert (same["diff"] == 0).all() and (same.p == 1.0).all() and (same.note == "identical on every seed").all()
    a = load_results(sweeps / "magnitude")
    one = compare_results(a[a.seed == 0], load_results(sweeps / "random"))
    assert (one.n == 1).all() and one.p.isna().all() and (one.note == "fewer than 2 seeds: no test").all()


def test_paired_test_edge_cases():
    assert paired_test([])[2] == "fewer than 2 seeds: no test"
    assert paired_test([0.0, 0.0, 0.0])[:2] == (0.0, 1.0)
    t, p, note = paired_test([0.2, 0.2])
    assert math.isnan(t) and math.isnan(p) and "no spread" in note
    t, p, _ = paired_test([0.1, 0.3, 0.2])
    assert t == pytest.approx(stats.ttest_1samp([0.1, 0.3, 0.2], 0).statistic) and 0 < p < 1


def test_compare_refuses_two_suites_or_two_entries(sweeps, tmp_path):
    a = load_results(sweeps / "magnitude")
    with pytest.raises(UsageError, match="A is on suite other@1 but B on quick@1"):
        compare_results(a.assign(suite="other@1"), sweeps / "random")
    board = tmp_path / "board"
    for name in ("magnitude", "random"):
        shutil.copytree(sweeps / name, board / "results" / name)
    with pytest.raises(UsageError, match="A: holds 2 entries"):
        compare_results(board, sweeps / "random")
    result = invoke("compare", board, sweeps / "random")
    assert result.exit_code == 2 and result.output.startswith("error: A: holds 2 entries")


def test_compare_command_prints_a_table(sweeps):
    result = invoke("compare", sweeps / "magnitude", sweeps / "random")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["task", "density", "field", "seeds", "A", "B", "B", "-", "A", "t", "p", "note"]
    assert len(lines) == 1 + 18 and any("(ticket)" in line for line in lines)
