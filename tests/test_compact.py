"""The compact path (plantbench.compact) against the dense path: same scores, trained and untrained."""

import pytest
import torch

from plantbench import compact
from plantbench.judge import Entry, judge
from plantbench.plant import plant_task
from plantbench.suite import get_suite
from plantbench.task import get_task
from plantbench.train import Protocol


def test_live_neurons_keep_constant_neurons_and_drop_inert_ones():
    # 2 inputs -> 4 hidden -> 4 hidden -> 1 output, one network.
    w0 = torch.tensor([[1, 0], [0, 0], [0, 0], [1, 1]], dtype=torch.bool)  # h1: 0 fed, 1, 2 unfed, 3 fed
    w1 = torch.tensor([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.bool)
    w2 = torch.tensor([[1, 1, 1, 0]], dtype=torch.bool)  # h2 neuron 3 reaches no output
    b0 = torch.tensor([True, True, False, True])  # h1 neuron 1 is a constant relu(b); neuron 2 is always 0
    b1 = torch.tensor([False, False, False, True])
    b2 = torch.tensor([True])
    live = compact.live_neurons([w0[None], w1[None], w2[None]], [b0[None], b1[None], b2[None]])
    assert live[0][0].tolist() == [True, True, False, False]  # 2: zero upstream; 3: feeds only a dead neuron
    assert live[1][0].tolist() == [True, True, False, False]  # 2: fed only by a zero neuron, bias pruned


def test_padded_widths_grow_by_at_most_half_and_plan_depends_on_each_network_alone():
    assert [compact.padded_width(n) for n in (0, 8, 9, 12, 13, 17, 25, 33, 49, 97)] == [8, 8, 12, 12, 16, 24, 32, 48, 64, 128]
    live = [torch.zeros(3, 100, dtype=torch.bool) for _ in range(2)]
    live[0][0, :10] = True
    live[1][1, :60] = True
    assert compact.plan(live, [100, 100], 3) == [(8, [2]), (12, [0]), (None, [1])]
    assert compact.plan([l[:1] for l in live], [100, 100], 1) == [(12, [0])]


def _entries(nets, seeds, g):
    entries = []
    for s in seeds:
        for i, d in enumerate((0.5, 0.1, 0.03, 0.01)):
            w = [torch.rand(x.shape, generator=g) < d for x in nets[s].weights]
            b = [torch.rand(x.shape, generator=g) < 0.5 for x in nets[s].biases]
            entries.append(Entry(s, w, None, 10 * s + i))
            entries.append(Entry(s, w, b, 100 + 10 * s + i))  # pruned biases leave identically zero neurons
        entries.append(Entry(s, nets[s].ticket_weights, nets[s].ticket_biases, 1000 + s))
        entries.append(Entry(s, [torch.ones_like(w, dtype=torch.bool) for w in nets[s].weights], None, 2000 + s))
    return entries


@pytest.mark.parametrize("name", ["circle", "helix"])
def test_compact_path_scores_like_the_dense_path(monkeypatch, name):
    suite = get_suite("quick")
    task = get_task(name)
    nets = {s: plant_task(task, suite.depth, suite.widths, s) for s in range(2)}
    data = {s: task.dataset(s) for s in range(2)}
    entries = _entries(nets, range(2), torch.Generator().manual_seed(3))
    dense = judge(task, nets, data, entries, suite.protocol, compact=False)
    monkeypatch.setattr(compact, "COMPACT_FRACTION", 1.0)  # every network compacted, the dense host included
    masks = [torch.stack([e.weights[l] for e in entries]) for l in range(suite.depth)]
    biases = [torch.stack([e.biases[l] if e.biases else torch.ones(len(b), dtype=torch.bool) for e in entries])
              for l, b in enumerate(nets[0].biases)]
    dropped = sum(int((~m).sum()) for m in compact.live_neurons(masks, biases))
    assert dropped > 100  # the random masks leave many neurons to drop
    fast = judge(task, nets, data, entries, suite.protocol)
    for a, b in zip(dense, fast):
        assert b["strong"] == pytest.approx(a["strong"], rel=1e-5, abs=1e-9)
        assert b["weak"] == pytest.approx(a["weak"], rel=1e-4, abs=1e-9)
        assert {k: v for k, v in a.items() if k not in ("strong", "weak", "judge_seconds")} == \
            {k: v for k, v in b.items() if k not in ("strong", "weak", "judge_seconds")}


@pytest.mark.parametrize("compacted", [True, False])
def test_a_network_scores_the_same_whatever_its_batch_mates(compacted):
    # Bit for bit, a batch of one included: the relu task's single input and output are the vector
    # shapes for which torch takes another kernel in a stack of one (train.LONE_PAIR).
    task, protocol = get_task("relu"), Protocol(epochs=2)
    nets = {s: plant_task(task, 3, [64, 64], s) for s in range(2)}
    data = {s: task.dataset(s) for s in range(2)}
    entries = _entries(nets, range(2), torch.Generator().manual_seed(4))
    together = judge(task, nets, data, entries, protocol, compact=compacted)
    for k in (2, 5, 8, 12):
        alone = judge(task, nets, data, [entries[k]], protocol, compact=compacted)[0]
        assert alone["strong"] == together[k]["strong"]
        assert alone["weak"] == together[k]["weak"]
