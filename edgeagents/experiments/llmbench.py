"""`edgeagents bench llm`: how well an LM does the agents' own LM tasks, offline.

Two tasks, on shipped data so every LM is asked the same questions:

- **Menu choice**: menus recorded from real `--llm none`-style runs (`bench/record_menus.py`
  writes `data/menus.jsonl.gz`), asked again in the agents' own system and user text and answer
  schema. The twin's predictions shown in a menu give each option a score (`option_score`, as
  `Prediction.score`), so a pick's regret is in predicted seconds. Menus are shown best first,
  so "always answer 1" is optimal as shown; the *shuffled* pass renumbers the options by a
  seeded permutation (the same for every LM) and tells whether an LM reads the menu at all.
- **Notice extraction**: a labelled set of operator notices (`data/notices-bristol.jsonl`),
  read with `notices.extract_intent` and compared with the strict form of the label.

Pure functions and pydantic models; LM clients load lazily (through `edgeagents.agents.llm`), and
nothing here needs Ray or Chroma.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import random
import re
from collections.abc import Callable, Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from edgeagents.agents.notices import KindReader
    from edgeagents.core.notice import Intent
    from edgeagents.core.scenario import Scenario

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
NOTICES_FILE = "notices-bristol.jsonl"
NOTICES_SCENARIO = "bristol"
SHUFFLE_SEED = 20250101
"""One seed for every LM, so every row is asked the same shuffled menus."""
DEFAULT_TIMEOUT_S = 60.0
"""Per call: far above what an answer takes, so a loaded machine does not turn answers into
timeouts (the benchmark measures answers; the cost part measures time)."""
TIME_TOL_S = 1.0
REL_TOL = 0.01

_PLANNER_LINE = re.compile(r"^(\d+) (\S+) (\S+) (.*)$")
_SCHEDULER_LINE = re.compile(r"^(\d+) (.+) (\S+) (\S+)$")
_DEPLOYER_LINE = re.compile(r"^(\d+) (.*)$")


# ---- recorded menus -------------------------------------------------------------------------


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


def _data_path(name: str) -> Path:
    return Path(str(resources.files("edgeagents") / "data" / name))


def default_menus_path() -> Path:
    return _data_path(MENUS_FILE)


def default_notices_path() -> Path:
    return _data_path(NOTICES_FILE)


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


# ---- shuffling ------------------------------------------------------------------------------


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


# ---- asking and scoring menus -----------------------------------------------------------------


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
        from edgeagents.agents.planner import PlannerAnswer

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


def _share(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def menu_scores(answers: Sequence[MenuAnswer], menus: dict[str, Menu]) -> MenuScores:
    """Agreement, regret and invalid answers over `answers` (menus by id, for chance)."""
    regrets = [a.regret_s for a in answers if a.regret_s is not None]
    return MenuScores(
        menus=len(answers),
        agreement=_share([a.agrees for a in answers]),
        chance_agreement=(
            sum(1 / menus[a.menu_id].n_options for a in answers) / len(answers) if answers
            else None
        ),
        scored_menus=len(regrets),
        mean_regret_s=sum(regrets) / len(regrets) if regrets else None,
        invalid_share=_share([a.choice is None or a.out_of_range for a in answers]),
        out_of_range_share=_share([a.out_of_range for a in answers]),
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


# ---- notices ----------------------------------------------------------------------------------


class LabelledNotice(BaseModel):
    """One line of the labelled notices set: free text and its intent in strict form."""

    model_config = ConfigDict(extra="ignore")

    text: str
    publish_s: float = 0.0
    expect: str = Field(description="The intended intent in strict form.")
    tags: list[str] = Field(default_factory=list)


def load_labelled_notices(
    path: Path | None = None, limit: int | None = None
) -> list[LabelledNotice]:
    """The labelled set (the shipped file by default); the first `limit` if given."""
    p = path or default_notices_path()
    out: list[LabelledNotice] = []
    for n, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(LabelledNotice.model_validate_json(line))
        except ValueError as e:
            raise ValueError(f"{p}:{n}: not a labelled notice ({str(e).splitlines()[0]})") from None
    return out if limit is None else out[:limit]


def gold_intent(item: LabelledNotice, scenario: Scenario) -> Intent:
    """The label as an intent: its strict form read by `parse_strict`, as `--llm none` would."""
    from edgeagents.core.notice import Notice
    from edgeagents.core.notice_form import parse_strict

    gold = parse_strict(Notice(text=item.expect, publish_s=item.publish_s), scenario)
    if gold is None:
        raise ValueError(f"label {item.expect!r} is not in the strict form")
    return gold


SET_FIELDS = ("models", "sites", "cells")
NUMBER_FIELDS = ("start_s", "end_s", "factor", "bound_s")


class FieldCounts(BaseModel):
    """Counts behind a field's precision and recall."""

    model_config = ConfigDict(extra="forbid")

    predicted: int = 0
    gold: int = 0
    correct: int = 0

    @property
    def precision(self) -> float | None:
        return self.correct / self.predicted if self.predicted else None

    @property
    def recall(self) -> float | None:
        return self.correct / self.gold if self.gold else None


