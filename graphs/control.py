"""The control graph: observe -> planner (at epoch boundaries) -> deployers (one per site, in
parallel through `Send`) -> scheduler -> apply. One invocation is one control cycle. In a
city of several regions the planner fans out to a region planner per region (`Send`) and a
coordinator merges their plans before the deployers."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, get_type_hints

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from edgeagents.agents.agent import LMCall
from edgeagents.agents.coordinator import COORDINATOR, coordinate
from edgeagents.agents.deployer import create_deployer, has_work
from edgeagents.agents.planner import create_planner
from edgeagents.agents.region_planner import create_region_planner, open_regions
from edgeagents.agents.region_scheduler import regional_routing
from edgeagents.agents.scheduler import create_scheduler
from edgeagents.agents.twin import forecast_refuted
from edgeagents.core.control_state import ControlState
from edgeagents.core.env import Environment, decision_delay_s
from edgeagents.core.notice import Notice, read_notice_inputs, replan_due
from edgeagents.core.scenario import Scenario, load_scenario
from edgeagents.core.state import Decision, Telemetry

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

REQUIRED_FIELDS = ("telemetry", "plan", "pending", "actions", "routing", "records", "site")

EnvFactory = Callable[[Scenario], Environment]


def default_env(scenario: Scenario) -> Environment:
    """A fresh simulated city on the scenario, one control tick in (what Studio runs)."""
    from edgeagents.policies import ROUTERS
    from edgeagents.sim.city import SimulatedCity
    from edgeagents.sim.workload import generate_workload

    workload = generate_workload(scenario, duration_s=scenario.duration_s, seed=0)
    city = SimulatedCity(scenario, workload, ROUTERS.create("weighted"))
    city.advance(scenario.control.tick_s)
    return city


class EnvResolver:
    """Finds the environment of a run: `config["configurable"]["env"]`, or one made by the
    factory and kept per thread (so observe and apply of a cycle see the same city)."""

    def __init__(self, scenario: Scenario | None, factory: EnvFactory) -> None:
        self._scenario = scenario
        self._factory = factory
        self._made: dict[str, Environment] = {}

    def scenario(self, config: dict | None) -> Scenario:
        configurable = (config or {}).get("configurable", {})
        sc = configurable.get("scenario") or self._scenario
        if sc is None:
            sc = self._scenario = load_scenario("bristol")
        return sc

    def env(self, config: dict | None) -> Environment:
        configurable = (config or {}).get("configurable", {})
        if configurable.get("env") is not None:
            return configurable["env"]
        thread = str(configurable.get("thread_id", "default"))
        if thread not in self._made:
            self._made[thread] = self._factory(self.scenario(config))
        return self._made[thread]


def published_notices(
    state: ControlState, scenario: Scenario, env: Environment, now_s: float
) -> tuple[list[Notice], list[str]]:
    """Notices published by now and not read yet: the scenario's, the environment's
    operator endpoint's (the Ray Serve city), the graph input's; and one line per input
    refused (empty, over-long, not text)."""
    posted, errors = read_notice_inputs(state.get("notices") or [])
    operator = getattr(env, "operator_notices", None)
    published = [*scenario.notices, *(operator() if callable(operator) else []), *posted]
    read = state.get("intents") or {}
    unread: dict[str, Notice] = {}
    for n in published:
        if n.publish_s <= now_s and n.id not in read:
            unread.setdefault(n.id, n)
    seen = set(state.get("notice_errors_seen") or [])
    return list(unread.values()), [e for e in errors if e not in seen]


def bind(fn: Callable[..., Any], name: str | None = None, **deps: Any) -> Callable[..., Any]:
    """`fn` with its dependencies given, under its own name or `name` (LangGraph names a
    node's or a branch's runnable after its function)."""
    bound = partial(fn, **deps)
    bound.__name__ = name or fn.__name__  # type: ignore[attr-defined]
    return bound


def with_scenario(
    state: ControlState, config: RunnableConfig, *, node: Callable[..., dict], resolver: EnvResolver
) -> dict:
    """Runs an agent node with the run's scenario in its config."""
    cfg = dict(config or {})
    cfg["configurable"] = {**cfg.get("configurable", {}), "scenario": resolver.scenario(config)}
    return node(state, cfg)


def by_regions(
    state: ControlState,
    config: RunnableConfig,
    *,
    node: Callable[..., dict],
    regional: Callable[[Any, ControlState, Scenario], dict],
    resolver: EnvResolver,
) -> dict:
    """An agent's node: in a city of one region the agent itself; in a city of several, its
    regional form (`open_regions`, `regional_routing`) with the agent's settings."""
    sc = resolver.scenario(config)
    if len(sc.region_sites) == 1:
        return with_scenario(state, config, node=node, resolver=resolver)
    return regional(node, state, sc)


