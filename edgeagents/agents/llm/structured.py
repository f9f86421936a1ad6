"""`structured_call`: one pydantic answer from any chat model, on a worker thread cut at its
deadline; never raises for the model's sake."""

from __future__ import annotations

import atexit
import contextvars
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from edgeagents.agents.llm.answers import (
    Cancelled,
    extract_json,
    runnable_call,
    schema_hint,
    text_of,
    usage_into,
    validate_answer,
    with_hint,
)
from edgeagents.agents.llm.config import RAW_TEXT_LIMIT, LMCallStats, one_line
from edgeagents.agents.llm.local import is_local_model, local_call
from edgeagents.agents.llm.openai_api import is_openai_model, openai_call

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import BaseMessage


def generic_call(
    model: Any,
    schema: type[BaseModel],
    messages: Sequence[BaseMessage],
    stats: LMCallStats,
    cancel: threading.Event,
) -> BaseModel | None:
    from langchain_core.language_models import BaseChatModel

    if type(model).bind_tools is not BaseChatModel.bind_tools:
        stats.method = "tool_calling"
        return runnable_call(model, schema, messages, stats, "tool_calling")
    stats.method = "prompted_json"
    raw = model.invoke(list(messages))
    usage_into(stats, raw)
    parsed, stats.error = validate_answer(schema, extract_json(text_of(raw.content)))
    return parsed


_LIVE_CALLS: dict[int, tuple[threading.Thread, threading.Event]] = {}
_LIVE_LOCK = threading.Lock()


@atexit.register
def _stop_live_calls(grace_s: float = 5.0) -> None:
    """At exit, stop calls still running past their deadline: a daemon thread left inside
    llama.cpp while the interpreter shuts down crashes it (SIGSEGV)."""
    with _LIVE_LOCK:
        live = list(_LIVE_CALLS.values())
    for _, cancel in live:
        cancel.set()
    end = time.monotonic() + grace_s
    for worker, _ in live:
        worker.join(max(0.0, end - time.monotonic()))


def structured_call(
    model: BaseChatModel | None,
    schema: type[BaseModel],
    messages: str | Sequence[Any],
    *,
    timeout_s: float,
    add_schema_hint: bool = True,
) -> tuple[BaseModel | None, LMCallStats]:
    """Ask `model` for one `schema` object. Never raises for the model's sake.

    Returns (the validated object, stats), or (None, stats with `error` set) when the model
    answered badly, failed, or did not finish within `timeout_s` (`error == "timeout"`; the call
    returns at the deadline; a local call still running stops at its next token, after the
    prompt is read, which cannot be cut; an HTTP call runs on to the model's own timeout).
    `messages`: a string (one user message) or LangChain messages / (role, text) pairs / dicts.
    `add_schema_hint`: append one line naming the JSON fields to the system message.
    """
    stats = LMCallStats()
    if model is None:
        stats.error = "no LM (spec 'none')"
        return None, stats
    t0 = time.perf_counter()
    try:
        from langchain_core.messages import convert_to_messages

        msgs = convert_to_messages([("user", messages)] if isinstance(messages, str) else messages)
        if add_schema_hint:
            msgs = with_hint(msgs, schema_hint(schema))
    except Exception as e:
        stats.error = one_line(f"bad messages: {type(e).__name__}: {e}")
        return None, stats

    if is_local_model(model):
        call: Callable[..., BaseModel | None] = local_call
    elif is_openai_model(model):
        call = openai_call
    else:
        call = generic_call

    cancel = threading.Event()
    box: dict[str, Any] = {}
    done = threading.Event()
    ctx = contextvars.copy_context()  # keep LangChain/LangGraph callbacks and config

    def work() -> None:
        try:
            box["value"] = ctx.run(call, model, schema, msgs, stats, cancel)
        except BaseException as e:
            box["error"] = e
        finally:
            with _LIVE_LOCK:
                _LIVE_CALLS.pop(threading.get_ident(), None)
            done.set()

    worker = threading.Thread(target=work, name="edgeagents-lm-call", daemon=True)
    with _LIVE_LOCK:
        worker.start()
        if not done.is_set():
            _LIVE_CALLS[worker.ident or 0] = (worker, cancel)
    finished = done.wait(timeout_s)
    wall_s = time.perf_counter() - t0
    if not finished:
        cancel.set()
        # The worker keeps writing into `stats`; hand back a copy frozen at the deadline.
        late = stats.model_copy()
        late.wall_s, late.error = wall_s, "timeout"
        late.raw_text = late.raw_text[:RAW_TEXT_LIMIT]
        return None, late
    stats.wall_s = wall_s
    if "error" in box:
        e = box["error"]
        stats.error = (
            "timeout" if isinstance(e, Cancelled) else one_line(f"{type(e).__name__}: {e}")
        )
        return None, stats
    value = box.get("value")
    if value is None and stats.error is None:
        stats.error = "no output"
    return value, stats