def _close(field: str, x: float, y: float) -> bool:
    if field in ("start_s", "end_s"):
        return abs(x - y) <= TIME_TOL_S
    return abs(x - y) <= REL_TOL * abs(y)


def field_counts(pred: Intent, gold: Intent) -> dict[str, FieldCounts]:
    """Per field, for one notice: names are set elements; a number counts as predicted when
    not None on a non-none intent, and correct within 1 s (times) or 1% (factor, bound)."""
    out: dict[str, FieldCounts] = {}
    for f in SET_FIELDS:
        p = set(getattr(pred, f)) if pred.kind != "none" else set()
        g = set(getattr(gold, f)) if gold.kind != "none" else set()
        out[f] = FieldCounts(predicted=len(p), gold=len(g), correct=len(p & g))
    for f in NUMBER_FIELDS:
        x = getattr(pred, f) if pred.kind != "none" else None
        y = getattr(gold, f) if gold.kind != "none" else None
        ok = x is not None and y is not None and _close(f, x, y)
        out[f] = FieldCounts(predicted=int(x is not None), gold=int(y is not None), correct=int(ok))
    return out


class NoticeAnswer(BaseModel):
    """One LM reading of one labelled notice."""

    model_config = ConfigDict(extra="forbid")

    index: int
    gold_kind: str
    kind: str
    exact: bool
    predicted: str = Field(description="The intent read, in strict form.")
    gold: str = Field(description="The label's intent, in strict form.")
    path: str
    error: str | None = None
    lm_calls: int = 0
    wall_s: float = 0.0
    tokens: int = 0
    fields: dict[str, FieldCounts]


def ask_notice(
    model: BaseChatModel | None,
    item: LabelledNotice,
    index: int,
    scenario: Scenario,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    kind_reader: KindReader = "auto",
) -> NoticeAnswer:
    """Read one notice as the planner does (`extract_intent`) and compare it with its label."""
    from edgeagents.agents.notices import extract_intent
    from edgeagents.core.notice import Notice, same_intent

    gold = gold_intent(item, scenario)
    notice = Notice(text=item.text, publish_s=item.publish_s)
    pred, cost = extract_intent(
        model, notice, scenario, timeout_s=timeout_s, kind_reader=kind_reader
    )
    return NoticeAnswer(
        index=index, gold_kind=gold.kind, kind=pred.kind, exact=same_intent(pred, gold),
        predicted=pred.strict(), gold=gold.strict(), path=pred.path, error=cost["error"],
        lm_calls=int(cost["lm_calls"]), wall_s=float(cost["wall_s"]), tokens=int(cost["tokens"]),
        fields=field_counts(pred, gold),
    )  # fmt: skip


class NoticeField(BaseModel):
    """A field's counts, precision and recall over all notices."""

    model_config = ConfigDict(extra="forbid")

    predicted: int
    gold: int
    correct: int
    precision: float | None = Field(description="correct / predicted.")
    recall: float | None = Field(description="correct / gold-present.")


class NoticeScores(BaseModel):
    """Notice extraction figures of one LM."""

    model_config = ConfigDict(extra="forbid")

    notices: int
    accuracy: float | None = Field(description="Share read as exactly the label's intent.")
    kind_accuracy: float | None = Field(description="Share read as the label's kind.")
    by_kind: dict[str, float | None] = Field(description="Exact accuracy per label kind.")
    by_kind_count: dict[str, int] = Field(description="Labelled notices per kind.")
    failed_share: float | None = Field(description="Share where the LM gave no valid answer.")
    fields: dict[str, NoticeField]


def notice_scores(answers: Sequence[NoticeAnswer]) -> NoticeScores:
    """Accuracy (overall, per label kind, of the kind alone) and per-field precision/recall."""
    kinds = sorted({a.gold_kind for a in answers})
    fields: dict[str, NoticeField] = {}
    for f in (*SET_FIELDS, *NUMBER_FIELDS):
        c = FieldCounts(
            predicted=sum(a.fields[f].predicted for a in answers),
            gold=sum(a.fields[f].gold for a in answers),
            correct=sum(a.fields[f].correct for a in answers),
        )
        fields[f] = NoticeField(
            predicted=c.predicted, gold=c.gold, correct=c.correct,
            precision=c.precision, recall=c.recall,
        )  # fmt: skip
    return NoticeScores(
        notices=len(answers),
        accuracy=_share([a.exact for a in answers]),
        kind_accuracy=_share([a.kind == a.gold_kind for a in answers]),
        by_kind={k: _share([a.exact for a in answers if a.gold_kind == k]) for k in kinds},
        by_kind_count={k: sum(a.gold_kind == k for a in answers) for k in kinds},
        failed_share=_share([a.lm_calls > 0 and a.error is not None for a in answers]),
        fields=fields,
    )


