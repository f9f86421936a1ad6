"""Operator notices on the Ray Serve gateway, without a Ray cluster: the endpoint logic of
`Gateway` behind a bare Starlette app (the same routes and OpenAI-style error answers as the
FastAPI ingress), the handle method the city reads, and `RayServeCity.operator_notices` over a
fake gateway handle."""

from __future__ import annotations

import time
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")  # starlette's TestClient

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from edgeagents.core.notice import NOTICE_MAX_CHARS, Notice
from serving.gateway import OPERATOR_TOKEN_ENV, Gateway
from serving.protocol import OpenAIError

TOKEN = "s3cret-operator-token"
URL = "/v1/operator/notices"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _gateway(**over: Any) -> Gateway:
    def no_handle(app: str) -> Any:
        raise AssertionError(f"no server call expected ({app})")

    return Gateway({"placement": {}, **over}, handle_factory=no_handle)


def _client(gw: Gateway) -> TestClient:
    """The gateway's operator routes as `serving/app.py` mounts them. Any exception other than
    an `OpenAIError` is raised into the test (TestClient's default): a 500 cannot pass."""

    async def post(request: Request) -> Response:
        return await gw.guarded(gw.post_notice, request)

    async def get(request: Request) -> Response:
        return await gw.guarded(gw.get_notices, request)

    async def openai_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, OpenAIError)
        return exc.response()

    app = Starlette(
        routes=[Route(URL, post, methods=["POST"]), Route(URL, get, methods=["GET"])],
        exception_handlers={OpenAIError: openai_error},
    )
    return TestClient(app)


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(OPERATOR_TOKEN_ENV, TOKEN)
    return TOKEN


def _error(r: Any, status: int, code: str) -> str:
    """The OpenAI-style error of a response; its message (one line)."""
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["code"] == code
    assert "\n" not in err["message"] and err["message"]
    return err["message"]


# ---- authentication -------------------------------------------------------------------------


def test_without_the_env_token_every_operator_request_is_401(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(OPERATOR_TOKEN_ENV, raising=False)
    gw = _gateway()
    with _client(gw) as c:
        for r in (
            c.post(URL, json={"text": "hello"}, headers=AUTH),
            c.post(URL, json={"text": "hello"}),
            c.get(URL, headers=AUTH),
        ):
            message = _error(r, 401, "operator_token_unset")
            assert OPERATOR_TOKEN_ENV in message
            assert r.headers["www-authenticate"] == "Bearer"
        monkeypatch.setenv(OPERATOR_TOKEN_ENV, "  ")  # blank is not a token
        blank = c.post(URL, json={"text": "hello"}, headers={"Authorization": "Bearer  "})
        _error(blank, 401, "operator_token_unset")
    assert gw.notices() == []
    assert gw.errors_by_code["operator_token_unset"] == 4


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_token"),
        ({"Authorization": TOKEN}, "missing_token"),
        ({"Authorization": f"Basic {TOKEN}"}, "missing_token"),
        ({"Authorization": "Bearer "}, "missing_token"),
        ({"Authorization": "Bearer wrong"}, "invalid_token"),
        ({"Authorization": f"Bearer {TOKEN}x"}, "invalid_token"),
        ({"Authorization": f"Bearer {TOKEN[:-1]}"}, "invalid_token"),
        ({"Authorization": "Bearer caf\u00e9".encode()}, "invalid_token"),
    ],
)
def test_a_missing_or_wrong_token_is_401(token: str, headers: dict[str, Any], code: str) -> None:
    gw = _gateway()
    with _client(gw) as c:
        _error(c.post(URL, json={"text": "hello"}, headers=headers), 401, code)
        _error(c.get(URL, headers=headers), 401, code)
    assert gw.notices() == []


def test_the_token_is_compared_in_constant_time(
    token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hmac

    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    with _client(_gateway()) as c:
        assert c.post(URL, json={"text": "hello"}, headers=AUTH).status_code == 200
    assert calls == [(TOKEN.encode(), TOKEN.encode())]


def test_a_non_ascii_token_matches_its_utf8_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OPERATOR_TOKEN_ENV, "caf\u00e9-\u00fcber")
    with _client(_gateway()) as c:
        ok = c.post(
            URL,
            json={"text": "hi"},
            headers={"Authorization": "Bearer caf\u00e9-\u00fcber".encode()},
        )
        bad = c.post(URL, json={"text": "hi"}, headers={"Authorization": "Bearer cafe-uber"})
    assert ok.status_code == 200, ok.text
    _error(bad, 401, "invalid_token")


# ---- posting and reading --------------------------------------------------------------------


