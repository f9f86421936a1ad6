"""Fuzzing the gateway's HTTP surface with hypothesis-generated requests.

Malformed JSON, wrong types, unknown models, oversized bodies, wrong content types, truncated
multipart uploads, huge `n` and `max_tokens`, wrong methods and paths, bad operator notices: all
go through the production routes and error handlers (`serving.app.create_gateway_api`), in
process, with no Ray cluster and no socket. The model servers are the real `ModelServer` over a
fake engine, behind a handle that pickles what crosses it, as Serve does between processes.

Every answer must be a success or an OpenAI-style 4xx JSON error. A 5xx, a hang (no answer in
`timeout_s`) or any other answer is a violation, and valid requests must still succeed after the
campaign.

    python -m serving.fuzz --count 1000 --seed 0 [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import inspect
import json
import logging
import os
import pickle
import string
import struct
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Literal, NoReturn, get_args
from urllib.parse import quote

import httpx
import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field

from edgeagents.core.scenario import load_scenario
from serving.app import create_gateway_api
from serving.config import BACKEND_FOR_KIND, ModelServerConfig
from serving.engines import EngineError
from serving.gateway import OPERATOR_TOKEN_ENV, Gateway
from serving.loadgen import png, wav
from serving.server import ModelServer

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
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_ORIGIN = "http://gateway"


# --------------------------------------------------------------------------- cases, verdicts


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


# --------------------------------------------------------------------------- strategies


class _Catalogue(BaseModel):
    """The names a scenario gives the gateway: models by kind, sites, cells."""

    models: dict[str, str]
    sites: list[str]
    cells: list[str]

    def of(self, *kinds: str) -> list[str]:
        return [m for m, k in self.models.items() if k in kinds]


@functools.cache
def _catalogue(scenario: str) -> _Catalogue:
    sc = load_scenario(scenario)
    return _Catalogue(
        models={m.name: m.kind for m in sc.models},
        sites=list(sc.site_names),
        cells=[c.name for c in sc.cells],
    )


_OMIT = object()
"""A field left out of a generated JSON object."""

_ODD_CHARS = st.characters(categories=["Cs", "Nd", "No", "Zs", "Cc", "Co"])
"""Lone surrogates, digits of every script, spaces, controls, private use."""
_TEXT = st.text(max_size=30) | st.text(_ODD_CHARS, max_size=6)
_JSON_SCALAR = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats()
    | _TEXT
)
_JSON: st.SearchStrategy[Any] = st.recursive(
    _JSON_SCALAR,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(_TEXT, kids, max_size=4),
    max_leaves=10,
)
_HEADER_TEXT = st.text("".join(map(chr, [*range(0x20, 0x7F), *range(0xA0, 0x100)])), max_size=40)
"""What Starlette can receive in a header value: printable Latin-1."""
_HUGE = (
    st.integers(min_value=2**31, max_value=10**400)
    | st.integers(max_value=0)
    | st.sampled_from([1e308, -1.0, 0.5, float("inf"), "5", "many", True])
)
_JSON_POSTS = ("/v1/chat/completions", "/v1/images/generations", "/v1/operator/notices")
_ALL_PATHS = (
    *_JSON_POSTS,
    "/v1/audio/transcriptions",
    "/v1/models",
    "/admin/routing",
    "/admin/telemetry",
    "/healthz",
)
_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD")


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.just(_OMIT) | strategy


def _mostly(good: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`good` about three times in four: a request odd in one place, not in all, gets past
    the first check and reaches the next. (Not `one_of(good, good, good, odd)`: hypothesis
    merges equal branches.)"""
    return st.integers(0, 3).flatmap(lambda i: odd if i == 3 else good)


