"""Secret seeds, the sealed pruner process and verification: a leaderboard result cannot be gamed
by re-planting the public seeds or by reading the seed out of the pruner's surroundings."""

import base64
import hashlib
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from plantbench.cli import cli
from plantbench.config import SweepConfig
from plantbench.errors import PrunerError
from plantbench.leaderboard import verified
from plantbench.leaderboard.check import _verification_problems
from plantbench.leaderboard.results import read_results
from plantbench.plant import plant_task
from plantbench.records import run_id
from plantbench.runner import sweep
from plantbench.seal import SeedKey, SeedKeyError, child_env, fingerprint, load_key
from plantbench.seeding import derive_seed
from plantbench.suite import get_suite
from plantbench.task import get_task
from plantbench.verify import FLOOR, K, cells, consistent, judge_cells, tolerance, verify

ROOT = Path(__file__).resolve().parent.parent
KEY = base64.b64encode(bytes(range(40)))  # 56 bytes of text, as `head -c 40 /dev/urandom | base64` gives
OTHER = base64.b64encode(bytes(range(1, 41)))

# Re-plants seeds 0..49 of the task at the host's sizes and, where one matches its host, scores
# the planted ticket's weights above every other: recall 1 at the ticket's density.
REPLANT = '''
import torch

from plantbench import ScorePruner
from plantbench.plant import plant_task
from plantbench.task import get_task


class Replant(ScorePruner):
    name = "replant"

    def score(self, problem, mask):
        scores = {n: p.detach().abs() for n, p in problem.model.prunable()}
        sizes = problem.model.sizes
        first = problem.model.layers[0].weight.detach().cpu()
        for seed in range(50):
            net = plant_task(get_task(problem.task.name), len(sizes) - 1, sizes[1:-1], seed)
            if torch.equal(net.weights[0].cpu(), first):
                return {n: s + 1e6 * t.to(s) for (n, s), t in zip(scores.items(), net.ticket_weights)}
        return scores
'''

# Looks for the run's derived seeds (given XOR a pad, so that the values themselves never reach
# its process through its arguments), the planted ticket and the test split (by sha256) in every
# place its process can see; raises, failing its run, at the first it finds.
PROBE = '''
import gc
import hashlib
import inspect
import os
import re
import sys

import numpy as np
import torch

from plantbench import ScorePruner

DIGITS = re.compile(r"[0-9]{6,20}")


class Probe(ScorePruner):
    name = "probe"

    def __init__(self, pad=0, masked=(), hashes=()):
        super().__init__()
        self.pad, self.masked, self.hashes = pad, set(masked), set(hashes)

    def hit(self, value, seen, depth=0):
        if isinstance(value, bool) or id(value) in seen or depth > 4:
            return False
        seen.add(id(value))
        if isinstance(value, int):
            return (value ^ self.pad) in self.masked
        if isinstance(value, (str, bytes)):
            text = value.decode("latin-1") if isinstance(value, bytes) else value
            return any((int(d) ^ self.pad) in self.masked for d in DIGITS.findall(text[:100000]))
        if isinstance(value, (torch.Tensor, np.ndarray)):
            a = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
            return any(hashlib.sha256(np.ascontiguousarray(a.astype(t)).tobytes()).hexdigest() in self.hashes
                       for t in (bool, np.float32)) if a.dtype.kind in "bf" and a.size else False
        if isinstance(value, dict):
            return any(self.hit(k, seen, depth + 1) or self.hit(v, seen, depth + 1) for k, v in list(value.items()))
        if isinstance(value, (list, tuple, set, frozenset)):
            return any(self.hit(v, seen, depth + 1) for v in list(value)[:100000])
        if hasattr(value, "__dict__") and not inspect.ismodule(value):
            return self.hit(vars(value), seen, depth + 1)
        return False

    def score(self, problem, mask):
        places = {"environment": dict(os.environ), "argv": list(sys.argv)}
        places["plantbench variables"] = [k for k in os.environ if k.upper().startswith("PLANTBENCH")]
        cwd = os.getcwd()
        places["cwd"] = [open(os.path.join(cwd, f), "rb").read() for f in os.listdir(cwd)]
        if places["plantbench variables"] or places["cwd"]:
            raise RuntimeError(f"found: {places['plantbench variables']} {os.listdir(cwd)}")
        places["frames"] = [f.frame.f_locals for f in inspect.stack()]
        places["modules"] = [vars(m) for m in list(sys.modules.values()) if m is not None]
        places["gc"] = [o for o in gc.get_objects() if isinstance(o, (dict, list, tuple, torch.Tensor))]
        for where, value in places.items():
            seen = {id(places)} | {id(v) for k, v in places.items() if k != where}
            if self.hit(value, seen):
                raise RuntimeError(f"found a secret in the {where}")
        return {n: p.detach().abs() for n, p in problem.model.prunable()}
'''


