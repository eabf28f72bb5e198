"""The judge: readout fitted on the training split, overlap and structure metrics, batched training."""

import pytest
import torch
from limits import CIRCLE_ACCURACY_FLOOR, MSE_CEILING, TEACHER_ACCURACY_FLOOR

from plantbench.judge import (
    Entry,
    fit_logit_scale,
    fit_regression_scale,
    judge,
    judge_with_references,
    overlap,
    score_outputs,
    structure,
)
from plantbench.plant import plant_task
from plantbench.task import get_task
from plantbench.train import Protocol

B = torch.bool


def test_overlap_on_hand_made_masks():
    # Ticket: 3 weights in layer 0, 1 in layer 1; the mask finds 3 of the 4 (2 in layer 0, the one
    # in layer 1) and keeps 2 others.
    ticket = [torch.tensor([[1, 0], [1, 0], [0, 1]], dtype=B), torch.tensor([[0, 1, 0]], dtype=B)]
    mask = [torch.tensor([[1, 1], [0, 0], [0, 1]], dtype=B), torch.tensor([[1, 1, 0]], dtype=B)]
    neurons = [torch.tensor([0, 2])]  # hidden ticket neurons 0 and 2
    r = overlap([m[None] for m in mask], [t[None] for t in ticket], [neurons])
    assert r["recall"] == [pytest.approx(3 / 4)]
    assert r["precision"] == [pytest.approx(3 / 5)]
    assert r["f1"] == [pytest.approx(2 * 0.75 * 0.6 / 1.35)]
    assert r["layer_recall"] == [[pytest.approx(2 / 3), pytest.approx(1.0)]]
    assert r["neuron_recall"] == [1.0]  # neuron 0 keeps (0,0) and (0,1); neuron 2 keeps (2,1)
    empty = [torch.zeros_like(m) for m in mask]
    r = overlap([m[None] for m in empty], [t[None] for t in ticket], [neurons])
    assert r["recall"] == [0.0] and r["precision"] == [0.0] and r["f1"] == [0.0] and r["neuron_recall"] == [0.0]


def test_effective_density_drops_a_weight_cut_off_from_the_output():
    # Hidden neuron 1 receives a kept weight, but nothing leaves it: that weight is dead.
    mask = [torch.tensor([[1], [1]], dtype=B), torch.tensor([[1, 0]], dtype=B)]
    s = structure([m[None] for m in mask])
    assert s["density"] == [pytest.approx(3 / 4)]
    assert s["effective_density"] == [pytest.approx(2 / 4)]
    assert s["collapsed_layers"] == [[]]
    collapsed = [torch.tensor([[1], [1]], dtype=B), torch.zeros(1, 2, dtype=B)]
    s = structure([m[None] for m in collapsed])
    assert s["effective_density"] == [0.0] and s["collapsed_layers"] == [[1]]


def test_regression_readout_is_least_squares_per_output():
    f = torch.tensor([[[1.0, 2.0], [2.0, 0.0], [0.0, 1.0]]])
    y = torch.tensor([[[2.0, 1.0], [4.0, 5.0], [1.0, 3.0]]])
    s = fit_regression_scale(f, y)
    assert s[0].tolist() == pytest.approx([10 / 5, 5 / 5])
    assert fit_regression_scale(torch.zeros(1, 3, 1), torch.ones(1, 3, 1)).tolist() == [[0.0]]


def test_readout_is_fitted_on_the_training_split_only():
    f_tr = torch.tensor([[[1.0], [2.0]]])
    y_tr = torch.tensor([[[2.0], [4.0]]])  # scale 2 on train
    f_te = torch.tensor([[[1.0]]])
    mse_a = score_outputs(get_task("relu"), f_tr, y_tr, f_te, torch.tensor([[[2.0]]]))
    mse_b = score_outputs(get_task("relu"), f_tr, y_tr, f_te, torch.tensor([[[3.0]]]))
    assert mse_a.item() == 0.0 and mse_b.item() == pytest.approx(1.0)  # not refitted to test targets


def test_logit_scales_minimise_cross_entropy():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(1, 500, 3, generator=g, dtype=torch.float64)
    true = torch.tensor([2.0, 0.5, 1.0], dtype=torch.float64)
    y = torch.distributions.Categorical(logits=f[0] * true).sample()
    a = fit_logit_scale(f, y[None])[0]
    ce = lambda a: torch.nn.functional.cross_entropy(f[0] * a, y).item()  # noqa: E731
    for d in torch.eye(3, dtype=torch.float64) * 0.05:
        assert ce(a) <= ce(a + d) + 1e-9 and ce(a) <= ce(a - d) + 1e-9


