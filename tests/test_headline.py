"""The headline score: the planted ticket's own mask scores 1 on every registered suite, chance 0."""

import math

import pytest
import torch

from plantbench.judge import Entry, judge_with_references
from plantbench.mask import Mask
from plantbench.metrics import headline
from plantbench.plant import plant_task
from plantbench.suite import SUITES
from plantbench.task import get_task


def test_headline_takes_the_better_side_and_never_exceeds_one():
    assert headline(1.0, 0.3) == 1.0  # the planted ticket: untrained it is the anchor
    assert headline(0.2, 0.5) == 0.5  # a weak ticket
    assert headline(0.4, 1.3) == 1.0  # trains better than the untrained ticket: capped
    assert headline(-0.1, -0.2) == -0.1  # worse than chance both ways stays below 0
    assert headline(float("nan"), 0.3) == 0.3 and headline(0.3, None) == 0.3
    assert math.isnan(headline(float("nan"), float("nan")))


def random_mask(net, k, seed):
    """Exactly k weights kept uniformly at random, biases all kept."""
    gen = torch.Generator().manual_seed(seed)
    names = [f"layers.{l}.weight" for l in range(len(net.weights))]
    scores = {n: torch.rand(w.shape, generator=gen) for n, w in zip(names, net.weights)}
    mask = Mask.top_k(scores, k / sum(w.numel() for w in net.weights))
    return [mask[n] for n in names]


# wide's dense host (3 million weights) takes many minutes to train on a CPU; the anchoring that
# this test checks is the same code whatever the host's width.
@pytest.mark.parametrize("suite_name", [n for n in SUITES.names() if n != "wide"])
def test_the_planted_tickets_mask_scores_one_on_every_task_and_a_random_mask_about_zero(suite_name):
    suite = SUITES.get(suite_name)
    for name in suite.tasks:
        task = get_task(name)
        net = plant_task(task, suite.depth, suite.widths, 0)
        data = {0: task.dataset(0)}
        ticket = Entry(0, [m.cpu() for m in net.ticket_weights], [m.cpu() for m in net.ticket_biases], 11)
        rand = Entry(0, random_mask(net, net.ticket_size, 5), None, 12)
        scores, refs, _ = judge_with_references(task, {0: net}, data, [ticket, rand], suite.protocol)
        ref = refs[0]
        score = [headline(task.metric.normalise(s["strong"], ref["chance"], ref["ticket_strong"]),
                          task.metric.normalise(s["weak"], ref["chance"], ref["ticket_strong"])) for s in scores]
        assert score[0] == pytest.approx(1.0, abs=1e-9), (suite_name, name)
        if suite_name == "paper":  # at the paper's ticket densities a random mask is chance either way
            assert abs(score[1]) < 0.1, (name, score[1])
