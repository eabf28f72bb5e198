"""The digits task: bundled images on a fixed split, and a stored trained ticket that plants exactly.

The stored ticket's full regeneration (about a minute on one core) is a documented command,
`python tasks/digits_ticket/regenerate.py --check`; the tests run the same search shortened.
"""

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from plantbench.cli import cli
from plantbench.errors import UsageError
from plantbench.judge import judge_with_references
from plantbench.plant import plant_task
from plantbench.suite import PAPER_GRID, get_suite
from plantbench.task import get_task
from plantbench.train import Protocol

ROOT = Path(__file__).resolve().parents[1]
REGENERATE = ROOT / "tasks" / "digits_ticket" / "regenerate.py"


@pytest.fixture(scope="module")
def task():
    return get_task("digits")


@pytest.fixture(scope="module")
def regenerate():
    spec = importlib.util.spec_from_file_location("digits_regenerate", REGENERATE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its own module up
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def accuracy(logits, y) -> float:
    return float((logits.argmax(1) == y).double().mean())


def test_the_split_is_fixed_stratified_and_scaled(task):
    d, other = task.dataset(0), task.dataset(7)
    assert all(torch.equal(getattr(d, k), getattr(other, k)) for k in ("x_train", "y_train", "x_test", "y_test"))
    assert d.x_train.shape == (1347, 64) and d.x_test.shape == (450, 64) and d.x_train.dtype == torch.float32
    x = torch.cat([d.x_train, d.x_test])
    assert x.min() == -1 and x.max() == 1 and torch.equal(x * 8, (x * 8).round())  # pixel / 8 - 1
    assert len({tuple(r) for r in x.tolist()}) == 1797  # disjoint splits of all the images
    per_class = torch.bincount(torch.cat([d.y_train, d.y_test]), minlength=10)
    assert torch.equal(torch.bincount(d.y_test, minlength=10), (per_class * 0.25).round().long())


def test_labels_are_looked_up_and_other_inputs_refused(task):
    d = task.dataset(0)
    assert torch.equal(task.function(d.x_test), d.y_test) and torch.equal(task.function(d.x_train), d.y_train)
    with pytest.raises(UsageError, match="row 1 is not one of the 1,797 images"):
        task.function(torch.cat([d.x_test[:1], torch.full((1, 64), 0.3)]))
    x, y = task.sample(600, torch.Generator().manual_seed(4))
    test_rows = {tuple(r) for r in d.x_test.tolist()}
    assert all(tuple(r) in test_rows for r in x.tolist()) and torch.equal(task.function(x), y)
    assert torch.equal(task.sample(600, torch.Generator().manual_seed(4))[0], x)


def test_the_stored_ticket_reaches_its_recorded_accuracy(task):
    meta, target, d = task.ticket_meta, task.target(4), task.dataset(0)
    assert target.n_weights == meta["n_weights"] and target.sizes == meta["sizes"]
    assert accuracy(target.forward(d.x_test), d.y_test) == meta["test_accuracy"]
    assert accuracy(target.forward(d.x_train), d.y_train) == meta["train_accuracy"]
    assert 200 <= meta["n_weights"] <= meta["kept_in_host"] == round(0.01 * 27_400)
    assert meta["test_accuracy"] > 0.9  # a real classifier, far above chance (about 0.1)


@pytest.mark.parametrize("depth,width,seed", [(4, 100, 0), (4, 300, 1), (6, 100, 2), (4, 17, 3)])
def test_the_planted_ticket_computes_the_stored_ticket(task, depth, width, seed):
    net = plant_task(task, depth, width, seed)
    d = task.dataset(seed)
    want = task.target(4).forward(d.x_test)
    with torch.no_grad():
        got = net.model()(d.x_test, mask=net.ticket_mask()).double() / net.output_scale
        dense = net.model()(d.x_test).double() / net.output_scale
    assert net.ticket_size == task.target(depth).n_weights
    assert (got - want).abs().max() <= 1e-5 * want.abs().max()  # float32 host, float64 ticket
    assert accuracy(got, d.y_test) == task.ticket_meta["test_accuracy"]
    if net.n_weights > net.ticket_size:  # the random host around it hides the function
        assert accuracy(dense, d.y_test) < 0.5


def test_deeper_tickets_pass_the_narrowest_layer_through_identity_layers(task):
    four, six = task.target(4), task.target(6)
    narrow = min(four.sizes[1:-1])
    assert six.n_weights == four.n_weights + 2 * narrow and six.depth == 6
    x = task.dataset(0).x_test
    assert torch.allclose(six.forward(x), four.forward(x), rtol=0, atol=1e-12)
    with pytest.raises(UsageError, match="needs 4..64"):
        task.target(3)


def test_the_judge_reference_is_the_planted_tickets_accuracy(task):
    net, d = plant_task(task, 4, 100, 0), task.dataset(0)
    refs = judge_with_references(task, {0: net}, {0: d}, [], Protocol(), train=False, seeds=[0]).references[0]
    # The readout refits per-class scales on the training split, which may move a few test images.
    assert abs(refs["ticket_strong"] - task.ticket_meta["test_accuracy"]) <= 0.01
    assert refs["dense_strong"] < 0.5 and refs["chance"] == pytest.approx(46 / 450)


def test_the_stored_ticket_comes_from_the_documented_search(task, regenerate):
    meta = task.ticket_meta
    assert {k: meta["search"][k] for k in dataclasses.asdict(regenerate.SearchConfig())} == \
        dataclasses.asdict(regenerate.SearchConfig())
    assert meta["search"]["method"] == "synflow-multishot" and meta["search"]["host_sizes"] == [64, 100, 100, 100, 10]


def test_a_shortened_search_is_deterministic_and_reproduces_its_file(regenerate, tmp_path):
    cfg = regenerate.SearchConfig(density=0.05, rounds=2, epochs=1, train_epochs=1)
    target, meta = regenerate.search(cfg)
    regenerate.save(target, meta, tmp_path / "short.npz")
    again, meta_again = regenerate.search(cfg)
    assert regenerate.differences(again, meta_again, tmp_path / "short.npz") == []
    assert meta["kept_in_host"] == round(0.05 * 27_400) and meta["search"]["rounds"] == 2
    changed = regenerate.search(dataclasses.replace(cfg, pruner_seed=cfg.pruner_seed + 1))
    assert regenerate.differences(*changed, tmp_path / "short.npz")  # the check can fail


def test_compaction_keeps_the_function_and_only_path_neurons(regenerate):
    g = torch.Generator().manual_seed(0)
    sizes = [6, 5, 5, 3]
    weights = [torch.randn(b, a, generator=g, dtype=torch.float64).numpy() for a, b in zip(sizes[:-1], sizes[1:])]
    biases = [torch.randn(b, generator=g, dtype=torch.float64).numpy() for b in sizes[1:]]
    weights[0][0] = 0  # hidden neuron 0 of layer 1: no input reaches it, a constant relu(b) feeds layer 2
    weights[1][:, 1] = 0  # hidden neuron 1 of layer 1 reaches no output
    weights[1][2] = 0
    weights[1][2, 0] = 1.5  # layer-2 neuron 2 hears only the constant: a constant itself
    ticket = regenerate.compact(weights, biases)
    assert ticket.sizes == [6, 3, 4, 3]
    x = torch.rand(50, 6, generator=g, dtype=torch.float64) * 2 - 1
    h = x
    for l, (w, b) in enumerate(zip(weights, biases)):
        h = h @ torch.as_tensor(w).T + torch.as_tensor(b)
        h = torch.relu(h) if l < 2 else h
    assert torch.allclose(ticket.forward(x), h, rtol=0, atol=1e-12)


def test_export_is_checkable_with_numpy_alone(task, tmp_path):
    out = tmp_path / "net.npz"
    result = CliRunner().invoke(cli, ["plant", "--task", "digits", "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    with np.load(out, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        h = z["x_test"].astype(np.float64)
        for l in range(4):
            h = h @ (z[f"w{l}"] * z[f"ticket_w{l}"]).T.astype(np.float64) + z[f"b{l}"] * z[f"ticket_b{l}"]
            h = np.maximum(h, 0) if l < 3 else h
        acc = float(np.mean(np.argmax(h / z["output_scale"], 1) == z["y_test"]))
    assert meta["task"] == "digits@1" and meta["ticket_size"] == task.ticket_meta["n_weights"]
    assert meta["ticket_test_metric"] == "accuracy"
    assert acc == meta["ticket_test_value"] == task.ticket_meta["test_accuracy"]


def test_show_draws_the_digits_and_the_ticket(tmp_path):
    out = tmp_path / "digits.png"
    result = CliRunner().invoke(cli, ["show", "digits", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"\x89PNG") and out.stat().st_size > 10_000


def test_the_suites_are_the_paper_protocol_at_two_widths(task):
    narrow, wide = get_suite("digits"), get_suite("digits-wide")
    assert (narrow.id, wide.id) == ("digits@1", "digits-wide@1")
    for suite, width in ((narrow, 100), (wide, 300)):
        assert suite.tasks == ("digits",) and suite.depth == 4 and suite.width == width and suite.seeds == 5
        assert suite.densities == PAPER_GRID and suite.protocol == Protocol()
    assert narrow.ticket_density("digits") == task.ticket_meta["n_weights"] / 27_400


def test_the_ticket_ships_with_the_package():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = project["tool"]["setuptools"]["package-data"]["plantbench.tasks"]
    tasks = ROOT / "tasks"
    shipped = {p for g in globs for p in tasks.glob(g)}
    assert {tasks / "digits_ticket" / "ticket.npz", REGENERATE} <= shipped
    assert any(d.startswith("scikit-learn") for d in project["project"]["dependencies"])
