"""Integrity: check recomputes every number the ranking uses, source hashes cover what runs, and
a torn write loses no record.

The leaderboard here is built in a temporary folder from the `quick` suite (magnitude and random
on relu, one seed, with their reference records); no committed record is read.
"""

import hashlib
import json
import shutil
import sys

import pytest
from test_leaderboard import load, problems_about, references, rewrite, rewrite_references

import plantbench.loading
from plantbench.fileio import append_jsonl, read_jsonl, torn_path
from plantbench.leaderboard import build, check, write_references
from plantbench.leaderboard.recompute import WEAK_NORM_TOL, WEAK_RTOL
from plantbench.loading import resolve, source_files, source_sha256
from plantbench.metrics import METRICS
from plantbench.records import ResultStore, validate_record
from plantbench.runner import SweepConfig, sweep


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("integrity")
    for pruner in ("magnitude", "random"):
        sweep(SweepConfig(pruner, suite="quick", tasks=["relu"], seeds=1, device="cpu",
                          out=root / "results" / pruner, jobs=1))
    write_references(root)
    build(root)
    return root


@pytest.fixture
def board(built, tmp_path):
    return shutil.copytree(built, tmp_path / "board")


def test_the_honest_board_passes_with_every_weak_metric_retrained(built):
    assert check(built) == []  # retraining in check's batches reproduces every weak value


def _bump(value):
    return value * 1.01 + 1e-3


def _far(value):  # a weak value beyond retraining's tolerance (WEAK_NORM_TOL on the normalised scale)
    return value * 4 + 0.5


# field -> how to tamper with it; each must fail check with a problem naming record and field.
TAMPER = {
    "weak": lambda r: r.update(weak=_bump(r["weak"])),
    "normalized_weak": lambda r: r.update(normalized_weak=r["normalized_weak"] + 0.05),
    "normalized_strong": lambda r: r.update(normalized_strong=r["normalized_strong"] + 0.05),
    "references.ticket_weak": lambda r: r["references"].update(ticket_weak=_bump(r["references"]["ticket_weak"])),
    "references.dense_weak": lambda r: r["references"].update(dense_weak=_bump(r["references"]["dense_weak"])),
    "references.ticket_strong": lambda r: r["references"].update(ticket_strong=_bump(r["references"]["ticket_strong"])),
    "references.chance": lambda r: r["references"].update(chance=_bump(r["references"]["chance"])),
    "ticket_size": lambda r: r.update(ticket_size=r["ticket_size"] + 1),
    "ticket_density": lambda r: r.update(ticket_density=r["ticket_density"] * 1.5),
}


@pytest.mark.parametrize("field", list(TAMPER))
def test_a_tampered_entry_fails_check_naming_record_and_field(board, field):
    recs = load(board)
    TAMPER[field](recs[1])
    rewrite(board, recs)
    problems = check(board)
    assert problems_about(problems, board, recs[1], 2, f"{field} "), problems
    assert not [p for p in problems if f"run {recs[0]['run_id']}:" in p]  # the untouched record passes


def test_weak_changed_with_its_normalised_value_is_caught_by_retraining(board):
    """The careful cheat: weak set to the planted ticket's value and normalized_weak to 1.0."""
    recs = load(board)
    i = min(range(len(recs)), key=lambda j: recs[j]["normalized_weak"])
    r = recs[i]
    assert r["normalized_weak"] < 1 - 2 * WEAK_NORM_TOL  # far enough from the ticket to tell
    r["weak"], r["normalized_weak"] = r["references"]["ticket_strong"], 1.0
    rewrite(board, recs)
    [p] = problems_about(check(board), board, r, i + 1, "weak ")
    assert "but retraining the mask gives" in p


def test_weak_in_a_reference_record_is_retrained_too(board):
    recs = references(board)
    recs[1]["weak"] = _far(recs[1]["weak"])
    rewrite_references(board, recs)
    where = f"{board / 'references' / 'runs.jsonl'}:2: run {recs[1]['run_id']}: weak "
    assert any(p.startswith(where) for p in check(board))


def _renormalised(r, weak):
    return dict(r, weak=weak, normalized_weak=METRICS[r["metric"]].normalise(
        weak, r["references"]["chance"], r["references"]["ticket_strong"]))


