"""The agents' graph as a controller of the episode driver, beside the baselines."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, ClassVar

from edgeagents.core.env import DecisionCharge, Environment
from edgeagents.core.scenario import Scenario
from edgeagents.core.state import ApplyReport, Decision
from edgeagents.policies import Controller

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

_threads = itertools.count()

CARRIED = (
    "cycle",
    "plan",
    "forecast",
    "pending",
    "routing",
    "last_situation",
    "shifts_seen",
    "shift_watch",
    "time_s",
    "planned_at_s",
    "intents",
    "intent_baselines",
    "notice_errors_seen",
    "outages",
    "routing_evaluated",
)
"""What one cycle hands the next when no checkpointer keeps the thread's state."""


class AgentsController(Controller):
    """Runs one invocation of the compiled control graph per tick on the driver's city.

    Args:
        model: Chat model of every agent, or None (tools and fallback only).
        checkpointer: A LangGraph checkpointer (e.g. SqliteSaver) so a run can resume; the
            thread id names the run.
        thread_id: Names the run in the checkpointer; default a fresh one per controller.
        graph_kwargs: Passed to `create_control_graph`.
    """

    name: ClassVar[str] = "agents"

    def __init__(
        self,
        model: BaseChatModel | None,
        *,
        checkpointer: Any = None,
        thread_id: str | None = None,
        **graph_kwargs: Any,
    ) -> None:
        from graphs.control import create_control_graph

        self.graph = create_control_graph(model, **graph_kwargs).compile(checkpointer=checkpointer)
        self.thread_id = thread_id or f"agents-{next(_threads)}"
        self.checkpointed = checkpointer is not None
        self._carry: dict[str, Any] = {}
        self._resume_id: str | None = None

    def resume_from(self, checkpoint_id: str) -> None:
        """Run the next cycle from this checkpoint of the thread (the last whole cycle of a
        killed run), not from the thread's latest one."""
        self._resume_id = checkpoint_id

    def step(
        self, env: Environment, scenario: Scenario, *, charge_decision_time: DecisionCharge = True
    ) -> tuple[Decision, ApplyReport]:
        config = {
            "configurable": {
                "env": env,
                "scenario": scenario,
                "charge_decision_time": charge_decision_time,
                "thread_id": self.thread_id,
            },
            "recursion_limit": 50,
        }
        if self._resume_id is not None:
            config["configurable"]["checkpoint_id"] = self._resume_id
            self._resume_id = None
        if self.checkpointed:  # a whole cycle is what a run resumes from: only its end is kept
            state = self.graph.invoke({}, config=config, durability="exit")
        else:
            state = self.graph.invoke(self._carry, config=config)
        self._carry = {k: state[k] for k in CARRIED if k in state}
        return state["decision"], state["report"]
