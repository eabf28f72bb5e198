"""The leaderboard: build turns real result folders into tables and plots; check catches tampering."""

import json
import math
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from plantbench.errors import UsageError
from plantbench.leaderboard import (
    PLOTS_DIR,
    README,
    TaskInfo,
    aggregate,
    build,
    check,
    display_name,
    embedded_digest,
    order_by_metric,
    read_results,
    render_readme,
    sparsest_win,
    write_references,
)
from plantbench.metrics import ACCURACY, MSE
from plantbench.records import run_id
from plantbench.runner import SweepConfig, sweep


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A leaderboard folder with two real entries (magnitude, random) on relu, built once."""
    root = tmp_path_factory.mktemp("board")
    for pruner in ("magnitude", "random"):
        sweep(SweepConfig(pruner, suite="quick", tasks=["relu"], seeds=1, device="cpu", out=root / "results" / pruner, jobs=1))
    write_references(root)
    build(root)
    return root


@pytest.fixture
def board(built, tmp_path):
    """A private copy of the built leaderboard, free to tamper with."""
    return shutil.copytree(built, tmp_path / "board")


def lines(root, pruner="magnitude"):
    return (root / "results" / pruner / "runs.jsonl").read_text().splitlines()


def rewrite(root, records, pruner="magnitude"):
    (root / "results" / pruner / "runs.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def load(root, pruner="magnitude"):
    return [json.loads(line) for line in lines(root, pruner)]


def problems_about(problems, root, rec, line, needle):
    """The problems that name the file and line, the run, and contain needle."""
    where = f"{root / 'results' / rec['pruner'] / 'runs.jsonl'}:{line}: run {rec['run_id']}:"
    return [p for p in problems if p.startswith(where) and needle in p]


# --- build -----------------------------------------------------------------------------------


def test_build_writes_tables_and_plots_that_check_accepts(built):
    assert check(built) == []
    text = (built / README).read_text()
    for needle in ("# plantbench leaderboard", "## Suite quick@1", "### Ranking", "### relu@1", "magnitude",
                   "random", "ticket (0.0028)", "sparsest win", "dense host, trained", "e-0",
                   "quick-v1_relu-v1_weak.png", "quick-v1_heatmap.png"):
        assert needle in text, needle
    date = load(built)[0]["created"][:10]
    assert f"| {date} |" in text
    plots = sorted(p.name for p in (built / PLOTS_DIR).iterdir())
    assert plots == sorted(f"quick-v1_{stem}.{fmt}" for stem in ("relu-v1_weak", "relu-v1_strong", "relu-v1_recall",
                                                                 "heatmap") for fmt in ("png", "svg"))
    for name in plots:
        assert embedded_digest(built / PLOTS_DIR / name) is not None, name
    assert (built / PLOTS_DIR / plots[0]).read_bytes()[:4] in (b"\x89PNG", b"<?xm")


def test_build_is_deterministic(board, tmp_path):
    before = {p.name: p.read_bytes() for p in [board / README, *(board / PLOTS_DIR).iterdir()]}
    again = shutil.copytree(board, tmp_path / "again")
    shutil.rmtree(again / PLOTS_DIR)
    (again / README).unlink()
    build(again)
    after = {p.name: p.read_bytes() for p in [again / README, *(again / PLOTS_DIR).iterdir()]}
    assert after[README] == before[README]
    assert after.keys() == before.keys()
    assert after == before  # PNG and SVG bytes too, on one machine


def test_build_removes_plots_no_longer_called_for(board):
    stray = board / PLOTS_DIR / "old-suite_heatmap.png"
    stray.write_bytes(b"x")
    assert any("old-suite_heatmap.png: no longer generated" in p for p in check(board))
    build(board)
    assert not stray.exists()


def test_missing_root_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no such folder"):
        check(tmp_path / "nope")
    with pytest.raises(UsageError, match="no such folder"):
        build(tmp_path / "nope")


def test_an_empty_leaderboard_builds(tmp_path):
    build(tmp_path)
    assert "No results yet." in (tmp_path / README).read_text()
    assert check(tmp_path) == []


# --- check catches tampering -------------------------------------------------------------------


def test_changed_strong_metric_is_caught(board):
    recs = load(board)
    recs[1]["strong"] *= 1.01
    rewrite(board, recs)
    problems = check(board)
    assert problems_about(problems, board, recs[1], 2, "strong ")
    assert problems_about(problems, board, recs[1], 2, "but the mask gives")


def test_changed_recall_is_caught(board):
    recs = load(board)
    recs[0]["recall"] = 0.5 if recs[0]["recall"] != 0.5 else 0.25
    rewrite(board, recs)
    [p] = problems_about(check(board), board, recs[0], 1, "recall ")
    assert f"recall {recs[0]['recall']:.10g} but the mask gives" in p


def test_flipped_mask_bit_is_caught(board):
    rec = load(board)[0]
    path = board / "results" / "magnitude" / rec["mask_file"]
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    key = f"{rec['run_id']}__w1"
    arrays[key] = arrays[key].copy()
    arrays[key][0] ^= 0x80
    np.savez_compressed(path, **arrays)
    problems = check(board)
    assert problems_about(problems, board, rec, 1, "density ")
    others = [r for r in load(board)[1:]]
    assert not any(f"run {r['run_id']}:" in p for r in others for p in problems)


def test_deleted_mask_file_is_caught(board):
    rec = load(board)[0]
    (board / "results" / "magnitude" / rec["mask_file"]).unlink()
    problems = check(board)
    assert problems_about(problems, board, rec, 1, f"mask file {board / 'results' / 'magnitude' / rec['mask_file']} is missing")


def test_missing_mask_key_is_caught(board):
    rec = load(board)[0]
    path = board / "results" / "magnitude" / rec["mask_file"]
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k != f"{rec['run_id']}__w2"}
    np.savez_compressed(path, **arrays)
    assert problems_about(check(board), board, rec, 1, f"mask key {rec['run_id']}__w2 is missing")


def test_pickled_mask_is_refused_not_loaded(board):
    rec = load(board)[0]
    path = board / "results" / "magnitude" / rec["mask_file"]
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays[f"{rec['run_id']}__w0"] = np.array([{"not": "a mask"}], dtype=object)
    np.savez(path, **arrays)
    assert problems_about(check(board), board, rec, 1, "cannot be read")


def test_mask_file_outside_the_results_folder_is_refused(board):
    recs = load(board)
    recs[0]["mask_file"] = "../random/" + recs[0]["mask_file"]
    rewrite(board, recs)
    assert problems_about(check(board), board, recs[0], 1, "must be an .npz inside the results folder")


def test_unknown_task_version_is_caught(board):
    recs = load(board)
    recs[0]["task"] = "relu@9"
    rewrite(board, recs)
    problems = check(board)
    assert problems_about(problems, board, recs[0], 1, "task relu@9 does not exist (registered: relu@1)")
    assert problems_about(problems, board, recs[0], 1, "run_id does not match its fields")


def test_unknown_suite_version_is_caught(board):
    recs = load(board)
    recs[0]["suite"] = "quick@7"
    recs[0]["run_id"] = run_id(recs[0]["pruner"], recs[0]["pruner_args"], "quick@7", recs[0]["task"],
                               recs[0]["widths"], recs[0]["seed"], recs[0]["density_target"])
    rewrite(board, recs)
    assert problems_about(check(board), board, recs[0], 1, "suite quick@7 does not exist")


def test_duplicated_line_is_caught(board):
    text = lines(board)
    (board / "results" / "magnitude" / "runs.jsonl").write_text("\n".join(text + [text[0]]) + "\n")
    rec = json.loads(text[0])
    assert problems_about(check(board), board, rec, len(text) + 1, "duplicate")


def test_duplicate_across_files_is_caught(board):
    text = lines(board)
    with open(board / "results" / "random" / "runs.jsonl", "a") as f:
        f.write(text[0] + "\n")
    rec = json.loads(text[0])
    n = len(lines(board, "random"))
    where = f"{board / 'results' / 'random' / 'runs.jsonl'}:{n}: run {rec['run_id']}: duplicate"
    assert any(p.startswith(where) for p in check(board))


def test_schema_break_is_caught(board):
    recs = load(board)
    del recs[0]["recall"]
    rewrite(board, recs)
    assert problems_about(check(board), board, recs[0], 1, "missing field 'recall'")


def test_records_follow_the_schema_order_and_make_record_owns_it(built):
    from plantbench.records import SCHEMA, make_record, validate_record

    rec = load(built)[0]
    assert "seed_key" not in rec  # public seeds: the keyed sweeps' optional field is absent
    fields = [f for f in SCHEMA if f.name in rec or not f.optional]
    assert sorted(rec) == sorted(f.name for f in fields)  # the keys run writes (the file sorts them)
    header = {k: rec[k] for k in ("pruner", "pruner_args", "pruner_source_sha256", "plantbench_version", "suite", "task", "depth",
                                  "widths", "ticket_density", "ticket_size", "metric", "protocol", "device",
                                  "versions")}
    args = (header, rec["run_id"], rec["seed"], rec["density_target"], rec["created"])
    failed = make_record(*args, error="ValueError: boom")
    assert list(failed) == [f.name for f in fields if not f.ok_only] and failed["status"] == "failed"
    validate_record(failed, "here")
    again = make_record(*args, judged=rec, references=rec["references"], timings=rec["timings"],
                        mask_file=rec["mask_file"], metric=ACCURACY if rec["metric"] == "accuracy" else MSE)
    assert again == rec and list(again) == [f.name for f in fields]
    with pytest.raises(ValueError, match="not in the schema"):
        make_record({**header, "colour": "red"}, *args[1:], error="x")


def test_broken_json_line_is_caught(board):
    with open(board / "results" / "magnitude" / "runs.jsonl", "a") as f:
        f.write('{"schema": 1, "run_id"\n')
    n = len(lines(board))
    assert any(p.startswith(f"{board / 'results' / 'magnitude' / 'runs.jsonl'}:{n}: not valid JSON") for p in check(board))


def test_stale_readme_and_plots_are_caught(board):
    (board / README).write_text((board / README).read_text() + "\nedited by hand\n")
    (board / PLOTS_DIR / "quick-v1_relu-v1_recall.svg").unlink()
    problems = check(board)
    assert f"{board / README}: out of date with the results; run `plantbench leaderboard build` and commit the result" in problems
    assert any(p.startswith(f"{board / PLOTS_DIR / 'quick-v1_relu-v1_recall.svg'}: missing") for p in problems)


def test_a_new_record_makes_the_generated_files_stale(board):
    recs = load(board, "random")
    rewrite(board, recs[:-1], "random")
    problems = check(board)
    assert any(p.startswith(f"{board / README}: out of date") for p in problems)
    assert any(p.startswith(f"{board / PLOTS_DIR / 'quick-v1_relu-v1_weak.png'}: out of date") for p in problems)
    build(board)
    assert check(board) == []


# --- the command line -----------------------------------------------------------------------


def test_cli_build_and_check(board):
    from plantbench.cli import cli

    runner = CliRunner()
    (board / README).unlink()
    result = runner.invoke(cli, ["leaderboard", "check", "--root", str(board)])
    assert result.exit_code == 2
    assert f"{board / README}: missing" in result.output
    assert "error: 1 problem; first: " in result.output and "Traceback" not in result.output

    result = runner.invoke(cli, ["leaderboard", "build", "--root", str(board)])
    assert result.exit_code == 0, result.output
    assert "plot files" in result.output
    result = runner.invoke(cli, ["leaderboard", "check", "--root", str(board)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: ")

    recs = load(board)
    recs[0]["recall"] += 0.125
    recs[1]["strong"] *= 2
    rewrite(board, recs)
    result = runner.invoke(cli, ["leaderboard", "check", "--root", str(board)])
    assert result.exit_code == 2
    out = result.output.splitlines()
    assert "problems; first: " in out[-1] and out[-1].startswith("error: ")
    assert any(recs[0]["run_id"] in line and "recall" in line for line in out[:-1])
    assert any(recs[1]["run_id"] in line and "strong" in line for line in out[:-1])

    result = runner.invoke(cli, ["leaderboard", "check", "--root", str(board / "nope")])
    assert result.exit_code == 2 and "no such folder" in result.output


# --- tables from made-up records ------------------------------------------------------------


def made_up(template, pruner, args, seed, density, normalized_weak, weak, normalized_strong=0.0):
    rec = dict(template, pruner=pruner, pruner_args=args, seed=seed, density_target=density,
               normalized_weak=normalized_weak, weak=weak, normalized_strong=normalized_strong)
    rec["run_id"] = run_id(pruner, args, rec["suite"], rec["task"], rec["widths"], seed, density)
    return rec


def test_ranking_and_sparsest_win_from_made_up_records(built, tmp_path):
    template = load(built)[0]
    ticket = template["ticket_density"]
    scores = {  # pruner -> density -> (normalised weak per seed)
        "good": {0.1: (1.0, 0.98), ticket: (0.97, 0.96)},
        "fair": {0.1: (0.99, 0.95), ticket: (0.5, 0.7)},
        "poor": {0.1: (0.2, 0.4), ticket: (0.0, 0.1)},
    }
    out = tmp_path / "made" / "results" / "all"
    out.mkdir(parents=True)
    recs = [made_up(template, p, {"k": 1} if p == "fair" else {}, s, d, v, 0.1 * (1 - v))
            for p, by_d in scores.items() for d, vs in by_d.items() for s, v in enumerate(vs)]
    # Untrained it matches the ticket, trained it is wrecked: the score takes the better side.
    recs += [made_up(template, "strong", {}, s, d, 0.0, 0.1, normalized_strong=1.0) for d in (0.1, ticket) for s in (0, 1)]
    recs.append(dict(recs[0], status="failed", error="ValueError: boom", seed=1, density_target=0.5,
                     run_id=run_id("good", {}, template["suite"], template["task"], template["widths"], 1, 0.5)))
    (out / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    records, problems = read_results(tmp_path / "made")
    assert problems == []
    board = aggregate(records)
    entries = {e.name: e for e in board.entries["quick@1"]}
    assert set(entries) == {"good", "fair", "poor", "strong"}
    assert entries["good"].failed == 1
    [info] = board.tasks["quick@1"]
    assert sparsest_win(entries["good"], info) == pytest.approx(ticket, rel=1e-9)
    assert sparsest_win(entries["fair"], info) == 0.1
    assert sparsest_win(entries["poor"], info) is None
    text = render_readme(board)
    ranking = text.split("### Ranking")[1].split("### Entries")[0]
    rows = [line for line in ranking.splitlines() if line[:4] in ("| 1 ", "| 2 ", "| 3 ", "| 4 ")]
    assert [r.split(" | ")[1] for r in rows] == ["strong", "good", "fair", "poor"]
    assert "| 1 | strong | 1.000 | 0.000 | 1.000 |" in ranking  # score, normalised weak, normalised strong
    assert "| 2 | good | 0.965 | 0.965 |" in ranking and "| 3 | fair | 0.600 |" in ranking
    assert f"ticket ({ticket:.2g})" in rows[1] and "| 0.1 |" in rows[2] and rows[3].count(" - ") >= 1
    assert "Reference records are missing for this suite" in ranking  # this made-up board has none


def test_order_and_formatting_follow_the_metric():
    from plantbench.leaderboard import Entry
    from plantbench.metrics import format_metric

    def entry(name, weak):
        e = Entry("s@1", name, {})
        e.runs["t@1"][0.01].append({"weak": weak})
        return e

    entries = [entry("a", 0.2), entry("b", 0.9), entry("c", float("nan"))]
    acc = TaskInfo("t@1", ACCURACY, 0.01, 3, [0.01], {})
    mse = TaskInfo("t@1", MSE, 0.01, 3, [0.01], {})
    assert [e.name for e in order_by_metric(entries, acc)] == ["b", "a", "c"]
    assert [e.name for e in order_by_metric(entries, mse)] == ["a", "b", "c"]
    assert format_metric(0.95312, ACCURACY) == "0.953" and format_metric(1.2345e-4, MSE) == "1.23e-04"
    assert format_metric(math.nan, MSE) == "-" and format_metric(None, "accuracy") == "-"
    assert format_metric(0.5, "accuracy") == "0.500" and format_metric(2.5e-3, "mse") == "2.50e-03"
    assert display_name("synflow", {"rounds": 1, "mode": "global"}) == 'synflow (mode="global", rounds=1)'


# --- reference records (the oracle rows) ----------------------------------------------------


def references(root):
    return [json.loads(line) for line in (root / "references" / "runs.jsonl").read_text().splitlines()]


def rewrite_references(root, records):
    (root / "references" / "runs.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def test_reference_rows_are_shown_unranked_with_the_ticket_at_one(built):
    refs = {r["pruner"]: r for r in references(built)}
    assert set(refs) == {"planted-ticket", "dense-host"}  # relu, seed 0: what the entries use
    ticket, dense = refs["planted-ticket"], refs["dense-host"]
    assert ticket["recall"] == 1.0 and ticket["precision"] == 1.0 and ticket["normalized_strong"] == 1.0
    assert ticket["density"] == pytest.approx(ticket["ticket_density"], rel=1e-12) and dense["density"] == 1.0
    assert ticket["references"] == dense["references"]  # one judge call, one value
    entry_refs = load(built)[0]["references"]  # judged in the sweep, among other batch mates: rounding only
    assert entry_refs.keys() == ticket["references"].keys()
    assert entry_refs == pytest.approx(ticket["references"], rel=1e-5)
    ranking = (built / README).read_text().split("### Ranking")[1].split("### Entries")[0]
    assert "| - | **planted ticket (reference)** | 1.000 |" in ranking
    assert "| - | **dense host, trained (reference, density 1)** |" in ranking
    assert "| 1 | " in ranking and "| 3 | " not in ranking  # two entries ranked, the references not
    assert write_references(built) == []  # all present: a rerun judges nothing


@pytest.mark.parametrize("field, needle", [
    ("weak", "weak"), ("references.dense_weak", "references.dense_weak"),
    ("references.ticket_weak", "references.ticket_weak"), ("strong", "strong"),
    ("normalized_weak", "normalized_weak")])
def test_tampered_reference_records_fail_check(board, field, needle):
    recs = references(board)
    target = recs[0]
    if field.startswith("references."):
        key = field.split(".")[1]  # moved beyond retraining's tolerance
        target["references"][key] = target["references"][key] * 4 + 0.5
    else:
        target[field] = target[field] * 0.5 + 0.25
    rewrite_references(board, recs)
    problems = check(board)
    where = f"{board / 'references' / 'runs.jsonl'}:1: run {target['run_id']}:"
    assert any(p.startswith(where) and needle in p for p in problems), problems


def test_a_reference_mask_that_is_not_the_ticket_fails_check(board):
    ticket = next(r for r in references(board) if r["pruner"] == "planted-ticket")
    path = board / "references" / ticket["mask_file"]
    arrays = dict(np.load(path, allow_pickle=False))
    key = f"{ticket['run_id']}__w1"
    arrays[key] = arrays[key].copy()
    arrays[key][0] ^= 0x80  # one more (or one fewer) weight in layer 1
    np.savez(path, **arrays)
    problems = check(board)
    assert [p for p in problems if ticket["run_id"] in p] == [
        f"{board / 'references' / 'runs.jsonl'}:1: run {ticket['run_id']}: the stored mask is not the "
        "planted-ticket mask of seed 0"]  # the record itself is re-judged from the re-planted ticket


def test_missing_or_misplaced_reference_records_fail_check(board):
    recs = references(board)
    rewrite_references(board, [r for r in recs if r["pruner"] != "dense-host"])
    problems = check(board)
    assert any("no dense-host record for suite quick@1, task relu@1, seed 0" in p
               and "plantbench leaderboard references" in p for p in problems), problems
    moved = dict(recs[0], density_target=0.5)
    moved["run_id"] = run_id(moved["pruner"], {}, moved["suite"], moved["task"], moved["widths"], 0, 0.5)
    rewrite_references(board, [moved, *recs[1:]])
    assert any("density 0.5 but" in p for p in check(board))


def test_entry_names_show_only_the_arguments_that_tell_entries_apart():
    from plantbench.leaderboard.ranking import Entry, distinguishing_args

    entries = [Entry("paper@1", "synflow", {"rounds": 100}), Entry("paper@1", "synflow", {"rounds": 1}),
               Entry("paper@1", "imp", {"rounds": 10, "epochs": 5}), Entry("quick@1", "synflow", {"rounds": 1}),
               Entry("paper@1", "set", {"zeta": 0.3, "epochs": 10}), Entry("paper@1", "set", {"zeta": 0.5, "epochs": 10})]
    distinguishing_args(entries)
    assert [e.name for e in entries] == ["synflow (rounds=100)", "synflow (rounds=1)", "imp", "synflow",
                                         "set (zeta=0.3)", "set (zeta=0.5)"]
