"""The teacher-* tasks: random sparse ReLU teachers that are alive, deterministic and plantable."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from plantbench.tasks import teacher as teacher_module
from plantbench.tasks.teacher import ALIVE, CONFIGS, active_shares, draw_teacher, uniform

from plantbench.cli import cli
from plantbench.errors import ParameterError, PlantbenchError
from plantbench.plant import plant_task
from plantbench.suite import TEACHER_TASKS, get_suite
from plantbench.task import get_task

NAMES = sorted(CONFIGS)


def fresh(task, n=8000, seed=11):
    """Inputs the teacher was never drawn or checked on."""
    return uniform(n, task.n_in, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", NAMES)
def test_planted_ticket_computes_the_teacher(name):
    task = get_task(name)
    x = fresh(task)
    truth = task.teacher.forward(x)
    for depth, width in ((task.min_depth, task.min_width(task.min_depth)), (4, 100), (7, 40)):
        net = plant_task(task, depth, width, seed=depth + width)
        with torch.no_grad():
            out = net.model()(x.float(), mask=net.ticket_mask()).double() / net.output_scale
            dense = net.model()(x.float()).double() / net.output_scale
        # float32 host weights: agreement to about 1e-6 of outputs of unit scale.
        torch.testing.assert_close(out, truth, rtol=1e-4, atol=1e-4)
        if task.kind == "classification":
            assert (out.argmax(1) == task.function(x)).double().mean() > 0.999
        if net.n_weights > net.ticket_size:  # a host of the ticket's own size is the ticket
            assert (dense - truth).abs().mean() > 1.0


@pytest.mark.parametrize("name", NAMES)
def test_every_neuron_is_alive_in_the_stated_range(name):
    task = get_task(name)
    shares = active_shares(task.teacher, fresh(task, 20000))
    assert len(shares) == task.teacher_spec.depth - 1
    for share in shares:
        assert len(share) == task.teacher_spec.width
        assert ALIVE[0] <= float(share.min()) and float(share.max()) <= ALIVE[1]
    # The identity layers of a deeper ticket carry the last hidden layer's activity unchanged.
    deep = active_shares(task.target(task.min_depth + 3), fresh(task, 20000))
    for share in deep[len(shares) - 1:]:
        assert torch.equal(share, shares[-1])


@pytest.mark.parametrize("name", NAMES)
def test_every_output_depends_on_the_inputs(name):
    task = get_task(name)
    x = fresh(task, 20000).requires_grad_(True)
    y = task.teacher.forward(x)
    assert (y.detach().std(0) > 0.5).all()  # scaled to std 1 on the reference sample
    for j in range(task.n_out):
        (grad,) = torch.autograd.grad(y[:, j].sum(), x, retain_graph=True)
        assert grad.abs().sum(0).gt(0).sum() >= min(task.n_in, 2)  # moves with the inputs, not with one alone
    if task.kind == "classification":
        share = torch.bincount(task.function(x.detach()), minlength=task.n_out).double() / len(x)
        assert share.min() > 0.5 / task.n_out


@pytest.mark.parametrize("name", NAMES)
def test_structure_fan_in_coverage_and_size(name):
    task, spec = get_task(name), CONFIGS[name]
    t = task.teacher
    assert t.sizes == [spec.n_in, *[spec.width] * (spec.depth - 1), spec.n_out]
    for w in t.weights[:-1]:
        nz = w != 0
        assert (nz.sum(1) == spec.fan_in).all()  # each neuron reads fan_in neurons below
        assert nz.any(0).all()  # and every neuron below is read
        assert np.abs(w[nz]).min() > 0.05 * np.abs(w[nz]).max()  # no negligible ticket weight
    assert (t.weights[-1] != 0).all()  # a dense readout
    for depth in (spec.depth, 4, 9):
        if depth >= spec.depth:
            expected = spec.fan_in * spec.width * (spec.depth - 1) + spec.width * spec.n_out + \
                spec.width * (depth - spec.depth)
            assert task.target(depth).n_weights == expected == plant_task(task, depth, 100, 0).ticket_size


def test_same_seed_same_teacher_other_seed_other_teacher():
    spec = CONFIGS["teacher-w16"]
    a, b = draw_teacher(spec), draw_teacher(dataclasses.replace(spec))
    c = draw_teacher(dataclasses.replace(spec, seed=spec.seed + 1))
    for wa, wb, wc in zip(a.weights, b.weights, c.weights):
        assert np.array_equal(wa, wb)
        assert not np.array_equal(wa, wc)
    assert any(not np.array_equal(wa != 0, wc != 0) for wa, wc in zip(a.weights[:-1], c.weights[:-1]))
    assert all(np.array_equal(ba, bb) for ba, bb in zip(a.biases, b.biases))
    task = get_task("teacher-w16")
    assert all(np.array_equal(wa, wt) for wa, wt in zip(a.weights, task.teacher.weights))
    # The run seed draws the data and the host, never the teacher.
    assert torch.equal(task.dataset(3).y_train, task.dataset(3).y_train)
    assert not torch.equal(task.dataset(3).x_train, task.dataset(4).x_train)


def test_noise_moves_an_exact_fraction_of_labels_or_adds_gaussian_noise():
    cls = get_task("teacher-cls")
    d = cls.dataset(0)
    n = len(d.x_train) + len(d.x_test)
    x, y = torch.cat([d.x_test, d.x_train]), torch.cat([d.y_test, d.y_train])
    assert int((cls.function(x.double()) != y).sum()) == round(0.01 * n)
    reg = get_task("teacher-k4")
    d = reg.dataset(0)
    noise = d.y_train.double() - reg.function(d.x_train.double())
    assert d.y_train.shape == (9000, 2) and noise.std().item() == pytest.approx(0.01, rel=0.05)


def test_a_teacher_that_cannot_stay_alive_is_an_error_after_bounded_retries(monkeypatch):
    calls = []
    real = teacher_module._attempt
    monkeypatch.setattr(teacher_module, "_attempt", lambda spec, g: calls.append(1) or real(spec, g))
    monkeypatch.setattr(teacher_module, "ALIVE", (0.49, 0.51))  # no draw keeps every neuron this close
    with pytest.raises(teacher_module.TeacherError, match="teacher seed 3: no live teacher in 20 draws") as e:
        draw_teacher(CONFIGS["teacher-w16"])
    assert isinstance(e.value, PlantbenchError) and len(calls) == teacher_module.TRIES


@pytest.mark.parametrize("change,field", [
    ({"fan_in": 3}, "fan_in"),  # more than the 2 inputs
    ({"n_in": 20, "width": 4, "fan_in": 2}, "fan_in"),  # 4 neurons reading 2 each miss inputs
    ({"depth": 1}, "depth"),
    ({"kind": "ranking"}, "kind"),
    ({"kind": "classification", "n_out": 1}, "n_out"),
])
def test_bad_specs_name_the_field(change, field):
    spec = dataclasses.replace(CONFIGS["teacher-easy"], **change)
    with pytest.raises(ParameterError, match=f"^{field}"):
        draw_teacher(spec)


def numpy_ticket_metric(z) -> tuple[str, float]:
    """The ticket alone from the exported arrays, with numpy only."""
    depth = json.loads(str(z["meta"]))["depth"]
    h = z["x_test"].astype(np.float64)
    for l in range(depth):
        w = z[f"w{l}"].astype(np.float64) * z[f"ticket_w{l}"]
        h = h @ w.T + z[f"b{l}"].astype(np.float64) * z[f"ticket_b{l}"]
        h = np.maximum(h, 0) if l < depth - 1 else h
    out = h / z["output_scale"]
    if np.issubdtype(z["y_test"].dtype, np.integer):
        return "accuracy", float(np.mean(out.argmax(1) == z["y_test"]))
    return "mse", float(np.mean((out - z["y_test"]) ** 2))


@pytest.mark.parametrize("name", ["teacher-w16", "teacher-cls", "teacher-easy"])
def test_plant_exports_a_ticket_that_numpy_alone_evaluates(tmp_path, name):
    out = tmp_path / "net.npz"
    result = CliRunner().invoke(cli, ["plant", "--task", name, "--seed", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    task = get_task(name)
    with np.load(out, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        assert meta["task"] == f"{name}@1" and meta["ticket_size"] == task.target(4).n_weights
        metric, value = numpy_ticket_metric(z)
    assert meta["ticket_test_metric"] == metric == task.metric.name
    assert value == pytest.approx(meta["ticket_test_value"], rel=1e-9, abs=1e-12)
    if metric == "accuracy":
        assert value >= 0.97  # 1% of the labels are moved
    else:
        assert 0.6e-4 < value < 1.5e-4  # the noise floor, 0.01^2


def test_show_draws_a_teacher(tmp_path):
    out = tmp_path / "teacher.png"
    result = CliRunner().invoke(cli, ["show", "teacher-cls", "--width", "40", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"\x89PNG") and out.stat().st_size > 10_000


def test_the_teacher_suite():
    suite = get_suite("teacher")
    assert suite.id == "teacher@1" and suite.tasks == TEACHER_TASKS and set(suite.tasks) == set(CONFIGS)
    assert (suite.depth, suite.width, suite.seeds, suite.densities) == (4, 100, 5, (0.5, 0.1, 0.05, 0.01))
    kinds = {get_task(t).kind for t in suite.tasks}
    assert kinds == {"regression", "classification"}
    densities = {t: suite.ticket_density(t) for t in suite.tasks}
    assert densities["teacher-easy"] < densities["teacher-w8"] < densities["teacher-w16"] < densities["teacher-w32"]
    assert densities["teacher-w16"] < densities["teacher-k4"] < densities["teacher-k8"]
    for t, d in densities.items():
        assert d in suite.grid(t) and d == pytest.approx(plant_task(get_task(t), 4, 100, 0).ticket_density)
        spec = get_task(t).teacher_spec
        assert f"min host depth {spec.depth}, width {spec.width}" in get_task(t).description

