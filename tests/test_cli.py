"""The command line: listings, planting, and one-line errors for bad input."""

import dataclasses

import click
import numpy as np
import pytest
from click.testing import CliRunner

from plantbench import SweepConfig, SweepResult
from plantbench.cli import SWEEP_FLAGS, cli


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_listings():
    tasks = invoke("tasks")
    assert tasks.exit_code == 0
    for needle in ("circle@1", "relu@1", "helix@1", "108", "0.005243", "weight layers"):
        assert needle in tasks.output
    suites = invoke("suites")
    assert "paper@1" in suites.output and "quick@1" in suites.output
    baselines = invoke("baselines")
    assert "magnitude" in baselines.output and "random" in baselines.output


def test_plant_writes_the_npz(tmp_path):
    out = tmp_path / "net.npz"
    result = invoke("plant", "--task", "circle", "--width", 50, "--depth", 4, "--seed", 3, "--out", out)
    assert result.exit_code == 0, result.output
    assert "ticket of 108 weights" in result.output
    with np.load(out, allow_pickle=False) as z:
        assert z["w1"].shape == (50, 50) and z["output_scale"].shape == (4,)


@pytest.mark.parametrize("args,needle", [
    (["--task", "circel"], "unknown task 'circel'; did you mean 'circle'?"),
    (["--task", "circle", "--width", 10], "--width 10: task 'circle' at depth 4 needs a host at least 20 wide"),
    (["--task", "helix", "--depth", 1], "--depth 1: task 'helix' needs 2..64 weight layers"),
    (["--task", "relu", "--device", "tpu"], "'--device'"),
    (["--task", "relu", "--out", "/proc/nope/net.npz"], "--out /proc/nope/net.npz: cannot write there"),
    (["--task", "relu", "--width", "wide"], "'--width'"),
])
def test_bad_plant_arguments_get_one_line_and_no_traceback(args, needle, tmp_path):
    result = invoke("plant", *args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.output
    assert "Traceback" not in result.output


def test_unwritable_output_under_a_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = invoke("plant", "--task", "relu", "--out", blocker / "net.npz")
    assert result.exit_code == 2 and "cannot write there" in result.output


def test_run_rejects_bad_flags_in_one_line(tmp_path):
    for args, needle in ((["--suite", "papr"], "did you mean 'paper'"), (["--task", "sphere"], "unknown task 'sphere'"),
                         (["--density", 0], "--density 0: a density must lie in (0, 1]"), (["--device", "cuda"], None)):
        result = invoke("run", "--pruner", "magnitude", "--out", tmp_path, *args)
        if needle is None:  # cuda: fine where there is one; a one-line error where there is not
            import torch

            if torch.cuda.is_available():
                continue
            needle = "CUDA is not available"
        assert result.exit_code == 2 and needle in result.output and len(result.output.strip().splitlines()) == 1


def test_run_has_one_option_per_sweep_config_field_and_no_other():
    fields = {f.name: f for f in dataclasses.fields(SweepConfig)}
    options = {p.name: p for p in cli.commands["run"].params if isinstance(p, click.Option)}
    cli_only = {"quiet", "help"}
    assert fields.keys() == SWEEP_FLAGS.keys() == options.keys() - cli_only
    for name, f in fields.items():
        assert f.metadata["help"] and options[name].help.startswith(f.metadata["help"]), name
        assert options[name].opts[0] == SWEEP_FLAGS[name][0].split("/")[0]  # --flag/--no-flag: the first


@pytest.fixture
def captured(monkeypatch, tmp_path):
    """The SweepConfig that `plantbench run` hands to the sweep, with no compute."""
    seen = []

    def fake_sweep(config, progress=None, on_plan=None):
        seen.append(config)
        on_plan(0, 0)
        return SweepResult(tmp_path)

    monkeypatch.setattr("plantbench.runner.sweep", fake_sweep)
    return seen


def test_run_flags_map_onto_the_sweep_config(captured, tmp_path):
    assert invoke("run", "--pruner", "magnitude").exit_code == 0
    assert captured[-1] == SweepConfig("magnitude")  # the flags' defaults are the fields' defaults
    result = invoke("run", "--pruner", "snip", "--pruner-arg", "rounds=3", "--pruner-arg", "lr=1e-3", "--suite", "quick",
                    "--task", "relu", "--task", "circle", "--density", 0.5, "--density", 0.1, "--seeds", 2,
                    "--device", "cpu", "--out", tmp_path, "--jobs", 3, "--executor", "dask", "--scheduler", "tcp://h:1",
                    "--quiet")
    assert result.exit_code == 0, result.output
    assert captured[-1] == SweepConfig("snip", {"rounds": 3, "lr": 1e-3}, "quick", ("relu", "circle"), (0.5, 0.1), 2,
                                       "cpu", str(tmp_path), 3, "dask", "tcp://h:1")


@pytest.mark.parametrize("args,line", [
    (["run", "--pruner", "magnitude", "--density", 2], "error: --density 2: a density must lie in (0, 1]"),
    (["run", "--pruner", "magnitude", "--seeds", 0], "error: --seeds 0: need at least 1"),
    (["run", "--pruner", "magnitude", "--jobs", 0], "error: --jobs 0: need at least 1"),
    (["run", "--pruner", "magnitude", "--task", "nosuch"], "error: --task nosuch: unknown task 'nosuch'"),
    (["run", "--pruner", "magnitude", "--suite", "papr"], "error: --suite papr: unknown suite 'papr'; did you mean"),
    (["run", "--pruner", "magnitude", "--scheduler", "tcp://h:1"],
     "error: --scheduler tcp://h:1: only the dask executor takes a scheduler"),
    (["run", "--pruner", "magnitude", "--pruner-arg", "rounds"],
     "error: --pruner-arg 'rounds': expected key=value with a Python identifier as key"),
    (["run", "--pruner", "magnitude", "--pruner-arg", "nope=1"], "error: --pruner-arg: does not fit Magnitude"),
    (["run", "--pruner", "nofile.py"], "error: --pruner: no such file nofile.py"),
    (["plant", "--task", "circle", "--width", 5], "error: --width 5: task 'circle' at depth 4 needs a host at least 20"),
    (["plant", "--task", "circel"], "error: --task circel: unknown task 'circel'; did you mean 'circle'?"),
    (["show", "helix", "--depth", 1], "error: --depth 1: task 'helix' needs 2..64 weight layers"),
    (["show", "circel"], "error: TASK circel: unknown task 'circel'"),
])
def test_a_bad_parameter_is_one_line_naming_the_flag(args, line, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may be written, but if it were, not into the checkout
    result = invoke(*args)
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1 and result.output.startswith(line), result.output
    assert list(tmp_path.iterdir()) == []


def test_no_reference_cache_flag_turns_the_cache_off(captured):
    assert invoke("run", "--pruner", "magnitude", "--no-reference-cache").exit_code == 0
    assert captured[-1] == SweepConfig("magnitude", reference_cache=False)
