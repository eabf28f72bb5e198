"""The lean training loop equals a plain autograd + torch.optim.Adam loop, run by run."""

import sys
import types

import pytest
import torch

from plantbench import OutputScale, UsageError
from plantbench.judge import fit_logit_scale
from plantbench.network import HostMLP
from plantbench.pruner import PruneProblem, TaskInfo
from plantbench.registry import Registry
from plantbench.train import Protocol, _output_delta, task_loss, train_stacked


def plain_loop(w, b, mw, mb, x, y, kind, protocol, gen, epochs):
    """The reference: one network, masked forward, autograd, torch.optim.Adam or SGD.

    With loss_scale "fitted" the outputs pass through plantbench.OutputScale (the edge-popup
    readout) before the loss; for classification its per-class scales are set, at the start of
    every epoch, to the cross-entropy fit of the judge on the whole training split."""
    model = HostMLP(w, b)
    if protocol.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=protocol.lr, momentum=protocol.momentum)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=protocol.lr, betas=protocol.betas, eps=protocol.eps)
    mask = {f"layers.{l}.weight": m for l, m in enumerate(mw)} | {f"layers.{l}.bias": m for l, m in enumerate(mb)}
    readout = OutputScale(kind, y.shape[-1] if kind == "regression" else int(y.max()) + 1, "cpu")
    for _ in range(epochs):
        if protocol.loss_scale == "fitted" and kind == "classification":
            with torch.no_grad():
                f = model(x, mask=mask).double()
                rms = f.pow(2).mean(0).sqrt()
                readout.scale.copy_(fit_logit_scale(f[None], y[None])[0] * rms)
        order = torch.randperm(x.shape[0], generator=gen)
        for s in range(0, x.shape[0], protocol.batch_size):
            idx = order[s:s + protocol.batch_size]
            out = model(x[idx], mask=mask)
            if protocol.loss_scale == "fitted":
                out = readout(out, y[idx])
            loss = task_loss(kind, out, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return [(lin.weight * m).detach() for lin, m in zip(model.layers, mw)]


PROTOCOLS = [Protocol(batch_size=16),
             Protocol(batch_size=16, optimizer="sgd", lr=0.05),
             Protocol(batch_size=16, optimizer="sgd", lr=0.05, momentum=0.9),
             Protocol(batch_size=16, loss_scale="fitted"),
             Protocol(batch_size=16, optimizer="sgd", lr=1e-3, momentum=0.9, loss_scale="fitted")]


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: f"{p.optimizer}-m{p.momentum}-{p.loss_scale}")
@pytest.mark.parametrize("kind", ["regression", "classification"])
def test_stacked_training_matches_the_plain_loop(kind, protocol):
    g = torch.Generator().manual_seed(0)
    sizes = [2, 16, 16, 3]
    K, N = 3, 200
    nets = [([torch.randn(o, i, generator=g) * 0.5 for i, o in zip(sizes[:-1], sizes[1:])],
             [torch.randn(o, generator=g) * 0.1 for o in sizes[1:]]) for _ in range(K)]
    masks = [([torch.rand(o, i, generator=g) < 0.6 for i, o in zip(sizes[:-1], sizes[1:])],
              [torch.rand(o, generator=g) < 0.8 for o in sizes[1:]]) for _ in range(K)]
    x = torch.rand(K, N, sizes[0], generator=g) * 2 - 1
    y = (torch.randint(0, sizes[-1], (K, N), generator=g) if kind == "classification"
         else torch.randn(K, N, sizes[-1], generator=g))
    L = len(sizes) - 1
    stacked_w, _ = train_stacked([torch.stack([n[0][l] for n in nets]) for l in range(L)],
                                 [torch.stack([n[1][l] for n in nets]) for l in range(L)],
                                 [torch.stack([m[0][l] for m in masks]) for l in range(L)],
                                 [torch.stack([m[1][l] for m in masks]) for l in range(L)],
                                 x, y, kind, protocol, [torch.Generator().manual_seed(10 + k) for k in range(K)], epochs=2)
    for k in range(K):
        ref = plain_loop(nets[k][0], nets[k][1], masks[k][0], masks[k][1], x[k], y[k], kind, protocol,
                         torch.Generator().manual_seed(10 + k), 2)
        for l in range(L):
            assert torch.allclose(stacked_w[l][k], ref[l], atol=2e-5), (k, l)
            assert (stacked_w[l][k][~masks[k][0][l]] == 0).all()
            assert not torch.equal(stacked_w[l][k], nets[k][0][l] * masks[k][0][l]), (k, l)  # it trained


