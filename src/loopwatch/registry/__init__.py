"""The model registry: versions under a name, aliases, verified loading."""

from loopwatch.registry.registry import LoadedModel, Registry
from loopwatch.registry.samples import decode_frame, encode_frame

__all__ = ["LoadedModel", "Registry", "decode_frame", "encode_frame"]