def _object(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """A JSON object drawing each field, dropping those drawn as `_OMIT`."""
    return st.fixed_dictionaries(fields).map(
        lambda d: {k: v for k, v in d.items() if v is not _OMIT}
    )


def _dumps(value: Any) -> bytes:
    """JSON as a lax client writes it: NaN and Infinity literals, lone surrogates escaped."""
    return json.dumps(value).encode()


def _json_headers(cat: _Catalogue, auth: bool = False) -> st.SearchStrategy[Any]:
    cell = _maybe(st.sampled_from(cat.cells) | _HEADER_TEXT)
    return st.tuples(st.just(auth), cell).map(_headers)


def _headers(args: tuple[bool, Any]) -> tuple[tuple[str, str], ...]:
    auth, cell = args
    out = [("content-type", "application/json")]
    if auth:
        out.append(("authorization", f"Bearer {FUZZ_TOKEN}"))
    if cell is not _OMIT:
        out.append(("x-edgeagents-cell", cell))
    return tuple(out)


def _data_url() -> st.SearchStrategy[Any]:
    return st.just(_png_url()) | st.one_of(
        st.binary(max_size=24).map(
            lambda b: "data:image/png;base64," + base64.b64encode(b).decode()
        ),
        st.sampled_from(["data:,!!not base64!!", "https://example.com/cat.png", "data:", ""]),
        _TEXT.map(lambda t: "data:image/png;base64," + t),
        _JSON,
    )


def _content() -> st.SearchStrategy[Any]:
    text_part = _object({"type": st.just("text"), "text": _mostly(_TEXT, _maybe(_JSON))})
    image_url = _mostly(_object({"url": _data_url()}), _object({"url": _maybe(_JSON)}) | _JSON)
    image_part = _object({"type": st.just("image_url"), "image_url": image_url})
    part = st.one_of(text_part, image_part, st.dictionaries(_TEXT, _JSON, max_size=3))
    return _mostly(_TEXT, st.none() | st.lists(part, min_size=1, max_size=3))


def _message() -> st.SearchStrategy[dict[str, Any]]:
    roles = _mostly(st.sampled_from(["user", "system", "assistant", "developer", "tool"]), _TEXT)
    return _object({"role": roles, "content": _mostly(_content(), st.just(_OMIT) | _JSON)})


def _chat_fields(models: st.SearchStrategy[Any]) -> dict[str, st.SearchStrategy[Any]]:
    tokens = _mostly(st.none() | st.integers(1, 4096), st.integers(-2, 5000))
    return {
        "model": models,
        "messages": _mostly(st.lists(_message(), min_size=1, max_size=3), st.just([]) | _JSON),
        "max_tokens": _maybe(tokens),
        "max_completion_tokens": _maybe(tokens),
        "temperature": _maybe(_mostly(st.floats(0, 2), st.floats() | st.integers(-1, 3))),
        "top_p": _maybe(_mostly(st.floats(0, 1, exclude_min=True), st.floats(-0.5, 1.5))),
        "n": _maybe(_mostly(st.just(1), st.integers(0, 3))),
        "stream": _maybe(_mostly(st.just(False), st.just(True))),
        "seed": _maybe(st.none() | st.integers()),
        "stop": _maybe(st.none() | _TEXT | st.lists(_TEXT, max_size=3)),
    }


def _image_fields(models: st.SearchStrategy[Any]) -> dict[str, st.SearchStrategy[Any]]:
    digits = st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=4)
    sizes = st.one_of(
        st.sampled_from(["32x32", "8x8", "64x64", "2048x2048", "16x32", "0x0", "4096x4096"]),
        st.tuples(digits, digits).map("x".join),
        digits.map(lambda d: f"{d}x{d}"),
        _TEXT,
    )
    return {
        "prompt": _mostly(
            st.text(min_size=1, max_size=40), _TEXT | st.integers(3990, 4010).map(lambda n: "x" * n)
        ),
        "model": _maybe(st.none() | models),
        "n": _maybe(_mostly(st.integers(1, 4), st.integers(-1, 6))),
        "size": _maybe(st.none() | sizes),
        "response_format": _maybe(st.sampled_from([None, "b64_json", "url", ""])),
        "num_inference_steps": _maybe(
            _mostly(st.none() | st.integers(1, 50), st.integers(-1, 1200))
        ),
    }


