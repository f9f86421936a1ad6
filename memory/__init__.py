"""The experience store on Chroma (persistent, offline embeddings). Depends on `edgeagents`
for types only.

Importing `memory` is cheap: chromadb and torch load only when a store is opened or a text is
embedded. `from memory.store import ExperienceStore`.
"""

from memory.errors import MemoryStoreError
from memory.experience import Experience, summarize_situation

__all__ = ["Experience", "MemoryStoreError", "summarize_situation"]
