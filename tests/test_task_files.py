"""Users' own tasks (--task FILE.py) and suites (--suite FILE.toml): loading, runs, records, refusals."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from plantbench import load_results
from plantbench.cli import cli
from plantbench.errors import ParameterError, PlantbenchError, TaskError
from plantbench.leaderboard import check
from plantbench.runner import SweepConfig, sweep
from plantbench.suite import SUITES
from plantbench.suitefile import load_suite
from plantbench.task import TASKS
from plantbench.taskfile import find_task, resolve_task

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"
TASK = EXAMPLES / "abs_difference_task.py"
SUITE = EXAMPLES / "abs_difference_suite.toml"

# A complete, small task: y = x (regression), a single path of unit weights as in relu.
GOOD = '''
import numpy as np
import torch
from plantbench.task import Target, Task


class {cls}(Task):
    name = "{name}"
    version = 1
    kind = "regression"
    n_in = 1
    n_out = 1
    min_depth = 2
    noise = 0.0
    n_samples = 200

    def target(self, depth):
        return Target(tuple(np.ones((1, 1)) for _ in range(depth)), tuple(np.zeros(1) for _ in range(depth)))

    def function(self, x):
        return torch.relu(x.double()[:, :1])

    def _noisy(self, x, g):
        return self.function(x).float()
'''


def good(cls="Line", name="line"):
    return GOOD.format(cls=cls, name=name)


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


# --- loading a task file ------------------------------------------------------------------------


@pytest.mark.parametrize("source,ref,needle", [
    (None, "nofile.py", "--task nofile.py: no such file"),
    ("class Broken(:\n", "t.py", "t.py:1: syntax error"),
    ("import no_such_module_here\n", "t.py", "t.py failed to import: ModuleNotFoundError: No module named"),
    ("raise ValueError('line one\\nline two')\n", "t.py", "failed to import: ValueError: line one line two"),
    ("x = 1\n", "t.py", "t.py defines no Task subclass (subclass plantbench.task.Task"),
    (good() + good("Other", "other"), "t.py", "t.py defines 2 Task subclasses (Line, Other); pick one with"),
    (good(), "t.py:Nope", "t.py defines no Task subclass 'Nope' (found: Line)"),
    (good(name="bad name"), "t.py", "has name 'bad name'; a task name must start with a letter or digit"),
    (good().replace('kind = "regression"', 'kind = "ranking"'), "t.py", "kind must be 'classification' or"),
    (good().replace("n_in = 1", "n_in = 0"), "t.py", "n_in must be a whole number of at least 1, got 0"),
    (good().replace("n_in = 1", "n_in = 2"), "t.py", "target(2) has 2 layers and sizes [1, 1, 1]; expected 2 layers"),
    (good().replace("return self.function(x).float()", "return 1 / 0"), "t.py",
     "target(2) or sample() failed: ZeroDivisionError"),
    (good().replace("class Line", "from plantbench.task import register_task\n@register_task\nclass Line"), "t.py",
     "remove @register_task"),
    (good(name="circle"), "t.py", "is named 'circle', as a registered task; give it another name"),
])
def test_a_bad_task_file_is_one_line(source, ref, needle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if source is not None:
        (tmp_path / "t.py").write_text(source)
    if "circle" in needle:  # loads fine on its own; refused when registered for a sweep
        line = one_line_error(invoke("run", "--pruner", "magnitude", "--task", ref, "--out", tmp_path / "r"))
    else:
        line = one_line_error(invoke("plant", "--task", ref, "--depth", 2, "--width", 4))
    assert needle in line, line
    assert "line" not in TASKS and not (tmp_path / "net.npz").exists()


def test_pick_one_of_several_classes_by_name(tmp_path):
    (tmp_path / "two.py").write_text(good() + good("Other", "other"))
    spec = resolve_task(f"{tmp_path / 'two.py'}:Other")
    assert (spec.name, spec.class_name) == ("other", "Other") and spec.load().id == "other@1"
    assert "other" not in TASKS  # loading does not register


def test_plant_and_show_a_task_file(tmp_path):
    out = tmp_path / "net.npz"
    result = invoke("plant", "--task", TASK, "--depth", 3, "--width", 8, "--out", out)
    assert result.exit_code == 0, result.output
    assert "planted abs-difference@1: ticket of 12 weights" in result.output
    with np.load(out, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        assert z["w0"].shape == (8, 2) and z["ticket_w0"].sum() == 4
    assert meta["task"] == "abs-difference@1" and meta["task_from_file"] is True
    assert meta["task_source_sha256"] == resolve_task(str(TASK)).source_sha256
    image = tmp_path / "show.png"
    result = invoke("show", TASK, "--depth", 3, "--width", 8, "--out", image)
    assert result.exit_code == 0 and image.read_bytes()[:4] == b"\x89PNG", result.output
    line = one_line_error(invoke("plant", "--task", TASK, "--depth", 3, "--width", 3))
    assert "--width 3: task 'abs-difference' at depth 3 needs a host at least 4 wide" in line


def test_the_example_task_computes_its_function():
    task = find_task(str(TASK))
    x = torch_uniform(500)
    for depth in (2, 4):
        out = task.target(depth).forward(x)
        assert np.allclose(out.numpy(), task.function(x).numpy(), atol=1e-12)


def torch_uniform(n):
    import torch

    return torch.rand(n, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 - 1


# --- the example suite, end to end --------------------------------------------------------------


@pytest.fixture(scope="module")
def example_run(tmp_path_factory):
    """The README's example: the example suite (task file and relu) swept by magnitude, on 2 workers."""
    out = tmp_path_factory.mktemp("example") / "magnitude"
    result = sweep(SweepConfig("magnitude", suite=str(SUITE), device="cpu", out=out, jobs=2))
    return out, result


