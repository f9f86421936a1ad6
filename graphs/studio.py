"""The graph that `langgraph dev` and LangGraph Studio serve (see langgraph.json).

Compiled without a custom checkpointer (the server brings its own). Run with an empty input it
runs one control cycle on the default scenario. `EDGEAGENTS_LLM` picks the agents' LM
(default `local`, the embedded SmolLM2; `none` for tools and fallback only).
"""

import os

from edgeagents.agents.llm import create_chat_model
from graphs.control import create_control_graph

graph = create_control_graph(create_chat_model(os.environ.get("EDGEAGENTS_LLM", "local"))).compile(
    name="edgeagents"
)
