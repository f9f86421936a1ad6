"""Requests broken at the HTTP or body level: malformed JSON, wrong JSON types, huge numbers,
oversized bodies, wrong content types, wrong methods and paths."""

from __future__ import annotations

import string
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

from serving.fuzz.contract import MAX_BODY_BYTES, FuzzCase
from serving.fuzz.values import (
    HEADER_TEXT,
    JSON,
    OMIT,
    TEXT,
    Catalogue,
    dumps,
    json_headers,
    maybe,
    multipart,
    quoted,
)
from serving.loadgen import wav

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


@st.composite
def malformed_json_cases(draw: st.DrawFn, cat: Catalogue) -> FuzzCase:
    valid = dumps({"model": cat.of("llm")[0], "messages": [{"role": "user", "content": "hi"}]})
    depth = draw(st.integers(1, 60_000))
    body = draw(
        st.binary(max_size=64)
        | TEXT.map(lambda t: t.encode("utf-8", "surrogatepass"))
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
        headers=draw(json_headers(cat, auth=True)),
        body=body,
    )


_FIELDS = (
    *("model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p"),
    *("n", "stream", "seed", "stop", "prompt", "size", "response_format"),
    *("num_inference_steps", "text", "author", "publish_s", "routes"),
)
"""Every field name the JSON endpoints read."""


@st.composite
def wrong_types_cases(draw: st.DrawFn, cat: Catalogue) -> FuzzCase:
    known = st.dictionaries(st.sampled_from(_FIELDS), JSON, min_size=1, max_size=5)
    value = draw(JSON | known)
    path, method = draw(
        st.sampled_from([*((p, "POST") for p in _JSON_POSTS), ("/admin/routing", "PUT")])
    )
    return FuzzCase(
        category="wrong_types",
        method=method,
        path=path,
        headers=draw(json_headers(cat, auth=True)),
        body=dumps(value),
    )


def huge_numbers_cases(cat: Catalogue) -> st.SearchStrategy[FuzzCase]:
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
            headers=draw(json_headers(cat)),
            body=dumps(body),
        )

    return build()


@st.composite
def oversized_cases(draw: st.DrawFn, cat: Catalogue) -> FuzzCase:
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
        body = dumps({"model": cat.of("llm")[0], "messages": [{"role": "user", "content": pad}]})
        headers = draw(json_headers(cat, auth=True))
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
def wrong_content_type_cases(draw: st.DrawFn, cat: Catalogue) -> FuzzCase:
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
        | HEADER_TEXT
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
        body = dumps(
            {"model": cat.of("llm")[0], "messages": [{"role": "user", "content": "hello"}]}
        )
    return FuzzCase(
        category="wrong_content_type",
        method="POST",
        path=path,
        headers=(("content-type", ctype),),
        body=body,
    )


@st.composite
def wrong_route_cases(draw: st.DrawFn, cat: Catalogue) -> FuzzCase:
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
    query = draw(maybe(st.dictionaries(TEXT, TEXT, max_size=3)))
    url = quote(path, safe="/%-._~!$&'()*+,;=:@")
    if query is not OMIT and query:
        url += "?" + "&".join(f"{quoted(k)}={quoted(v)}" for k, v in query.items())
    body = draw(st.just(b"") | st.binary(max_size=32))
    return FuzzCase(category="wrong_route", method=method, path=url, body=body)