def test_a_valid_notice_is_stored_and_read_back(token: str) -> None:
    gw = _gateway()
    gw.set_clock(time.time() - 100.0)  # the city has served for 100 s
    with _client(gw) as c:
        r = c.post(URL, json={"text": "  Concert at the Harbour tonight.  "}, headers=AUTH)
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"id", "publish_s"}
        assert 100.0 <= body["publish_s"] < 110.0  # the gateway's clock, not epoch seconds
        given = {"text": "maintenance sites=clifton from=+60", "author": "ops", "publish_s": 5}
        r2 = c.post(URL, json=given, headers={"authorization": f"bearer {TOKEN}"})
        assert r2.status_code == 200, r2.text
        assert r2.json() == {"id": Notice(**given).id, "publish_s": 5.0}

        listed = c.get(URL, headers=AUTH).json()
        assert listed["object"] == "list"
        assert 100.0 <= listed["clock_s"] < 110.0
        assert [n["id"] for n in listed["data"]] == [body["id"], r2.json()["id"]]
        assert listed["data"][0] == {
            "id": body["id"],
            "text": "Concert at the Harbour tonight.",
            "publish_s": body["publish_s"],
            "author": "operator",
        }
        later = c.get(URL, params={"since_s": 50}, headers=AUTH).json()["data"]
        assert [n["id"] for n in later] == [body["id"]]
        _error(c.get(URL, params={"since_s": "soon"}, headers=AUTH), 400, "invalid_value")
        _error(c.get(URL, params={"since_s": "nan"}, headers=AUTH), 400, "invalid_value")

    held = gw.notices()
    assert [Notice.model_validate(n).id for n in held] == [body["id"], r2.json()["id"]]
    assert held[1] == {"text": given["text"], "publish_s": 5.0, "author": "ops"}
    assert gw.notices(since_s=50.0) == held[:1]


def test_the_same_notice_twice_is_stored_once(token: str) -> None:
    gw = _gateway(max_notices=1)
    with _client(gw) as c:
        first = c.post(URL, json={"text": "hi", "publish_s": 3}, headers=AUTH)
        again = c.post(URL, json={"text": "hi", "publish_s": 3.0}, headers=AUTH)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert len(gw.notices()) == 1


BAD = [
    (b"{not json", "invalid_json"),
    (b"\xff\xfe", "invalid_json"),
    (b"", "invalid_json"),
    (b"[" * 100_000, "invalid_json"),  # deeper than Python's recursion limit
    (b'"just text"', "invalid_notice"),
    (b"[1, 2]", "invalid_notice"),
    (b"null", "invalid_notice"),
    (b"{}", "invalid_notice"),
    (b'{"text": ""}', "invalid_notice"),
    (b'{"text": "   "}', "invalid_notice"),
    (b'{"text": 42}', "invalid_notice"),
    (b'{"text": ["a"]}', "invalid_notice"),
    (b'{"text": null}', "invalid_notice"),
    (b'{"text": "x' + b"y" * NOTICE_MAX_CHARS + b'"}', "invalid_notice"),
    (b'{"text": "hi", "publish_s": "soon"}', "invalid_notice"),
    (b'{"text": "hi", "publish_s": "5"}', "invalid_notice"),
    (b'{"text": "hi", "publish_s": true}', "invalid_notice"),
    (b'{"text": "hi", "publish_s": -1}', "invalid_notice"),
    (b'{"text": "hi", "publish_s": NaN}', "invalid_notice"),
    (b'{"text": "hi", "publish_s": Infinity}', "invalid_notice"),
    (b'{"text": "hi", "author": 7}', "invalid_notice"),
    (b'{"text": "hi", "author": "' + b"a" * 81 + b'"}', "invalid_notice"),
    (b'{"text": "hi", "expect": "none"}', "invalid_notice"),  # scenarios only
    (b'{"text": "hi", "priority": 1}', "invalid_notice"),
]


