"""The OpenAI-compatible backend's structured call: a JSON-schema response format, JSON mode
for servers that refuse one."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from edgeagents.agents.llm.answers import runnable_call
from edgeagents.agents.llm.config import RAW_TEXT_LIMIT, LMCallStats

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage


def is_openai_model(model: Any) -> bool:
    return any(c.__module__.startswith("langchain_openai") for c in type(model).__mro__)


_JSON_MODE_ONLY: set[tuple[str, str]] = set()
"""(base URL, model) of servers that refused a JSON-schema response format: JSON mode at once."""


def openai_call(
    model: Any,
    schema: type[BaseModel],
    messages: Sequence[BaseMessage],
    stats: LMCallStats,
    cancel: threading.Event,
) -> BaseModel | None:
    import openai

    server = (str(getattr(model, "openai_api_base", "")), str(getattr(model, "model_name", "")))
    if server not in _JSON_MODE_ONLY:
        stats.method = "json_schema"
        try:
            return runnable_call(model, schema, messages, stats, "json_schema")
        except (openai.APIConnectionError, openai.AuthenticationError, openai.RateLimitError):
            raise
        except openai.LengthFinishReasonError as e:  # the schema was taken; the answer ran long
            cut_at_max_tokens(stats, e.completion, getattr(model, "max_tokens", None))
            return None
        except Exception:
            if cancel.is_set():
                raise
            # The server (llama.cpp's says HTTP 500) or the client would not take the schema.
            _JSON_MODE_ONLY.add(server)
    stats.method = "json_mode"
    try:
        return runnable_call(model, schema, messages, stats, "json_mode")
    except openai.LengthFinishReasonError as e:
        cut_at_max_tokens(stats, e.completion, getattr(model, "max_tokens", None))
        return None


def cut_at_max_tokens(stats: LMCallStats, completion: Any, max_tokens: int | None) -> None:
    usage = getattr(completion, "usage", None)
    if usage is not None:
        stats.prompt_tokens = usage.prompt_tokens
        stats.completion_tokens = usage.completion_tokens
    with contextlib.suppress(AttributeError, IndexError):
        stats.raw_text = (completion.choices[0].message.content or "")[:RAW_TEXT_LIMIT]
    stats.error = f"output cut at max_tokens={max_tokens}"
