"""The local backend: llama.cpp in this process, one model per file shared by every agent, and
a call decoded under the answer schema's grammar that stops at its deadline."""

from __future__ import annotations

import atexit
import json
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from edgeagents.agents.llm.answers import Cancelled, text_of, validate_answer
from edgeagents.agents.llm.config import RAW_TEXT_LIMIT, LMCallStats, LMConfigError, one_line

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage

_LLAMA_CACHE: dict[tuple[str, int, int, str], tuple[Any, threading.RLock]] = {}
_LLAMA_LOCKS: dict[int, threading.RLock] = {}
_CACHE_LOCK = threading.Lock()


def load_llama(
    path: str | Path, n_ctx: int, n_threads: int, instance: str = "shared"
) -> tuple[Any, threading.RLock]:
    """The llama.cpp model for (path, n_ctx, n_threads, instance), loaded once per process, and
    the lock that serialises every call on it (a llama.cpp context is not thread-safe)."""
    key = (str(Path(path).resolve()), int(n_ctx), int(n_threads), instance)
    with _CACHE_LOCK:
        hit = _LLAMA_CACHE.get(key)
        if hit is not None:
            return hit
        try:
            from llama_cpp import Llama
        except ImportError:
            raise LMConfigError(
                "local LM needs llama-cpp-python: pip install 'edgeagents[agents]'"
            ) from None
        try:
            llama = Llama(
                model_path=key[0],
                n_ctx=key[1],
                n_threads=key[2],
                n_threads_batch=key[2],
                n_batch=min(512, key[1]),
                verbose=False,
            )
        except Exception as e:
            raise LMConfigError(one_line(f"could not load local LM {key[0]}: {e}")) from None
        lock = threading.RLock()
        if not _LLAMA_CACHE:
            atexit.register(close_llamas)
        _LLAMA_CACHE[key] = (llama, lock)
        _LLAMA_LOCKS[id(llama)] = lock
        return llama, lock


def close_llamas() -> None:
    """Frees every cached model while the interpreter is whole: left to `Llama.__del__` at
    shutdown, llama.cpp's bindings are already torn down and print a traceback."""
    with _CACHE_LOCK:
        for llama, lock in _LLAMA_CACHE.values():
            with lock:
                llama.close()
        _LLAMA_CACHE.clear()
        _LLAMA_LOCKS.clear()


def lock_of(llama: Any) -> threading.RLock:
    with _CACHE_LOCK:
        return _LLAMA_LOCKS.setdefault(id(llama), threading.RLock())


@lru_cache(maxsize=1)
def shared_chat_llamacpp_class() -> type:
    """ChatLlamaCpp whose llama.cpp model comes from the per-process cache and whose calls hold
    the model's lock. Built on first use so that langchain_community loads only then."""
    from langchain_community.chat_models import ChatLlamaCpp
    from pydantic import model_validator

    class SharedChatLlamaCpp(ChatLlamaCpp):
        """ChatLlamaCpp on a llama.cpp model shared by every agent of the process."""

        instance: str = "shared"

        @model_validator(mode="after")
        def validate_environment(self) -> SharedChatLlamaCpp:  # replaces the parent's loader
            self.client, _ = load_llama(
                self.model_path, self.n_ctx, self.n_threads or 1, self.instance
            )
            return self

        @property
        def _default_params(self) -> dict[str, Any]:
            return {**super()._default_params, "seed": self.seed}

        def _generate(self, *args: Any, **kwargs: Any) -> Any:
            with lock_of(self.client):
                return super()._generate(*args, **kwargs)

        def _stream(self, *args: Any, **kwargs: Any) -> Any:
            with lock_of(self.client):
                yield from super()._stream(*args, **kwargs)

    return SharedChatLlamaCpp


def is_local_model(model: Any) -> bool:
    """Whether a chat model runs on a llama.cpp model in this process."""
    import sys

    llama_cpp = sys.modules.get("llama_cpp")
    return llama_cpp is not None and isinstance(getattr(model, "client", None), llama_cpp.Llama)


_ROLES = {"system": "system", "human": "user", "ai": "assistant", "tool": "tool"}


def llama_messages(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    return [{"role": _ROLES.get(m.type, "user"), "content": text_of(m.content)} for m in messages]


@lru_cache(maxsize=64)
def grammar_for(schema_json: str) -> tuple[Any, bool]:
    """A llama.cpp grammar for a JSON schema; (grammar, True), or (any-JSON grammar, False) when
    the schema uses something the converter cannot express."""
    from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

    try:
        return LlamaGrammar.from_json_schema(schema_json, verbose=False), True
    except Exception:
        return LlamaGrammar.from_string(JSON_GBNF, verbose=False), False


def local_call(
    model: Any,
    schema: type[BaseModel],
    messages: Sequence[BaseMessage],
    stats: LMCallStats,
    cancel: threading.Event,
) -> BaseModel | None:
    from llama_cpp import LogitsProcessorList

    llama = model.client
    grammar, exact = grammar_for(json.dumps(schema.model_json_schema()))
    stats.method = "grammar" if exact else "json_grammar"
    counts = {"steps": 0}

    def count_tokens(input_ids: Any, scores: Any) -> Any:
        # Called once per sampled token; at the first, input_ids is the prompt. (Raising here
        # would not stop llama.cpp: ctypes swallows exceptions of callbacks. Streaming does.)
        if counts["steps"] == 0:
            stats.prompt_tokens = len(input_ids)
        counts["steps"] += 1
        stats.completion_tokens = counts["steps"]
        return scores

    lock = lock_of(llama)
    while not lock.acquire(timeout=0.05):  # another agent's call holds the model
        if cancel.is_set():
            raise Cancelled
    parts: list[str] = []
    finish_reason = None
    try:
        stream = llama.create_chat_completion(
            messages=llama_messages(messages),
            temperature=model.temperature,
            top_p=model.top_p,
            top_k=model.top_k,
            max_tokens=model.max_tokens,
            seed=model.seed,
            repeat_penalty=1.0,  # JSON repeats quotes and braces by nature
            grammar=grammar,
            logits_processor=LogitsProcessorList([count_tokens]),
            stream=True,
        )
        try:
            for chunk in stream:  # one chunk a token or so: the place to notice a deadline
                if cancel.is_set():
                    raise Cancelled
                choice = chunk["choices"][0]
                parts.append(choice["delta"].get("content") or "")
                finish_reason = choice.get("finish_reason") or finish_reason
        finally:
            stream.close()  # stops llama.cpp at once when cancelled
    finally:
        lock.release()
        stats.raw_text = "".join(parts)[:RAW_TEXT_LIMIT]
    text = "".join(parts)
    parsed, err = validate_answer(schema, text)
    if err and finish_reason == "length":
        err = f"output cut at max_tokens={model.max_tokens}: {err}"
    stats.error = err
    return parsed
