"""plantbench: plant a known sparse ticket in a random network and score pruners by whether they find it."""

from . import schedules
from ._version import __version__
from .analysis import compare_results, load_results
from .config import SweepConfig
from .errors import MaskError, PlantbenchError, PrunerError, UsageError
from .lockstep import train_many
from .mask import Mask, erk_counts
from .network import bias_name, weight_name
from .pruner import MultiShot, OutputScale, PruneProblem, Pruner, ScorePruner, TaskInfo
from .runner import SweepResult, sweep
from .scorestack import ScoreStack, prune_by_shape

__all__ = ["Mask", "MaskError", "MultiShot", "OutputScale", "PlantbenchError", "PruneProblem", "Pruner", "PrunerError",
           "ScorePruner", "ScoreStack", "SweepConfig", "SweepResult", "TaskInfo", "UsageError", "__version__", "bias_name", "compare_results",
           "erk_counts", "load_results", "prune_by_shape", "schedules", "sweep", "train_many", "weight_name"]