@pytest.mark.parametrize("name", ["circle", "relu", "helix", "teacher-w16", "teacher-cls"])
def test_readout_recovers_the_ticket_quality_on_paper_hosts(name):
    task = get_task(name)
    nets = {s: plant_task(task, 4, 100, s) for s in (0, 1)}
    data = {s: task.dataset(s) for s in (0, 1)}
    entries = [Entry(s, nets[s].ticket_weights, nets[s].ticket_biases, 0) for s in (0, 1)]
    res = judge(task, nets, data, entries, Protocol(), train=False)
    for r in res:
        if name == "circle":
            assert r["strong"] >= CIRCLE_ACCURACY_FLOOR
        elif task.kind == "classification":
            assert r["strong"] >= TEACHER_ACCURACY_FLOOR
        else:
            assert r["strong"] <= MSE_CEILING[name]
        assert r["recall"] == 1.0 and r["precision"] == 1.0 and r["weak"] is None


def test_batched_judging_matches_judging_each_run_alone():
    task = get_task("circle")
    nets = {s: plant_task(task, 3, 24, s) for s in (0, 1)}
    data = {s: task.dataset(s) for s in (0, 1)}
    g = torch.Generator().manual_seed(5)
    entries = []
    for i, s in enumerate((0, 1, 0)):
        weights = [torch.rand(w.shape, generator=g) < 0.5 for w in nets[s].weights]
        entries.append(Entry(s, weights, None, batch_seed=100 + i))
    protocol = Protocol(epochs=1)
    together = judge(task, nets, data, entries, protocol)
    for entry, joint in zip(entries, together):
        alone = judge(task, nets, data, [entry], protocol)[0]
        assert alone["strong"] == pytest.approx(joint["strong"], abs=2e-3)
        assert alone["weak"] == pytest.approx(joint["weak"], abs=2e-3)
        assert alone["recall"] == joint["recall"] and alone["density"] == joint["density"]


def test_all_zero_outputs_score_the_majority_class_not_class_0():
    task = get_task("circle")
    y_train = torch.tensor([[3, 3, 1, 0, 3]])
    y_test = torch.tensor([[3, 0, 3, 2]])
    zeros = torch.zeros(1, 5, 4), torch.zeros(1, 4, 4)
    acc = score_outputs(task, zeros[0], y_train, zeros[1], y_test)
    assert acc.item() == pytest.approx(0.5)  # predicts class 3, the training majority


def test_references_are_the_planted_ticket_and_the_dense_host_of_each_seed():
    task = get_task("relu")
    nets = {s: plant_task(task, 3, 12, s) for s in (0, 1)}
    data = {s: task.dataset(s) for s in (0, 1)}
    g = torch.Generator().manual_seed(3)
    entries = [Entry(s, [torch.rand(w.shape, generator=g) < 0.5 for w in nets[s].weights], None, 7)
               for s in (1, 0, 1)]
    scores, refs, _ = judge_with_references(task, nets, data, entries, Protocol(), train=False)
    assert len(scores) == 3 and sorted(refs) == [0, 1]
    assert [r["density"] for r in scores] == [r["density"] for r in judge(task, nets, data, entries, Protocol(),
                                                                          train=False)]
    for s in (0, 1):
        net = nets[s]
        ticket, dense = judge(task, nets, data, [Entry(s, net.ticket_weights, net.ticket_biases, 0),
                                                 Entry(s, [torch.ones_like(w, dtype=B) for w in net.weights], None, 0)],
                              Protocol(), train=False)
        assert ticket["recall"] == 1.0 and dense["density"] == 1.0
        assert refs[s]["ticket_strong"] == pytest.approx(ticket["strong"], rel=1e-6)
        assert refs[s]["dense_strong"] == pytest.approx(dense["strong"], rel=1e-6)
        assert refs[s]["chance"] == task.chance(data[s].y_train, data[s].y_test)
        assert refs[s]["ticket_weak"] is None and refs[s]["dense_weak"] is None  # not trained
    # Judged in chunks of two networks, the same scores and references come back.
    chunked, chunked_refs, _ = judge_with_references(task, nets, data, entries, Protocol(), train=False, chunk=2)
    assert [r["strong"] for r in chunked] == pytest.approx([r["strong"] for r in scores], rel=1e-6)
    assert chunked_refs[1]["ticket_strong"] == pytest.approx(refs[1]["ticket_strong"], rel=1e-6)
