"""Edge-popup, iterative SNIP, FORCE, ProsPr, PHEW and GEM-Miner: each one's defining property."""

import inspect

import pytest
import torch

from plantbench.judge import structure
from plantbench.loading import BASELINES
from plantbench.mask import Mask, validate_mask
from plantbench.network import HostMLP
from plantbench.pruner import PruneProblem, TaskInfo
from plantbench.seek import make_problem
from plantbench.task import get_task
from plantbench.train import Protocol

EdgePopup = BASELINES.get("edge-popup")
EdgePopupAnnealed = BASELINES.get("edge-popup-annealed")
IterSNIP = BASELINES.get("iter-snip")
Force = BASELINES.get("force")
ProsPr = BASELINES.get("prospr")
PHEW = BASELINES.get("phew")
GEMMiner = BASELINES.get("gem-miner")
phew_tables = inspect.getmodule(PHEW)._cdfs


def tiny_problem(weights, biases, x, y, density, kind="regression", seed=0, dtype=torch.float32):
    model = HostMLP([torch.as_tensor(w, dtype=dtype) for w in weights],
                    [torch.as_tensor(b, dtype=dtype) for b in biases])
    n_out = len(biases[-1])
    task = TaskInfo("tiny", 1, kind, len(weights[0][0]), n_out, "mse" if kind == "regression" else "accuracy")
    return PruneProblem(model, torch.as_tensor(x, dtype=dtype), torch.as_tensor(y) if kind != "regression"
                        else torch.as_tensor(y, dtype=dtype), density, task,
                        torch.Generator().manual_seed(seed), "cpu", Protocol())


def random_problem(sizes, n=64, density=0.25, seed=0, kind="regression"):
    g = torch.Generator().manual_seed(100 + seed)
    weights = [torch.randn(o, i, generator=g) * (2 / i) ** 0.5 for i, o in zip(sizes[:-1], sizes[1:])]
    biases = [torch.randn(o, generator=g) * 0.1 for o in sizes[1:]]
    x = torch.rand(n, sizes[0], generator=g) * 2 - 1
    y = (torch.randint(0, sizes[-1], (n,), generator=g) if kind == "classification"
         else torch.randn(n, sizes[-1], generator=g))
    return tiny_problem(weights, biases, x, y, density, kind=kind, seed=seed)


def snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def assert_untouched(model, before):
    for n, p in model.named_parameters():
        assert torch.equal(p.detach(), before[n]), n
        assert p.requires_grad, f"{n} was left frozen"


def kept(mask, names):
    return sum(int(mask[n].sum()) for n in names)


def effective_and_density(model, mask):
    wm = [mask[n][None] for n, _ in model.prunable()]
    s = structure(wm)
    return s["effective_density"][0], s["density"][0]


# --- registry -----------------------------------------------------------------------------


def test_the_baselines_live_one_file_each():
    files = {cls: inspect.getmodule(cls).__name__.rsplit(".", 1)[-1]
             for cls in (EdgePopup, EdgePopupAnnealed, IterSNIP, Force, ProsPr, PHEW, GEMMiner)}
    assert files == {EdgePopup: "edge_popup", EdgePopupAnnealed: "edge_popup", IterSNIP: "force",
                     Force: "force", ProsPr: "prospr", PHEW: "phew", GEMMiner: "gem_miner"}


# --- edge-popup ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [EdgePopup, EdgePopupAnnealed])
def test_edge_popup_freezes_weights_and_keeps_the_density_in_every_layer(cls):
    # 3-8-8-4: 24 + 64 + 32 weights, 8 + 8 + 4 biases; at 0.25 every share is a whole number.
    problem = random_problem([3, 8, 8, 4], density=0.25)
    before = snapshot(problem.model)
    mask = cls(epochs=3, batch_size=16).prune(problem)
    assert_untouched(problem.model, before)
    assert [int(mask[f"layers.{l}.weight"].sum()) for l in range(3)] == [6, 16, 8]
    assert [int(mask[f"layers.{l}.bias"].sum()) for l in range(3)] == [2, 2, 1]
    assert all(m.dtype == torch.bool for m in mask.values())


def test_edge_popup_annealing_schedule_ends_at_the_density():
    ep = EdgePopupAnnealed(epochs=10)
    densities = [ep.density_at(i, 0.01) for i in range(10)]
    assert densities[0] == pytest.approx(0.01 ** 0.1)
    assert densities[-1] == pytest.approx(0.01)
    assert all(a > b for a, b in zip(densities, densities[1:]))
    assert EdgePopup(epochs=10).density_at(0, 0.01) == 0.01


