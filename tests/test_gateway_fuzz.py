"""Gateway fuzzing, in process and without a Ray cluster: hypothesis-generated requests through
the production routes and error handlers (`serving.app.create_gateway_api`) over real
`ModelServer`s with fake engines; each answer must be a success or an OpenAI-style 4xx JSON
error, and the gateway must still serve afterwards. Then one regression test per 500 (or
non-4xx answer) the fuzzing found."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("hypothesis")
pytest.importorskip("python_multipart")
pytest.importorskip("ray")  # serving.app imports ray.serve (no cluster is started)

from hypothesis import HealthCheck, given, settings
from one_line import exits_2_with_one_line

from serving.engines import EngineError, decode_wav
from serving.fuzz import (
    CATEGORIES,
    FUZZ_TOKEN,
    Category,
    FuzzAnswer,
    FuzzCase,
    FuzzReport,
    GatewayHarness,
    category_cases,
    fuzz_gateway,
    main,
    multipart,
    riff_wav,
    violation,
)
from serving.loadgen import wav

JSON = (("content-type", "application/json"),)
AUTH = (*JSON, ("authorization", f"Bearer {FUZZ_TOKEN}"))


@pytest.fixture(scope="module")
def gw() -> Iterator[GatewayHarness]:
    with GatewayHarness() as harness:
        yield harness


def _send(
    gw: GatewayHarness,
    method: str,
    path: str,
    body: bytes | dict[str, Any] = b"",
    headers: tuple[tuple[str, str], ...] = JSON,
) -> FuzzAnswer:
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    case = FuzzCase(category="health", method=method, path=path, headers=headers, body=raw)
    answer = gw.send(case)
    assert violation(case, answer) is None, (answer.status, answer.body[:300])
    return answer


def _error(answer: FuzzAnswer, status: int, code: str) -> str:
    assert answer.status == status, answer.body[:300]
    err = json.loads(answer.body)["error"]
    assert err["code"] == code, err
    return err["message"]


# ---- the in-process app is the ingress --------------------------------------------------------


def test_the_in_process_app_mounts_the_ingress_route_functions() -> None:
    from serving.app import GATEWAY_ROUTES, api, create_gateway_api
    from serving.gateway import Gateway

    def walk(routes: list[Any]) -> Iterator[Any]:  # Serve nests its class-based view's router
        for r in routes:
            inner = getattr(r, "original_router", None)
            yield from walk(inner.routes) if inner is not None else [r]

    ingress = {(r.path, m): r.endpoint for r in walk(api.routes) for m in r.methods}
    gateway = Gateway({}, handle_factory=lambda app: None)
    local = {(r.path, m): r.endpoint for r in create_gateway_api(gateway).routes for m in r.methods}
    assert set(local) == set(ingress) == {(r.path, r.method) for r in GATEWAY_ROUTES}
    assert len(ingress) == 10
    for key, endpoint in local.items():
        assert endpoint.__func__ is ingress[key] and endpoint.__self__ is gateway


# ---- generated requests -------------------------------------------------------------------------


@pytest.mark.parametrize("category", [c for c in CATEGORIES if c != "health"])
def test_generated_requests_get_a_success_or_an_openai_4xx(
    gw: GatewayHarness, category: Category
) -> None:
    """16 examples of each of the 13 categories (208 in all), the same cases on every run."""

    @settings(
        max_examples=16,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(case=category_cases()[category])
    def one(case: FuzzCase) -> None:
        answer = gw.send(case)
        why = violation(case, answer)
        assert why is None, f"{why}: {case.describe()} -> {answer.body[:300]!r}"

    one()
    assert gw.unhealthy() == []


def test_a_campaign_of_1000_requests_finds_no_5xx_and_no_hang() -> None:
    """About 4 s here (2 cores): the CLI's default campaign."""
    report = fuzz_gateway(count=1000, seed=0)
    assert report.ok, report.violations
    assert report.sent == 1000 and report.server_errors == report.hangs == 0
    assert report.nonconforming == 0 and report.healthy_after
    assert all(c.sent >= 76 for c in report.by_category.values())
    assert {"200", "400", "401", "404", "405", "413"} <= set(report.by_status)
    assert fuzz_gateway(count=1000, seed=0).by_status == report.by_status  # reproducible