def test_protocol_record_is_unchanged_at_the_defaults():
    assert Protocol().to_dict() == {"optimizer": "adam", "lr": 1e-3, "batch_size": 32, "epochs": 10,
                                    "betas": (0.9, 0.999), "eps": 1e-8}
    assert list(Protocol(epochs=1).to_dict()) == ["optimizer", "lr", "batch_size", "epochs", "betas", "eps"]
    sgd = Protocol(optimizer="sgd", lr=1e-5, momentum=0.9, loss_scale="fitted").to_dict()
    assert sgd == {"optimizer": "sgd", "lr": 1e-5, "batch_size": 32, "epochs": 10, "betas": (0.9, 0.999),
                   "eps": 1e-8, "momentum": 0.9, "loss_scale": "fitted"}
    assert Protocol(loss_scale="fitted").to_dict()["loss_scale"] == "fitted"
    assert Protocol(optimizer="sgd").to_dict()["momentum"] == 0.0


@pytest.mark.parametrize("kwargs, message", [
    (dict(optimizer="rmsprop"), "optimizer must be one of adam, sgd"),
    (dict(loss_scale="learned"), "loss_scale must be one of raw, fitted"),
    (dict(optimizer="sgd", momentum=1.0), "momentum must be in"),
    (dict(momentum=0.9), "momentum applies to optimizer 'sgd' only"),
    (dict(lr=0.0), "need lr > 0"),
])
def test_a_bad_protocol_is_a_usage_error(kwargs, message):
    with pytest.raises(UsageError, match=message):
        Protocol(**kwargs)


@pytest.mark.parametrize("kind", ["regression", "classification"])
def test_the_fitted_loss_ignores_the_output_scale(kind):
    """The fitted loss is the same function of c * outputs for every c > 0, so its output
    gradient scales as 1/c; the raw loss's does not. For regression, outputs that are an exact
    multiple of the targets have no fitted-loss gradient at all."""
    g = torch.Generator().manual_seed(1)
    h = torch.randn(2, 32, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (2, 32), generator=g) if kind == "classification" else torch.randn(2, 32, 3, generator=g, dtype=torch.float64)
    a = torch.tensor([[1.0, 2.0, 0.5], [3.0, 1.0, 1.0]], dtype=torch.float64)
    delta = lambda out, scale: _output_delta(out.clone(), y, kind, scale, a)  # noqa: E731
    assert torch.allclose(delta(h * 1e-4, "fitted") * 1e-4, delta(h, "fitted"), rtol=1e-9, atol=0)
    assert not torch.allclose(delta(h * 1e-4, "raw") * 1e-4, delta(h, "raw"), rtol=1e-2, atol=0)
    if kind == "regression":
        assert delta(y * 1e-4, "fitted").abs().max() < 1e-9 * delta(y * 1e-4, "raw").abs().max()


def test_a_broken_module_does_not_hide_the_others(tmp_path, monkeypatch):
    pkg = tmp_path / "regpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a_broken.py").write_text("raise RuntimeError('bad file')\n")
    (pkg / "b_good.py").write_text("from regpkg_registry import REG\nREG.register('good', 1)\n")
    reg = Registry("thing", "regpkg")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sys.modules, "regpkg_registry", types.SimpleNamespace(REG=reg))
    assert reg.get("good") == 1
    with pytest.raises(Exception, match="module a_broken failed to import \\(RuntimeError: bad file\\)"):
        reg.get("missing")


# --- targets other than the labels (distillation) ------------------------------------------