def scaled_output(problem, factor):
    """The same problem with the output layer (weights and bias) times factor."""
    with torch.no_grad():
        problem.model.layers[-1].weight.mul_(factor)
        problem.model.layers[-1].bias.mul_(factor)
    return problem


@pytest.mark.parametrize("kind", ["regression", "classification"])
@pytest.mark.parametrize("make", [lambda epochs: EdgePopup(epochs=epochs, batch_size=16),
                                  lambda epochs: GEMMiner(epochs=epochs, period=1, batch_size=16)],
                         ids=["edge-popup", "gem-miner"])
def test_score_training_does_not_see_the_output_scale(kind, make):
    # Planted outputs are c * target with tiny c; the readout makes training blind to c.
    # A power-of-two factor scales every float exactly, so the masks must be identical
    # (training on the raw outputs instead gives different masks here).
    plain = make(10).prune(random_problem([3, 8, 8, 4], density=0.25, kind=kind))
    tiny = make(10).prune(scaled_output(random_problem([3, 8, 8, 4], density=0.25, kind=kind), 2.0 ** -14))
    assert all(torch.equal(plain[n], tiny[n]) for n in plain)
    untrained = make(0).prune(random_problem([3, 8, 8, 4], density=0.25, kind=kind))
    assert any(not torch.equal(plain[n], untrained[n]) for n in plain)


# --- iterative SNIP and FORCE ---------------------------------------------------------------

# A 2-2-1 network by hand, no biases, one sample x = (1, 1), y = 0, loss (f - y)^2.
W0 = [[1.0, 0.5], [0.25, 2.0]]
W1 = [[1.0, -1.0]]


def hand_problem(density=0.5):
    return tiny_problem([W0, W1], [[0.0, 0.0], [0.0]], [[1.0, 1.0]], [[0.0]], density)


def test_force_scores_the_pruned_network_by_hand():
    problem = hand_problem()
    # Dense: h = (1.5, 2.25), f = -0.75, dL/df = -1.5; |dL/dm| = |w * g|.
    snip = problem.sensitivity(problem.x, problem.y, Mask.ones(problem.model))
    assert torch.allclose(snip["layers.0.weight"], torch.tensor([[1.5, 0.75], [0.375, 3.0]]))
    assert torch.allclose(snip["layers.1.weight"], torch.tensor([[2.25, 3.375]]))
    # Round 1 pruned W1[0,0] and W0[1,0]: h = (1.5, 2), f = -2, dL/df = -4. Unit 0 no longer
    # reaches the output, so its incoming weights now score 0, and the pruned W1[0,0] scores 6.
    m1 = {"layers.0.weight": torch.tensor([[True, True], [False, True]]),
          "layers.1.weight": torch.tensor([[False, True]])}
    s2 = problem.sensitivity(problem.x, problem.y, m1)
    assert torch.allclose(s2["layers.0.weight"], torch.tensor([[0.0, 0.0], [1.0, 8.0]]))
    assert torch.allclose(s2["layers.1.weight"], torch.tensor([[6.0, 8.0]]))
    # A different round-1 mask gives different round-2 scores.
    m1b = {"layers.0.weight": torch.ones(2, 2, dtype=torch.bool), "layers.1.weight": torch.tensor([[True, False]])}
    s2b = problem.sensitivity(problem.x, problem.y, m1b)
    assert not torch.allclose(s2b["layers.0.weight"], s2["layers.0.weight"])

    # FORCE may bring W1[0,0] back; iterative SNIP ranks only what m1 kept.
    revived = Force().step(problem, Mask(m1), 4 / 6, problem.x, problem.y)
    assert revived["layers.1.weight"].tolist() == [[True, True]]
    assert revived["layers.0.weight"].tolist() == [[False, False], [True, True]]
    kept_snip = IterSNIP().step(problem, Mask(m1), 0.5, problem.x, problem.y)
    assert not kept_snip["layers.1.weight"][0, 0]
    for n in m1:
        assert not (kept_snip[n] & ~m1[n]).any()


def test_iter_snip_never_revives_and_force_does_on_a_real_problem():
    problem = make_problem(get_task("circle"), 4, 24, 0, 0.05)
    names = [n for n, _ in problem.model.prunable()]
    revivals = {}
    for cls in (IterSNIP, Force):
        pruner = cls(rounds=8)
        mask, count = Mask.ones(problem.model), 0
        for r in range(1, 9):
            new = pruner.step(problem, mask, 0.05 ** (r / 8))
            count += sum(int((new[n] & ~mask[n]).sum()) for n in names)
            assert kept(new, names) == round(0.05 ** (r / 8) * kept(Mask.ones(problem.model), names))
            mask = new
        revivals[cls.name] = count
    assert revivals["iter-snip"] == 0
    assert revivals["force"] > 0


# --- ProsPr -------------------------------------------------------------------------------