def _json_post(
    cat: _Catalogue, category: Category, path: str, fields: dict[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[FuzzCase]:
    """A POST of a JSON object drawn field by field (`_object`)."""
    return st.builds(
        FuzzCase,
        category=st.just(category),
        method=st.just("POST"),
        path=st.just(path),
        headers=_json_headers(cat),
        body=_object(fields).map(_dumps),
    )


def _chat_case(
    cat: _Catalogue, category: Category, models: st.SearchStrategy[Any]
) -> st.SearchStrategy[FuzzCase]:
    return _json_post(cat, category, "/v1/chat/completions", _chat_fields(models))


def _images_case(
    cat: _Catalogue, category: Category, models: st.SearchStrategy[Any]
) -> st.SearchStrategy[FuzzCase]:
    return _json_post(cat, category, "/v1/images/generations", _image_fields(models))


@st.composite
def _wav(draw: st.DrawFn) -> bytes:
    """A RIFF/WAVE file, mostly sound (16-bit mono 16 kHz), sometimes with odd or lying
    headers: zero channels, 24-bit, any rate, data not a whole number of frames."""
    channels = draw(_mostly(st.sampled_from([1, 2]), st.integers(0, 6)))
    width = draw(_mostly(st.sampled_from([2, 1, 4]), st.integers(0, 5)))
    rate = draw(_mostly(st.sampled_from([16_000, 8_000, 44_100]), st.integers(0, 2**32 - 1)))
    tag = draw(_mostly(st.just(1), st.sampled_from([3, 0xFFFE])))
    frames = draw(_mostly(st.integers(1, 1600), st.just(0)))
    size = frames * channels * width + draw(_mostly(st.just(0), st.sampled_from([1, 3])))
    pattern = draw(st.binary(min_size=1, max_size=16))
    data = (pattern * (size // len(pattern) + 1))[:size]
    declared = max(0, len(data) + draw(_mostly(st.just(0), st.sampled_from([-1, 7, 2**20]))))
    return riff_wav(data, channels=channels, width=width, rate=rate, tag=tag, declared=declared)


def riff_wav(
    data: bytes, *, channels: int, width: int, rate: int, tag: int = 1, declared: int | None = None
) -> bytes:
    """A RIFF/WAVE file around `data`, its header fields as given (wrapped to their sizes, so a
    lying header can be written); `declared`: the data size the header claims (else the true
    one)."""
    fmt = struct.pack(
        "<HHIIHH",
        tag,
        channels % 2**16,
        rate % 2**32,
        (rate * channels * width) % 2**32,
        (channels * width) % 2**16,
        (width * 8) % 2**16,
    )
    size = len(data) if declared is None else declared
    chunks = b"WAVEfmt " + struct.pack("<I", len(fmt)) + fmt
    chunks += b"data" + struct.pack("<I", size % 2**32) + data
    return b"RIFF" + struct.pack("<I", len(chunks)) + chunks


def _png_url() -> str:
    return "data:image/png;base64," + base64.b64encode(png()).decode()


_BOUNDARY = st.text(string.ascii_letters + string.digits + "'()+_,-./:=?", min_size=1, max_size=70)


def multipart(parts: list[tuple[str, str | None, str | None, bytes]], boundary: str) -> bytes:
    """A multipart/form-data body from (name, filename, content type, data) parts."""
    out = []
    for name, filename, ctype, data in parts:
        disp = f'form-data; name="{name}"'
        if filename is not None:
            disp += f'; filename="{filename}"'
        head = f"--{boundary}\r\nContent-Disposition: {disp}\r\n"
        if ctype is not None:
            head += f"Content-Type: {ctype}\r\n"
        out.append(head.encode("utf-8", "surrogatepass") + b"\r\n" + data + b"\r\n")
    return b"".join(out) + f"--{boundary}--\r\n".encode()


def _upload_parts(
    cat: _Catalogue, models: st.SearchStrategy[Any], audio: st.SearchStrategy[bytes]
) -> st.SearchStrategy[list[tuple[str, str | None, str | None, bytes]]]:
    text_bytes = _TEXT.map(lambda t: t.encode("utf-8", "surrogatepass"))
    file_part = st.tuples(
        _mostly(st.just("file"), st.sampled_from(["File", "audio", ""])),
        _mostly(st.sampled_from(["speech.wav", "a.mp3"]), _TEXT | st.none()),
        st.sampled_from(["audio/wav", "application/octet-stream"]) | st.none(),
        audio,
    )
    model_part = st.tuples(
        st.just("model"),
        st.none(),
        st.none(),
        models.map(lambda m: m.encode("utf-8", "surrogatepass")),
    )
    fmt_part = st.tuples(
        st.just("response_format"),
        st.none(),
        st.none(),
        _mostly(st.sampled_from([b"json", b"text", b"verbose_json"]), st.just(b"srt") | text_bytes),
    )
    extra = st.tuples(_TEXT, st.none() | _TEXT, st.none(), text_bytes)
    return st.tuples(
        st.lists(file_part, min_size=1, max_size=2),
        st.lists(model_part, max_size=2),
        st.lists(fmt_part, max_size=1),
        st.lists(extra, max_size=2),
    ).map(lambda groups: [p for g in groups for p in g])


def _upload(
    cat: _Catalogue,
    category: Category,
    models: st.SearchStrategy[Any],
    audio: st.SearchStrategy[bytes] | None = None,
    truncate: bool = False,
) -> st.SearchStrategy[FuzzCase]:
    cut_wav = _wav().flatmap(lambda b: st.integers(0, len(b)).map(lambda n: b[:n]))
    odd_audio = st.binary(max_size=48) | cut_wav
    audio = audio if audio is not None else _mostly(_wav(), odd_audio)

    @st.composite
    def build(draw: st.DrawFn) -> FuzzCase:
        boundary = draw(_BOUNDARY)
        body = multipart(draw(_upload_parts(cat, models, audio)), boundary)
        if truncate:
            body = body[: draw(st.integers(0, max(0, len(body) - 1)))]
        ctype = f"multipart/form-data; boundary={boundary}"
        return FuzzCase(
            category=category,
            method="POST",
            path="/v1/audio/transcriptions",
            headers=(("content-type", ctype),),
            body=body,
        )

    return build()


@st.composite
def _malformed(draw: st.DrawFn, cat: _Catalogue) -> FuzzCase:
    valid = _dumps({"model": cat.of("llm")[0], "messages": [{"role": "user", "content": "hi"}]})
    depth = draw(st.integers(1, 60_000))
    body = draw(
        st.binary(max_size=64)
        | _TEXT.map(lambda t: t.encode("utf-8", "surrogatepass"))
        | st.integers(0, len(valid) - 1).map(lambda n: valid[:n])
        | st.sampled_from([b"[" * depth, b'{"a":' * depth, b"1" * (depth % 6000 + 1)])
        | st.integers(4200, 4400).map(lambda n: b'{"seed": ' + b"7" * n + b"}")
        | st.sampled_from([b"NaN", b"-Infinity", b"\xef\xbb\xbf{}", b'{"model": "\xff\xfe"}'])
        | st.just(valid.decode().encode("utf-16"))
        | st.sampled_from([b'{"text": "\\ud800"}', b'{"model": "\\udfff", "messages": []}'])
    )
    path = draw(st.sampled_from(_JSON_POSTS))
    method = "POST"
    if draw(st.booleans()) and path == "/v1/operator/notices":
        path, method = "/admin/routing", "PUT"
    return FuzzCase(
        category="malformed_json",
        method=method,
        path=path,
        headers=draw(_json_headers(cat, auth=True)),
        body=body,
    )


_FIELDS = (
    *("model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p"),
    *("n", "stream", "seed", "stop", "prompt", "size", "response_format"),
    *("num_inference_steps", "text", "author", "publish_s", "routes"),
)
"""Every field name the JSON endpoints read."""


@st.composite
def _wrong_types(draw: st.DrawFn, cat: _Catalogue) -> FuzzCase:
    known = st.dictionaries(st.sampled_from(_FIELDS), _JSON, min_size=1, max_size=5)
    value = draw(_JSON | known)
    path, method = draw(
        st.sampled_from([*((p, "POST") for p in _JSON_POSTS), ("/admin/routing", "PUT")])
    )
    return FuzzCase(
        category="wrong_types",
        method=method,
        path=path,
        headers=draw(_json_headers(cat, auth=True)),
        body=_dumps(value),
    )


def _huge_numbers(cat: _Catalogue) -> st.SearchStrategy[FuzzCase]:
    @st.composite
    def build(draw: st.DrawFn) -> FuzzCase:
        if draw(st.booleans()):
            path = "/v1/chat/completions"
            body: dict[str, Any] = {
                "model": draw(st.sampled_from(cat.of("llm", "vlm"))),
                "messages": [{"role": "user", "content": "count to ten"}],
            }
            fields = ["n", "max_tokens", "max_completion_tokens", "seed", "temperature", "top_p"]
        else:
            path = "/v1/images/generations"
            body = {"prompt": "a harbour at dusk"}
            fields = ["n", "num_inference_steps", "size"]
        for f in draw(st.lists(st.sampled_from(fields), min_size=1, max_size=3, unique=True)):
            body[f] = draw(_HUGE)
        return FuzzCase(
            category="huge_numbers",
            method="POST",
            path=path,
            headers=draw(_json_headers(cat)),
            body=_dumps(body),
        )

    return build()


@st.composite
def _oversized(draw: st.DrawFn, cat: _Catalogue) -> FuzzCase:
    size = draw(st.integers(MAX_BODY_BYTES + 1, 2 * MAX_BODY_BYTES))
    path = draw(st.sampled_from([*_JSON_POSTS, "/v1/audio/transcriptions"]))
    if path == "/v1/audio/transcriptions":
        boundary = "fuzzboundary"
        body = multipart([("file", "big.wav", "audio/wav", b"\0" * size)], boundary)
        headers: tuple[tuple[str, str], ...] = (
            ("content-type", f"multipart/form-data; boundary={boundary}"),
        )
    else:
        pad = "x" * size
        body = _dumps({"model": cat.of("llm")[0], "messages": [{"role": "user", "content": pad}]})
        headers = draw(_json_headers(cat, auth=True))
    how = draw(st.sampled_from(["length", "chunked", "lying"]))
    if how == "lying":  # declares a huge length, sends a small body
        body = body[:100]
        headers = (*headers, ("content-length", str(draw(st.integers(10**7, 10**12)))))
    return FuzzCase(
        category="oversized",
        method="POST",
        path=path,
        headers=headers,
        body=body,
        chunked=how == "chunked",
    )


@st.composite
def _wrong_content_type(draw: st.DrawFn, cat: _Catalogue) -> FuzzCase:
    odd = (
        st.sampled_from(
            [
                "text/plain",
                "application/x-www-form-urlencoded",
                "application/json; charset=latin-1",
                "multipart/form-data",
                "multipart/form-data; boundary=",
                "multipart/form-data; boundary=wrong",
                "multipart/form-data; charset=no-such-codec; boundary=fuzzboundary",
                "multipart/mixed; boundary=fuzzboundary",
                "Multipart/Form-Data; boundary=fuzzboundary",
                "",
            ]
        )
        | _HEADER_TEXT
    )
    ctype = draw(odd)
    if draw(st.booleans()):
        path = "/v1/audio/transcriptions"
        whisper = cat.of("speech-to-text")[0]
        body = multipart(
            [
                ("file", "speech.wav", "audio/wav", wav(0.1)),
                ("model", None, None, whisper.encode()),
            ],
            "fuzzboundary",
        )
    else:
        path = "/v1/chat/completions"
        body = _dumps(
            {"model": cat.of("llm")[0], "messages": [{"role": "user", "content": "hello"}]}
        )
    return FuzzCase(
        category="wrong_content_type",
        method="POST",
        path=path,
        headers=(("content-type", ctype),),
        body=body,
    )


def _quoted(text: str) -> str:
    """Percent-encoded UTF-8, lone surrogates kept as the bytes a careless client sends."""
    return quote(text.encode("utf-8", "surrogatepass"))


@st.composite
def _wrong_route(draw: st.DrawFn, cat: _Catalogue) -> FuzzCase:
    segment = st.text(string.ascii_letters + string.digits + "-._~%!$&'()*+,;=:@ ", max_size=12)
    known = st.sampled_from(_ALL_PATHS)
    path = draw(
        known.map(lambda p: p + "/")
        | known.map(str.upper)
        | st.lists(segment, min_size=1, max_size=4).map(lambda s: "/" + "/".join(s))
        | known.flatmap(lambda p: segment.map(lambda s: p + "/" + s))
        | known
    )
    method = draw(st.sampled_from(_METHODS) | st.sampled_from(["TRACE", "PROPFIND", "FOO"]))
    query = draw(_maybe(st.dictionaries(_TEXT, _TEXT, max_size=3)))
    url = quote(path, safe="/%-._~!$&'()*+,;=:@")
    if query is not _OMIT and query:
        url += "?" + "&".join(f"{_quoted(k)}={_quoted(v)}" for k, v in query.items())
    body = draw(st.just(b"") | st.binary(max_size=32))
    return FuzzCase(category="wrong_route", method=method, path=url, body=body)


@st.composite
def _operator(draw: st.DrawFn, cat: _Catalogue) -> FuzzCase:
    good = st.sampled_from([f"Bearer {FUZZ_TOKEN}", f"bearer   {FUZZ_TOKEN}  "])
    odd = st.one_of(
        st.sampled_from(["Bearer wrong-token", f"Basic {FUZZ_TOKEN}", "Bearer", ""]),
        _HEADER_TEXT.map(lambda t: "Bearer " + t),
        st.none(),
    )
    auth = draw(_mostly(good, odd))
    headers = [("content-type", "application/json")]
    if auth is not None:
        headers.append(("authorization", auth))
    if draw(st.booleans()):
        since = draw(
            st.floats().map(repr) | _TEXT | st.sampled_from(["0", "120", "-5", "1e999", "nan"])
        )
        query = _quoted(since)
        return FuzzCase(
            category="operator",
            method="GET",
            path=f"/v1/operator/notices?since_s={query}",
            headers=tuple(headers),
        )
    texts = _mostly(
        st.sampled_from(["surge model=whisper-large-v3 x2", "maintenance sites=clifton from=+60"])
        | st.text(min_size=1, max_size=60),
        st.one_of(_TEXT, st.integers(1990, 2010).map(lambda n: "y" * n), _JSON, st.just(_OMIT)),
    )
    publish = _mostly(
        st.floats(0, 1e6) | st.integers(0, 10**6),
        st.floats() | st.integers(-(10**400), 10**400) | _JSON,
    )
    fields = {
        "text": texts,
        "author": _maybe(_mostly(st.text(max_size=80), _TEXT | st.just("z" * 81) | _JSON)),
        "publish_s": _maybe(publish),
    }
    extra = st.dictionaries(st.sampled_from(["expect", "id", "kind"]) | _TEXT, _JSON, max_size=2)
    notice = st.tuples(_object(fields), _maybe(extra)).map(
        lambda t: t[0] if t[1] is _OMIT else {**t[1], **t[0]}
    )
    return FuzzCase(
        category="operator",
        method="POST",
        path="/v1/operator/notices",
        headers=tuple(headers),
        body=_dumps(draw(notice)),
    )


@st.composite
def _admin(draw: st.DrawFn, cat: _Catalogue) -> FuzzCase:
    choice = draw(st.sampled_from(["policy", "telemetry", "read"]))
    if choice == "telemetry":
        since = draw(st.floats().map(repr) | _TEXT | st.integers().map(str))
        query = _quoted(since)
        return FuzzCase(category="admin", method="GET", path=f"/admin/telemetry?since_s={query}")
    if choice == "read":
        path = draw(st.sampled_from(["/admin/routing", "/v1/models", "/healthz"]))
        return FuzzCase(category="admin", method="GET", path=path)
    weight = _object(
        {
            "site": st.sampled_from(cat.sites) | _TEXT,
            "weight": _maybe(st.floats() | st.integers(-1, 10) | _JSON),
        }
    )
    routes = st.dictionaries(
        st.sampled_from(list(cat.models)) | _TEXT, st.lists(weight, max_size=3), max_size=3
    )
    body = draw(_object({"routes": _maybe(routes)}) | _JSON)
    return FuzzCase(
        category="admin",
        method="PUT",
        path="/admin/routing",
        headers=(("content-type", "application/json"),),
        body=_dumps(body),
    )


def category_cases(scenario: str = "bristol") -> dict[Category, st.SearchStrategy[FuzzCase]]:
    """The generated requests of each category, against a gateway of `scenario`'s catalogue."""
    cat = _catalogue(scenario)
    every = st.sampled_from(list(cat.models))
    unknown = _TEXT | st.sampled_from(["gpt-4o", "LLAMA-3.1-8B", " llama-3.1-8b", ""])
    whisper = st.sampled_from(cat.of("speech-to-text"))
    return {
        "chat": _chat_case(cat, "chat", st.sampled_from(cat.of("llm", "vlm"))),
        "images": _images_case(cat, "images", st.sampled_from(cat.of("text-to-image"))),
        "transcription": _upload(cat, "transcription", _mostly(whisper, st.just(""))),
        "truncated_upload": _upload(cat, "truncated_upload", whisper, audio=_wav(), truncate=True),
        "malformed_json": _malformed(cat),
        "wrong_types": _wrong_types(cat),
        "unknown_model": st.one_of(
            _chat_case(cat, "unknown_model", unknown | every),
            _images_case(cat, "unknown_model", unknown | every),
            _upload(cat, "unknown_model", unknown | every),
        ),
        "huge_numbers": _huge_numbers(cat),
        "oversized": _oversized(cat),
        "wrong_content_type": _wrong_content_type(cat),
        "wrong_route": _wrong_route(cat),
        "operator": _operator(cat),
        "admin": _admin(cat),
    }


def fuzz_cases(scenario: str = "bristol") -> st.SearchStrategy[FuzzCase]:
    """Requests of every category."""
    return st.one_of(*category_cases(scenario).values())


# --------------------------------------------------------------------------- the harness


class FakeEngine:
    """An engine that answers at once, in the shapes the real engines answer, and refuses what
    they refuse: text the tokenizers cannot encode as UTF-8, images that are not pictures."""

    synthetic_weights = True

    def __init__(self, config: ModelServerConfig) -> None:
        self.backend = config.backend
        self.weights = f"fake:{config.backend}"

    def load(self) -> None:
        pass

    def memory_bytes(self) -> int:
        return 0

    def run_batch(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [self._one(r) for r in requests]

    def _one(self, r: dict[str, Any]) -> dict[str, Any]:
        if self.backend == "llama-cpp":
            tokens = len(_tokens("\n".join(m["content"] for m in r["messages"])))
            return {
                "text": "fuzz",
                "finish_reason": "stop",
                "prompt_tokens": tokens,
                "completion_tokens": 1,
            }
        if self.backend == "vlm":
            _tokens(r["prompt"])
            for image in r.get("images_png") or []:
                if not image.startswith(_PNG_MAGIC):
                    raise EngineError("image is not a readable picture")
            return {"text": "fuzz", "completion_tokens": 1}
        if self.backend == "diffusers":
            _tokens(r["prompt"])
            picture = base64.b64encode(png()).decode("ascii")
            return {"images_b64": [picture] * int(r.get("n") or 1)}
        np.frombuffer(r["audio_f32"], dtype=np.float32)
        return {"text": "fuzz"}


def _tokens(text: str) -> list[bytes]:
    """Tokens as the real engines start them: UTF-8 bytes (a lone surrogate raises, there as
    here, an error that is not an `EngineError`)."""
    return text.encode("utf-8").split()


class _Remote:
    """`handle.method.remote(*args)`: an awaitable, its arguments and result pickled both ways,
    as Serve does between processes."""

    def __init__(self, method: Callable[..., Any]) -> None:
        self._method = method

    def remote(self, *args: Any) -> Any:
        sent = pickle.loads(pickle.dumps(args))
        return self._call(sent)

    async def _call(self, args: tuple[Any, ...]) -> Any:
        out = self._method(*args)
        if inspect.isawaitable(out):
            out = await out
        return pickle.loads(pickle.dumps(out))


class _ServerHandle:
    """A Serve deployment handle over an in-process `ModelServer`."""

    def __init__(self, server: ModelServer) -> None:
        self.infer = _Remote(server.infer)
        self.stats = _Remote(server.stats)


class GatewayHarness:
    """A `Gateway` behind its production routes, in process, with fake model servers and an
    httpx client; one event loop for every request (the servers' batch workers live on it).
    Puts `FUZZ_TOKEN` in the operator-token environment variable while open."""

    def __init__(
        self,
        *,
        scenario: str = "bristol",
        seed: int = 0,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.timeout_s = timeout_s
        self.gateway = Gateway(
            {
                "scenario": scenario,
                "max_body_bytes": MAX_BODY_BYTES,
                "request_timeout_s": min(5.0, timeout_s / 2),
                "retry_backoff_s": 0.01,
                "seed": seed,
            },
            handle_factory=self._handle,
        )
        self._servers: list[ModelServer] = []
        self._runner: asyncio.Runner | None = None
        self._client: httpx.AsyncClient | None = None
        self._saved_token: str | None = None

    def _handle(self, app_name: str) -> _ServerHandle:
        model, _, site = app_name.partition("--")
        backend = BACKEND_FOR_KIND[self.gateway.scenario.model(model).kind]
        cfg = ModelServerConfig(model=model, site=site, backend=backend, batch_wait_ms=0.5)
        server = ModelServer(cfg, engine_cls=FakeEngine)
        self._servers.append(server)
        return _ServerHandle(server)

    def __enter__(self) -> GatewayHarness:
        self._saved_token = os.environ.get(OPERATOR_TOKEN_ENV)
        os.environ[OPERATOR_TOKEN_ENV] = FUZZ_TOKEN
        self._runner = asyncio.Runner()
        transport = httpx.ASGITransport(
            app=create_gateway_api(self.gateway), raise_app_exceptions=False
        )
        self._client = httpx.AsyncClient(transport=transport, base_url=_ORIGIN)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._runner is not None and self._client is not None:
                self._runner.run(self._client.aclose())
        finally:
            if self._runner is not None:
                self._runner.close()  # cancels the servers' batch workers
            for server in self._servers:
                server._executor.shutdown(wait=False, cancel_futures=True)
            if self._saved_token is None:
                os.environ.pop(OPERATOR_TOKEN_ENV, None)
            else:
                os.environ[OPERATOR_TOKEN_ENV] = self._saved_token
            self._runner = self._client = None

    def send(self, case: FuzzCase) -> FuzzAnswer:
        """One request, waited for at most `timeout_s`."""
        if self._runner is None:
            raise RuntimeError("GatewayHarness.send outside `with GatewayHarness() as h:`")
        return self._runner.run(self._send(case))

    async def _send(self, case: FuzzCase) -> FuzzAnswer:
        assert self._client is not None
        content: bytes | AsyncIterator[bytes] = _pieces(case.body) if case.chunked else case.body
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in case.headers]
        url = _ORIGIN + case.path  # absolute: httpx refuses a relative '//path'
        request = self._client.build_request(case.method, url, headers=headers, content=content)
        t0 = time.perf_counter()
        try:
            response = await asyncio.wait_for(self._client.send(request), self.timeout_s)
        except TimeoutError:
            return FuzzAnswer(status=None, seconds=time.perf_counter() - t0)
        return FuzzAnswer(
            status=response.status_code,
            content_type=response.headers.get("content-type", ""),
            body=response.content,
            seconds=time.perf_counter() - t0,
        )

    def unhealthy(self) -> list[str]:
        """Valid requests of every kind that did not succeed as they should (empty: all did)."""
        problems = []
        for case, check in _health_cases(_catalogue(self.gateway.config.scenario)):
            answer = self.send(case)
            if answer.status != 200:
                problems.append(f"{case.method} {case.path}: {answer.status} {answer.body[:200]!r}")
                continue
            try:
                ok = check(json.loads(answer.body))
            except (ValueError, KeyError, TypeError):
                ok = False
            if not ok:
                problems.append(f"{case.method} {case.path}: unexpected {answer.body[:200]!r}")
        return problems


def _pieces(body: bytes, size: int = 8192) -> AsyncIterator[bytes]:
    async def gen() -> AsyncIterator[bytes]:
        for i in range(0, len(body), size):
            yield body[i : i + size]

    return gen()


def _health_cases(cat: _Catalogue) -> list[tuple[FuzzCase, Callable[[Any], bool]]]:
    """Valid requests of every endpoint and what their answer must hold."""
    png = _png_url()
    json_h = (("content-type", "application/json"),)
    auth_h = (*json_h, ("authorization", f"Bearer {FUZZ_TOKEN}"))
    hello = [{"role": "user", "content": "hello"}]
    vlm_msg = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": png}},
            ],
        }
    ]
    upload = multipart(
        [
            ("file", "speech.wav", "audio/wav", wav(0.1)),
            ("model", None, None, cat.of("speech-to-text")[0].encode()),
        ],
        "healthboundary",
    )

    def case(method: str, path: str, body: Any = None, headers: Any = json_h) -> FuzzCase:
        raw = body if isinstance(body, bytes) else b"" if body is None else _dumps(body)
        return FuzzCase(category="health", method=method, path=path, headers=headers, body=raw)

    def chat_ok(d: Any) -> bool:
        return d["choices"][0]["message"]["role"] == "assistant"

    return [
        (
            case("POST", "/v1/chat/completions", {"model": cat.of("llm")[0], "messages": hello}),
            chat_ok,
        ),
        (
            case("POST", "/v1/chat/completions", {"model": cat.of("vlm")[0], "messages": vlm_msg}),
            chat_ok,
        ),
        (
            case("POST", "/v1/images/generations", {"prompt": "a bridge", "n": 2, "size": "32x32"}),
            lambda d: len(d["data"]) == 2 and bool(d["data"][0]["b64_json"]),
        ),
        (
            case(
                "POST",
                "/v1/audio/transcriptions",
                upload,
                (("content-type", "multipart/form-data; boundary=healthboundary"),),
            ),
            lambda d: isinstance(d["text"], str),
        ),
        (case("GET", "/v1/models"), lambda d: len(d["data"]) == len(cat.models)),
        (
            case("POST", "/v1/operator/notices", {"text": "health check"}, auth_h),
            lambda d: isinstance(d["id"], str),
        ),
        (case("GET", "/v1/operator/notices", headers=auth_h), lambda d: d["object"] == "list"),
        (case("GET", "/healthz"), lambda d: d == {"ok": True}),
    ]


# --------------------------------------------------------------------------- the campaign


class CategoryCounts(BaseModel):
    """Answers to one category of request, by kind."""

    sent: int = 0
    success: int = 0
    client_error: int = Field(default=0, description="OpenAI-style 4xx JSON errors.")
    server_error: int = Field(default=0, description="5xx answers.")
    hang: int = 0
    nonconforming: int = Field(default=0, description="Any other answer (e.g. a bare 4xx).")


class FuzzViolation(BaseModel):
    """A request whose answer broke the contract."""

    category: Category
    request: str
    status: int | None
    reason: str
    answer: str = Field(description="The start of the answer's body.")


class FuzzReport(BaseModel):
    """What a fuzzing campaign sent, what came back, and whether the gateway still serves."""

    count: int = Field(description="Requests asked for.")
    seed: int
    timeout_s: float
    sent: int
    elapsed_s: float
    by_status: dict[str, int] = Field(description="HTTP status (or 'hang') -> answers.")
    by_category: dict[str, CategoryCounts]
    server_errors: int
    hangs: int
    nonconforming: int
    violations: list[FuzzViolation] = Field(
        description="The first violations: at most 3 of a category and reason, 20 in all."
    )
    healthy_after: bool = Field(description="Valid requests of every endpoint still succeed.")
    unhealthy: list[str] = Field(default_factory=list)
    ok: bool = Field(description="All sent, no 5xx, hang or other answer, healthy after.")


class _Tally:
    def __init__(self) -> None:
        self.by_status: Counter[str] = Counter()
        self.by_category = {c: CategoryCounts() for c in CATEGORIES if c != "health"}
        self.violations: list[FuzzViolation] = []
        self.sent = 0

    def add(self, case: FuzzCase, answer: FuzzAnswer) -> None:
        self.sent += 1
        self.by_status["hang" if answer.status is None else str(answer.status)] += 1
        counts = self.by_category[case.category]
        counts.sent += 1
        why = violation(case, answer)
        if why is None:
            if answer.status is not None and answer.status < 300:
                counts.success += 1
            else:
                counts.client_error += 1
            return
        if answer.status is None:
            counts.hang += 1
        elif answer.status >= 500:
            counts.server_error += 1
        else:
            counts.nonconforming += 1
        kind = Counter((v.category, v.reason) for v in self.violations)[(case.category, why)]
        if len(self.violations) < 20 and kind < 3:
            self.violations.append(
                FuzzViolation(
                    category=case.category,
                    request=case.describe(),
                    status=answer.status,
                    reason=why,
                    answer=answer.body[:300].decode("utf-8", "replace"),
                )
            )


def run_examples(
    strategy: st.SearchStrategy[FuzzCase],
    examples: int,
    seed: int,
    each: Callable[[FuzzCase], None],
) -> None:
    """Call `each` on `examples` cases hypothesis generates from `seed` (generation only: no
    database, no shrinking, no deadline; the same seed gives the same cases)."""

    @hypothesis_seed(seed)
    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        derandomize=False,
        phases=(Phase.generate,),
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
    )
    @given(case=strategy)
    def campaign(case: FuzzCase) -> None:
        each(case)

    campaign()


def _fill(
    category: Category,
    strategy: st.SearchStrategy[FuzzCase],
    share: int,
    seed: int,
    harness: GatewayHarness,
    tally: _Tally,
) -> None:
    """Send `share` cases of one category. Hypothesis stops early on a space it has exhausted,
    so draw again from other seeds (ten times at most) until the share is sent."""
    counts = tally.by_category[category]

    def each(case: FuzzCase) -> None:
        if counts.sent < share:
            tally.add(case, harness.send(case))

    for attempt in range(10):
        if counts.sent >= share:
            break
        run_examples(strategy, share - counts.sent, seed + 104_729 * attempt, each)


def fuzz_gateway(
    count: int, seed: int, *, timeout_s: float = DEFAULT_TIMEOUT_S, scenario: str = "bristol"
) -> FuzzReport:
    """Send `count` generated requests to an in-process gateway, an equal share from each
    category (so a rare one is not starved), then valid ones; the report."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s}")
    tally = _Tally()
    strategies = category_cases(scenario)
    shares = {
        c: count // len(strategies) + (i < count % len(strategies))
        for i, c in enumerate(strategies)
    }
    t0 = time.perf_counter()
    with GatewayHarness(scenario=scenario, seed=seed, timeout_s=timeout_s) as harness:
        for k, (category, strategy) in enumerate(strategies.items()):
            _fill(category, strategy, shares[category], seed + 7919 * k, harness, tally)
        unhealthy = harness.unhealthy()
    server_errors = sum(n.server_error for n in tally.by_category.values())
    hangs = sum(n.hang for n in tally.by_category.values())
    nonconforming = sum(n.nonconforming for n in tally.by_category.values())
    return FuzzReport(
        count=count,
        seed=seed,
        timeout_s=timeout_s,
        sent=tally.sent,
        elapsed_s=time.perf_counter() - t0,
        by_status=dict(sorted(tally.by_status.items())),
        by_category={c: n.model_copy() for c, n in tally.by_category.items()},
        server_errors=server_errors,
        hangs=hangs,
        nonconforming=nonconforming,
        violations=tally.violations,
        healthy_after=not unhealthy,
        unhealthy=unhealthy,
        ok=tally.sent >= count and server_errors == hangs == nonconforming == 0 and not unhealthy,
    )


# --------------------------------------------------------------------------- CLI


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _print(report: FuzzReport) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"gateway fuzzing, seed {report.seed}")
    for col in ("category", "sent", "2xx", "4xx", "5xx", "hang", "other"):
        table.add_column(col, justify="left" if col == "category" else "right")
    for name, c in report.by_category.items():
        row = (c.sent, c.success, c.client_error, c.server_error, c.hang, c.nonconforming)
        table.add_row(name, *map(str, row))
    console = Console()
    console.print(table)
    statuses = ", ".join(f"{s}: {n}" for s, n in report.by_status.items())
    console.print(f"{report.sent} requests in {report.elapsed_s:.1f} s; statuses {statuses}")
    console.print(
        f"5xx {report.server_errors}, hangs {report.hangs}, other {report.nonconforming}; "
        f"valid requests afterwards: {'served' if report.healthy_after else 'FAILED'}"
    )
    for v in report.violations[:10]:
        console.print(
            f"  [{v.category}] {v.reason}: {v.request}\n    -> {v.answer[:160]}", markup=False
        )
    for p in report.unhealthy:
        console.print(f"  unhealthy: {p}", markup=False)


def main(argv: list[str] | None = None) -> int:
    """`python -m serving.fuzz`: 0 when every answer kept the contract, 1 when not, 2 on bad
    arguments."""
    p = _Parser(prog="python -m serving.fuzz", description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=1000, help="requests to send (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="hypothesis seed (default 0)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds before a hang")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the report")
    args = p.parse_args(argv)
    logging.getLogger("python_multipart").setLevel(logging.ERROR)  # a warning per bad upload
    if args.count < 1:
        p.error(f"--count must be at least 1, got {args.count}")
    if not args.timeout > 0:
        p.error(f"--timeout must be positive, got {args.timeout}")
    if args.json is not None and not args.json.parent.is_dir():
        p.error(f"--json: no directory {str(args.json.parent)!r}")
    report = fuzz_gateway(args.count, args.seed, timeout_s=args.timeout)
    _print(report)
    if args.json is not None:
        args.json.write_text(report.model_dump_json(indent=2) + "\n")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