# ---- cost -------------------------------------------------------------------------------------


class CallCost(BaseModel):
    """What the LM calls of one part cost."""

    model_config = ConfigDict(extra="forbid")

    calls: int
    mean_s: float | None
    p95_s: float | None
    mean_tokens: float | None = Field(description="Prompt plus completion tokens per call.")


def call_cost(items: Sequence[MenuAnswer | NoticeAnswer]) -> CallCost:
    """Mean and p95 wall seconds and mean tokens over the items that made an LM call."""
    calls = [a for a in items if a.lm_calls > 0]
    if not calls:
        return CallCost(calls=0, mean_s=None, p95_s=None, mean_tokens=None)
    walls = sorted(a.wall_s for a in calls)
    return CallCost(
        calls=len(calls),
        mean_s=sum(walls) / len(walls),
        p95_s=_percentile(walls, 95.0),
        mean_tokens=sum(a.tokens for a in calls) / len(calls),
    )


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    n = len(sorted_values)
    pos = (n - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


# ---- the report -------------------------------------------------------------------------------


class LMRow(BaseModel):
    """Every figure of one LM."""

    model_config = ConfigDict(extra="forbid")

    llm: str
    kind_reader: str = Field("auto", description="Who read the notices' kind (notices.KindReader).")
    menus: MenuPart
    notices: NoticeScores
    menu_cost: CallCost
    notice_cost: CallCost
    wall_s: float = Field(description="Wall time of the whole row, s (indicative).")
    menu_answers: list[MenuAnswer]
    notice_answers: list[NoticeAnswer]


class LLMBenchReport(BaseModel):
    """What `edgeagents bench llm --json` writes."""

    model_config = ConfigDict(extra="forbid")

    menus_file: str
    menus_sha1: str
    notices_file: str
    notices_sha1: str
    menus: int
    menus_by_agent: dict[str, int]
    notices: int
    scenario: str = NOTICES_SCENARIO
    shuffle_seed: int
    timeout_s: float
    rows: list[LMRow]


def file_sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


Progress = Callable[[], None]


def bench_row(
    llm: str,
    model: BaseChatModel | None,
    menus: Sequence[Menu],
    notices: Sequence[LabelledNotice],
    scenario: Scenario,
    *,
    seed: int = SHUFFLE_SEED,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    kind_reader: KindReader = "auto",
    on_item: Progress | None = None,
    clock: Callable[[], float] | None = None,
) -> LMRow:
    """One LM's row: every menu as shown and shuffled, every notice, and what it cost."""
    import time

    now = clock or time.perf_counter
    t0 = now()
    answers: list[MenuAnswer] = []
    for shuffled in (False, True):
        for m in menus:
            answers.append(ask_menu(model, m, shuffled=shuffled, seed=seed, timeout_s=timeout_s))
            if on_item is not None:
                on_item()
    readings: list[NoticeAnswer] = []
    for k, item in enumerate(notices):
        readings.append(
            ask_notice(model, item, k, scenario, timeout_s=timeout_s, kind_reader=kind_reader)
        )
        if on_item is not None:
            on_item()
    return LMRow(
        llm=llm, kind_reader=kind_reader, menus=menu_part(answers, menus),
        notices=notice_scores(readings),
        menu_cost=call_cost(answers), notice_cost=call_cost(readings), wall_s=now() - t0,
        menu_answers=answers, notice_answers=readings,
    )  # fmt: skip


def menus_by_agent(menus: Sequence[Menu]) -> dict[str, int]:
    return {k: sum(m.agent == k for m in menus) for k in MENU_AGENTS}


__all__ = [
    "DEFAULT_TIMEOUT_S",
    "SHUFFLE_SEED",
    "CallCost",
    "LLMBenchReport",
    "LMRow",
    "LabelledNotice",
    "Menu",
    "MenuAnswer",
    "MenuOption",
    "MenuPart",
    "MenuScores",
    "NoticeAnswer",
    "NoticeScores",
    "ask_menu",
    "ask_notice",
    "bench_row",
    "best_index",
    "call_cost",
    "field_counts",
    "gold_intent",
    "load_labelled_notices",
    "load_menus",
    "make_menu",
    "menu_part",
    "menu_scores",
    "notice_scores",
    "option_score",
    "parse_options",
    "permutation",
    "pick_outcome",
    "shuffled_user",
    "write_menus",
]