def test_prospr_with_no_inner_steps_is_snip():
    problem = hand_problem()
    scores = ProsPr(inner_steps=0).scores(problem, problem.x, problem.y)
    assert torch.allclose(scores["layers.0.weight"], torch.tensor([[1.5, 0.75], [0.375, 3.0]]))
    assert torch.allclose(scores["layers.1.weight"], torch.tensor([[2.25, 3.375]]))

    problem = random_problem([3, 8, 8, 2], n=32)
    x, y = problem.x, problem.y
    weights = [w for _, w in problem.model.prunable()]
    grads = torch.autograd.grad(problem.loss(problem.model(x), y), weights)
    scores = ProsPr(inner_steps=0).scores(problem, x, y)
    for (n, w), g in zip(problem.model.prunable(), grads):
        assert torch.allclose(scores[n], (w * g).abs().detach())


def test_prospr_differentiates_through_the_inner_steps():
    # float64 network; compare |dL(w_K)/dm| with central differences of the unrolled loss.
    problem = random_problem([2, 5, 3], n=16)
    model = HostMLP([w.detach().double() for _, w in problem.model.prunable()],
                    [lin.bias.detach().double() for lin in problem.model.layers])
    problem = PruneProblem(model, problem.x.double(), problem.y.double(), 0.5, problem.task,
                           torch.Generator().manual_seed(0), "cpu", Protocol())
    lr, steps = 0.3, 2

    def unrolled_loss(masks):
        ws = [w.detach() * m for (_, w), m in zip(model.prunable(), masks)]
        bs = [lin.bias.detach().clone() for lin in model.layers]
        for _ in range(steps):
            ws = [w.requires_grad_(True) for w in ws]
            bs = [b.requires_grad_(True) for b in bs]
            loss = problem.loss(_forward(problem.x, ws, bs), problem.y)
            gw = torch.autograd.grad(loss, ws + bs)
            ws = [(w - lr * g).detach() for w, g in zip(ws, gw[: len(ws)])]
            bs = [(b - lr * g).detach() for b, g in zip(bs, gw[len(ws):])]
        return float(problem.loss(_forward(problem.x, ws, bs), problem.y))

    scores = ProsPr(inner_steps=steps, inner_lr=lr).scores(problem, problem.x, problem.y)
    assert not torch.allclose(scores["layers.0.weight"],
                              ProsPr(inner_steps=0).scores(problem, problem.x, problem.y)["layers.0.weight"])
    eps = 1e-6
    for layer, idx in [(0, (1, 0)), (0, (4, 1)), (1, (2, 3)), (1, (0, 0))]:
        plus = [torch.ones_like(w) for _, w in model.prunable()]
        minus = [torch.ones_like(w) for _, w in model.prunable()]
        plus[layer][idx] += eps
        minus[layer][idx] -= eps
        fd = (unrolled_loss(plus) - unrolled_loss(minus)) / (2 * eps)
        assert scores[f"layers.{layer}.weight"][idx].item() == pytest.approx(abs(fd), rel=1e-5, abs=1e-9)


def _forward(x, ws, bs):
    for l, (w, b) in enumerate(zip(ws, bs)):
        x = x @ w.T + b
        if l < len(ws) - 1:
            x = torch.relu(x)
    return x


# --- PHEW ---------------------------------------------------------------------------------


def _zeroed(problem):
    """Set every weight W[i, j] with (i + j) % 3 == 0 to zero (no row or column becomes empty)."""
    with torch.no_grad():
        for _, w in problem.model.prunable():
            i, j = torch.meshgrid(torch.arange(w.shape[0]), torch.arange(w.shape[1]), indexing="ij")
            w[(i + j) % 3 == 0] = 0.0
    return problem


def test_phew_keeps_only_paths_never_zero_weights_and_is_reproducible():
    problem = _zeroed(random_problem([3, 10, 10, 2], density=0.2))
    names = [n for n, _ in problem.model.prunable()]
    total = sum(w.numel() for _, w in problem.model.prunable())
    budget = round(0.2 * total)
    before = snapshot(problem.model)
    mask = PHEW().prune(problem)
    assert_untouched(problem.model, before)
    assert budget - 2 <= kept(mask, names) <= budget  # whole walks only: short by less than the depth
    effective, density = effective_and_density(problem.model, mask)
    assert effective == density
    for n, w in problem.model.prunable():
        assert not (mask[n] & (w == 0)).any()
    # Biases are kept exactly for the units some walk reaches.
    for l, n in enumerate(names):
        assert torch.equal(mask[f"layers.{l}.bias"], mask[n].any(1))
    same_seed = PHEW().prune(_zeroed(random_problem([3, 10, 10, 2], density=0.2)))
    assert all(torch.equal(mask[n], same_seed[n]) for n in mask)
    other = _zeroed(random_problem([3, 10, 10, 2], density=0.2))
    other.generator = torch.Generator().manual_seed(7)
    other_seed = PHEW().prune(other)
    assert any(not torch.equal(mask[n], other_seed[n]) for n in names)


