"""The experience store on Chroma (persistent, offline embeddings). Depends on `edgeagents`
for types only."""
