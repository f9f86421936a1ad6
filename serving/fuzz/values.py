"""The building blocks of the generated requests: the scenario's names, odd JSON values and
header text, "mostly good" mixing, and encoders for JSON, multipart bodies and WAV files."""

from __future__ import annotations

import base64
import functools
import json
import struct
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st
from pydantic import BaseModel

from edgeagents.core.scenario import load_scenario
from serving.fuzz.contract import FUZZ_TOKEN
from serving.loadgen import png


class Catalogue(BaseModel):
    """The names a scenario gives the gateway: models by kind, sites, cells."""

    models: dict[str, str]
    sites: list[str]
    cells: list[str]

    def of(self, *kinds: str) -> list[str]:
        return [m for m, k in self.models.items() if k in kinds]


@functools.cache
def catalogue(scenario: str) -> Catalogue:
    sc = load_scenario(scenario)
    return Catalogue(
        models={m.name: m.kind for m in sc.models},
        sites=list(sc.site_names),
        cells=[c.name for c in sc.cells],
    )


OMIT = object()
"""A field left out of a generated JSON object."""

_ODD_CHARS = st.characters(categories=["Cs", "Nd", "No", "Zs", "Cc", "Co"])
"""Lone surrogates, digits of every script, spaces, controls, private use."""
TEXT = st.text(max_size=30) | st.text(_ODD_CHARS, max_size=6)
_JSON_SCALAR = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats()
    | TEXT
)
JSON: st.SearchStrategy[Any] = st.recursive(
    _JSON_SCALAR,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(TEXT, kids, max_size=4),
    max_leaves=10,
)
HEADER_TEXT = st.text("".join(map(chr, [*range(0x20, 0x7F), *range(0xA0, 0x100)])), max_size=40)
"""What Starlette can receive in a header value: printable Latin-1."""


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.just(OMIT) | strategy


def mostly(good: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`good` about three times in four: a request odd in one place, not in all, gets past
    the first check and reaches the next. (Not `one_of(good, good, good, odd)`: hypothesis
    merges equal branches.)"""
    return st.integers(0, 3).flatmap(lambda i: odd if i == 3 else good)


def json_object(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """A JSON object drawing each field, dropping those drawn as `OMIT`."""
    return st.fixed_dictionaries(fields).map(
        lambda d: {k: v for k, v in d.items() if v is not OMIT}
    )


def dumps(value: Any) -> bytes:
    """JSON as a lax client writes it: NaN and Infinity literals, lone surrogates escaped."""
    return json.dumps(value).encode()


def json_headers(cat: Catalogue, auth: bool = False) -> st.SearchStrategy[Any]:
    cell = maybe(st.sampled_from(cat.cells) | HEADER_TEXT)
    return st.tuples(st.just(auth), cell).map(_headers)


def _headers(args: tuple[bool, Any]) -> tuple[tuple[str, str], ...]:
    auth, cell = args
    out = [("content-type", "application/json")]
    if auth:
        out.append(("authorization", f"Bearer {FUZZ_TOKEN}"))
    if cell is not OMIT:
        out.append(("x-edgeagents-cell", cell))
    return tuple(out)


@st.composite
def wav_files(draw: st.DrawFn) -> bytes:
    """A RIFF/WAVE file, mostly sound (16-bit mono 16 kHz), sometimes with odd or lying
    headers: zero channels, 24-bit, any rate, data not a whole number of frames."""
    channels = draw(mostly(st.sampled_from([1, 2]), st.integers(0, 6)))
    width = draw(mostly(st.sampled_from([2, 1, 4]), st.integers(0, 5)))
    rate = draw(mostly(st.sampled_from([16_000, 8_000, 44_100]), st.integers(0, 2**32 - 1)))
    tag = draw(mostly(st.just(1), st.sampled_from([3, 0xFFFE])))
    frames = draw(mostly(st.integers(1, 1600), st.just(0)))
    size = frames * channels * width + draw(mostly(st.just(0), st.sampled_from([1, 3])))
    pattern = draw(st.binary(min_size=1, max_size=16))
    data = (pattern * (size // len(pattern) + 1))[:size]
    declared = max(0, len(data) + draw(mostly(st.just(0), st.sampled_from([-1, 7, 2**20]))))
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


def png_url() -> str:
    return "data:image/png;base64," + base64.b64encode(png()).decode()


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


def quoted(text: str) -> str:
    """Percent-encoded UTF-8, lone surrogates kept as the bytes a careless client sends."""
    return quote(text.encode("utf-8", "surrogatepass"))