def _sweep(out, pruner, key=None, seeds=1, args=None, tasks=("circle",)):
    config = SweepConfig(pruner, args or {}, "quick", tasks, seeds=seeds, out=out, jobs=1, seed_key=key)
    return sweep(config)


def _write_key(tmp_path, data=KEY, name="key"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- keys -----------------------------------------------------------------------------------


def test_one_key_gives_the_same_seeds_another_key_others():
    a, b = SeedKey(KEY), SeedKey(OTHER)
    seeds = [a.derive("quick@1", "circle@1", i) for i in range(3)]
    assert seeds == [SeedKey(KEY).derive("quick@1", "circle@1", i) for i in range(3)]
    assert len(set(seeds)) == 3 and all(0 <= s < 2 ** 63 and s > 1000 for s in seeds)
    assert not set(seeds) & {b.derive("quick@1", "circle@1", i) for i in range(3)}
    assert a.derive("quick@1", "relu@1", 0) != seeds[0] and a.derive("paper@1", "circle@1", 0) != seeds[0]
    assert a.fingerprint == fingerprint(KEY) != b.fingerprint and len(a.fingerprint) == 16
    assert KEY.decode() not in repr(a) and a.fingerprint in repr(a)
    with pytest.raises(TypeError):
        __import__("pickle").dumps(a)


def test_short_missing_and_unreadable_keys_are_one_line_errors_without_content(tmp_path):
    short = _write_key(tmp_path, b"hunter2-not-a-key", "short")
    runner = CliRunner()
    for key, why in [(short, "17 bytes"), (tmp_path / "absent", "cannot read it"), (tmp_path, "cannot read it")]:
        res = runner.invoke(cli, ["run", "--pruner", "magnitude", "--suite", "quick", "--out", str(tmp_path / "r"),
                                  "--seed-key", str(key)])
        assert res.exit_code == 2 and why in res.output and res.output.count("\n") == 1, res.output
        assert "hunter2" not in res.output and "Traceback" not in res.output
    res = runner.invoke(cli, ["run", "--pruner", "magnitude", "--suite", "quick", "--seed-key", "-"], input="hunter2\n")
    assert res.exit_code == 2 and "standard input: 7 bytes" in res.output and "hunter2" not in res.output
    assert load_key("-", stdin=__import__("io").BytesIO(KEY + b"\n")) == SeedKey(KEY)
    with pytest.raises(SeedKeyError):
        SeedKey(b"x" * 31)


def test_public_run_ids_are_unchanged_and_keyed_ones_differ():
    rec = json.loads((ROOT / "leaderboard/results/magnitude/runs.jsonl").read_text().splitlines()[0])
    args = (rec["pruner"], rec["pruner_args"], rec["suite"], rec["task"], rec["widths"], rec["seed"], rec["density_target"])
    assert run_id(*args) == rec["run_id"] == run_id(*args, seed_key=None)
    assert run_id(*args, seed_key=fingerprint(KEY)) != rec["run_id"] != run_id(*args, seed_key=fingerprint(OTHER))


def _secrets(key: SeedKey, task="circle", seeds=1) -> tuple[list[int], list[str]]:
    """Every seed derived for the runs (planting, host, data, pruner generator), and the sha256 of
    each planted ticket layer and test split."""
    suite, t = get_suite("quick"), get_task(task)
    values, hashes = [], []
    for i in range(seeds):
        s = key.derive(suite.id, t.id, i)
        values += [s] + [derive_seed(s, p) for p in ("host", "data", "pruner", "judge")]
        net = plant_task(t, suite.depth, suite.widths, s)
        hashes += [hashlib.sha256(m.numpy().astype(bool).tobytes()).hexdigest() for m in net.ticket_weights]
        hashes.append(hashlib.sha256(t.dataset(s).x_test.numpy().astype(np.float32).tobytes()).hexdigest())
    return values, hashes


def test_keyed_sweep_writes_no_seed_and_no_key_and_refuses_another_key(tmp_path):
    out = tmp_path / "r"
    res = _sweep(out, "magnitude", _write_key(tmp_path), seeds=2)
    assert res.records and all(r["status"] == "ok" and r["seed_key"] == fingerprint(KEY) for r in res.records)
    assert {r["seed"] for r in res.records} == {0, 1}
    derived = [str(v) for v in _secrets(SeedKey(KEY), seeds=2)[0]]  # the pruner generator's seed too
    for f in [p for p in out.rglob("*") if p.is_file()]:
        data = f.read_bytes()
        assert KEY not in data and fingerprint(KEY) not in f.name, f
        if f.suffix == ".npz":
            with np.load(f) as z:
                data = b"".join(z[k].tobytes() for k in z.files) + " ".join(z.files).encode()
        assert not [v for v in derived if v.encode() in data], f
    for key in (_write_key(tmp_path, OTHER, "other"), None):
        with pytest.raises(Exception, match="seed key|public-seed") as e:
            _sweep(out, "magnitude", key, seeds=2)
        assert KEY.decode() not in str(e.value)
    if sys.platform.startswith("linux"):  # the coordinator made itself non-dumpable
        import ctypes

        assert ctypes.CDLL(None).prctl(3, 0, 0, 0, 0) == 0  # PR_GET_DUMPABLE
    assert child_env({"PLANTBENCH_X": "1", "plantbench_y": "2", "HOME": "/h"}) == {"HOME": "/h"}


# --- gaming -----------------------------------------------------------------------------------


def test_a_replanting_pruner_wins_on_public_seeds_and_finds_nothing_under_a_key(tmp_path):
    cheat = tmp_path / "replant.py"
    cheat.write_text(REPLANT)
    public = _sweep(tmp_path / "pub", str(cheat)).records
    secret = _sweep(tmp_path / "sec", str(cheat), _write_key(tmp_path)).records
    at_ticket = [r for r in public if r["density_target"] == r["ticket_density"]]
    assert at_ticket and all(r["recall"] == 1.0 for r in at_ticket)
    assert all(r["status"] == "ok" and r["recall"] < 0.5 for r in secret)


def test_the_pruners_process_holds_no_seed_ticket_or_test_split(tmp_path, monkeypatch):
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    key = SeedKey(KEY)
    values, hashes = _secrets(key)
    pad = 0x5DEECE66D1234567
    planted = values[:3] + values[4:]  # not values[3]: the pruner's own generator seed is its to know
    args = {"pad": pad, "masked": [v ^ pad for v in planted], "hashes": hashes}
    monkeypatch.setenv("PLANTBENCH_SECRET_SETTING", "1")
    recs = _sweep(tmp_path / "r", str(probe), key, args=args).records
    assert recs and all(r["status"] == "ok" for r in recs), [r["error"] for r in recs]
    # The probe can fail: a seed leaked into the environment is found.
    monkeypatch.setenv("LEAKED_FOR_THE_TEST", f"seed={planted[0]}")
    recs = _sweep(tmp_path / "leak", str(probe), key, args=args).records
    assert recs and all(r["status"] == "failed" and "found a secret in the environment" in r["error"] for r in recs), [r["error"] for r in recs]


IMPORT_WITNESS = '''
import os

from plantbench import ScorePruner

with open({log!r}, "a") as f:  # runs wherever this file is imported
    f.write(f"{{os.getpid()}}\\n")


class Witness(ScorePruner):
    name = "witness"

    def __init__(self, power: float = 2.0, label: str = "w"):
        super().__init__()
        self.power = power

    def score(self, problem, mask):
        return {{n: p.detach().abs() ** self.power for n, p in problem.model.prunable()}}
'''


def test_a_pruner_files_code_never_runs_where_seeds_are_derived(tmp_path):
    """Importing the file, building the pruner and pruning all happen in pruner processes; the
    sweep learns the class, name and every constructor argument from one of them."""
    log = tmp_path / "pids"
    witness = tmp_path / "witness.py"
    witness.write_text(IMPORT_WITNESS.format(log=str(log)))
    recs = _sweep(tmp_path / "r", str(witness), _write_key(tmp_path), args={"power": 1.5}).records
    assert recs and all(r["status"] == "ok" for r in recs)
    assert all(r["pruner"] == "witness" and r["pruner_args"] == {"power": 1.5, "label": "w"} for r in recs)
    pids = log.read_text().split()
    assert pids and str(os.getpid()) not in pids


def test_a_constructor_default_a_record_cannot_hold_is_a_one_line_error(tmp_path):
    witness = tmp_path / "witness.py"
    witness.write_text(IMPORT_WITNESS.format(log=str(tmp_path / "pids")).replace('label: str = "w"', "label=(1, 2)"))
    with pytest.raises(PrunerError, match=r"^Witness argument 'label' is \(1, 2\); records hold every constructor"):
        _sweep(tmp_path / "r", str(witness))
    assert not (tmp_path / "r").exists()


# --- verification -----------------------------------------------------------------------------


def test_the_tolerance_rule_on_known_cases():
    assert tolerance([0.5], [0.5]) == FLOOR  # no spread: the floor
    assert tolerance([0.2, 0.8], [0.5, 0.5]) == pytest.approx(K * 0.3)  # sd 0.424 over 2: se 0.3
    assert consistent([0.9, 0.9], [0.9 - FLOOR + 1e-9])
    assert not consistent([1.0, 1.0, 1.0], [0.01, 0.02, 0.0])  # the re-planting pruner
    assert consistent([0.1, 0.1], [1.0, 1.0])  # better on secret seeds: no sign of gaming
    # Recall on a 4-entry ticket moves in steps of 0.25: five public seeds at 0.25 or 0.5 and three
    # secret seeds at 0 have little sample spread, but a random mask at density 0.1 gives exactly that.
    lucky, unlucky = [0.25, 0.5, 0.5, 0.25, 0.25], [0.0, 0.0, 0.0]
    assert not consistent(lucky, unlucky) and consistent(lucky, unlucky, steps=4)
    assert tolerance(lucky, unlucky, steps=4) == pytest.approx(K * math.sqrt(0.21875 * 0.78125 / 4 * (1 / 5 + 1 / 3)))
    assert not consistent([1.0] * 5, [0.0, 0.25, 0.0], steps=4)  # the re-planting pruner on relu
    assert not consistent([1.0] * 5, [0.01, 0.02, 0.0], steps=100)  # and on a 100-weight ticket
    noisy = [0.0, 0.6, 0.2, 0.8, 0.4]
    assert consistent(noisy, [0.1, 0.0, 0.2]) and not consistent([0.9, 0.95, 0.92, 0.91, 0.94], [0.5, 0.55, 0.6])


def test_verify_passes_an_honest_pruner_and_fails_a_replanting_one(tmp_path):
    key = _write_key(tmp_path)
    _sweep(tmp_path / "honest", "magnitude", seeds=2)
    v = verify("magnitude", tmp_path / "honest", key, seeds=2)
    assert v.verdict == "verified" and v.reason is None and v.path == tmp_path / "honest" / verified.FILE
    doc, problem = verified.read(tmp_path / "honest")
    assert problem is None and doc["verdict"] == "verified" and doc["seeds"] == 2
    assert doc["seed_key"] == fingerprint(KEY) and KEY.decode() not in v.path.read_text()
    cheat = tmp_path / "replant.py"
    cheat.write_text(REPLANT)
    _sweep(tmp_path / "cheat", str(cheat), seeds=2)
    v = verify(str(cheat), tmp_path / "cheat", key, seeds=2)
    assert v.verdict == "failed" and v.reason.startswith("circle@1 at ")
    assert "on public seeds" in v.reason and "on secret seeds" in v.reason
    assert json.loads(v.path.read_text())["reason"] == v.reason
    cheat.write_text(REPLANT + "\n# changed\n")
    v = verify(str(cheat), tmp_path / "cheat", key, seeds=2)
    assert v.verdict == "failed" and "stale entry" in v.reason


def test_leaderboard_check_reads_verification_json_strictly(tmp_path):
    root = tmp_path / "board"
    entry = root / "results" / "honest"
    _sweep(entry, "magnitude")
    assert _verification_problems(read_results(root)[0]) == []  # none yet: nothing to check
    verify("magnitude", entry, _write_key(tmp_path), seeds=1)
    records = read_results(root)[0]
    assert _verification_problems(records) == []
    assert verified.state({(entry, root)}, {records[0].rec["pruner_source_sha256"]}) == "verified"
    good = json.loads((entry / verified.FILE).read_text())
    for field, value in [("seeds", "1"), ("verdict", "passed"), ("pruner_source_sha256", "0" * 64),
                         ("seed_key", "key"), ("extra", 1)]:
        (entry / verified.FILE).write_text(json.dumps({**good, field: value}))
        found = _verification_problems(records)
        assert len(found) == 1 and verified.FILE in found[0] and repr(field) in found[0], found
        assert verified.state({(entry, root)}, {records[0].rec["pruner_source_sha256"]}) == "not yet"
    (entry / verified.FILE).write_text(json.dumps({**good, "summary": [{"task": 1}]}))
    assert "summary[0]" in _verification_problems(records)[0]
    (entry / verified.FILE).write_text(json.dumps(good).replace('"format": 1', '"format": NaN'))
    assert "'format': NaN is not allowed" in _verification_problems(records)[0]


def test_runs_failing_only_on_secret_seeds_fail_the_verification():
    def rec(seed, status="ok", recall=0.5):
        base = {"task": "circle@1", "density_target": 0.1, "ticket_density": 0.01, "status": status, "seed": seed}
        return {**base, **({"normalized_weak": 0.5, "normalized_strong": 0.5, "recall": recall} if status == "ok" else {})}

    public = cells([rec(0), rec(1)])
    rows, reason = judge_cells(public, cells([rec(0), rec(1, "failed")]))
    assert reason == "circle@1 at density 0.1: 1 run(s) failed on secret seeds, none on public seeds"
    assert [r[-1] for r in rows] == [False]
    assert judge_cells(cells([rec(0), rec(1, "failed")]), cells([rec(0), rec(1, "failed")]))[1] is None
    assert judge_cells(public, cells([rec(0), rec(1)]))[1] is None
    _, reason = judge_cells(public, cells([rec(0, recall=0.01), rec(1, recall=0.0)]))
    assert reason == "circle@1 at density 0.1: recall 0.50 on public seeds, 0.01 on secret seeds (allowed gap 0.15)"
