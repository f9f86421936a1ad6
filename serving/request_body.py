"""Reading a request's body under the gateway's size limit and decoding it as JSON: a body too
large is a 413 and a malformed one a 400 (OpenAI-style), never a 500."""

from __future__ import annotations

import json
import re
import sys
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from serving.protocol import OpenAIError

if TYPE_CHECKING:
    from collections.abc import Callable


async def read_json(request: Request, limit: int) -> Any:
    """The body (at most `limit` bytes) decoded as JSON text."""
    body = await read_body(request, limit)
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise OpenAIError(400, f"request body is not valid JSON: {e}", code="invalid_json") from e
    except RecursionError:  # '[[[[...' deeper than Python's stack: bad input, not a 500
        raise OpenAIError(
            400, "request body is not valid JSON: nested too deeply", code="invalid_json"
        ) from None
    except ValueError:  # a number literal longer than Python converts to an int
        raise OpenAIError(
            400,
            "request body is not valid JSON: a number has more than "
            f"{sys.get_int_max_str_digits()} digits",
            code="invalid_json",
        ) from None
    if _SURROGATE_ESCAPE.search(body) or b"\x00" in body:  # NUL: UTF-16 or UTF-32 JSON
        bad = _lone_surrogate(data)
        if bad is not None:
            raise OpenAIError(
                400,
                f"request body is not valid JSON text: the string {bad[:40]!r} holds a "
                "lone UTF-16 surrogate escape, which is no Unicode character",
                code="invalid_json",
            )
    return data


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as its declared length or what has arrived is over `limit`."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise OpenAIError(
            413, f"request body of {declared} bytes is over {limit}", code="payload_too_large"
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise OpenAIError(413, f"request body is over {limit} bytes", code="payload_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
"""A JSON escape of a UTF-16 surrogate: paired, it is one character; alone, a string no
UTF-8 encoder (tokenizer, JSON answer, notice id) takes."""


def _lone_surrogate(value: Any) -> str | None:
    """The first string (value or key) of decoded JSON that holds a lone surrogate."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode()
            except UnicodeEncodeError:
                return v
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, dict):
            stack.extend(v)
            stack.extend(v.values())
    return None


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def receive_once(body: bytes) -> Callable[[], Any]:
    """An ASGI receive callable that yields an already read body once."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
