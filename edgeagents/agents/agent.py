"""What every agent step shares: show the menu, ask the LM, repair or fall back, record.

An agent step is: (1) tools compute facts and a ranked menu of feasible options; (2) a compact
prompt shows them (metadata and telemetry only, never a user's prompt text); (3) the LM answers
in a pydantic schema; (4) the agent's repair function makes the answer feasible; (5) when the
LM is disabled, fails or times out, the fallback takes the menu's first option. The record says
which of these produced the decision.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from edgeagents.core.control_state import ControlState
from edgeagents.core.state import AgentRecord, DecisionPath

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.runnables import RunnableConfig

    from edgeagents.agents.twin import Prediction
    from edgeagents.core.scenario import Scenario

T = TypeVar("T")
A = TypeVar("A", bound="Choice")
P = TypeVar("P", bound="Predicted")

RATIONALE_CHARS = 60
"""Short enough that a deployer's answer fits its 96 tokens: a small LM fills a longer
rationale with digits and its answer is cut off (docs/decisions.md)."""
FIRST_OPTION = 1
"""Menus are numbered from 1, as lists are in the text chat LMs learn from. A small LM that
answers the first number it sees then takes the tools' best option, not the second."""
CHOICE_TOLERANCE = 0.25
"""The LM may pick any option the twin predicts within this share of the best one's score; past
it the best option is taken. Near-equal options are the LM's call; a clearly worse one is not
(a small LM can choose `hold` epoch after epoch while latency climbs)."""
HARM_TOLERANCE = 0.02
"""An LM's edit of a menu option (extra loads, site weights) stands only when the twin predicts
it at most this much worse than the option it edits: an edit is the LM's call, a harm is not."""
NO_CONFIG: RunnableConfig = {}
"""Default `config` of a node called directly, outside a graph (never mutated)."""


class Choice(BaseModel):
    """The minimal answer: which menu option, and why in a sentence."""

    model_config = ConfigDict(extra="ignore")

    choice: int = Field(description=f"Number of the chosen option ({FIRST_OPTION} = first).")
    rationale: str = Field(default="", max_length=RATIONALE_CHARS, description="A few words: why.")


@dataclass(slots=True)
class Repaired(Generic[T]):
    """A repaired answer: the value to use, whether anything was changed, and what."""

    value: T
    changed: bool
    note: str = ""

    @classmethod
    def from_notes(cls, value: T, notes: list[str]) -> Repaired[T]:
        """Changed when anything was noted. A note repeated (a small LM names one bad item in
        every slot) is said once, with its count."""
        said = Counter(notes)
        note = "; ".join(n if k == 1 else f"{n} (x{k})" for n, k in said.items())
        return cls(value=value, changed=bool(notes), note=note)


LMCall = Callable[..., tuple[BaseModel | None, Any]]


def default_lm_call() -> LMCall:
    from edgeagents.agents.llm import structured_call

    return structured_call


def run_step(
    *,
    agent: str,
    model: BaseChatModel | None,
    system: str,
    user: str,
    schema: type[A],
    menu_size: int,
    repair: Callable[[A], Repaired[T]],
    fallback: Callable[[], T],
    timeout_s: float,
    lm_call: LMCall | None = None,
) -> tuple[T, AgentRecord]:
    """One agent decision with its record. Never raises for the LM's sake."""
    t0 = time.perf_counter()
    if menu_size <= 1:
        return fallback(), AgentRecord(
            agent=agent, path="tools", rationale="one feasible option; no LM call",
            wall_s=time.perf_counter() - t0,
        )  # fmt: skip
    if model is None:
        return fallback(), AgentRecord(
            agent=agent, path="fallback", rationale="LM disabled (--llm none): first option",
            wall_s=time.perf_counter() - t0,
        )  # fmt: skip
    call = lm_call or default_lm_call()
    answer, stats = call(model, schema, [("system", system), ("user", user)], timeout_s=timeout_s)
    tokens = (getattr(stats, "prompt_tokens", 0) or 0) + (
        getattr(stats, "completion_tokens", 0) or 0
    )
    if answer is None:
        error = getattr(stats, "error", None) or "no answer"
        return fallback(), AgentRecord(
            agent=agent, path="fallback", rationale=f"LM failed ({error}): first option",
            wall_s=time.perf_counter() - t0, lm_calls=1, tokens=tokens,
        )  # fmt: skip
    try:
        fixed = repair(answer)  # type: ignore[arg-type]
    except Exception as e:  # a repair bug must not stop the city; say so in the record
        return fallback(), AgentRecord(
            agent=agent, path="fallback",
            rationale=f"answer not repairable ({type(e).__name__}: {e}): first option",
            wall_s=time.perf_counter() - t0, lm_calls=1, tokens=tokens, lm_choice=answer.choice,
        )  # fmt: skip
    path: DecisionPath = "repaired" if fixed.changed else "lm"
    why = getattr(answer, "rationale", "") or ""
    note = f" [repaired: {fixed.note}]" if fixed.changed and fixed.note else ""
    return fixed.value, AgentRecord(
        agent=agent, path=path, rationale=(why[:RATIONALE_CHARS] + note).strip(),
        wall_s=time.perf_counter() - t0, lm_calls=1, tokens=tokens, lm_choice=answer.choice,
    )  # fmt: skip


