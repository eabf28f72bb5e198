"""Multi-shot SynFlow and GraSP: the paper's train-prune-rewind protocol around a score pruner.

Fischer and Burkholz, "Plant 'n' Seek: Can You Find the Winning Ticket?", ICLR 2022, Sec. 4
(multi-shot, in the style of iterative magnitude pruning; IMP itself is `imp`). Each of 10
rounds (`rounds=10`) trains the masked network for 5 epochs (`epochs=5`) with the standard
protocol, scores the surviving weights with one shot of the method, prunes to density^(r/10)
and rewinds the weights to the planted initialisation. The scoring methods are the registered
`synflow-1` (Tanaka et al., NeurIPS 2020) and `grasp` (Wang et al., ICLR 2020), with their
own defaults.
"""

from plantbench import MultiShot, baseline


class SynFlowMultiShot(MultiShot):
    name = "synflow-multishot"

    def __init__(self, rounds: int = 10, epochs: int = 5):
        super().__init__(baseline("synflow-1")(), rounds=rounds, epochs=epochs)


class GraSPMultiShot(MultiShot):
    name = "grasp-multishot"

    def __init__(self, rounds: int = 10, epochs: int = 5):
        super().__init__(baseline("grasp")(), rounds=rounds, epochs=epochs)
