"""The menu choice task: each recorded menu asked again as shown (best first) and shuffled by a
seeded permutation, each pick's regret in predicted seconds, and the scores over the picks."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from edgeagents.experiments.llmbench.common import DEFAULT_TIMEOUT_S, share
from edgeagents.experiments.llmbench.menus import MENU_AGENTS, Menu, MenuAgent

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

SHUFFLE_SEED = 20250101
"""One seed for every LM, so every row is asked the same shuffled menus."""


def permutation(menu: Menu, seed: int = SHUFFLE_SEED) -> list[int]:
    """perm[j] = the original index of the option shown at position j; seeded by the seed and
    the menu's id only (string seeds are hashed the same in every process)."""
    order = list(range(menu.n_options))
    random.Random(f"{seed}:{menu.id}").shuffle(order)
    return order


def shuffled_user(menu: Menu, perm: Sequence[int]) -> str:
    """The user text with the option lines reordered by `perm` and renumbered from 1."""
    lines = menu.user.split("\n")
    for j, k in enumerate(perm):
        lines[menu.options_line + j] = f"{j + 1} {menu.options[k].text}"
    return "\n".join(lines)


class MenuAnswer(BaseModel):
    """One LM answer to one menu."""

    model_config = ConfigDict(extra="forbid")

    menu_id: str
    agent: MenuAgent
    shuffled: bool
    choice: int | None = Field(description="The number answered; None: no valid answer.")
    picked: int = Field(description="Original index of the option the agent would take.")
    best: int
    out_of_range: bool = False
    regret_s: float | None = Field(
        default=None, description="Score of the pick minus the best's, predicted s."
    )
    agrees: bool = Field(description="The pick is the best (or scores the same).")
    error: str | None = None
    lm_calls: int = 0
    wall_s: float = 0.0
    tokens: int = 0


def pick_outcome(
    menu: Menu, choice: int | None, perm: Sequence[int] | None = None
) -> tuple[int, bool, float | None, bool]:
    """(original index picked, out of range, regret s, agrees) for an answered number as the
    agents read it (`clamp_choice`): out of range, or no answer, takes the first option shown."""
    from edgeagents.agents.agent import clamp_choice

    order = list(perm) if perm is not None else list(range(menu.n_options))
    if choice is None:
        shown, bad = 0, False
    else:
        shown, bad = clamp_choice(choice, menu.n_options)
    picked = order[shown]
    if menu.has_predictions:
        best = menu.options[menu.best].score
        mine = menu.options[picked].score
        assert best is not None and mine is not None
        regret = mine - best if math.isfinite(mine) else math.inf
        return picked, bad, regret, regret <= 1e-9
    return picked, bad, None, picked == menu.best


def answer_schema(schema_name: str) -> type[BaseModel]:
    """The agent's own answer schema, by class name (agents import on first use)."""
    if schema_name == "PlannerAnswer":
        from edgeagents.agents.plan_answer import PlannerAnswer

        return PlannerAnswer
    if schema_name == "SchedulerAnswer":
        from edgeagents.agents.scheduler import SchedulerAnswer

        return SchedulerAnswer
    if schema_name == "DeployerAnswer":
        from edgeagents.agents.deployer import DeployerAnswer

        return DeployerAnswer
    raise ValueError(f"unknown answer schema {schema_name!r}")


def ask_menu(
    model: BaseChatModel | None,
    menu: Menu,
    *,
    shuffled: bool,
    seed: int = SHUFFLE_SEED,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> MenuAnswer:
    """Ask one menu as the agent would (its system and user text, its schema); no LM answers
    the first option shown, as the agents' fallback does."""
    perm = permutation(menu, seed) if shuffled else list(range(menu.n_options))
    if model is None:
        picked, bad, regret, agrees = pick_outcome(menu, 1, perm)
        return MenuAnswer(
            menu_id=menu.id, agent=menu.agent, shuffled=shuffled, choice=1, picked=picked,
            best=menu.best, out_of_range=bad, regret_s=regret, agrees=agrees,
        )  # fmt: skip
    from edgeagents.agents.llm import structured_call

    user = shuffled_user(menu, perm) if shuffled else menu.user
    answer, stats = structured_call(
        model, answer_schema(menu.schema_name), [("system", menu.system), ("user", user)],
        timeout_s=timeout_s,
    )  # fmt: skip
    choice = getattr(answer, "choice", None) if answer is not None else None
    picked, bad, regret, agrees = pick_outcome(menu, choice, perm)
    return MenuAnswer(
        menu_id=menu.id, agent=menu.agent, shuffled=shuffled, choice=choice, picked=picked,
        best=menu.best, out_of_range=bad, regret_s=regret, agrees=agrees,
        error=None if answer is not None else (stats.error or "no answer"), lm_calls=1,
        wall_s=stats.wall_s, tokens=(stats.prompt_tokens or 0) + (stats.completion_tokens or 0),
    )  # fmt: skip


class MenuScores(BaseModel):
    """Menu choice figures over a set of answers."""

    model_config = ConfigDict(extra="forbid")

    menus: int
    agreement: float | None = Field(description="Share of picks that are the best option.")
    chance_agreement: float | None = Field(
        description="What a uniformly random pick would agree on average (mean of 1/options)."
    )
    scored_menus: int = Field(description="Menus with predictions (planner and scheduler).")
    mean_regret_s: float | None = Field(
        description="Mean predicted-score regret of the pick, s, over scored menus."
    )
    invalid_share: float | None = Field(
        description="Share with no valid answer (error, timeout, schema) or out of range."
    )
    out_of_range_share: float | None = Field(description="Share answering a number not shown.")


def menu_scores(answers: Sequence[MenuAnswer], menus: dict[str, Menu]) -> MenuScores:
    """Agreement, regret and invalid answers over `answers` (menus by id, for chance)."""
    regrets = [a.regret_s for a in answers if a.regret_s is not None]
    return MenuScores(
        menus=len(answers),
        agreement=share([a.agrees for a in answers]),
        chance_agreement=(
            sum(1 / menus[a.menu_id].n_options for a in answers) / len(answers) if answers
            else None
        ),
        scored_menus=len(regrets),
        mean_regret_s=sum(regrets) / len(regrets) if regrets else None,
        invalid_share=share([a.choice is None or a.out_of_range for a in answers]),
        out_of_range_share=share([a.out_of_range for a in answers]),
    )  # fmt: skip


class MenuPair(BaseModel):
    """As shown (best first) and shuffled."""

    model_config = ConfigDict(extra="forbid")

    as_shown: MenuScores
    shuffled: MenuScores


class MenuPart(MenuPair):
    """Menu choice of one LM, over all menus and per agent kind."""

    by_agent: dict[str, MenuPair]


def menu_part(answers: Sequence[MenuAnswer], menus: Sequence[Menu]) -> MenuPart:
    by_id = {m.id: m for m in menus}

    def pair(kind: str | None) -> MenuPair:
        sel = [a for a in answers if kind is None or a.agent == kind]
        return MenuPair(
            as_shown=menu_scores([a for a in sel if not a.shuffled], by_id),
            shuffled=menu_scores([a for a in sel if a.shuffled], by_id),
        )

    whole = pair(None)
    kinds = [k for k in MENU_AGENTS if any(m.agent == k for m in menus)]
    return MenuPart(
        as_shown=whole.as_shown, shuffled=whole.shuffled, by_agent={k: pair(k) for k in kinds}
    )