def observe(
    state: ControlState, config: RunnableConfig, *, resolver: EnvResolver, memory: bool
) -> dict:
    """Telemetry of the city now, the notices published since, and whether the planner runs
    this cycle (a new epoch, a notice, an intent window about to open or close, a site or
    link down or back, demand above what the plan's forecast allows: `forecast_refuted`)."""
    env = resolver.env(config)
    sc = resolver.scenario(config)
    telemetry = env.observe()
    epoch = int(telemetry.time_s // sc.control.planning_epoch_s)
    plan = state.get("plan")
    unread, errors = published_notices(state, sc, env, telemetry.time_s)
    intents = list((state.get("intents") or {}).values())
    last = state.get("time_s", -1.0)
    outages = outages_of(telemetry)
    planned_at = state.get("planned_at_s")
    run_planner = (
        plan is None
        or plan.epoch < epoch
        or bool(unread or errors)
        or replan_due(intents, last, telemetry.time_s)
        or outages != state.get("outages", outages)
        or bool(forecast_refuted(state.get("forecast"), telemetry, planned_at))
    )
    update: dict[str, Any] = {
        "time_s": telemetry.time_s,
        "cycle": state.get("cycle", 0) + 1,
        "started_wall_s": time.time(),
        "telemetry": telemetry,
        "run_planner": run_planner,
        "planned_at_s": telemetry.time_s if run_planner else planned_at,
        "outages": outages,
        "unread_notices": unread,
        "notice_errors": errors,
        "actions": None,
        "records": None,
        "recalled": [],
        "recalled_plan": None,
        "shift": None,
        "region_jobs": None,
        "region_plans": None,
        "regional": len(sc.region_sites) > 1,
    }
    if memory:
        from memory.experience import detect_shifts

        seen = detect_shifts(telemetry, state.get("forecast"))
        new = [s for s in seen if s not in (state.get("shifts_seen") or [])]
        update |= {"shifts_seen": seen, "shift": new[0] if new else None}
    return update


def outages_of(telemetry: Telemetry) -> list[str]:
    """Sites and links down now, as sorted names: when they change, the plan (made for the city
    as it was) is remade at once rather than at the next epoch."""
    sites = [f"site {s.site}" for s in telemetry.sites if not s.up]
    return sorted(sites + [f"link {'-'.join(sorted(link))}" for link in telemetry.down_links])


def fan_out(state: ControlState) -> list[Send]:
    """One deployer per site that is up, in parallel (in a city of several regions, per site
    with work to do: `has_work`); with none, straight to the scheduler."""
    sites = [s.site for s in state["telemetry"].sites if s.up]
    if state.get("regional"):
        sites = [s for s in sites if has_work(state, s)]
    return [Send("deployer", {**state, "site": s}) for s in sites] or [Send("scheduler", state)]


def after_observe(state: ControlState, *, first: str) -> list[Send] | str:
    return first if state["run_planner"] or state.get("shift") else fan_out(state)


def after_planner(state: ControlState) -> list[Send] | str:
    """A city of one region has its plan: the deployers. A city of several: a region
    planner for each region given a search, in parallel, else the coordinator at once."""
    jobs = state.get("region_jobs")
    if not jobs:
        return fan_out(state)
    searched = [r for r, job in jobs.items() if job.prompt_budget > 0]
    return [Send("region_planner", {**state, "region": r}) for r in searched] or COORDINATOR


def after_recall(state: ControlState) -> list[Send] | str:
    return "planner" if state["run_planner"] else fan_out(state)


def apply(state: ControlState, config: RunnableConfig, *, resolver: EnvResolver) -> dict:
    """The cycle's decision, applied after the time it took (or the run's fixed delay)."""
    env = resolver.env(config)
    configurable = (config or {}).get("configurable", {})
    by_site = state.get("actions") or {}
    actions = [a for site in sorted(by_site) for a in by_site[site]]
    decision = Decision(
        time_s=env.now,
        routing=state.get("routing"),
        actions=actions,
        plan=state.get("plan") if state.get("run_planner") else None,
        records=list((state.get("records") or {}).values()),
    )
    wall = time.time() - state.get("started_wall_s", time.time())
    delay = decision_delay_s(configurable.get("charge_decision_time", True), wall)
    if delay > 0:
        env.advance(env.now + delay)
    report = env.apply(decision)
    return {"decision": decision.model_copy(update={"time_s": env.now}), "report": report}


def agent_kwargs(
    agent: str, lm_timeouts_s: dict[str, float] | None, extra: dict[str, Any] | None
) -> dict[str, Any]:
    """An agent factory's keyword arguments: its LM timeout, if set, then `extra`."""
    timeout = (lm_timeouts_s or {}).get(agent)
    return ({} if timeout is None else {"timeout_s": timeout}) | (extra or {})


def create_control_graph(
    model: BaseChatModel | None,
    *,
    planner_model: BaseChatModel | None = None,
    scheduler_model: BaseChatModel | None = None,
    deployer_model: BaseChatModel | None = None,
    scenario: Scenario | None = None,
    env_factory: EnvFactory = default_env,
    state_schema: type = ControlState,
    lm_call: LMCall | None = None,
    planner_kwargs: dict[str, Any] | None = None,
    scheduler_kwargs: dict[str, Any] | None = None,
    lm_timeouts_s: dict[str, float] | None = None,
    memory: Any = None,
    memory_k: int = 3,
) -> StateGraph:
    """Build (uncompiled) the graph of one control cycle; compile it with the checkpointer and
    store of your choice.

    Args:
        model: Chat model for every agent (None: tools and fallback only, the `none` ablation).
        planner_model: Overrides `model` for the planner (it may be a larger one).
        scheduler_model: Overrides `model` for the scheduler.
        deployer_model: Overrides `model` for the deployers.
        scenario: The city; None reads `config["configurable"]["scenario"]`, else `bristol`.
        env_factory: Makes an environment when the run's config carries none.
        state_schema: The state TypedDict; must have ControlState's fields and reducers.
        lm_call: Replaces `edgeagents.agents.llm.structured_call` (tests).
        planner_kwargs: Extra keyword arguments of `create_planner`.
        scheduler_kwargs: Extra keyword arguments of `create_scheduler`.
        lm_timeouts_s: LM call limit per agent ("planner", "scheduler", "deployer").
        memory: A `memory.store.ExperienceStore`: each planning epoch stores how the previous
            plan went and shows the planner the `memory_k` most similar past situations; a
            sharp shift with a remembered precedent re-plans at once (`graphs.memory_nodes`).
    """
    check_state_schema(state_schema)
    resolver = EnvResolver(scenario, env_factory)
    planner = create_planner(
        planner_model or model, lm_call=lm_call,
        **agent_kwargs("planner", lm_timeouts_s, planner_kwargs),
    )  # fmt: skip
    agents = {
        "planner": planner,
        "region_planner": create_region_planner(planner),
        COORDINATOR: coordinate,
        "deployer": create_deployer(
            deployer_model or model, lm_call=lm_call,
            **agent_kwargs("deployer", lm_timeouts_s, None),
        ),
        "scheduler": create_scheduler(
            scheduler_model or model, lm_call=lm_call,
            **agent_kwargs("scheduler", lm_timeouts_s, scheduler_kwargs),
        ),
    }  # fmt: skip
    first = "recall" if memory is not None else "planner"
    graph = StateGraph(state_schema)
    graph.add_node("observe", bind(observe, resolver=resolver, memory=memory is not None))
    regional = {"planner": open_regions, "scheduler": regional_routing}
    for name, node in agents.items():
        if name in regional:
            step = bind(by_regions, name, node=node, regional=regional[name], resolver=resolver)
        else:
            step = bind(with_scenario, name, node=node, resolver=resolver)
        graph.add_node(name, step)
    graph.add_node("apply", bind(apply, resolver=resolver))
    graph.add_edge(START, "observe")
    graph.add_conditional_edges(
        "observe", bind(after_observe, first=first), [first, "deployer", "scheduler"]
    )
    if memory is not None:
        from graphs.memory_nodes import create_recall

        recall = create_recall(memory, k=memory_k)
        graph.add_node("recall", bind(with_scenario, "recall", node=recall, resolver=resolver))
        graph.add_conditional_edges("recall", after_recall, ["planner", "deployer", "scheduler"])
    graph.add_conditional_edges(
        "planner", after_planner, ["deployer", "scheduler", "region_planner", COORDINATOR]
    )
    graph.add_edge("region_planner", COORDINATOR)
    graph.add_conditional_edges(COORDINATOR, fan_out, ["deployer", "scheduler"])
    graph.add_edge("deployer", "scheduler")
    graph.add_edge("scheduler", "apply")
    graph.add_edge("apply", END)
    return graph


def check_state_schema(schema: type) -> None:
    """A user's state schema must carry the fields the nodes write, with the same reducers."""
    try:
        hints = get_type_hints(schema, include_extras=True)
    except Exception as e:
        raise TypeError(f"state_schema {schema!r} is not a TypedDict with resolvable hints") from e
    ours = get_type_hints(ControlState, include_extras=True)
    missing = [f for f in REQUIRED_FIELDS if f not in hints]
    if missing:
        raise TypeError(
            f"state_schema {schema.__name__} lacks {', '.join(missing)}: subclass "
            "edgeagents.core.control_state.ControlState to add your own fields"
        )
    for field in ("pending", "actions", "records"):
        if getattr(hints[field], "__metadata__", None) != getattr(
            ours[field], "__metadata__", None
        ):
            raise TypeError(
                f"state_schema {schema.__name__}.{field} needs the reducer of ControlState "
                "(edgeagents.core.control_state.merge_by_key): parallel deployers write it"
            )
