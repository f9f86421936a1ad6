"""Reading an LM's answer into its schema, whatever the backend: text of a message, the schema
as a hint line, the first JSON object of a text, validation into one line of error."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from edgeagents.agents.llm.config import RAW_TEXT_LIMIT, LMCallStats, StructuredMethod, one_line

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage


class Cancelled(Exception):
    """Raised inside llama.cpp's sampling loop to stop a call that ran past its deadline."""


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            b if isinstance(b, str) else str(b.get("text", "")) for b in content if b is not None
        )
    return "" if content is None else str(content)


def json_type(prop: dict[str, Any]) -> str:
    if "enum" in prop:
        return " | ".join(json.dumps(v) for v in prop["enum"])
    if "const" in prop:
        return json.dumps(prop["const"])
    if "anyOf" in prop:
        return " | ".join(json_type(p) for p in prop["anyOf"])
    if "$ref" in prop:
        return "object"
    if prop.get("type") == "array":
        return f"array of {json_type(prop.get('items', {}))}"
    kind = str(prop.get("type", "value"))
    lo, hi = prop.get("minimum", prop.get("exclusiveMinimum")), prop.get("maximum")
    hi = prop.get("exclusiveMaximum") if hi is None else hi
    if lo is not None and hi is not None:
        return f"{kind} in [{lo}, {hi}]"
    if lo is not None:
        return f"{kind} >= {lo}"
    if hi is not None:
        return f"{kind} <= {hi}"
    return kind


def schema_hint(schema: type[BaseModel]) -> str:
    """One line telling the model the JSON shape wanted, e.g.
    `Answer with one JSON object: {"site": string, "weight": number}`."""
    props = schema.model_json_schema().get("properties", {})
    fields = ", ".join(f'"{name}": {json_type(p)}' for name, p in props.items())
    return f"Answer with one JSON object: {{{fields}}}"


def with_hint(messages: Sequence[BaseMessage], hint: str) -> list[BaseMessage]:
    from langchain_core.messages import SystemMessage

    out = list(messages)
    for i, m in enumerate(out):
        if m.type == "system":
            out[i] = SystemMessage(content=f"{text_of(m.content)}\n{hint}")
            return out
    return [SystemMessage(content=hint), *out]


def validate_answer(schema: type[BaseModel], text: str) -> tuple[BaseModel | None, str | None]:
    try:
        return schema.model_validate_json(text), None
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return None, one_line(f"invalid output ({e.error_count()} errors): {where}: {err['msg']}")


def extract_json(text: str) -> str:
    """The first {...} of a text (models like to wrap JSON in prose or ``` fences)."""
    start = text.find("{")
    if start < 0:
        return text
    depth, in_str, esc = 0, False, False
    for i in range(start, len(text)):
        c = text[i]
        if in_str:
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
    return text[start:]


def usage_into(stats: LMCallStats, raw: Any) -> None:
    usage = getattr(raw, "usage_metadata", None) or {}
    stats.prompt_tokens = usage.get("input_tokens")
    stats.completion_tokens = usage.get("output_tokens")
    text = text_of(getattr(raw, "content", ""))
    if not text and getattr(raw, "tool_calls", None):
        text = json.dumps(raw.tool_calls[0].get("args", {}))
    stats.raw_text = text[:RAW_TEXT_LIMIT]


def runnable_call(
    model: Any,
    schema: type[BaseModel],
    messages: Sequence[BaseMessage],
    stats: LMCallStats,
    method: StructuredMethod,
) -> BaseModel | None:
    kwargs: dict[str, Any] = {"include_raw": True}
    if method in ("json_schema", "json_mode"):
        kwargs["method"] = method
    out = model.with_structured_output(schema, **kwargs).invoke(list(messages))
    usage_into(stats, out.get("raw"))
    parsed = out.get("parsed")
    if out.get("parsing_error") is not None or parsed is None:
        _, err = validate_answer(schema, extract_json(stats.raw_text))
        stats.error = err or one_line(f"invalid output: {out.get('parsing_error')}")
        return None
    if not isinstance(parsed, schema):
        parsed = schema.model_validate(parsed)
    return parsed
