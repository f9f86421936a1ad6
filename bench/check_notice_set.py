"""Check the labelled notice set: every gold `expect` parses cleanly, and the mix holds.

    .venv/bin/python bench/check_notice_set.py [--file PATH] [--scenario NAME] [--names]

Each line of the set (default `edgeagents/data/notices-bristol.jsonl`) is one JSON object::

    {"text": "...", "publish_s": 300, "expect": "surge model=... from=... to=... x3",
     "tags": ["surge", "relative-time"]}

`expect` is the gold intent in the strict form (`edgeagents.agents.notices.parse_strict`), times
absolute. A line fails (exit 1, naming it) when its fields are malformed, its `text` is itself
in the strict form (the set is free text), its `expect` does not parse or parses with notes
(unknown names, a start before the notice, a clipped factor or a cut window: the gold is
written already bounded), its tags do not name its kind, or a `past-window` line is not
`none`. The set fails when a kind, the injections labelled `none`, or the past windows fall
below the mix below.

For information it prints how many lines' model and place words `NameIndex` maps to the
gold's names (a rough scan of the text for the index's aliases, plus its fuzzy match on the
remaining words); `--names` lists the lines where the scan and the gold differ.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from edgeagents.agents.notice_names import NameIndex, normalize
from edgeagents.core.notice import Notice, NoticeError
from edgeagents.core.notice_form import looks_strict, parse_strict
from edgeagents.core.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FILE = ROOT / "edgeagents" / "data" / "notices-bristol.jsonl"
MIN_LINES = 170
MIN_KIND = {"surge": 45, "maintenance": 35, "target": 30, "priority": 30, "none": 30}
MIN_INJECTION_NONE = 15
MIN_PAST_WINDOW = 6
KEYS = {"text", "publish_s", "expect", "tags"}
PUBLISH_RANGE = (0.0, 1500.0)


def scan_names(text: str, names: NameIndex) -> tuple[set[str], set[str]]:
    """(models, places) the index's aliases find in a text: longest aliases first, each word
    used once; then the index's own lookup (its fuzzy match) on the words left, one and two
    at a time. Places are sites and cells together (in this city they share names)."""
    words = normalize(text).split()
    used = [False] * len(words)
    models: set[str] = set()
    places: set[str] = set()
    tables = [(a, "model", v) for a, v in names.models.items()]
    tables += [(a, "place", v[0] | v[1]) for a, v in names.places.items()]
    for alias, what, hit in sorted(tables, key=lambda r: -len(r[0].split())):
        parts = alias.split()
        k = len(parts)
        for i in range(len(words) - k + 1):
            if words[i : i + k] == parts and not any(used[i : i + k]):
                used[i : i + k] = [True] * k
                (models if what == "model" else places).update(hit)
    for k in (2, 1):
        for i in range(len(words) - k + 1):
            if any(used[i : i + k]):
                continue
            phrase = " ".join(words[i : i + k])
            if len(phrase) < 4:
                continue
            s, c = names.place(phrase)
            if s or c:
                places |= s | c
                used[i : i + k] = [True] * k
                continue
            m = names.model(phrase)
            if m:
                models |= m
                used[i : i + k] = [True] * k
    return models, places


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", default=str(DEFAULT_FILE))
    ap.add_argument("--scenario", default="bristol")
    ap.add_argument("--names", action="store_true", help="list the lines the name scan misreads")
    args = ap.parse_args(argv)

    scenario = load_scenario(args.scenario)
    names = NameIndex(scenario)
    path = Path(args.file)
    errors: list[str] = []
    kinds: Counter[str] = Counter()
    tags: Counter[str] = Counter()
    injection_none = past_window = 0
    texts: dict[str, int] = {}
    scan_ok = scan_checked = 0
    scan_misses: list[str] = []
    lines = path.read_text().splitlines()
    count = 0
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        count += 1
        where = f"{path.name}:{n}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as e:
            errors.append(f"{where}: not valid JSON ({e.msg})")
            continue
        if not isinstance(data, dict) or set(data) != KEYS:
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            errors.append(f"{where}: expected the keys {sorted(KEYS)}, got {got}")
            continue
        text, publish = data["text"], data["publish_s"]
        expect, line_tags = data["expect"], data["tags"]
        if not isinstance(text, str) or not text.strip():
            errors.append(f"{where}: text is not a non-empty string")
            continue
        if looks_strict(text):
            errors.append(f"{where}: text is in the strict form; the set is free text")
        if text in texts:
            errors.append(f"{where}: same text as line {texts[text]}")
        texts.setdefault(text, n)
        ok_publish = isinstance(publish, (int, float)) and not isinstance(publish, bool)
        if not ok_publish or not PUBLISH_RANGE[0] <= publish <= PUBLISH_RANGE[1]:
            errors.append(f"{where}: publish_s {publish!r} is not a number in {PUBLISH_RANGE}")
            continue
        if not isinstance(line_tags, list) or not all(isinstance(t, str) for t in line_tags):
            errors.append(f"{where}: tags is not a list of strings")
            continue
        if not isinstance(expect, str):
            errors.append(f"{where}: expect is not a string")
            continue
        try:
            Notice(text=text, publish_s=publish)
            intent = parse_strict(Notice(text=expect, publish_s=publish), scenario)
        except (NoticeError, ValueError) as e:
            errors.append(f"{where}: expect {expect!r} does not parse ({e})")
            continue
        if intent is None:
            errors.append(f"{where}: expect {expect!r} is not in the strict form")
            continue
        if intent.notes or intent.refusal:
            why = "; ".join([*intent.notes, *([intent.refusal] if intent.refusal else [])])
            errors.append(f"{where}: expect {expect!r} has notes: {why}")
            continue
        if intent.kind not in line_tags:
            errors.append(f"{where}: tags {line_tags} do not name the kind {intent.kind!r}")
        if "past-window" in line_tags and intent.kind != "none":
            errors.append(f"{where}: a past-window line is labelled {intent.kind!r}, not none")
        if intent.kind != "none" and intent.strict() != expect:
            print(f"note {where}: expect {expect!r} reads as {intent.strict()!r}")
        kinds[intent.kind] += 1
        tags.update(set(line_tags))
        injection_none += intent.kind == "none" and "injection" in line_tags
        past_window += "past-window" in line_tags

        if intent.kind != "none":
            models, places = scan_names(text, names)
            gold_places = set(intent.sites) | set(intent.cells)
            scan_checked += 1
            if models == set(intent.models) and places == gold_places:
                scan_ok += 1
            else:
                scan_misses.append(
                    f"  {where}: models {sorted(models)} vs {intent.models}, places "
                    f"{sorted(places)} vs {sorted(gold_places)}: {text!r}"
                )

    if count < MIN_LINES:
        errors.append(f"{path.name}: {count} lines, under {MIN_LINES}")
    for kind, least in MIN_KIND.items():
        if kinds[kind] < least:
            errors.append(f"{path.name}: {kinds[kind]} {kind} lines, under {least}")
    if injection_none < MIN_INJECTION_NONE:
        errors.append(f"{path.name}: {injection_none} injections labelled none, under "
                      f"{MIN_INJECTION_NONE}")  # fmt: skip
    if past_window < MIN_PAST_WINDOW:
        errors.append(f"{path.name}: {past_window} past-window lines, under {MIN_PAST_WINDOW}")

    print(f"{path}: {count} lines")
    print("per kind: " + ", ".join(f"{k} {kinds[k]}" for k in MIN_KIND))
    print(f"injections labelled none: {injection_none}; past windows: {past_window}")
    print("per tag:")
    for tag, c in sorted(tags.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {tag:16} {c}")
    print(f"names (information): NameIndex maps the model and place words of {scan_ok} of "
          f"{scan_checked} acting lines to the gold's names")  # fmt: skip
    if args.names and scan_misses:
        print("\n".join(scan_misses))
    for e in errors:
        print(f"FAIL {e}", file=sys.stderr)
    if errors:
        print(f"{len(errors)} problem(s)", file=sys.stderr)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
