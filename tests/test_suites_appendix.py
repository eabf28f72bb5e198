"""The appendix suites (depth2, depth9, wide, noise) and the label-noise tasks."""

import hashlib
import json

import pytest
import torch
from click.testing import CliRunner

from plantbench.cli import cli
from plantbench.config import SweepConfig
from plantbench.loading import resolve
from plantbench.plant import plant_task
from plantbench.runner import plan
from plantbench.suite import NOISE_TASKS, SUITES, get_suite
from plantbench.task import TASKS, get_task

APPENDIX = ("depth2", "depth9", "wide", "noise")

# sha256 of circle@1's data (x_train, y_train, x_test, y_test bytes) for seeds 0 and 3, taken
# before the noise tasks existed: circle@1 must never change.
CIRCLE_DIGESTS = {0: "62df83217e845a8daee7e05e359ead8ac2ae6a5a65ecca61626fef8c85ffe2a2",
                  3: "32d30637bbae81145136240269bb311da73e3d3b5d039daded687a546ca19b9d"}


def digest(d):
    h = hashlib.sha256()
    for t in (d.x_train, d.y_train, d.x_test, d.y_test):
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def test_registry_and_cli_list_the_appendix_suites():
    assert set(APPENDIX) <= set(SUITES.names())
    out = CliRunner().invoke(cli, ["suites"]).output
    for name in APPENDIX:
        suite = get_suite(name)
        assert suite.id == f"{name}@1" and suite.id in out
        assert suite.description.split(";")[0][:40] in out
    assert [get_suite(n).depth for n in APPENDIX] == [2, 9, 5, 4]
    assert [get_suite(n).width for n in APPENDIX] == [100, 100, 1000, 100]
    assert [get_suite(n).seeds for n in APPENDIX] == [5, 5, 3, 5]


@pytest.mark.parametrize("suite,sizes", [
    # The paper's table at its depths 3 and 10; Helix without the rounding-noise weights.
    ("depth2", {"relu": 2, "circle": 100, "helix": 91}),
    ("paper", {"relu": 4, "circle": 108, "helix": 95}),
    ("depth9", {"relu": 9, "circle": 153, "helix": 110}),
    ("wide", {"circle": 119}),
])
def test_ticket_sizes_per_depth(suite, sizes):
    s = get_suite(suite)
    assert set(s.tasks) == set(sizes)
    for name, n in sizes.items():
        net = plant_task(get_task(name), s.depth, s.width, seed=0)
        assert net.ticket_size == n and get_task(name).target(s.depth).n_weights == n
        assert s.ticket_density(name) == pytest.approx(net.ticket_density, rel=1e-12)


def test_wide_ticket_density_and_grid():
    s = get_suite("wide")
    assert s.ticket_density("circle") == pytest.approx(119 / (2 * 1000 + 3 * 1000 * 1000 + 1000 * 4))
    assert 3.9e-5 < s.ticket_density("circle") < 4.0e-5  # the paper: about 4e-5
    assert s.grid("circle") == [0.1, 0.01, 0.001, s.ticket_density("circle")]


def test_noise_task_ids_and_levels():
    assert get_suite("noise").tasks == NOISE_TASKS
    levels = [get_task(t).noise for t in NOISE_TASKS]
    assert levels == [0.0, 0.001, 0.01, 0.1]
    for name in NOISE_TASKS:
        task = get_task(name)
        assert task.id == f"{name}@1" and TASKS.at_version(task.id) is task
        assert task.target(4).n_weights == 108  # Circle's ticket
    assert get_task("circle-noise0.1").id == "circle-noise0.1@1"
    assert "circle-noise0.01" != get_task("circle").name  # its own id, not an alias of circle@1


def test_circle_data_is_unchanged():
    circle = get_task("circle")
    assert circle.id == "circle@1" and circle.noise == 0.01
    for seed, want in CIRCLE_DIGESTS.items():
        assert digest(circle.dataset(seed)) == want


@pytest.mark.parametrize("name", NOISE_TASKS)
def test_noise_fraction_is_exact_and_moves_to_the_next_class(name):
    task, circle = get_task(name), get_task("circle")
    for n, seed in ((10_000, 0), (10_000, 1), (1234, 2)):
        x, y = task.sample(n, torch.Generator().manual_seed(seed))
        clean = task.function(x)
        moved = clean != y
        assert int(moved.sum()) == round(task.noise * n)
        assert ((clean - y).abs()[moved] == 1).all()  # bands are ordered: the next class is a neighbour
    d, c = task.dataset(5), circle.dataset(5)
    assert torch.equal(d.x_train, c.x_train) and torch.equal(d.x_test, c.x_test)  # same inputs as circle@1
    moved = int((task.function(d.x_train) != d.y_train).sum() + (task.function(d.x_test) != d.y_test).sum())
    assert moved == round(task.noise * task.n_samples)


def test_every_appendix_suite_plans_its_grid():
    spec = resolve("magnitude")
    for name in APPENDIX:
        s = get_suite(name)
        groups = plan(SweepConfig("magnitude", suite=name), spec)
        assert [g.task for g in groups] == list(s.tasks)
        for g in groups:
            assert g.depth == s.depth and list(g.widths) == s.widths and g.suite == s.id
            assert len(g.runs) == s.seeds * len(s.grid(g.task))


@pytest.mark.parametrize("suite,task", [("depth2", "relu"), ("depth9", "relu"), ("noise", "circle-noise0.1")])
def test_tiny_run_of_a_suite(tmp_path, suite, task):
    out = tmp_path / "res"
    result = CliRunner().invoke(cli, ["run", "--pruner", "random", "--suite", suite, "--task", task,
                                      "--seeds", "1", "--density", "0.5", "--jobs", "1", "--out", str(out),
                                      "--quiet"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    s = get_suite(suite)
    assert {r["suite"] for r in records} == {s.id} and {r["task"] for r in records} == {get_task(task).id}
    assert sorted(r["density_target"] for r in records) == sorted([0.5, s.ticket_density(task)])
    assert all(r["depth"] == s.depth and r["widths"] == s.widths and r["status"] == "ok" for r in records)
