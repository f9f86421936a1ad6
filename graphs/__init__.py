"""LangGraph assembly of the agents (planner, scheduler, per-site deployers).

Depends on `edgeagents` (and `memory`); never the other way round.
"""