def _soft_setup(K=2, N=96, sizes=(2, 12, 3), seed=3):
    g = torch.Generator().manual_seed(seed)
    L = len(sizes) - 1
    ws = [torch.randn(K, o, i, generator=g) * 0.5 for i, o in zip(sizes[:-1], sizes[1:])]
    bs = [torch.randn(K, o, generator=g) * 0.1 for o in sizes[1:]]
    wm = [torch.rand(K, o, i, generator=g) < 0.7 for i, o in zip(sizes[:-1], sizes[1:])]
    bm = [torch.ones(K, o, dtype=torch.bool) for o in sizes[1:]]
    x = torch.rand(K, N, sizes[0], generator=g) * 2 - 1
    labels = torch.randint(0, sizes[-1], (K, N), generator=g)
    soft = torch.softmax(torch.randn(K, N, sizes[-1], generator=g) * 2, -1)
    return ws, bs, wm, bm, x, labels, soft, L


def test_one_hot_soft_targets_train_exactly_like_the_labels():
    ws, bs, wm, bm, x, labels, _, L = _soft_setup()
    one_hot = torch.nn.functional.one_hot(labels, 3).float()
    gens = lambda: [torch.Generator().manual_seed(7 + k) for k in range(2)]  # noqa: E731
    a, _ = train_stacked(ws, bs, wm, bm, x, labels, "classification", Protocol(batch_size=16), gens(), epochs=2)
    b, _ = train_stacked(ws, bs, wm, bm, x, one_hot, "classification", Protocol(batch_size=16), gens(), epochs=2)
    assert all(torch.equal(u, v) for u, v in zip(a, b))


def test_soft_targets_match_autograd_cross_entropy_against_probabilities():
    ws, bs, wm, bm, x, _, soft, L = _soft_setup()
    protocol = Protocol(batch_size=16)
    trained, _ = train_stacked(ws, bs, wm, bm, x, soft, "classification", protocol,
                               [torch.Generator().manual_seed(7 + k) for k in range(2)], epochs=2)
    for k in range(2):
        model = HostMLP([w[k] for w in ws], [b[k] for b in bs])
        mask = {f"layers.{l}.weight": wm[l][k] for l in range(L)}
        opt = torch.optim.Adam(model.parameters(), lr=protocol.lr, betas=protocol.betas, eps=protocol.eps)
        gen = torch.Generator().manual_seed(7 + k)
        for _ in range(2):
            order = torch.randperm(x.shape[1], generator=gen)
            for s in range(0, x.shape[1], protocol.batch_size):
                idx = order[s:s + protocol.batch_size]
                loss = torch.nn.functional.cross_entropy(model(x[k][idx], mask=mask), soft[k][idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        for l in range(L):
            assert torch.allclose(trained[l][k], model.layers[l].weight.detach() * wm[l][k], atol=2e-5), (k, l)


def test_soft_targets_with_the_fitted_class_scales_are_refused():
    ws, bs, wm, bm, x, _, soft, _ = _soft_setup()
    with pytest.raises(UsageError, match="soft class targets"):
        train_stacked(ws, bs, wm, bm, x, soft, "classification", Protocol(loss_scale="fitted"),
                      [torch.Generator() for _ in range(2)], epochs=1)


def _problem(kind):
    g = torch.Generator().manual_seed(0)
    model = HostMLP([torch.randn(8, 2, generator=g), torch.randn(3, 8, generator=g)], [torch.zeros(8), torch.zeros(3)])
    x = torch.rand(40, 2, generator=g)
    y = torch.randint(0, 3, (40,), generator=g) if kind == "classification" else torch.randn(40, 3, generator=g)
    info = TaskInfo("t", 1, kind, 2, 3, "accuracy" if kind == "classification" else "mse")
    return PruneProblem(model, x, y, 0.5, info, torch.Generator().manual_seed(1), "cpu", Protocol(batch_size=8))


def test_problem_train_with_the_labels_as_targets_is_the_default():
    a, b = _problem("regression"), _problem("regression")
    ones = {n: torch.ones_like(p, dtype=torch.bool) for n, p in a.model.prunable()}
    a.train(ones, 2)
    b.train(ones, 2, targets=b.y.clone())
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))
    c = _problem("regression")
    c.train(ones, 2, targets=torch.zeros_like(c.y))
    assert not torch.equal(a.model.layers[1].weight, c.model.layers[1].weight)


