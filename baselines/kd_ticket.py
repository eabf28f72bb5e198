"""KD ticket: IMP whose retraining rounds learn from the dense network's outputs, not the labels.

Ma, Chen, Hu, You, Xie and Wang, "Good Students Play Big Lottery Better", arXiv preprint
(2021). The dense network is trained first under the standard protocol (`problem.train` with
the labels) and becomes the teacher. Its outputs on the training inputs are the targets of every
later round: for classification the class probabilities softmax(logits / T) with temperature T
(`temperature`), fitted by cross-entropy against the probability vector; for regression the
dense network's outputs themselves, fitted by MSE (`problem.train(mask, epochs, targets=...)`).

Rounds, as the suite's `imp` (global magnitude ranking, rewinding to the initialisation): round
1 prunes the trained dense network, keeping the weights of largest |w| to density^(1/rounds);
every later round r resets the surviving weights to the planted initialisation, trains them
against the teacher's targets for `epochs` epochs and prunes to density^(r/rounds) among them.
The last round rewinds too, and the mask is returned.

Defaults: 10 rounds (`rounds=10`) of 5 epochs (`epochs=5`), the suite's `imp` schedule
(Plant 'n' Seek, Fischer and Burkholz, ICLR 2022, Sec. 4), so the two differ only in the
targets; `temperature=1`, the teacher's own probabilities (T > 1 softens them as in Hinton et
al.'s distillation; the student's logits are not divided by T). The paper's own temperature
could not be checked here, so the neutral value is the default.
"""

import copy

import torch

from plantbench import Mask, Pruner, schedules, train_many


class KDTicket(Pruner):
    name = "kd-ticket"

    def __init__(self, rounds: int = 10, epochs: int = 5, temperature: float = 1.0):
        if int(rounds) < 1 or int(epochs) < 0 or not float(temperature) > 0:
            raise ValueError(f"need rounds >= 1, epochs >= 0, temperature > 0; got {rounds}, {epochs}, {temperature}")
        self.rounds = int(rounds)
        self.epochs = int(epochs)
        self.temperature = float(temperature)
        self.targets = None  # the teacher's targets, kept for inspection

    def teacher_targets(self, problem):
        """Train the dense network with the labels and return its outputs as targets."""
        problem.train(Mask.ones(problem.model), self.epochs)
        return self._outputs(problem)

    def prune(self, problem):
        initial = copy.deepcopy(problem.model.state_dict())
        self.targets = self.teacher_targets(problem)
        mask = Mask.ones(problem.model)
        for r in range(1, self.rounds + 1):
            if r > 1:
                problem.train(mask, self.epochs, targets=self.targets)
            scores = {n: p.detach().abs() for n, p in problem.model.prunable()}
            mask = Mask.top_k(scores, schedules.exponential(problem.density, r, self.rounds), within=mask)
            problem.model.load_state_dict(initial)
        return mask

    def prune_group(self, problems):
        """`prune` for every problem, the teachers' and every round's training in lockstep.
        `targets` ends as the last problem's."""
        initials = [copy.deepcopy(p.model.state_dict()) for p in problems]
        train_many(problems, [Mask.ones(p.model) for p in problems], self.epochs)
        targets = [self._outputs(p) for p in problems]
        masks = [Mask.ones(p.model) for p in problems]
        for r in range(1, self.rounds + 1):
            if r > 1:
                train_many(problems, masks, self.epochs, targets=targets)
            for i, (p, initial) in enumerate(zip(problems, initials)):
                scores = {n: q.detach().abs() for n, q in p.model.prunable()}
                masks[i] = Mask.top_k(scores, schedules.exponential(p.density, r, self.rounds), within=masks[i])
                p.model.load_state_dict(initial)
        self.targets = targets[-1] if targets else None
        return masks

    def _outputs(self, problem):
        """The trained network's outputs on the training inputs, as targets."""
        with torch.no_grad():
            out = problem.model(problem.x)
        return torch.softmax(out / self.temperature, -1) if problem.task.kind == "classification" else out