def test_the_example_suite_runs_and_its_records_say_where_tasks_came_from(example_run):
    out, result = example_run
    assert not result.failed and result.skipped == 0
    records = result.records
    task_sha = resolve_task(str(TASK)).source_sha256
    suite_sha = load_suite(SUITE).suite.source_sha256
    assert {r["task"] for r in records} == {"abs-difference@1", "relu@1"}
    assert len(records) == 2 * 2 * 2  # tasks x seeds x (0.5 and the ticket's density)
    for r in records:
        assert r["suite"] == "abs-small@1" and r["depth"] == 3 and r["widths"] == [8, 8]
        assert r["suite_from_file"] is True and r["suite_source_sha256"] == suite_sha
        assert r["protocol"]["epochs"] == 1
        if r["task"] == "abs-difference@1":
            assert r["task_from_file"] is True and r["task_source_sha256"] == task_sha
        else:
            assert "task_from_file" not in r and "task_source_sha256" not in r
    table = load_results(out)  # one's own results read as any others, flags as columns
    assert len(table) == 8 and set(table["suite_from_file"]) == {True}
    assert table["task_from_file"].eq(True).sum() == 4
    # The file's task and suite were registered for the sweep only.
    assert "abs-difference" not in TASKS and "abs-small" not in SUITES
    again = sweep(SweepConfig("magnitude", suite=str(SUITE), device="cpu", out=out, jobs=1))
    assert again.skipped == 8 and not again.records


def test_a_changed_task_file_stops_the_resume(example_run, tmp_path):
    out, _ = example_run
    folder = tmp_path / "examples"
    shutil.copytree(EXAMPLES, folder)
    results = shutil.copytree(out, tmp_path / "results")
    (folder / "abs_difference_task.py").write_text(TASK.read_text() + "\n# edited\n")
    with pytest.raises(TaskError, match="holds finished runs of task 'abs-difference' made from another version"):
        sweep(SweepConfig("magnitude", suite=str(folder / SUITE.name), device="cpu", out=results, jobs=1))


def test_leaderboard_check_rejects_file_task_and_suite_records(example_run, tmp_path):
    out, _ = example_run
    root = tmp_path / "board"
    shutil.copytree(out, root / "results" / "magnitude")
    problems = check(root)
    file_task = [p for p in problems if "its task and suite came from a user's file" in p]
    file_suite = [p for p in problems if "its suite came from a user's file" in p]
    assert len(file_task) == 4 and len(file_suite) == 4, problems
    assert all("only registered tasks and suites go on the leaderboard" in p for p in file_task + file_suite)
    result = invoke("leaderboard", "check", "--root", root)
    assert result.exit_code == 2 and "came from a user's file" in result.output


