"""The lean training loop equals a plain autograd + torch.optim.Adam loop, run by run."""

import sys
import types

import pytest
import torch

from plantbench.network import HostMLP
from plantbench.registry import Registry
from plantbench.train import Protocol, task_loss, train_stacked


def plain_loop(w, b, mw, mb, x, y, kind, protocol, gen, epochs):
    """The reference: one network, masked forward, autograd, torch.optim.Adam."""
    model = HostMLP(w, b)
    opt = torch.optim.Adam(model.parameters(), lr=protocol.lr, betas=protocol.betas, eps=protocol.eps)
    mask = {f"layers.{l}.weight": m for l, m in enumerate(mw)} | {f"layers.{l}.bias": m for l, m in enumerate(mb)}
    for _ in range(epochs):
        order = torch.randperm(x.shape[0], generator=gen)
        for s in range(0, x.shape[0], protocol.batch_size):
            idx = order[s:s + protocol.batch_size]
            loss = task_loss(kind, model(x[idx], mask=mask), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return [(lin.weight * m).detach() for lin, m in zip(model.layers, mw)]


@pytest.mark.parametrize("kind", ["regression", "classification"])
def test_stacked_training_matches_the_plain_loop(kind):
    g = torch.Generator().manual_seed(0)
    sizes = [2, 16, 16, 3]
    K, N = 3, 200
    nets = [([torch.randn(o, i, generator=g) * 0.5 for i, o in zip(sizes[:-1], sizes[1:])],
             [torch.randn(o, generator=g) * 0.1 for o in sizes[1:]]) for _ in range(K)]
    masks = [([torch.rand(o, i, generator=g) < 0.6 for i, o in zip(sizes[:-1], sizes[1:])],
              [torch.rand(o, generator=g) < 0.8 for o in sizes[1:]]) for _ in range(K)]
    x = torch.rand(K, N, 2, generator=g) * 2 - 1
    y = (torch.randint(0, 3, (K, N), generator=g) if kind == "classification" else torch.randn(K, N, 3, generator=g))
    protocol = Protocol(batch_size=16)
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
