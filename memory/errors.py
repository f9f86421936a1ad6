"""The one exception the experience store raises."""

from __future__ import annotations


class MemoryStoreError(RuntimeError):
    """The store or its embedding model cannot be used: unwritable or corrupted path, an
    incompatible store, a model that does not load. The message is one line, fit for a CLI."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
