"""LangGraph assembly of the agents (planner, scheduler, per-site deployers).

`create_control_graph` builds the StateGraph of one control cycle; `AgentsController` runs it
as a controller of the episode driver; `create_recall` is the experience-memory node, for
your own graphs too. Depends on `edgeagents`; never the other way round.
"""

from graphs.control import create_control_graph, default_env
from graphs.controller import AgentsController
from graphs.memory_nodes import create_recall

__all__ = ["AgentsController", "create_control_graph", "create_recall", "default_env"]
