"""A deployer: one per site, in parallel; turns the plan into this site's actions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from edgeagents.agents.agent import (
    AgentNode,
    Choice,
    LMCall,
    Repaired,
    Step,
    clamp_choice,
    option_number,
)
from edgeagents.agents.lmconfig import DEFAULT_TIMEOUT_S
from edgeagents.agents.tools import ActionSet, deployer_menu, site_index
from edgeagents.core.control_state import ControlState
from edgeagents.core.scenario import Scenario
from edgeagents.core.state import DeploymentAction, Telemetry

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

DEPLOYER_PROMPT = (
    "Deployer of one edge GPU site. Choose what to change now: the plan's loads and unloads, "
    "compute shares, recovery of a lost model, or nothing. Reply in JSON."
)


class ModelBatch(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    batch: int = Field(description="Batch limit of the model's replicas at this site.")


class DeployerAnswer(Choice):
    max_batch: list[ModelBatch] = Field(
        default_factory=list, max_length=2, description="Batch limits to change."
    )


class Deployer(AgentNode):
    """Turns the plan into one site's actions; the site is `state["site"]` (see
    `create_deployer`)."""

    default_prompt = DEPLOYER_PROMPT

    def prepare(self, state: ControlState, scenario: Scenario) -> Step[ActionSet]:
        site = state["site"]
        telemetry = state["telemetry"]
        pending = (state.get("pending") or {}).get(site, [])
        menu = deployer_menu(
            site, telemetry, scenario, state.get("plan"), pending,
            retune=state.get("run_planner", True),
        )  # fmt: skip

        def repair(answer: DeployerAnswer) -> Repaired[ActionSet]:
            return repair_deployer_answer(answer, menu, site, telemetry, scenario)

        def finish(chosen: ActionSet) -> dict[str, Any]:
            done = all(a in chosen.actions for a in pending)
            return {"actions": {site: chosen.actions}, "pending": {site: [] if done else pending}}

        return Step(
            agent=f"{self.name}:{site}", user=render_deployer_prompt(site, telemetry, menu),
            schema=DeployerAnswer, menu_size=len(menu), repair=repair, fallback=lambda: menu[0],
            finish=finish,
        )  # fmt: skip


def create_deployer(
    model: BaseChatModel | None,
    *,
    scenario: Scenario | None = None,
    prompt: str | None = None,
    name: str = "deployer",
    timeout_s: float = DEFAULT_TIMEOUT_S["deployer"],
    lm_call: LMCall | None = None,
) -> Deployer:
    """A LangGraph node for the site named in `state["site"]` (sent by the graph's fan-out).

    Args:
        model: The chat model, or None for tools and fallback only.
        scenario: The city; if None, read from `config["configurable"]["scenario"]`.
        prompt: System prompt replacing the default.
        name: The node's name; records are named `{name}:{site}`.
        timeout_s: Limit of one LM call; past it the fallback decides.
        lm_call: Replaces `edgeagents.agents.llm.structured_call` (tests).
    """
    return Deployer(
        model, scenario=scenario, prompt=prompt, name=name, timeout_s=timeout_s, lm_call=lm_call
    )


def has_work(state: ControlState, site: str) -> bool:
    """Whether the deployer of `site` has more than `hold` to choose from: moves planned
    there, compute shares to retune (a new plan, a GPU with two replicas or more), or a model
    with no replica in the city to recover. The graph runs only these in a city of several
    regions, so a tick's deployers grow with what changed, not with the city."""
    if (state.get("pending") or {}).get(site):
        return True
    telemetry = state["telemetry"]
    index = site_index(telemetry)
    if any(m.model not in index.placed for m in telemetry.models):
        return True
    if not state.get("run_planner", True):
        return False
    gpus = [r.deployment.gpu_index for r in index.replicas.get(site, [])]
    return len(gpus) > len(set(gpus))


def render_deployer_prompt(site: str, telemetry: Telemetry, menu: list[ActionSet]) -> str:
    lines = [f"Site {site}"]
    index = site_index(telemetry)
    if site in index.sites:
        gpus = index.sites[site].gpus
        lines += [f"gpu{g.index} {g.type} {g.free_memory_gb:.0f} GB free" for g in gpus]
    lines.append("Replica: gpu, queue, busy")
    for r in index.replicas.get(site, []):
        d = r.deployment
        lines.append(f"{d.model} gpu{d.gpu_index} {r.queue_len} {r.busy_share:.0%}")
    lines.append("Options:")
    lines += [
        f"{option_number(k)} {m.name}: "
        + ("; ".join(f"{a.op} {a.model}" for a in m.actions) or "nothing")
        for k, m in enumerate(menu)
    ]
    return "\n".join(lines)


def repair_deployer_answer(
    answer: DeployerAnswer,
    menu: list[ActionSet],
    site: str,
    telemetry: Telemetry,
    scenario: Scenario,
) -> Repaired[ActionSet]:
    """Clamp the choice; keep batch limits only for models with a replica here, between half
    the model's default (a weak LM must not starve a model) and what the GPU's memory holds."""
    notes = []
    k, bad = clamp_choice(answer.choice, len(menu))
    if bad:
        notes.append(f"choice {answer.choice} out of range")
    chosen = menu[k]
    here = {r.deployment.model: r for r in telemetry.replicas if r.deployment.site == site}
    free = {(s.site, g.index): g.free_memory_gb for s in telemetry.sites for g in s.gpus}
    extra: list[DeploymentAction] = []
    for item in answer.max_batch:
        m, batch = item.model, item.batch
        if m not in here:
            notes.append(f"no replica of {m!r} here")
            continue
        d = here[m].deployment
        spec = scenario.model(m)
        room = free.get((site, d.gpu_index), 0.0) + d.memory_gb
        limit = 1
        while limit < spec.max_batch and spec.memory_gb(limit + 1) <= room:
            limit += 1
        floor = max(1, spec.max_batch // 2)
        if limit < floor:
            notes.append(f"batch of {m} left as is: memory holds only {limit}")
            continue
        fixed = min(max(int(batch), floor), limit)
        if fixed != batch:
            notes.append(f"batch {batch} of {m} set to {fixed}")
        if fixed != d.max_batch:
            extra.append(
                DeploymentAction(
                    site=site,
                    model=m,
                    op="configure",
                    gpu_index=d.gpu_index,
                    compute_share=d.compute_share,
                    max_batch=fixed,
                )
            )
    if extra:
        chosen = ActionSet(name=f"{chosen.name} + batch limits", actions=[*chosen.actions, *extra])
    return Repaired.from_notes(chosen, notes)
