"""Requests shaped for each endpoint (chat, images, transcription uploads, operator notices,
admin routing), odd in a field or two: what gets past the body checks to the validation behind."""

from __future__ import annotations

import base64
import string
from typing import Any

from hypothesis import strategies as st

from serving.fuzz.contract import FUZZ_TOKEN, Category, FuzzCase
from serving.fuzz.values import (
    HEADER_TEXT,
    JSON,
    OMIT,
    TEXT,
    Catalogue,
    dumps,
    json_headers,
    json_object,
    maybe,
    mostly,
    multipart,
    png_url,
    quoted,
    wav_files,
)


def _data_url() -> st.SearchStrategy[Any]:
    return st.just(png_url()) | st.one_of(
        st.binary(max_size=24).map(
            lambda b: "data:image/png;base64," + base64.b64encode(b).decode()
        ),
        st.sampled_from(["data:,!!not base64!!", "https://example.com/cat.png", "data:", ""]),
        TEXT.map(lambda t: "data:image/png;base64," + t),
        JSON,
    )


def _content() -> st.SearchStrategy[Any]:
    text_part = json_object({"type": st.just("text"), "text": mostly(TEXT, maybe(JSON))})
    image_url = mostly(json_object({"url": _data_url()}), json_object({"url": maybe(JSON)}) | JSON)
    image_part = json_object({"type": st.just("image_url"), "image_url": image_url})
    part = st.one_of(text_part, image_part, st.dictionaries(TEXT, JSON, max_size=3))
    return mostly(TEXT, st.none() | st.lists(part, min_size=1, max_size=3))


def _message() -> st.SearchStrategy[dict[str, Any]]:
    roles = mostly(st.sampled_from(["user", "system", "assistant", "developer", "tool"]), TEXT)
    return json_object({"role": roles, "content": mostly(_content(), st.just(OMIT) | JSON)})


def _chat_fields(models: st.SearchStrategy[Any]) -> dict[str, st.SearchStrategy[Any]]:
    tokens = mostly(st.none() | st.integers(1, 4096), st.integers(-2, 5000))
    return {
        "model": models,
        "messages": mostly(st.lists(_message(), min_size=1, max_size=3), st.just([]) | JSON),
        "max_tokens": maybe(tokens),
        "max_completion_tokens": maybe(tokens),
        "temperature": maybe(mostly(st.floats(0, 2), st.floats() | st.integers(-1, 3))),
        "top_p": maybe(mostly(st.floats(0, 1, exclude_min=True), st.floats(-0.5, 1.5))),
        "n": maybe(mostly(st.just(1), st.integers(0, 3))),
        "stream": maybe(mostly(st.just(False), st.just(True))),
        "seed": maybe(st.none() | st.integers()),
        "stop": maybe(st.none() | TEXT | st.lists(TEXT, max_size=3)),
    }


def _image_fields(models: st.SearchStrategy[Any]) -> dict[str, st.SearchStrategy[Any]]:
    digits = st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=4)
    sizes = st.one_of(
        st.sampled_from(["32x32", "8x8", "64x64", "2048x2048", "16x32", "0x0", "4096x4096"]),
        st.tuples(digits, digits).map("x".join),
        digits.map(lambda d: f"{d}x{d}"),
        TEXT,
    )
    return {
        "prompt": mostly(
            st.text(min_size=1, max_size=40), TEXT | st.integers(3990, 4010).map(lambda n: "x" * n)
        ),
        "model": maybe(st.none() | models),
        "n": maybe(mostly(st.integers(1, 4), st.integers(-1, 6))),
        "size": maybe(st.none() | sizes),
        "response_format": maybe(st.sampled_from([None, "b64_json", "url", ""])),
        "num_inference_steps": maybe(mostly(st.none() | st.integers(1, 50), st.integers(-1, 1200))),
    }


