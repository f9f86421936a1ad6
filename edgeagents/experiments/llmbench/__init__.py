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

from edgeagents.experiments.llmbench.choice import (
    SHUFFLE_SEED,
    MenuAnswer,
    MenuPair,
    MenuPart,
    MenuScores,
    ask_menu,
    menu_part,
    menu_scores,
    permutation,
    pick_outcome,
    shuffled_user,
)
from edgeagents.experiments.llmbench.common import DEFAULT_TIMEOUT_S
from edgeagents.experiments.llmbench.menus import (
    MENU_AGENTS,
    SCHEMA_AGENT,
    Menu,
    MenuAgent,
    MenuOption,
    best_index,
    default_menus_path,
    load_menus,
    make_menu,
    menus_by_agent,
    option_score,
    parse_options,
    write_menus,
)
from edgeagents.experiments.llmbench.notices import (
    LabelledNotice,
    NoticeAnswer,
    NoticeScores,
    ask_notice,
    default_notices_path,
    field_counts,
    gold_intent,
    load_labelled_notices,
    notice_scores,
)
from edgeagents.experiments.llmbench.report import (
    CallCost,
    LLMBenchReport,
    LMRow,
    bench_row,
    call_cost,
    file_sha1,
)

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "MENU_AGENTS",
    "SCHEMA_AGENT",
    "SHUFFLE_SEED",
    "CallCost",
    "LLMBenchReport",
    "LMRow",
    "LabelledNotice",
    "Menu",
    "MenuAgent",
    "MenuAnswer",
    "MenuOption",
    "MenuPair",
    "MenuPart",
    "MenuScores",
    "NoticeAnswer",
    "NoticeScores",
    "ask_menu",
    "ask_notice",
    "bench_row",
    "best_index",
    "call_cost",
    "default_menus_path",
    "default_notices_path",
    "field_counts",
    "file_sha1",
    "gold_intent",
    "load_labelled_notices",
    "load_menus",
    "make_menu",
    "menu_part",
    "menu_scores",
    "menus_by_agent",
    "notice_scores",
    "option_score",
    "parse_options",
    "permutation",
    "pick_outcome",
    "shuffled_user",
    "write_menus",
]
