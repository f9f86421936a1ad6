"""The experience store on Chroma (persistent, offline embeddings). Depends on
`edgeagents.core` for types, `edgeagents.sim.metrics` for the Jain index and the embedded
encoder (`edgeagents.agents.encoder`); never on the simulated city.

Importing `memory` is cheap: chromadb and torch load only when a store is opened or a text is
embedded. `from memory.store import ExperienceStore`.
"""

from memory.errors import MemoryStoreError
from memory.experience import Experience, summarize_situation

__all__ = ["Experience", "MemoryStoreError", "summarize_situation"]