def test_verify_refuses_file_records_before_reading_the_key(example_run, tmp_path):
    from plantbench.verify import verify

    out, _ = example_run
    with pytest.raises(PlantbenchError, match="a task or suite loaded from a file"):
        verify("magnitude", out, tmp_path / "no-such-key")


def test_run_a_task_file_in_a_registered_suite(tmp_path):
    (tmp_path / "line.py").write_text(good())
    result = invoke("run", "--pruner", "random", "--task", tmp_path / "line.py", "--suite", "quick", "--seeds", 1,
                    "--density", 0.5, "--out", tmp_path / "r", "--jobs", 1, "--quiet", "--device", "cpu")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (tmp_path / "r" / "runs.jsonl").read_text().splitlines()]
    assert {r["task"] for r in records} == {"line@1"} and all(r["task_from_file"] for r in records)
    assert {r["suite"] for r in records} == {"quick@1"} and not any("suite_from_file" in r for r in records)
    assert "line" not in TASKS


# --- seed keys ----------------------------------------------------------------------------------


@pytest.mark.parametrize("flag,name", [("--task", "marker.py"), ("--suite", "marker.toml")])
def test_a_seed_key_refuses_file_tasks_and_suites_before_importing_them(flag, name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "marker.py").write_text(good() + "\nopen('imported', 'w').close()\n")
    (tmp_path / "marker.toml").write_text('name = "m"\ntasks = ["marker.py"]\ndepth = 2\nwidth = 4\nseeds = 1\n')
    (tmp_path / "key").write_bytes(bytes(range(64)))
    line = one_line_error(invoke("run", "--pruner", "magnitude", flag, name, "--seed-key", "key", "--out", "r"))
    assert line.startswith("error: --seed-key: a secret seed key runs registered tasks and suites only"), line
    assert not (tmp_path / "imported").exists() and not (tmp_path / "r").exists()
    with pytest.raises(ParameterError, match="seed_key"):
        SweepConfig("magnitude", suite=name if flag == "--suite" else "quick",
                    tasks=(name,) if flag == "--task" else (), seed_key="key").validate()
    assert not (tmp_path / "imported").exists()


# --- suite files --------------------------------------------------------------------------------


BASE = {"name": '"mine"', "tasks": '["relu"]', "depth": "3", "width": "8", "seeds": "2"}


def suite_text(**fields) -> str:
    merged = {**BASE, **fields}
    table = merged.pop("protocol", None)
    text = "".join(f"{k} = {v}\n" for k, v in merged.items() if v is not None)
    return text + (f"[protocol]\n{table}\n" if table else "")


