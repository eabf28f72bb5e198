"""IMP: iterative magnitude pruning with rewinding to the initialisation.

Frankle and Carbin, "The Lottery Ticket Hypothesis: Finding Sparse, Trainable Neural Networks",
ICLR 2019. Each round trains the masked network, keeps the surviving weights of largest
trained magnitude |w| (global ranking), and resets the weights, and the optimiser, to the
planted initialisation. Pruned weights never come back.

Defaults, from Plant 'n' Seek's multi-shot protocol (Fischer and Burkholz, ICLR 2022, Sec. 4):
10 rounds (`rounds=10`), 5 epochs of the standard training per round (`epochs=5`), round r
prunes to density^(r/rounds).
"""

from plantbench import MultiShot, ScorePruner


class _TrainedMagnitude(ScorePruner):
    """The scores IMP ranks: |w| of the model as it stands (trained, before the rewind).

    The leading underscore keeps it private: it is not registered or offered as a pruner.
    """

    def score(self, problem, mask):
        return {n: p.detach().abs() for n, p in problem.model.prunable()}


class IMP(MultiShot):
    name = "imp"

    def __init__(self, rounds: int = 10, epochs: int = 5):
        super().__init__(_TrainedMagnitude(), rounds=rounds, epochs=epochs)