def _json_post(
    cat: Catalogue, category: Category, path: str, fields: dict[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[FuzzCase]:
    """A POST of a JSON object drawn field by field (`json_object`)."""
    return st.builds(
        FuzzCase,
        category=st.just(category),
        method=st.just("POST"),
        path=st.just(path),
        headers=json_headers(cat),
        body=json_object(fields).map(dumps),
    )


def chat_cases(
    cat: Catalogue, category: Category, models: st.SearchStrategy[Any]
) -> st.SearchStrategy[FuzzCase]:
    return _json_post(cat, category, "/v1/chat/completions", _chat_fields(models))


def images_cases(
    cat: Catalogue, category: Category, models: st.SearchStrategy[Any]
) -> st.SearchStrategy[FuzzCase]:
    return _json_post(cat, category, "/v1/images/generations", _image_fields(models))


_BOUNDARY = st.text(string.ascii_letters + string.digits + "'()+_,-./:=?", min_size=1, max_size=70)


def _upload_parts(
    cat: Catalogue, models: st.SearchStrategy[Any], audio: st.SearchStrategy[bytes]
) -> st.SearchStrategy[list[tuple[str, str | None, str | None, bytes]]]:
    text_bytes = TEXT.map(lambda t: t.encode("utf-8", "surrogatepass"))
    file_part = st.tuples(
        mostly(st.just("file"), st.sampled_from(["File", "audio", ""])),
        mostly(st.sampled_from(["speech.wav", "a.mp3"]), TEXT | st.none()),
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
        mostly(st.sampled_from([b"json", b"text", b"verbose_json"]), st.just(b"srt") | text_bytes),
    )
    extra = st.tuples(TEXT, st.none() | TEXT, st.none(), text_bytes)
    return st.tuples(
        st.lists(file_part, min_size=1, max_size=2),
        st.lists(model_part, max_size=2),
        st.lists(fmt_part, max_size=1),
        st.lists(extra, max_size=2),
    ).map(lambda groups: [p for g in groups for p in g])


def upload_cases(
    cat: Catalogue,
    category: Category,
    models: st.SearchStrategy[Any],
    audio: st.SearchStrategy[bytes] | None = None,
    truncate: bool = False,
) -> st.SearchStrategy[FuzzCase]:
    cut_wav = wav_files().flatmap(lambda b: st.integers(0, len(b)).map(lambda n: b[:n]))
    odd_audio = st.binary(max_size=48) | cut_wav
    audio = audio if audio is not None else mostly(wav_files(), odd_audio)

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
def operator_cases(draw: st.DrawFn, cat: Catalogue) -> FuzzCase:
    good = st.sampled_from([f"Bearer {FUZZ_TOKEN}", f"bearer   {FUZZ_TOKEN}  "])
    odd = st.one_of(
        st.sampled_from(["Bearer wrong-token", f"Basic {FUZZ_TOKEN}", "Bearer", ""]),
        HEADER_TEXT.map(lambda t: "Bearer " + t),
        st.none(),
    )
    auth = draw(mostly(good, odd))
    headers = [("content-type", "application/json")]
    if auth is not None:
        headers.append(("authorization", auth))
    if draw(st.booleans()):
        since = draw(
            st.floats().map(repr) | TEXT | st.sampled_from(["0", "120", "-5", "1e999", "nan"])
        )
        query = quoted(since)
        return FuzzCase(
            category="operator",
            method="GET",
            path=f"/v1/operator/notices?since_s={query}",
            headers=tuple(headers),
        )
    texts = mostly(
        st.sampled_from(["surge model=whisper-large-v3 x2", "maintenance sites=clifton from=+60"])
        | st.text(min_size=1, max_size=60),
        st.one_of(TEXT, st.integers(1990, 2010).map(lambda n: "y" * n), JSON, st.just(OMIT)),
    )
    publish = mostly(
        st.floats(0, 1e6) | st.integers(0, 10**6),
        st.floats() | st.integers(-(10**400), 10**400) | JSON,
    )
    fields = {
        "text": texts,
        "author": maybe(mostly(st.text(max_size=80), TEXT | st.just("z" * 81) | JSON)),
        "publish_s": maybe(publish),
    }
    extra = st.dictionaries(st.sampled_from(["expect", "id", "kind"]) | TEXT, JSON, max_size=2)
    notice = st.tuples(json_object(fields), maybe(extra)).map(
        lambda t: t[0] if t[1] is OMIT else {**t[1], **t[0]}
    )
    return FuzzCase(
        category="operator",
        method="POST",
        path="/v1/operator/notices",
        headers=tuple(headers),
        body=dumps(draw(notice)),
    )


@st.composite
def admin_cases(draw: st.DrawFn, cat: Catalogue) -> FuzzCase:
    choice = draw(st.sampled_from(["policy", "telemetry", "read"]))
    if choice == "telemetry":
        since = draw(st.floats().map(repr) | TEXT | st.integers().map(str))
        query = quoted(since)
        return FuzzCase(category="admin", method="GET", path=f"/admin/telemetry?since_s={query}")
    if choice == "read":
        path = draw(st.sampled_from(["/admin/routing", "/v1/models", "/healthz"]))
        return FuzzCase(category="admin", method="GET", path=path)
    weight = json_object(
        {
            "site": st.sampled_from(cat.sites) | TEXT,
            "weight": maybe(st.floats() | st.integers(-1, 10) | JSON),
        }
    )
    routes = st.dictionaries(
        st.sampled_from(list(cat.models)) | TEXT, st.lists(weight, max_size=3), max_size=3
    )
    body = draw(json_object({"routes": maybe(routes)}) | JSON)
    return FuzzCase(
        category="admin",
        method="PUT",
        path="/admin/routing",
        headers=(("content-type", "application/json"),),
        body=dumps(body),
    )
