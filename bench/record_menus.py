"""Record the menus the agents put to their LM in real runs, for `edgeagents bench llm`.

Each run is the agents' graph on a scenario and seed with a placeholder model (so every agent
asks when its menu has more than one option) and a recording `lm_call` that keeps what was
asked and answers nothing: the agent then takes its menu's first option, so the run is the
`--llm none` run. Decisions apply 1 s after their tick and the plan search runs to its step
limit, so the menus do not depend on the machine's load.

    .venv/bin/python bench/record_menus.py            # writes edgeagents/data/menus.jsonl

The command, the runs and the counts go to edgeagents/data/menus.README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgeagents.experiments.llmbench import (  # noqa: E402
    MENU_AGENTS,
    SCHEMA_AGENT,
    Menu,
    make_menu,
    write_menus,
)

SCENARIOS = ("bristol", "bristol-events", "examples/failure_and_surge.yaml")
SEEDS = (0, 1, 2)
DECISION_S = 1.0
EPOCH_S = 40.0
"""A third of the scenarios' 120 s, so that the planner, which decides once an epoch, has
menus enough on three seeds (60 at 60 s)."""
MAX_PER_AGENT = 130


class Placeholder:
    """Stands where a chat model would: the agents only check that it is not None."""

    def __repr__(self) -> str:
        return "Placeholder()"


class Recorder:
    """An `lm_call` that records each menu and returns no answer (`error="recorded"`)."""

    def __init__(self) -> None:
        self.scenario = ""
        self.seed = 0
        self.time_s = 0.0
        self.asked: list[dict[str, Any]] = []
        self.other = Counter[str]()
        self._lock = threading.Lock()

    def __call__(
        self, model: Any, schema: type, messages: list[tuple[str, str]], *, timeout_s: float
    ) -> tuple[None, Any]:
        from edgeagents.agents.llm import LMCallStats

        name = schema.__name__
        with self._lock:  # deployers run in parallel threads
            if name in SCHEMA_AGENT:
                text = dict(messages)
                self.asked.append({
                    "agent": SCHEMA_AGENT[name], "scenario": self.scenario, "seed": self.seed,
                    "time_s": self.time_s, "system": text["system"], "user": text["user"],
                    "schema_name": name,
                })  # fmt: skip
            else:
                self.other[name] += 1  # a notice read by the planner's LM: not a menu
        return None, LMCallStats(error="recorded")


class TimedController:
    """The agents' controller, telling the recorder the simulated time of each tick."""

    def __init__(self, inner: Any, recorder: Recorder) -> None:
        self.inner = inner
        self.recorder = recorder
        self.name = "agents-recorded"

    def step(self, env: Any, scenario: Any, **kw: Any) -> Any:
        self.recorder.time_s = float(env.now)
        return self.inner.step(env, scenario, **kw)


def record_run(
    scenario_name: str, seed: int, duration_s: float | None, epoch_s: float | None, rec: Recorder
) -> float:
    """One agents run (as `--llm none`, decisions charged `DECISION_S`), with the planning
    epoch set to `epoch_s` if given (as `bench adaptation --epoch` does); its wall time, s."""
    from edgeagents.core.scenario import load_scenario
    from edgeagents.experiments.driver import run_episode
    from edgeagents.experiments.run import UNBOUNDED_WALL_S
    from edgeagents.policies import ROUTERS
    from edgeagents.sim.workload import generate_workload
    from graphs.controller import AgentsController

    path = ROOT / scenario_name
    sc = load_scenario(str(path) if path.suffix == ".yaml" else scenario_name)
    if epoch_s is not None:
        control = sc.control.model_copy(update={"planning_epoch_s": epoch_s})
        sc = sc.model_copy(update={"control": control})
    horizon = sc.duration_s if duration_s is None else min(duration_s, sc.duration_s)
    workload = generate_workload(sc, duration_s=horizon, seed=seed)
    model = Placeholder()
    controller = AgentsController(
        None, planner_model=model, scheduler_model=model, deployer_model=model,
        lm_call=rec, lm_timeouts_s=dict.fromkeys(MENU_AGENTS, UNBOUNDED_WALL_S),
        planner_kwargs={"search_budget_s": UNBOUNDED_WALL_S},
    )  # fmt: skip
    rec.scenario, rec.seed = scenario_name.removeprefix("examples/").removesuffix(".yaml"), seed
    t0 = time.perf_counter()
    run_episode(
        sc, workload, (ROUTERS.create("weighted"), TimedController(controller, rec)),
        seed=seed, duration_s=horizon, charge_decision_time=DECISION_S,
    )  # fmt: skip
    return time.perf_counter() - t0


def to_menus(asked: list[dict[str, Any]]) -> list[Menu]:
    """Menus in a fixed order (deployers of one tick answer in thread order), unique ids."""
    rank = {a: k for k, a in enumerate(MENU_AGENTS)}
    asked = sorted(asked, key=lambda a: (a["scenario"], a["seed"], a["time_s"],
                                         rank[a["agent"]], a["user"]))  # fmt: skip
    out: list[Menu] = []
    seen: Counter[str] = Counter()
    for a in asked:
        key = f"{a['scenario']}:{a['seed']}:{a['time_s']:g}:{a['agent']}"
        if a["agent"] == "deployer":
            key += ":" + a["user"].split("\n", 1)[0].removeprefix("Site ")
        seen[key] += 1
        menu_id = key if seen[key] == 1 else f"{key}#{seen[key]}"
        menu = make_menu(menu_id=menu_id, **a)
        if menu is not None:
            out.append(menu)
    return out


