"""Sweeps against unlucky and hostile users: hanging and dying pruners, signals, odd masks, two
writers, damaged results folders, and hostile names and arguments."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest
import torch
from click.testing import CliRunner

from plantbench.cli import cli
from plantbench.errors import MaskError, PlantbenchError
from plantbench.mask import validate_mask
from plantbench.records import LOCK_FILE, ResultStore

# Hangs on its first helix call (after starting a process of its own) and kills its own process
# on its first circle call; the marker
# files (created atomically) make each happen once, whichever process gets there first.
HANG_AND_DIE = '''
import os
import subprocess
import time

from plantbench import Mask, Pruner

FOLDER = {folder!r}


def first(name):
    try:
        os.close(os.open(os.path.join(FOLDER, name), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


class HangsAndDies(Pruner):
    name = "hangs-and-dies"

    def prune(self, problem):
        if problem.task.name == "helix" and first("hung"):
            subprocess.Popen(["sleep", "300"])  # what the pruner starts ends with its process
            while True:
                time.sleep(1)
        if problem.task.name == "circle" and first("died"):
            os._exit(3)
        return Mask.top_k({{n: p.detach().abs() for n, p in problem.model.prunable()}}, problem.density)
'''

# Prunes its first run, then hangs: a signal arrives while the group's second run is in flight.
PRUNES_ONCE_THEN_HANGS = '''
import os
import time

from plantbench import Mask, Pruner

FOLDER = {folder!r}


class PrunesOnceThenHangs(Pruner):
    name = "prunes-once-then-hangs"

    def prune(self, problem):
        if os.path.exists(os.path.join(FOLDER, "pruned")):
            open(os.path.join(FOLDER, "hanging"), "w").close()
            while True:
                time.sleep(1)
        open(os.path.join(FOLDER, "pruned"), "w").close()
        return Mask.top_k({{n: p.detach().abs() for n, p in problem.model.prunable()}}, problem.density)
'''

# One fault per run of the quick suite (one seed): task and density pick it.
HOSTILE = '''
import sys

import torch

from plantbench import Mask, Pruner


class Marked(torch.Tensor):
    pass


class Hostile(Pruner):
    name = "hostile"

    def prune(self, problem):
        m = dict(Mask.top_k({n: p.detach().abs() for n, p in problem.model.prunable()}, problem.density))
        sparse = abs(problem.density - 0.1) > 1e-9  # the ticket's density run, not the 0.1 one
        if problem.task.name == "relu":
            if sparse:
                raise SystemExit(3)
            raise KeyboardInterrupt
        if problem.task.name == "circle":
            if sparse:
                torch.set_default_dtype(torch.float64)  # global state the judge must never see
                torch.set_grad_enabled(False)
                return {k: v.to_sparse() for k, v in m.items()}
            return {k: v.as_subclass(Marked) for k, v in m.items()}
        if sparse:
            sys.exit("bye")
        return {k: torch.empty(v.shape, dtype=torch.bool, device="meta") for k, v in m.items()}
'''


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def records(out):
    return ResultStore(out).records()[0]


def tagged_processes(tag):
    """Every process whose environment carries the tag (a sweep's coordinator and all it started)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read()
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if f"SWEEP_TEST_TAG={tag}".encode() in env and state != "Z":
            found.append(int(pid))
    return found


def gone(tag, wait=8.0):
    """The tagged processes still alive after up to `wait` seconds (an empty list when all ended)."""
    deadline = time.monotonic() + wait
    while (alive := tagged_processes(tag)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return alive


def start_run(tmp_path, tag, *args):
    """The sweep as a user's terminal starts it. SIGINT gets its default action back first: a test
    session started in the background (`cmd &`, nohup) inherits SIGINT ignored, and Python then
    never turns Ctrl-C into KeyboardInterrupt, so the sweep could not be interrupted at all."""
    env = {**os.environ, "SWEEP_TEST_TAG": tag}
    return subprocess.Popen([sys.executable, "-m", "plantbench.cli", "run", "--suite", "quick", "--device", "cpu",
                             "--quiet", *map(str, args)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for(path, proc, limit=120.0):
    deadline = time.monotonic() + limit
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


# --- hangs, deaths and signals ----------------------------------------------------------------


def test_a_hanging_and_a_dying_pruner_fail_alone_and_leave_no_process(tmp_path):
    pruner = write(tmp_path, "hang_and_die.py", HANG_AND_DIE.format(folder=str(tmp_path)))
    tag = uuid.uuid4().hex
    out = tmp_path / "out"
    # 30 s: a loaded machine must not turn the dying pruner's run into a timeout before it dies
    proc = start_run(tmp_path, tag, "--pruner", pruner, "--run-timeout", 30, "--jobs", 2, "--out", out)
    output = proc.communicate(timeout=400)[0]
    assert proc.returncode == 1, output
    recs = records(out)
    assert len(recs) == 12 and len({r["run_id"] for r in recs}) == 12
    failed = {r["task"]: r["error"] for r in recs if r["status"] == "failed"}
    assert failed.keys() == {"helix@1", "circle@1"}, failed
    assert failed["helix@1"] == "timeout after 30 s"
    assert "the pruner's process died (exit code 3" in failed["circle@1"]
    assert "2 run(s) failed" in output and "timeout after 30 s" in output
    assert gone(tag) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_saves_the_runs_already_pruned_and_leaves_no_process(tmp_path, sig):
    pruner = write(tmp_path, "once.py", PRUNES_ONCE_THEN_HANGS.format(folder=str(tmp_path)))
    tag = uuid.uuid4().hex
    out = tmp_path / "out"
    proc = start_run(tmp_path, tag, "--pruner", pruner, "--task", "relu", "--seeds", 1, "--jobs", 1, "--out", out)
    wait_for(tmp_path / "hanging", proc)
    proc.send_signal(sig)
    try:
        output = proc.communicate(timeout=300)[0]
    finally:
        if proc.poll() is None:  # it ignored the signal: stop it, and its pruner's process, here
            proc.kill()
            proc.communicate()
            gone(tag)
    assert proc.returncode == 130, output
    assert "interrupted; finished runs are saved and a rerun resumes" in output
    assert "Traceback" not in output
    recs = records(out)
    assert [r["status"] for r in recs] == ["ok"] and (out / recs[0]["mask_file"]).exists()
    assert not (out / LOCK_FILE).exists()
    assert gone(tag) == []


def test_a_killed_coordinator_leaves_no_worker_or_pruner_process(tmp_path):
    pruner = write(tmp_path, "once.py", PRUNES_ONCE_THEN_HANGS.format(folder=str(tmp_path)))
    tag = uuid.uuid4().hex
    proc = start_run(tmp_path, tag, "--pruner", pruner, "--task", "relu", "--task", "circle", "--seeds", 1,
                     "--jobs", 2, "--out", tmp_path / "out")
    wait_for(tmp_path / "hanging", proc)
    assert len(tagged_processes(tag)) >= 3  # the coordinator, a worker and a pruner's process at least
    proc.kill()
    proc.communicate()
    assert gone(tag) == []
    again = invoke("run", "--pruner", pruner, "--suite", "quick", "--task", "relu", "--seeds", 1, "--jobs", 1,
                   "--quiet", "--out", tmp_path / "out", "--run-timeout", 0.5)  # the dead run's lock is free
    assert "timeout after 0.5 s" in again.output


# --- faults inside the pruner's process ----------------------------------------------------------


def test_exits_odd_tensors_and_global_state_become_records(tmp_path):
    pruner = write(tmp_path, "hostile.py", HOSTILE)
    out = tmp_path / "out"
    result = invoke("run", "--pruner", pruner, "--suite", "quick", "--seeds", 1, "--jobs", 1, "--quiet", "--out", out)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    by = {(r["task"], abs(r["density_target"] - 0.1) > 1e-9): r for r in records(out)}
    assert len(by) == 6
    assert by["relu@1", True]["error"].startswith("SystemExit: 3 (at hostile.py:")
    assert by["relu@1", False]["error"].startswith("KeyboardInterrupt (at hostile.py:")
    assert by["helix@1", True]["error"].startswith("SystemExit: bye (at hostile.py:")
    assert "cannot be read as a dense tensor" in by["helix@1", False]["error"]
    # A sparse mask, a tensor subclass and changed global state: normalised or undone, judged as usual.
    for dense in (True, False):
        rec = by["circle@1", dense]
        assert rec["status"] == "ok", rec["error"]
        assert rec["density"] == pytest.approx(rec["density_target"], abs=0.01)  # round(density x weights) kept
    assert torch.get_default_dtype() == torch.float32 and torch.is_grad_enabled()


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
def test_masks_are_plain_dense_bool_cpu_tensors_at_the_boundary():
    shapes, biases = {"layers.0.weight": (3, 2)}, {"layers.0.bias": (3,)}
    dense = torch.tensor([[1, 0], [0, 1], [0, 0]], dtype=torch.bool)
    for odd in (dense.to_sparse(), dense.float().to_sparse_csr(), dense.as_subclass(torch.nn.Parameter),
                torch.nn.Parameter(dense.float(), requires_grad=True), dense.t().contiguous().t()):
        got = validate_mask({"layers.0.weight": odd}, shapes, biases, 0.5)["layers.0.weight"]
        assert type(got) is torch.Tensor and got.dtype == torch.bool and got.layout == torch.strided
        assert not got.requires_grad and got.is_contiguous() and torch.equal(got, dense)
    with pytest.raises(MaskError, match=r"mask\['layers.0.weight'\] is a Tensor .*cannot be read as a dense"):
        validate_mask({"layers.0.weight": torch.empty(3, 2, device="meta")}, shapes, biases, 0.5)


def test_the_pruner_process_receives_only_what_a_prune_problem_holds():
    from plantbench.plant import plant_task
    from plantbench.seeding import generator
    from plantbench.seek import make_problem, problem_from_payload, problem_payload
    from plantbench.task import get_task

    seed, task = 987_654, get_task("circle")
    payload = problem_payload(task, 4, 40, seed, 0.1)
    assert sorted(payload) == ["biases", "density", "device", "generator_seed", "protocol", "task", "weights", "x", "y"]
    net, data = plant_task(task, 4, 40, seed), task.dataset(seed)
    assert seed not in [v for v in payload.values() if isinstance(v, int)]
    sent = [*payload["weights"], *payload["biases"], payload["x"], payload["y"]]
    for secret in [*net.ticket_weights, *net.ticket_biases, data.x_test, data.y_test, net.output_scale]:
        assert not any(a.shape == tuple(secret.shape) and (a == secret.numpy()).all() for a in sent)
    got, want = problem_from_payload(payload), make_problem(task, 4, 40, seed, 0.1)
    assert all(torch.equal(a, b) for a, b in zip(got.model.state_dict().values(), want.model.state_dict().values()))
    assert torch.equal(got.x, want.x) and torch.equal(got.y, want.y) and got.task == want.task
    assert torch.equal(got.generator.get_state(), generator(seed, "pruner").get_state())


# --- one writer, and a resume that checks what it skips -------------------------------------------


def quick(pruner, out, *extra):
    return invoke("run", "--pruner", pruner, "--suite", "quick", "--task", "relu", "--seeds", 1, "--jobs", 1,
                  "--quiet", "--out", out, *extra)


def test_one_writer_per_folder_and_a_resume_that_checks_masks_and_source(tmp_path):
    out = tmp_path / "out"
    with ResultStore(out).lock():
        busy = quick("magnitude", out)
    assert busy.exit_code == 2 and busy.output.strip().splitlines() == [
        f"error: {out} is in use by another plantbench run; wait for it to end, or use another --out"]

    pruner = write(tmp_path, "mine.py", '''
        from plantbench import Mask, Pruner

        class Mine(Pruner):
            name = "mine"
            def prune(self, problem):
                return Mask.top_k({n: p.detach().abs() for n, p in problem.model.prunable()}, problem.density)
        ''')
    first = quick(pruner, out, "--density", 0.1, "--density", 0.1 + 1e-14, "--pruner-arg", "unused=1")
    assert first.exit_code == 2 and "does not fit Mine" in first.output
    first = quick(pruner, out, "--task", "relu", "--density", 0.1, "--density", 0.1 + 1e-14)  # one run each
    assert first.exit_code == 0, first.output
    recs = records(out)
    assert len(recs) == 2 and not (out / LOCK_FILE).exists()
    npz = out / recs[0]["mask_file"]
    for path in (out / "runs.jsonl", npz):
        assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask()), path

    npz.write_bytes(b"not a zip file")  # a damaged mask file: its runs are done again
    assert "(2 new, 0 skipped)" in quick(pruner, out).output
    npz.unlink()  # a missing one: the same
    assert "(2 new, 0 skipped)" in quick(pruner, out).output
    assert "(0 new, 2 skipped)" in quick(pruner, out).output
    assert len(records(out)) == 6

    pruner.write_text(pruner.read_text() + "\n# edited\n")
    edited = quick(pruner, out)
    assert edited.exit_code == 2 and len(edited.output.strip().splitlines()) == 1
    assert "made from other source" in edited.output and "restore that file, or use another --out" in edited.output


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# --- names, arguments and limits ------------------------------------------------------------------


def test_a_pruner_name_cannot_leave_the_results_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pruner = write(tmp_path, "evil.py", '''
        from plantbench import Mask, Pruner

        class Evil(Pruner):
            name = "../../evil"
            def prune(self, problem):
                return Mask.ones(problem.model)
        ''')
    result = invoke("run", "--pruner", pruner, "--suite", "quick", "--seeds", 1)
    assert result.exit_code == 2 and "has name '../../evil'; a pruner name holds letters" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.py"]


@pytest.mark.parametrize("args,line", [
    (["--pruner-arg", "rounds=2", "--pruner-arg", "rounds=3"], "error: --pruner-arg 'rounds': given twice"),
    (["--pruner-arg", "rounds=nan"], "error: --pruner-arg rounds=nan: values must be numbers"),
    (["--pruner-arg", "rounds=-Infinity"], "error: --pruner-arg rounds=-inf: values must be numbers"),
    (["--seeds", 10**20], f"error: --seeds {10**20}: at most 1000"),
    (["--run-timeout", 0], "error: --run-timeout 0.0: expected seconds in (0, 604800]"),
    (["--run-timeout", "nan"], "error: --run-timeout nan: expected seconds"),
])
def test_bad_sweep_values_are_one_line_errors(args, line, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("run", "--pruner", "magnitude", *args)
    assert result.exit_code == 2 and result.output.strip().splitlines() == [result.output.strip()]
    assert result.output.startswith(line), result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("cmd,args,needle", [
    ("plant", ["--task", "relu", "--width", 70000], "--width 70000: expected 1..65536"),
    ("plant", ["--task", "relu", "--width", 0], "--width 0: expected 1..65536"),
    ("plant", ["--task", "relu", "--width", 65536], "--width 65536: a host of"),
    ("show", ["relu", "--width", 10**30], "--width"),
    ("plant", ["--task", "relu", "--out", "{dir}"], "is a directory"),
    ("plant", ["--task", "relu", "--out", "/dev/null"], "/dev/null: cannot write there (/dev/null is not a regular"),
    ("plant", ["--task", "relu", "--out", "{file}/net.npz"], "cannot write there"),
    ("show", ["relu", "--out", "{dir}"], "is a directory"),
    ("show", ["relu", "--out", "{file}/x.png"], "cannot write there"),
    ("show", ["relu", "--out", "picture.xyz"], "expected a .png, .svg, .pdf file"),
])
def test_plant_and_show_refuse_extreme_widths_and_odd_targets(cmd, args, needle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    args = [str(a).format(dir=tmp_path / "folder", file=tmp_path / "file") for a in args]
    result = invoke(cmd, *args)
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and needle in result.output, result.output
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder"]
    assert list((tmp_path / "folder").iterdir()) == []


def test_records_are_standard_json(tmp_path):
    from plantbench.fileio import append_jsonl

    with pytest.raises(ValueError):
        append_jsonl(tmp_path / "runs.jsonl", [{"x": float("nan")}])
    assert not (tmp_path / "runs.jsonl").exists()
    append_jsonl(tmp_path / "runs.jsonl", [{"x": 1.5}])
    assert json.loads((tmp_path / "runs.jsonl").read_text()) == {"x": 1.5}


def test_plant_and_show_write_files_as_readable_as_any_other(tmp_path):
    assert invoke("plant", "--task", "relu", "--width", 8, "--depth", 2, "--out", tmp_path / "net.npz").exit_code == 0
    assert invoke("show", "relu", "--width", 8, "--depth", 2, "--out", tmp_path / "relu.svg").exit_code == 0
    for name in ("net.npz", "relu.svg"):
        assert oct((tmp_path / name).stat().st_mode & 0o777) == oct(0o666 & ~_umask()), name


def test_a_non_finite_score_fails_its_run_instead_of_breaking_the_record():
    from plantbench.runner import _not_finite

    ok = {"strong": 0.5, "layer_recall": [1.0, 0.5], "references": {"chance": 0.1}, "error": None}
    assert _not_finite(ok) is None
    assert _not_finite({**ok, "layer_recall": [1.0, float("nan")]}).startswith("the judge gave a non-finite "
                                                                              "layer_recall (nan)")
    assert "non-finite references (inf)" in _not_finite({**ok, "references": {"chance": float("inf")}})


def test_a_pruner_process_that_ends_before_it_is_ready_is_reported_as_such(monkeypatch, tmp_path):
    from plantbench import sandbox

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # recomputed from TMPDIR
    monkeypatch.setattr(sandbox.sys, "executable", shutil.which("false"))  # ends at once, exit code 1
    box = sandbox.Sandbox(None, {}, 1)
    with pytest.raises(PlantbenchError, match=r"the pruner's process ended before it was ready \(exit code 1\)"):
        box._start()
    assert box.proc is None and list(tmp_path.iterdir()) == []  # reaped, its folder removed
