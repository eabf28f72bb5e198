"""The command line: listings, planting, and one-line errors for bad input."""

import numpy as np
import pytest
from click.testing import CliRunner

from plantbench.cli import cli


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
                         (["--density", 0], "'--density'"), (["--device", "cuda"], None)):
        result = invoke("run", "--pruner", "magnitude", "--out", tmp_path, *args)
        if needle is None:  # cuda: fine where there is one; a one-line error where there is not
            import torch

            if torch.cuda.is_available():
                continue
            needle = "CUDA is not available"
        assert result.exit_code == 2 and needle in result.output and len(result.output.strip().splitlines()) == 1