def thin(menus: list[Menu], per_agent: int) -> list[Menu]:
    """At most `per_agent` menus of each kind: those whose id hashes lowest (spread over runs
    and times, the same on every machine), in their recorded order."""
    keep: set[str] = set()
    for kind in MENU_AGENTS:
        ids = [m.id for m in menus if m.agent == kind]
        keep |= set(sorted(ids, key=lambda i: hashlib.sha1(i.encode()).hexdigest())[:per_agent])
    return [m for m in menus if m.id in keep]


def readme(
    menus: list[Menu], command: str, runs: list[tuple[str, int, float, int]], per_agent: int
) -> str:
    by = Counter((m.scenario, m.agent) for m in menus)
    kinds = Counter(m.agent for m in menus)
    not_first = sum(m.best != 0 for m in menus)
    lines = [
        "# menus.jsonl",
        "",
        "Menus the agents put to their LM in real runs, for `edgeagents bench llm`. Written by",
        "`bench/record_menus.py`; recorded with:",
        "",
        "```bash",
        command,
        "```",
        "",
        "Each run: the agents' graph with a placeholder model and a recording `lm_call` that",
        "answers nothing, so every agent falls back to its menu's first option (the `--llm none`",
        f"run); decisions apply {DECISION_S:g} s after their tick; plan search to its step limit;",
        "the planning epoch is set by `--epoch` (the scenarios have 120 s).",
        "A menu is kept when its prompt shows at least two options; of each agent kind at most",
        f"{per_agent}, those whose id hashes lowest (sha1).",
        "",
        "One JSON object a line (`edgeagents.experiments.llmbench.Menu`): agent, scenario, seed,",
        "sim time, system and user text as sent, answer schema name, options (the line after its",
        "number; planner and scheduler lines with the twin's predicted mean latency and Jain, and",
        "score = mean * (1 + 3 * max(0, 0.93 - jain))), and `best`, the 0-based index of the",
        "lowest score (deployer menus show no predictions: their best is the tools' first).",
        "",
        "| run | seed | wall s | menus asked |",
        "|---|---:|---:|---:|",
        *[f"| {s} | {seed} | {w:.0f} | {n} |" for s, seed, w, n in runs],
        "",
        f"Total {len(menus)} menus: "
        + ", ".join(f"{k} {kinds.get(k, 0)}" for k in MENU_AGENTS)
        + f". Best option not first (rounding of the shown figures, or operators' objectives "
        f"in force): {not_first}.",
        "",
        "| scenario | " + " | ".join(MENU_AGENTS) + " |",
        "|---|" + "---:|" * len(MENU_AGENTS),
        *[
            f"| {s} | " + " | ".join(str(by.get((s, k), 0)) for k in MENU_AGENTS) + " |"
            for s in sorted({m.scenario for m in menus})
        ],
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    ap.add_argument("--duration", type=float, default=None, help="Cap each run's horizon, s.")
    ap.add_argument("--epoch", type=float, default=EPOCH_S, help="Planning epoch, s.")
    ap.add_argument(
        "--max-per-agent", type=int, default=MAX_PER_AGENT,
        help="Keep at most this many menus of each agent kind (by hash of the menu id).",
    )  # fmt: skip
    ap.add_argument("--out", type=Path, default=ROOT / "edgeagents" / "data" / "menus.jsonl")
    ap.add_argument("--readme", type=Path, default=None, help="Default: menus.README.md by --out.")
    args = ap.parse_args(argv)
    rec = Recorder()
    runs: list[tuple[str, int, float, int]] = []
    for name in [s for s in args.scenarios.split(",") if s]:
        for seed in [int(x) for x in args.seeds.split(",") if x]:
            before = len(rec.asked)
            wall = record_run(name, seed, args.duration, args.epoch, rec)
            n = len(rec.asked) - before
            runs.append((name, seed, wall, n))
            print(f"{name} seed {seed}: {n} menus asked, {wall:.0f} s", file=sys.stderr)
    menus = thin(to_menus(rec.asked), args.max_per_agent)
    n = write_menus(menus, args.out)
    parts = ["bench/record_menus.py", f"--scenarios {args.scenarios}", f"--seeds {args.seeds}"]
    if args.duration is not None:
        parts.append(f"--duration {args.duration:g}")
    parts += [f"--epoch {args.epoch:g}", f"--max-per-agent {args.max_per_agent}"]
    command = ".venv/bin/python " + " ".join(parts)
    (args.readme or args.out.with_name("menus.README.md")).write_text(
        readme(menus, command, runs, args.max_per_agent)
    )
    print(f"wrote {args.out} ({n} menus; notices not recorded: {dict(rec.other)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