@pytest.mark.parametrize(("body", "code"), BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_a_bad_body_is_400_with_one_line(token: str, body: bytes, code: str) -> None:
    gw = _gateway()
    with _client(gw) as c:
        r = c.post(URL, content=body, headers={**AUTH, "content-type": "application/json"})
    message = _error(r, 400, code)
    assert len(message) < 300
    assert gw.notices() == []


def test_empty_and_overlong_text_say_why(token: str) -> None:
    with _client(_gateway()) as c:
        empty = c.post(URL, json={"text": ""}, headers=AUTH)
        long = c.post(URL, json={"text": "x" * (NOTICE_MAX_CHARS + 1)}, headers=AUTH)
        number = c.post(URL, json={"text": 12}, headers=AUTH)
        exact = c.post(URL, json={"text": "x" * NOTICE_MAX_CHARS}, headers=AUTH)
    assert _error(empty, 400, "invalid_notice") == "notice: text: a notice's text is empty"
    assert "2001 characters, over 2000" in _error(long, 400, "invalid_notice")
    assert "a string, got int" in _error(number, 400, "invalid_notice")
    assert exact.status_code == 200, exact.text


def test_past_the_bound_is_429_and_nothing_is_dropped(token: str) -> None:
    gw = _gateway()
    assert gw.config.max_notices == 1000
    with _client(gw) as c:
        for i in range(1000):
            r = c.post(URL, json={"text": f"notice {i}", "publish_s": i}, headers=AUTH)
            assert r.status_code == 200, r.text
        over = c.post(URL, json={"text": "one too many"}, headers=AUTH)
        again = c.post(URL, json={"text": "notice 0", "publish_s": 0}, headers=AUTH)
    err = over.json()["error"]
    assert over.status_code == 429 and err["code"] == "too_many_notices"
    assert err["type"] == "rate_limit_error" and "1000" in err["message"]
    assert again.status_code == 200  # already held: not a new one
    held = gw.notices()
    assert len(held) == 1000 and held[0]["text"] == "notice 0"


def test_set_clock_moves_held_notices_to_the_citys_clock(token: str) -> None:
    gw = _gateway()
    t0 = time.time()
    gw.set_clock(t0 - 30.0)
    with _client(gw) as c:
        c.post(URL, json={"text": "early", "publish_s": 10}, headers=AUTH)
        c.post(URL, json={"text": "planned", "publish_s": 100}, headers=AUTH)
    assert gw.set_clock(t0) < 5.0  # the city starts serving now: 30 s later
    assert [(n["text"], n["publish_s"]) for n in gw.notices()] == [
        ("early", 0.0),
        ("planned", pytest.approx(70.0)),
    ]
    with pytest.raises(ValueError, match="finite"):
        gw.set_clock(float("nan"))


# ---- the city's side ----------------------------------------------------------------------------


class _Call:
    def __init__(self, value: Any) -> None:
        self.value = value

    def result(self, timeout_s: float | None = None) -> Any:
        return self.value


class _Method:
    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def remote(self, *args: Any, **kwargs: Any) -> _Call:
        return _Call(self.fn(*args, **kwargs))


class _Handle:
    """A Serve handle stand-in: `handle.method.remote(...).result()` calls the gateway."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    def __getattr__(self, name: str) -> _Method:
        return _Method(getattr(self.gw, name))


def test_ray_serve_city_reads_the_gateway_notices_as_notice_models(token: str) -> None:
    pytest.importorskip("ray")
    from serving.city import RayServeCity

    gw = _gateway()
    with _client(gw) as c:
        c.post(URL, json={"text": "surge model=whisper-large-v3 x2", "publish_s": 4}, headers=AUTH)
        c.post(URL, json={"text": "Keep speech under 4 s.", "author": "ops"}, headers=AUTH)
    city = RayServeCity.__new__(RayServeCity)  # no cluster: only the gateway handle is used
    city._gateway = _Handle(gw)
    notices = city.operator_notices()
    assert all(isinstance(n, Notice) for n in notices)
    assert [(n.text, n.author) for n in notices] == [
        ("surge model=whisper-large-v3 x2", "operator"),
        ("Keep speech under 4 s.", "ops"),
    ]
    assert notices[0].publish_s == 4.0
    assert [n.id for n in notices] == [n["id"] for n in _listed(gw)]


def _listed(gw: Gateway) -> list[dict[str, Any]]:
    with _client(gw) as c:
        return c.get(URL, headers=AUTH).json()["data"]


def test_the_ingress_mounts_the_operator_routes() -> None:
    pytest.importorskip("ray.serve")
    pytest.importorskip("fastapi")
    from serving.app import api

    def walk(routes: list[Any]) -> Any:  # FastAPI nests the class-based view's router
        for r in routes:
            inner = getattr(r, "original_router", None)
            yield from walk(inner.routes) if inner is not None else [r]

    routes = {(r.path, m) for r in walk(api.routes) for m in getattr(r, "methods", ())}
    assert {(URL, "POST"), (URL, "GET")} <= routes


# ---- on a real local Ray (the `serve` extra): only the gateway, no model server ---------------


@pytest.mark.serve
@pytest.mark.enable_socket
def test_a_notice_posted_over_http_reaches_the_city_on_its_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The token reaches the replica through the environment Ray starts with; the gateway's
    clock is the city's `now`. About 15 s (Ray and Serve start)."""
    pytest.importorskip("ray.serve")
    import socket

    import httpx
    import ray
    from ray import serve

    from serving.city import RayServeCity

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv(OPERATOR_TOKEN_ENV, TOKEN)  # before Ray starts: its workers inherit it
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        city = RayServeCity({"gateway": {"placement": {}}})
        time.sleep(0.5)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            _error(c.post(URL, json={"text": "hi"}), 401, "missing_token")
            r = c.post(URL, json={"text": "maintenance sites=clifton from=+60"}, headers=AUTH)
            now = city.now
            assert r.status_code == 200, r.text
            _error(c.post(URL, json={"text": 5}, headers=AUTH), 400, "invalid_notice")
        (notice,) = city.operator_notices()
        assert notice.id == r.json()["id"]
        assert notice.text == "maintenance sites=clifton from=+60"
        assert 0.5 <= notice.publish_s <= now + 0.01
        assert now - notice.publish_s < 2.0
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