def test_the_verdict_refuses_what_is_not_a_success_or_an_openai_4xx() -> None:
    case = FuzzCase(category="chat", method="POST", path="/v1/chat/completions")
    err = {"error": {"message": "bad", "type": "invalid_request_error", "param": None, "code": "x"}}

    def answer(status: int | None, body: Any, ctype: str = "application/json") -> FuzzAnswer:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return FuzzAnswer(status=status, content_type=ctype, body=raw)

    assert violation(case, answer(400, err)) is None
    assert violation(case, answer(200, b"anything", "text/plain")) is None
    assert violation(case, answer(None, b"")) == "hang"
    assert violation(case, answer(500, err)) == "server error 500"
    assert violation(case, answer(503, err)) == "server error 503"
    assert "neither" in (violation(case, answer(307, b"")) or "")
    assert violation(case, answer(404, b"Not Found", "text/plain")) is not None
    assert violation(case, answer(400, {"detail": "bad"})) is not None
    assert violation(case, answer(400, {"error": {"message": "bad"}})) is not None


# ---- regressions: each a 500 (or a 307) the fuzzing found -------------------------------------


@pytest.mark.parametrize("image_url", [None, "data:image/png;base64,AAAA", 5, {"url": None}])
def test_an_image_url_that_is_not_an_object_with_a_url_string_is_a_400(
    gw: GatewayHarness, image_url: Any
) -> None:
    """Was a 500 (AttributeError on `.get` or `.startswith`)."""
    content = [{"type": "image_url", "image_url": image_url}]
    body = {"model": "qwen2-vl-7b", "messages": [{"role": "user", "content": content}]}
    _error(_send(gw, "POST", "/v1/chat/completions", body), 400, "invalid_image_url")


def test_a_number_literal_longer_than_python_converts_is_a_400(gw: GatewayHarness) -> None:
    """Was a 500: json.loads raises a bare ValueError past 4300 digits."""
    body = b'{"model": "llama-3.1-8b", "seed": ' + b"7" * 5000 + b"}"
    message = _error(_send(gw, "POST", "/v1/chat/completions", body), 400, "invalid_json")
    assert "4300 digits" in message


@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [
        ("/v1/operator/notices", b'{"text": "cabot \\ud800 closed"}', AUTH),
        ("/v1/operator/notices", b'{"text": "ok", "author": "\\uDFFF"}', AUTH),
        (
            "/v1/chat/completions",
            b'{"model": "llama-3.1-8b", "messages": [{"role": "user", "content": "\\ud83d"}]}',
            JSON,
        ),
        ("/v1/images/generations", '{"prompt": "\\udc00"}'.encode("utf-16"), JSON),
    ],
)
def test_a_lone_surrogate_escape_is_a_400(
    gw: GatewayHarness, path: str, body: bytes, headers: tuple[tuple[str, str], ...]
) -> None:
    """Was a 500 for a notice (its id hashes the text as UTF-8), and a 503 `replica_failed`
    after a retry for chat (the tokenizer's UnicodeEncodeError looked like a dead replica)."""
    message = _error(_send(gw, "POST", path, body, headers), 400, "invalid_json")
    assert "surrogate" in message


def test_a_surrogate_pair_escape_is_one_character_and_is_served(gw: GatewayHarness) -> None:
    notice = b'{"text": "flooding at the harbour \\ud83c\\udf0a"}'
    assert _send(gw, "POST", "/v1/operator/notices", notice, AUTH).status == 200
    listed = json.loads(_send(gw, "GET", "/v1/operator/notices", headers=AUTH).body)
    assert "flooding at the harbour \N{WATER WAVE}" in [n["text"] for n in listed["data"]]


@pytest.mark.parametrize("size", ["²x²", "١٢٨x١٢٨", "𝟑𝟐x𝟑𝟐"])
def test_an_image_size_in_non_ascii_digits_is_a_400(gw: GatewayHarness, size: str) -> None:
    """'²x²' was a 500: '²'.isdigit() is true but int('²') fails. Other scripts' digits, which
    int() reads, were taken; now sizes are ASCII, as OpenAI's are."""
    answer = _send(gw, "POST", "/v1/images/generations", {"prompt": "a bridge", "size": size})
    _error(answer, 400, "invalid_value")


