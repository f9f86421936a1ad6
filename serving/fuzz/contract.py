"""What a fuzzing case is and what counts as a kept contract: the request categories, one
generated request (`FuzzCase`), the gateway's answer (`FuzzAnswer`) and `violation`."""

from __future__ import annotations

import json
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

Category = Literal[
    "chat",
    "images",
    "transcription",
    "truncated_upload",
    "malformed_json",
    "wrong_types",
    "unknown_model",
    "huge_numbers",
    "oversized",
    "wrong_content_type",
    "wrong_route",
    "operator",
    "admin",
    "health",
]
CATEGORIES: tuple[Category, ...] = get_args(Category)

FUZZ_TOKEN = "fuzz-operator-token"
"""The operator bearer token the harness puts in the environment while it runs."""
MAX_BODY_BYTES = 65_536
"""The fuzzed gateway's body limit: small, so that oversized bodies stay cheap to generate."""
DEFAULT_TIMEOUT_S = 10.0
"""Per-request wait before an answer counts as a hang (above the gateway's own 5 s call
timeout, so a slow model call shows as its 504, not as a hang)."""


class FuzzCase(BaseModel):
    """One generated HTTP request."""

    model_config = ConfigDict(frozen=True)

    category: Category
    method: str
    path: str = Field(description="Path and query string, percent-encoded.")
    headers: tuple[tuple[str, str], ...] = Field(default=(), description="Latin-1 values.")
    body: bytes = b""
    chunked: bool = Field(default=False, description="Sent in pieces, without Content-Length.")

    def describe(self) -> str:
        head = ", ".join(f"{k}: {v[:60]}" for k, v in self.headers)
        return f"{self.method} {self.path[:80]} [{head}] {len(self.body)} B {self.body[:120]!r}"


class FuzzAnswer(BaseModel):
    """What the gateway answered to one case; `status` None: nothing within the timeout."""

    model_config = ConfigDict(frozen=True)

    status: int | None
    content_type: str = ""
    body: bytes = b""
    seconds: float = 0.0


def violation(case: FuzzCase, answer: FuzzAnswer) -> str | None:
    """Why an answer breaks the contract (a success, or a 4xx `{"error": {message, type, param,
    code}}` as JSON); None when it keeps it."""
    status = answer.status
    if status is None:
        return "hang"
    if 200 <= status < 300:
        return None
    if status >= 500:
        return f"server error {status}"
    if not 400 <= status < 500:
        return f"status {status} is neither a success nor a 4xx"
    if case.method == "HEAD" and not answer.body:
        return None  # a HEAD answer has no body
    if not answer.content_type.startswith("application/json"):
        return f"{status} answered as {answer.content_type or 'no content type'}, not JSON"
    try:
        data = json.loads(answer.body)
    except ValueError:
        return f"{status} body is not JSON"
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict) or set(data) != {"error"}:
        return f"{status} body is not an OpenAI error object"
    if set(err) != {"message", "type", "param", "code"}:
        return f"{status} error has the fields {sorted(err)}"
    if not (isinstance(err["message"], str) and err["message"]):
        return f"{status} error has no message"
    if not (isinstance(err["type"], str) and isinstance(err["code"], str)):
        return f"{status} error type or code is not a string"
    if err["param"] is not None and not isinstance(err["param"], str):
        return f"{status} error param is neither null nor a string"
    return None