def test_weak_is_exact_on_its_own_platform_and_bounded_on_average_from_another(board):
    """A record from this platform (torch build, CPU instruction set, device cpu) retrains bit for
    bit, so a small edit fails. A record naming another platform gets WEAK_NORM_TOL, but an entry
    whose records all lie above retraining fails as a whole: rounding scatters around zero."""
    recs = load(board)
    orig, r = load(board), recs[0]

    def moved(rec, by):  # the record with weak `by` higher on the normalised scale (MSE: log scale)
        metric, ref = METRICS[rec["metric"]], rec["references"]
        spread = metric.normalise(rec["weak"] * 2, ref["chance"], ref["ticket_strong"]) - rec["normalized_weak"]
        return _renormalised(rec, rec["weak"] * 2 ** (by / spread))

    recs[0] = moved(r, WEAK_NORM_TOL / 4)
    assert abs(recs[0]["weak"] - r["weak"]) > 100 * WEAK_RTOL * r["weak"]
    rewrite(board, recs)
    assert problems_about(check(board), board, r, 1, "weak ")  # a small edit, this platform

    elsewhere = [{"versions": {**r["versions"], "torch": "0.0.1"}}, {"versions": {**r["versions"], "cpu": "VSX"}},
                 {"device": "cuda (a GPU)"}]
    for field in elsewhere:
        recs[0] = dict(moved(r, WEAK_NORM_TOL / 4), **field)
        rewrite(board, recs)
        found = check(board)
        assert not problems_about(found, board, r, 1, "weak ") and not [p for p in found if p.startswith("entry ")]
        recs[0] = dict(moved(r, 2 * WEAK_NORM_TOL), **field)
        rewrite(board, recs)
        assert problems_about(check(board), board, r, 1, "weak "), f"{field} loosened the bound past WEAK_NORM_TOL"

    same = [i for i, q in enumerate(recs) if q["pruner"] == r["pruner"] and q["metric"] == r["metric"]]
    by = 0.9 * WEAK_NORM_TOL  # within every record's bound, above WEAK_NORM_TOL / sqrt(n) on average
    assert by > 1.2 * WEAK_NORM_TOL / len(same) ** 0.5
    for i in same:
        recs[i] = dict(moved(orig[i], by), **elsewhere[0])
    rewrite(board, recs)
    found = check(board)
    assert not [p for p in found if " weak " in p and "run " in p]
    [entry] = [p for p in found if p.startswith("entry ")]
    assert f"{r['pruner']}" in entry and "above retraining on average" in entry


# --- the source hash covers what runs ------------------------------------------------------------

PRUNER = '''from helper import score
from plantbench import ScorePruner


class TwoFiles(ScorePruner):
    name = "two-files"

    def score(self, problem):
        return score(problem)
'''
HELPER = '''import math
import torch


def score(problem):
    return {k: v.abs() for k, v in problem.model.named_parameters()}
'''


def test_a_pruner_of_one_file_hashes_as_its_bytes(tmp_path):
    (tmp_path / "solo.py").write_text(PRUNER.replace("from helper import score\n", ""))
    data = (tmp_path / "solo.py").read_bytes()
    assert source_sha256(str(tmp_path / "solo.py")) == hashlib.sha256(data).hexdigest()
    spec = resolve("magnitude")  # a baseline that imports nothing of the submission side
    assert spec.source_sha256 == hashlib.sha256((plantbench.loading.baselines_dir() / "magnitude.py").read_bytes()).hexdigest()


def importable(monkeypatch, folder):
    """A submission's helpers import as they would from its folder on PYTHONPATH."""
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, "helper", raising=False)


def test_changing_only_an_imported_helper_changes_the_hash(tmp_path, monkeypatch):
    importable(monkeypatch, tmp_path)
    (tmp_path / "pruner.py").write_text(PRUNER)
    (tmp_path / "helper.py").write_text(HELPER)
    (tmp_path / "unrelated.py").write_text("x = 1\n")
    names = [name for name, _ in source_files(tmp_path / "pruner.py")]
    assert names == ["helper.py", "pruner.py"]  # not math, torch, plantbench, nor a file it does not import
    before = resolve(str(tmp_path / "pruner.py")).source_sha256
    (tmp_path / "unrelated.py").write_text("x = 2\n")
    assert resolve(str(tmp_path / "pruner.py")).source_sha256 == before
    (tmp_path / "helper.py").write_text(HELPER.replace("v.abs()", "v.abs() + 0"))
    assert source_sha256(str(tmp_path / "pruner.py")) != before