def test_phew_follows_large_weights():
    # 1-2-1: the walk from the input takes the large edge 99 times in 100.
    problem = tiny_problem([[[99.0], [1.0]], [[1.0, 1.0]]], [[0.0, 0.0], [0.0]], [[0.0]], [[0.0]], density=0.5)
    firsts = [PHEW().walks(_tables(problem), 0, 2, torch.Generator().manual_seed(s))[0, 0].item()
              for s in range(400)]
    assert sum(f == 0 for f in firsts) > 0.95 * 400


def _tables(problem):
    absw = [w.detach().abs().double() for _, w in problem.model.prunable()]
    offsets = [sum(a.numel() for a in absw[:l]) for l in range(len(absw))]
    return [(phew_tables(a.T), phew_tables(a), o, a.shape[1], a.shape[0]) for a, o in zip(absw, offsets)]


def test_phew_on_a_real_host_keeps_effective_density():
    problem = make_problem(get_task("circle"), 4, 24, 0, 0.1)
    mask = PHEW().prune(problem)
    effective, density = effective_and_density(problem.model, mask)
    assert effective == density
    assert density == pytest.approx(0.1, abs=4 / sum(w.numel() for _, w in problem.model.prunable()))


# --- GEM-Miner ----------------------------------------------------------------------------


@pytest.mark.parametrize("density", [0.5, 0.1, 0.01])
def test_gem_miner_hits_the_budget_and_leaves_weights_alone(density):
    problem = random_problem([3, 16, 16, 4], n=64, density=density, kind="classification")
    names = [n for n, _ in problem.model.prunable()]
    total = sum(w.numel() for _, w in problem.model.prunable())
    before = snapshot(problem.model)
    mask = GEMMiner(epochs=3, period=1, batch_size=16).prune(problem)
    assert_untouched(problem.model, before)
    assert kept(mask, names) == round(density * total)
    assert set(mask) == set(names)
    again = GEMMiner(epochs=3, period=1, batch_size=16).prune(
        random_problem([3, 16, 16, 4], n=64, density=density, kind="classification"))
    assert all(torch.equal(mask[n], again[n]) for n in names)


# --- every pruner on a real problem ---------------------------------------------------------


@pytest.mark.parametrize("pruner", [EdgePopup(epochs=1), EdgePopupAnnealed(epochs=2), IterSNIP(rounds=5),
                                    Force(rounds=5), ProsPr(), PHEW(), GEMMiner(epochs=2, period=1)],
                         ids=lambda p: p.name)
def test_masks_pass_validation_on_a_real_problem(pruner):
    problem = make_problem(get_task("circle"), 4, 24, 0, 0.1)
    shapes = {n: tuple(p.shape) for n, p in problem.model.prunable()}
    bias_shapes = {f"layers.{l}.bias": (lin.out_features,) for l, lin in enumerate(problem.model.layers)}
    before = snapshot(problem.model)
    mask = pruner.prune(problem)
    checked = validate_mask(mask, shapes, bias_shapes, problem.density)
    assert kept(checked, shapes) <= round(0.1 * sum(torch.Size(s).numel() for s in shapes.values()))
    assert_untouched(problem.model, before)


def test_prospr_halves_a_diverging_inner_lr_until_the_meta_gradient_is_finite():
    problem = random_problem([3, 8, 8, 2], n=32)
    x, y = problem.x, problem.y

    def finite(scores):
        return all(bool(torch.isfinite(s).all()) for s in scores.values())

    assert not finite(ProsPr(inner_steps=3, inner_lr=1e12, retries=0).scores(problem, x, y))  # diverges
    rescued = ProsPr(inner_steps=3, inner_lr=1e12, retries=60).scores(problem, x, y)
    assert finite(rescued)
    # the first finite lr in the halving sequence gives exactly its own scores
    lr = 1e12
    while not finite(ProsPr(inner_steps=3, inner_lr=lr, retries=0).scores(problem, x, y)):
        lr /= 2
    direct = ProsPr(inner_steps=3, inner_lr=lr, retries=0).scores(problem, x, y)
    assert all(torch.equal(rescued[n], direct[n]) for n in direct)
    # a trajectory that trains is scored as before: retries change nothing
    base = ProsPr().scores(problem, x, y)
    assert finite(base) and all(torch.equal(base[n], ProsPr(retries=0).scores(problem, x, y)[n]) for n in base)
