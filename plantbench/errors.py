"""One error hierarchy: the CLI turns every PlantbenchError into a one-line message."""


class PlantbenchError(Exception):
    """Base class for every error plantbench raises on purpose."""


class UsageError(PlantbenchError):
    """A bad argument: unknown name, out-of-range value, unusable path."""


class RegistryError(UsageError):
    """An unknown or duplicate name in a registry."""


class PlantingError(PlantbenchError):
    """The ticket cannot be planted in the requested host."""


class MaskError(PlantbenchError):
    """A mask that breaks the contract: wrong key, shape, dtype, values or budget."""


class PrunerError(PlantbenchError):
    """A pruner file or class that cannot be used."""


class TaskError(UsageError):
    """A task file or class (plantbench.taskfile), or a suite file (plantbench.suitefile), that cannot be used."""


class RecordError(PlantbenchError):
    """A result file or record that breaks the schema."""


class ParameterError(UsageError):
    """A bad value for one named parameter of the Python API.

    The message names the parameter (`densities 1.5: a density must lie in (0, 1]`); the
    command line puts its own flag in the parameter's place.
    """

    def __init__(self, param: str, reason: str, value: object = None):
        self.param, self.reason, self.value = param, reason, value
        super().__init__(self.naming(param))

    def __reduce__(self):  # pickles whole, so that it crosses from a worker process intact
        return type(self), (self.param, self.reason, self.value)

    def naming(self, name: str) -> str:
        """The message with `name` (a flag, say) where the parameter's name was."""
        return f"{name}: {self.reason}" if self.value is None else f"{name} {self.value}: {self.reason}"
