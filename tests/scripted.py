"""The one test double: a scripted chat model, for unit tests of graph wiring and guardrails.

It is not an LM: it answers with scripted text (or text a function makes from the messages)
and records every message it was shown.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field


class ScriptedChatModel(BaseChatModel):
    """Answers with `replies` in turn, or with `reply(messages)`; records what it saw."""

    replies: list[str] = Field(default_factory=list)
    reply: Callable[[list[BaseMessage]], str] | None = None
    sleep_s: float = 0.0
    seen: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted-test-double"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        self.seen.append(list(messages))
        time.sleep(self.sleep_s)
        if self.reply is not None:
            text = self.reply(messages)
        else:
            text = self.replies[(len(self.seen) - 1) % len(self.replies)]
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    def texts(self) -> list[str]:
        """Every message shown so far, as text."""
        return [str(m.content) for call in self.seen for m in call]