def option_number(index: int) -> int:
    """The number a menu shows for the option at `index`."""
    return index + FIRST_OPTION


def clamp_choice(choice: int, menu_size: int) -> tuple[int, bool]:
    """The menu index of the option numbered `choice`, which the LM may have got wrong: out of
    range goes to the first option."""
    k = choice - FIRST_OPTION
    if 0 <= k < menu_size:
        return k, False
    return 0, True


class Predicted(Protocol):
    """A menu option the twin has scored: a plan or a routing strategy."""

    @property
    def prediction(self) -> Prediction: ...


def guard_choice(
    choice: int, menu: Sequence[P], tolerance: float = CHOICE_TOLERANCE
) -> tuple[P, list[str]]:
    """The option to use for the LM's pick, and what was changed: an index out of range goes to
    the first option, a pick predicted more than `tolerance` worse than the best goes to the
    best."""
    k, bad = clamp_choice(choice, len(menu))
    notes = [f"choice {choice} out of range"] if bad else []
    chosen = menu[k]
    best = min(menu, key=lambda c: c.prediction.score())
    if chosen.prediction.score() > best.prediction.score() * (1 + tolerance):
        mine, top = chosen.prediction, best.prediction
        notes.append(
            f"choice {option_number(k)} predicted {mine.mean_latency_s:.2f} s, Jain "
            f"{mine.jain:.2f}, against the best option's {top.mean_latency_s:.2f} s, Jain "
            f"{top.jain:.2f}: took the best"
        )
        chosen = best
    return chosen, notes


def scenario_from_config(config: RunnableConfig | None) -> Scenario:
    """The scenario a node runs on, when its factory was not given one."""
    try:
        return config["configurable"]["scenario"]  # type: ignore[index]
    except (KeyError, TypeError) as e:
        raise ValueError(
            "no scenario: pass scenario= to the factory or config['configurable']['scenario']"
        ) from e


@dataclass(slots=True)
class Step(Generic[T]):
    """One decision as an agent sets it up: the prompt that shows its menu, the answer schema,
    how an answer is repaired, what stands without an LM, and how the decision becomes the
    node's state update (`finish`). `records` are decision-log entries besides the agent's
    own (the planner's notice readings)."""

    agent: str
    user: str
    schema: type[Choice]
    menu_size: int
    repair: Callable[[Any], Repaired[T]]
    fallback: Callable[[], T]
    finish: Callable[[T], dict[str, Any]]
    records: dict[str, AgentRecord] = field(default_factory=dict)


class AgentNode(ABC):
    """An agent as a LangGraph node: the body every agent shares (scenario lookup, `run_step`,
    timing, the record) around what is its own (`prepare`: menu, prompt, schema, repair)."""

    default_prompt: ClassVar[str]

    def __init__(
        self,
        model: BaseChatModel | None,
        *,
        scenario: Scenario | None,
        prompt: str | None,
        name: str,
        timeout_s: float,
        lm_call: LMCall | None,
    ) -> None:
        self.model = model
        self.scenario = scenario
        self.system = prompt or self.default_prompt
        self.name = self.__name__ = name
        self.timeout_s = timeout_s
        self.lm_call = lm_call

    @abstractmethod
    def prepare(self, state: ControlState, scenario: Scenario) -> Step[Any]:
        """The decision to take now, from the state and the city."""

    def __call__(self, state: ControlState, config: RunnableConfig = NO_CONFIG) -> dict[str, Any]:
        started = time.perf_counter()
        step = self.prepare(state, self.scenario or scenario_from_config(config))
        value, record = run_step(
            agent=step.agent, model=self.model, system=self.system, user=step.user,
            schema=step.schema, menu_size=step.menu_size, repair=step.repair,
            fallback=step.fallback, timeout_s=self.timeout_s, lm_call=self.lm_call,
        )  # fmt: skip
        update = step.finish(value)
        record = record.model_copy(update={"wall_s": time.perf_counter() - started})
        return {**update, "records": {step.agent: record, **step.records}}