def test_a_content_length_in_non_ascii_digits_is_not_a_500(gw: GatewayHarness) -> None:
    body = {"model": "llama-3.1-8b", "messages": [{"role": "user", "content": "hi"}]}
    answer = _send(gw, "POST", "/v1/chat/completions", body, (*JSON, ("content-length", "²")))
    assert answer.status is not None and answer.status < 500


@pytest.mark.parametrize("weight", [b"Infinity", b"1e999"])
def test_an_infinite_routing_weight_is_a_400_and_is_not_held(
    gw: GatewayHarness, weight: bytes
) -> None:
    """Was a 500 after the policy was already set, so that every later GET /admin/routing was a
    500 as well (JSON has no infinity)."""
    before = json.loads(_send(gw, "GET", "/admin/routing").body)
    body = b'{"routes": {"llama-3.1-8b": [{"site": "clifton", "weight": ' + weight + b"}]}}"
    _error(_send(gw, "PUT", "/admin/routing", body), 400, "invalid_value")
    assert json.loads(_send(gw, "GET", "/admin/routing").body) == before


def _wav(channels: int, rate: int, pcm: bytes, declared: int | None = None) -> bytes:
    """16-bit PCM; `declared`: the data size the header claims (the true one if None)."""
    return riff_wav(pcm, channels=channels, width=2, rate=rate, declared=declared)


def _transcribe(gw: GatewayHarness, audio: bytes) -> FuzzAnswer:
    body = multipart([("file", "a.wav", "audio/wav", audio)], "b0undary")
    headers = (("content-type", "multipart/form-data; boundary=b0undary"),)
    return _send(gw, "POST", "/v1/audio/transcriptions", body, headers)


def test_a_wav_cut_inside_its_last_frame_is_decoded_without_it(gw: GatewayHarness) -> None:
    """A header claiming more data than the file holds was a 500: 47 stereo samples
    ('cannot reshape array of size 47 into shape (2)'), or an odd byte count of 16-bit ones
    ('buffer size must be a multiple of element size')."""
    stereo = _wav(2, 16_000, b"\x01\x00" * 47, declared=4000)
    assert decode_wav(stereo).size == 23
    assert _transcribe(gw, stereo).status == 200
    odd = _wav(1, 16_000, b"\x01\x00" * 40 + b"\x01", declared=4000)
    assert decode_wav(odd).size == 40
    assert _transcribe(gw, odd).status == 200


def test_a_wav_claiming_a_tiny_rate_is_refused_before_resampling(gw: GatewayHarness) -> None:
    """1000 samples at 1 Hz would be resampled to 16 million at 16 kHz (a 64 KB upload, 8 GB
    at the gateway's 8 MB limit)."""
    slow = _wav(1, 1, b"\x01\x00" * 1000)
    with pytest.raises(EngineError, match="over 600 s"):
        decode_wav(slow)
    _error(_transcribe(gw, slow), 400, "invalid_audio")


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/v1/chat/completions/"), ("GET", "/v1/models/")]
)
def test_a_trailing_slash_is_a_404_not_a_redirect(
    gw: GatewayHarness, method: str, path: str
) -> None:
    """Was a 307 (FastAPI's redirect_slashes): neither a success nor an OpenAI error."""
    _error(_send(gw, method, path), 404, "not_found")


def test_valid_requests_of_every_endpoint_succeed(gw: GatewayHarness) -> None:
    assert gw.unhealthy() == []
    body = multipart([("file", "a.wav", "audio/wav", wav(0.1))], "b")
    headers = (("content-type", "multipart/form-data; boundary=b"),)
    answer = _send(gw, "POST", "/v1/audio/transcriptions", body, headers)
    assert answer.status == 200 and json.loads(answer.body)["text"] == "fuzz"


# ---- the CLI --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--count", "0"], "--count must be at least 1, got 0"),
        (["--count", "many"], "invalid int value"),
        (["--timeout", "0"], "--timeout must be positive"),
        (["--json", "/no/such/dir/report.json"], "--json: no directory"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert needle in exits_2_with_one_line(main, argv, capsys)


def test_the_cli_prints_a_table_and_writes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "fuzz.json"
    assert main(["--count", "39", "--seed", "3", "--json", str(path)]) == 0
    report = FuzzReport.model_validate_json(path.read_text())
    assert report.ok and report.sent == 39 and report.seed == 3
    assert all(c.sent == 3 for c in report.by_category.values())
    out = capsys.readouterr().out
    assert "39 requests" in out and "truncated_upload" in out
