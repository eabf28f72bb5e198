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


class RecordError(PlantbenchError):
    """A result file or record that breaks the schema."""
