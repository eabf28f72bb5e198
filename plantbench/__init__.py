"""plantbench: plant a known sparse ticket in a random network and score pruners by whether they find it."""

from ._version import __version__
from .errors import MaskError, PlantbenchError, PrunerError, UsageError
from .mask import Mask
from .pruner import MultiShot, PruneProblem, Pruner, ScorePruner, TaskInfo

__all__ = ["Mask", "MaskError", "MultiShot", "PlantbenchError", "PruneProblem", "Pruner", "PrunerError",
           "ScorePruner", "TaskInfo", "UsageError", "__version__"]
