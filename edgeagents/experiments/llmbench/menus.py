"""Recorded menus: what an agent put to its LM in a real run, read back into numbered options
with the twin's predictions, and the shipped file they are kept in."""

from __future__ import annotations

import gzip
import json
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edgeagents.experiments.llmbench.common import data_path

MenuAgent = Literal["planner", "scheduler", "deployer"]
MENU_AGENTS: tuple[MenuAgent, ...] = ("planner", "scheduler", "deployer")
SCHEMA_AGENT: dict[str, MenuAgent] = {
    "PlannerAnswer": "planner",
    "SchedulerAnswer": "scheduler",
    "DeployerAnswer": "deployer",
}
"""The answer schema's class name tells which agent asked (an `lm_call` is not told)."""
OPTIONS_HEADER: dict[MenuAgent, str] = {
    "planner": "Plans: predicted mean s, Jain, moves",
    "scheduler": "Options: predicted mean s, Jain",
    "deployer": "Options:",
}
"""The line of each agent's prompt after which its numbered options come."""
JAIN_TARGET = 0.93
"""As `Prediction.score`'s default."""
MENUS_FILE = "menus.jsonl"

_PLANNER_LINE = re.compile(r"^(\d+) (\S+) (\S+) (.*)$")
_SCHEDULER_LINE = re.compile(r"^(\d+) (.+) (\S+) (\S+)$")
_DEPLOYER_LINE = re.compile(r"^(\d+) (.*)$")


class MenuOption(BaseModel):
    """One numbered line of a menu, with the twin's prediction when the prompt shows it."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="The line after its number, as shown.")
    mean_s: float | None = Field(default=None, description="Predicted mean latency, s.")
    jain: float | None = Field(default=None, description="Predicted normalized Jain index.")
    score: float | None = Field(
        default=None, description="mean * (1 + 3 * max(0, 0.93 - jain)); lower is better."
    )


class Menu(BaseModel):
    """A menu an agent put to its LM in a real run, and what the twin said of each option."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="scenario:seed:time:agent[:site], unique in the file.")
    agent: MenuAgent
    scenario: str
    seed: int
    time_s: float = Field(description="Simulated time of the control tick, s.")
    system: str = Field(description="The system message, exactly as the agent sent it.")
    user: str = Field(description="The user message, exactly as the agent sent it.")
    schema_name: str = Field(description="The answer schema's class name.")
    n_options: int = Field(ge=2)
    options_line: int = Field(ge=1, description="Line index (0-based) of option 1 in `user`.")
    options: list[MenuOption]
    best: int = Field(
        ge=0,
        description="Index (0-based) of the lowest score; deployer menus show no predictions, "
        "so theirs is the tools' first option.",
    )

    @property
    def has_predictions(self) -> bool:
        return all(o.score is not None for o in self.options)


def option_score(mean_s: float, jain: float, jain_target: float = JAIN_TARGET) -> float:
    """The agents' ranking (`Prediction.score`) from the figures a prompt shows."""
    return mean_s * (1.0 + 3.0 * max(0.0, jain_target - jain))


def best_index(options: Sequence[MenuOption]) -> int:
    """The first option of lowest score; the first option when none is scored."""
    scored = [(o.score, k) for k, o in enumerate(options) if o.score is not None]
    if len(scored) != len(options):
        return 0
    return min(scored)[1]


def _number(text: str) -> float:
    x = float(text)
    return x if math.isfinite(x) else math.inf


def parse_options(agent: MenuAgent, user: str) -> tuple[int, list[MenuOption]]:
    """(line index of option 1, options) of a prompt: the lines numbered 1, 2, ... after the
    agent's options header. Planner lines read `k mean jain name`, scheduler lines `k name mean
    jain`; deployer lines carry no prediction."""
    lines = user.split("\n")
    header = OPTIONS_HEADER[agent]
    try:
        h = lines.index(header)
    except ValueError:
        raise ValueError(f"{agent} prompt has no line {header!r}") from None
    options: list[MenuOption] = []
    for line in lines[h + 1 :]:
        expected = f"{len(options) + 1} "
        if not line.startswith(expected):
            break
        if agent == "planner":
            m = _PLANNER_LINE.match(line)
            mean, jain = (m.group(2), m.group(3)) if m else (None, None)
        elif agent == "scheduler":
            m = _SCHEDULER_LINE.match(line)
            mean, jain = (m.group(3), m.group(4)) if m else (None, None)
        else:
            m = _DEPLOYER_LINE.match(line)
            mean = jain = None
        if m is None:
            break
        opt = MenuOption(text=line[len(expected) :])
        if mean is not None and jain is not None:
            try:
                ms, jn = _number(mean), float(jain)
            except ValueError:
                break
            opt = MenuOption(text=opt.text, mean_s=ms, jain=jn, score=option_score(ms, jn))
        options.append(opt)
    return h + 1, options


def make_menu(
    *,
    agent: MenuAgent,
    scenario: str,
    seed: int,
    time_s: float,
    system: str,
    user: str,
    schema_name: str,
    menu_id: str,
) -> Menu | None:
    """A `Menu` from what an agent sent its LM; None when the prompt shows fewer than two
    options (the agents never ask then)."""
    start, options = parse_options(agent, user)
    if len(options) < 2:
        return None
    return Menu(
        id=menu_id, agent=agent, scenario=scenario, seed=seed, time_s=round(time_s, 3),
        system=system, user=user, schema_name=schema_name, n_options=len(options),
        options_line=start, options=options, best=best_index(options),
    )  # fmt: skip


def default_menus_path() -> Path:
    return data_path(MENUS_FILE)


def write_menus(menus: Iterable[Menu], path: Path) -> int:
    """JSON lines, gzip when the name ends in .gz (mtime 0: the same menus, the same bytes)."""
    text = "".join(json.dumps(m.model_dump(mode="json"), sort_keys=True) + "\n" for m in menus)
    data = text.encode()
    if path.suffix == ".gz":
        data = gzip.compress(data, compresslevel=9, mtime=0)
    path.write_bytes(data)
    return text.count("\n")


def load_menus(path: Path | None = None, limit: int | None = None) -> list[Menu]:
    """The recorded menus (the shipped file by default); the first `limit` if given."""
    p = path or default_menus_path()
    raw = p.read_bytes()
    text = gzip.decompress(raw).decode() if raw[:2] == b"\x1f\x8b" else raw.decode()
    menus: list[Menu] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            menus.append(Menu.model_validate_json(line))
        except ValueError as e:
            raise ValueError(f"{p}:{n}: not a menu ({str(e).splitlines()[0]})") from None
    return menus if limit is None else menus[:limit]


def menus_by_agent(menus: Sequence[Menu]) -> dict[str, int]:
    return {k: sum(m.agent == k for m in menus) for k in MENU_AGENTS}