@pytest.mark.parametrize("kind, targets, message", [
    ("classification", torch.full((40, 3), 0.5), "class probabilities"),
    ("classification", torch.full((40, 2), 0.5), "shape"),
    ("classification", torch.zeros(40, dtype=torch.long), "float tensor"),
    ("regression", torch.full((40, 3), float("nan")), "NaN"),
    ("regression", torch.zeros(40, 2), "shape"),
])
def test_bad_targets_are_a_usage_error(kind, targets, message):
    problem = _problem(kind)
    ones = {n: torch.ones_like(p, dtype=torch.bool) for n, p in problem.model.prunable()}
    with pytest.raises(UsageError, match=message):
        problem.train(ones, 1, targets=targets)


def _stack(nets, masks, L):
    return ([torch.stack([n[0][l] for n in nets]) for l in range(L)], [torch.stack([n[1][l] for n in nets]) for l in range(L)],
            [torch.stack([m[0][l] for m in masks]) for l in range(L)], [torch.stack([m[1][l] for m in masks]) for l in range(L)])


@pytest.mark.parametrize("loss_scale", ["raw", "fitted"])
@pytest.mark.parametrize("kind, sizes", [("regression", [2, 12, 12, 3]), ("classification", [2, 12, 12, 3]),
                                         ("regression", [1, 48, 48, 1]), ("classification", [1, 48, 48, 2])])
def test_a_network_trains_bit_for_bit_the_same_alone_and_with_batch_mates(kind, loss_scale, sizes):
    """The optimiser's buffer is padded to whole vectors, the class-scale fit stops each network
    at its own convergence, and a lone network trains beside a copy of itself (LONE_PAIR: one
    input or one output is a vector shape): so retraining one record alone reproduces what its
    sweep trained."""
    g = torch.Generator().manual_seed(3)
    K, N, L = 4, 113, 3  # the last batch holds one sample
    nets = [([torch.randn(o, i, generator=g) * 0.5 for i, o in zip(sizes[:-1], sizes[1:])],
             [torch.randn(o, generator=g) * 0.1 for o in sizes[1:]]) for _ in range(K)]
    masks = [([torch.rand(o, i, generator=g) < 0.3 + 0.2 * k for i, o in zip(sizes[:-1], sizes[1:])],
              [torch.rand(o, generator=g) < 0.8 for o in sizes[1:]]) for k in range(K)]
    x = torch.rand(K, N, sizes[0], generator=g) * 2 - 1
    y = (torch.randint(0, sizes[-1], (K, N), generator=g) if kind == "classification"
         else torch.randn(K, N, sizes[-1], generator=g))
    protocol = Protocol(batch_size=16, loss_scale=loss_scale)

    def train(idx):
        return train_stacked(*_stack([nets[i] for i in idx], [masks[i] for i in idx], L), x[idx], y[idx], kind,
                             protocol, [torch.Generator().manual_seed(10 + i) for i in idx], epochs=3)

    together, alone = train([0, 1, 2, 3]), train([2])
    reordered = train([3, 2])
    for l in range(L):
        assert torch.equal(together[0][l][2], alone[0][l][0]) and torch.equal(together[1][l][2], alone[1][l][0])
        assert torch.equal(reordered[0][l][1], alone[0][l][0])


def test_the_class_scale_fit_of_a_network_ignores_its_batch_mates():
    """A batch mate that converges slowly must not give a network more Newton steps."""
    g = torch.Generator().manual_seed(5)
    f = torch.randn(3, 300, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (3, 300), generator=g)
    f[1] = f[1] * 40 + 5 * torch.nn.functional.one_hot(y[1], 4)  # nearly separable: many more steps
    together = fit_logit_scale(f, y)
    for k in range(3):
        assert torch.equal(fit_logit_scale(f[k:k + 1], y[k:k + 1])[0], together[k])