def test_packages_and_relative_imports_are_followed_transitively(tmp_path):
    pkg = tmp_path / "lib" / "inner"
    pkg.mkdir(parents=True)
    (tmp_path / "lib" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from .deep import f\n")
    (pkg / "deep.py").write_text("from . import leaf\nf = 1\n")
    (pkg / "leaf.py").write_text("g = 2\n")
    (tmp_path / "main.py").write_text("from lib.inner import f\n")
    names = [name for name, _ in source_files(tmp_path / "main.py")]
    assert names == ["lib/__init__.py", "lib/inner/__init__.py", "lib/inner/deep.py", "lib/inner/leaf.py", "main.py"]
    before = source_sha256(str(tmp_path / "main.py"))
    (pkg / "leaf.py").write_text("g = 3\n")  # three imports away
    assert source_sha256(str(tmp_path / "main.py")) != before


def test_a_baseline_that_imports_another_baseline_hashes_both(tmp_path, monkeypatch):
    folder = tmp_path / "baselines"
    folder.mkdir()
    (folder / "__init__.py").write_text('"""baselines"""\n')
    (folder / "base.py").write_text("def score(p):\n    return 1\n")
    (folder / "derived.py").write_text("from plantbench.baselines.base import score\nfrom .base import score as s\n")
    (folder / "other.py").write_text("from baselines.base import score\n")
    monkeypatch.setattr(plantbench.loading, "baselines_dir", lambda: folder)
    assert [n for n, _ in source_files(folder / "derived.py")] == ["baselines/base.py", "baselines/derived.py"]
    assert [n for n, _ in source_files(folder / "other.py")] == ["baselines/base.py", "baselines/other.py"]
    before = source_sha256(str(folder / "derived.py"))
    (folder / "base.py").write_text("def score(p):\n    return 2\n")
    assert source_sha256(str(folder / "derived.py")) != before


def test_the_sandbox_refuses_a_pruner_whose_helper_changed(tmp_path, monkeypatch):
    from plantbench import sandbox

    importable(monkeypatch, tmp_path)
    (tmp_path / "pruner.py").write_text(PRUNER)
    (tmp_path / "helper.py").write_text(HELPER)
    spec = resolve(str(tmp_path / "pruner.py"))
    (tmp_path / "helper.py").write_text(HELPER + "\n# edited\n")
    reply, blob = sandbox._call({"pruner": spec, "args": {}, "problem": None})
    assert not reply["ok"] and "changed during the sweep" in reply["error"] and blob == b""


def test_new_records_carry_the_plantbench_version_and_old_ones_stay_valid(built):
    from plantbench import __version__

    rec = load(built)[0]
    assert rec["plantbench_version"] == __version__
    old = {k: v for k, v in rec.items() if k != "plantbench_version"}
    validate_record(old, "old")


# --- torn writes ----------------------------------------------------------------------------------


def test_a_torn_last_line_is_reported_set_aside_and_its_run_redone(built, tmp_path, capfd):
    out = shutil.copytree(built / "results" / "magnitude", tmp_path / "out")
    path = out / "runs.jsonl"
    whole = path.read_bytes()
    complete = whole.splitlines(keepends=True)
    torn = complete[-1][: len(complete[-1]) // 2]
    path.write_bytes(b"".join(complete[:-1]) + torn)  # the last write cut short
    last = json.loads(complete[-1])

    store = ResultStore(out)
    records, problems = store.records()
    assert len(records) == len(complete) - 1
    assert problems == [f"{path}:{len(complete)}: torn line (no newline at the end: a write cut short); its run "
                        "is not finished"]
    assert last["run_id"] not in store.finished()

    capfd.readouterr()
    result = sweep(SweepConfig("magnitude", suite="quick", tasks=["relu"], seeds=1, device="cpu", out=out, jobs=1))
    err = capfd.readouterr().err
    assert err.count("torn line") == 1 and str(path) in err
    assert [r["run_id"] for r in result.records] == [last["run_id"]]  # only the torn run is redone
    assert torn_path(path).read_bytes() == torn + b"\n"
    after = path.read_bytes()
    assert after.startswith(b"".join(complete[:-1])) and after.endswith(b"\n")
    assert read_jsonl(path)[1] == []
    assert set(store.finished()) == {json.loads(line)["run_id"] for line in complete}


def test_append_after_a_torn_line_loses_no_complete_record_and_warns_once(tmp_path, capfd):
    path = tmp_path / "runs.jsonl"
    append_jsonl(path, [{"a": 1}, {"b": 2}])
    with open(path, "ab") as f:
        f.write(b'{"c": 3}')  # complete JSON, but its newline never made it: still torn
    assert read_jsonl(path)[0] == [{"a": 1}, {"b": 2}]
    append_jsonl(path, [{"d": 4}])
    append_jsonl(path, [{"e": 5}])
    err = capfd.readouterr().err
    assert err.count("torn line") == 1 and f"{path} ended in a torn line (8 bytes" in err
    assert read_jsonl(path) == ([{"a": 1}, {"b": 2}, {"d": 4}, {"e": 5}], [])
    assert torn_path(path).read_text() == '{"c": 3}\n'


def test_a_file_that_is_one_torn_line_is_emptied_into_its_side_file(tmp_path, capfd):
    path = tmp_path / "runs.jsonl"
    path.write_bytes(b'{"half": ')
    append_jsonl(path, [{"x": 1}])
    assert path.read_text() == '{"x": 1}\n' and torn_path(path).read_text() == '{"half": \n'
    assert "torn line" in capfd.readouterr().err