@pytest.mark.parametrize("fields,needle", [
    ({"colour": '"red"'}, "unknown key 'colour' (known: name, version"),
    ({"depth": '"three"'}, "depth: expected a whole number, got str 'three'"),
    ({"depth": "2.5"}, "depth: expected a whole number, got float 2.5"),
    ({"width": "0"}, "width: expected 1..65536, got 0"),
    ({"seeds": "true"}, "seeds: expected a whole number, got bool True"),
    ({"seeds": None}, "seeds: missing (required: name, tasks, depth, width, seeds)"),
    ({"name": '"a b"'}, "name: 'a b' must start with a letter or digit"),
    ({"tasks": '["circel"]'}, "tasks: unknown task 'circel'; did you mean 'circle'?"),
    ({"tasks": '"relu"'}, "tasks: expected a list ([...]), got str 'relu'"),
    ({"tasks": "[]"}, "tasks: expected at least one task"),
    ({"tasks": '["relu", "relu"]'}, "tasks: 'relu' is named twice"),
    ({"tasks": '["missing.py"]'}, "tasks: missing.py: no such file (task files are found relative to"),
    ({"tasks": '["circle"]', "width": "8"}, "width 8: task 'circle' at depth 3 needs a host at least 20 wide"),
    ({"depth": "1"}, "depth 1: task 'relu' needs 2..64 weight layers"),
    ({"densities": "[0.5, 2]"}, "densities: 2 does not lie in (0, 1]"),
    ({"densities": '["half"]'}, "densities: expected a number, got str 'half'"),
    ({"densities": "[]", "add_ticket_density": "false"}, "densities: empty while add_ticket_density is false"),
    ({"add_ticket_density": '"yes"'}, "add_ticket_density: expected true or false, got 'yes'"),
    ({"version": "-1"}, "version: expected 0..999999999, got -1"),
    ({"name": '"paper"'}, "name: 'paper' is a registered suite's name"),
    ({"description": "3"}, "description: expected text, got int 3"),
    ({"protocol": "epoch = 1"}, "protocol: unknown key 'epoch' (known: lr, batch_size, epochs"),
    ({"protocol": "epochs = 1.5"}, "protocol.epochs: expected a whole number, got float 1.5"),
    ({"protocol": 'lr = "fast"'}, "protocol.lr: expected a number, got str 'fast'"),
    ({"protocol": "betas = [0.9]"}, "protocol.betas: expected two numbers, got 1"),
    ({"protocol": 'optimizer = "lion"'}, "protocol.optimizer: expected one of adam, sgd, got 'lion'"),
    ({"protocol": "momentum = 0.9"}, "protocol: momentum applies to optimizer 'sgd' only"),
    ({"protocol": "lr = 0"}, "protocol: need lr > 0"),
    ({"depth": "3 3"}, "not valid TOML:"),
])
def test_a_bad_suite_file_is_one_line_naming_the_field(fields, needle, tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(suite_text(**fields))
    line = one_line_error(invoke("suites", path))
    assert line.startswith(f"error: {path}: ") and needle in line, line
    line = one_line_error(invoke("run", "--pruner", "magnitude", "--suite", path, "--out", tmp_path / "r"))
    assert needle in line and not (tmp_path / "r").exists(), line


def test_a_missing_suite_file_names_the_flag(tmp_path):
    line = one_line_error(invoke("run", "--pruner", "magnitude", "--suite", tmp_path / "none.toml"))
    assert line == f"error: --suite {tmp_path / 'none.toml'}: no such file"
    assert one_line_error(invoke("suites", tmp_path / "none.toml")).endswith("no such file")


def test_suites_prints_a_suite_file_as_it_prints_registered_ones():
    result = invoke("suites", SUITE)
    assert result.exit_code == 0, result.output
    header, row = result.output.strip().splitlines()
    assert header.split() == ["suite", "tasks", "depth", "width", "densities", "seeds", "epochs", "description"]
    assert row.split()[:7] == ["abs-small@1", "abs-difference,relu", "3", "8", "0.5,ticket", "2", "1"]
    assert "paper@1" not in result.output


def test_a_suite_file_sets_every_field(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(suite_text(version="4", description='"d"', densities="[0.5, 0.25]", add_ticket_density="false",
                               protocol='epochs = 3\nlr = 0.01\noptimizer = "sgd"\nmomentum = 0.5\n'
                                        'loss_scale = "fitted"\nbatch_size = 16\nbetas = [0.8, 0.99]\neps = 1e-6'))
    suite = load_suite(path).suite
    assert (suite.id, suite.description, suite.tasks, suite.depth, suite.widths, suite.seeds) == \
        ("mine@4", "d", ("relu",), 3, [8, 8], 2)
    assert suite.grid("relu") == [0.5, 0.25]  # the ticket's own density left out
    p = suite.protocol
    assert (p.epochs, p.lr, p.optimizer, p.momentum, p.loss_scale, p.batch_size, p.betas, p.eps) == \
        (3, 0.01, "sgd", 0.5, "fitted", 16, (0.8, 0.99), 1e-6)
    path.write_text(suite_text(densities="[0.5]"))
    with_ticket = load_suite(path).suite
    assert with_ticket.grid("relu") == [0.5, with_ticket.ticket_density("relu")]
    assert with_ticket.protocol == SUITES.get("paper").protocol


def test_task_flags_narrow_a_suite_file_by_name(tmp_path):
    result = invoke("run", "--pruner", "random", "--suite", SUITE, "--task", "abs-difference", "--seeds", 1,
                    "--density", 0.5, "--out", tmp_path / "r", "--jobs", 1, "--quiet", "--device", "cpu")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (tmp_path / "r" / "runs.jsonl").read_text().splitlines()]
    assert {(r["task"], r["seed"]) for r in records} == {("abs-difference@1", 0)} and len(records) == 2
    line = one_line_error(invoke("run", "--pruner", "random", "--suite", SUITE, "--task", "nosuch",
                                 "--out", tmp_path / "s"))
    assert line.startswith("error: --task nosuch: unknown task 'nosuch'") and f"nor a task of {SUITE}" in line
    assert not (tmp_path / "s").exists()
