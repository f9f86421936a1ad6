"""The agents: the shared decision step (`agent`), the planner, scheduler and deployers, the
tools they call (`tools`, the digital twin `twin`), operator notices read by an LM, and the LM
backends (`llm`, `lmconfig`).

Imports `edgeagents.core`, `edgeagents.sim` and `edgeagents.policies`; never `graphs`,
`memory`, `serving` or the experiments. LM clients load lazily, when a model is created.
"""
