"""Operator notices at the gateway: the bearer-token check of the operator endpoints, and the
bounded board of the notices posted, on the clock that the city's agents read."""

from __future__ import annotations

import hmac
import math
import os
import threading
import time
from typing import Any

from starlette.requests import Request

from edgeagents.core.notice import Notice, NoticeError, notice_from
from serving.protocol import OpenAIError
from serving.request_body import json_type

OPERATOR_TOKEN_ENV = "EDGEAGENTS_OPERATOR_TOKEN"
"""The bearer token of the operator endpoints, read from the gateway process's environment on
each request (a Serve replica inherits the environment of `ray start`, or of the process that
started a local Ray). Unset or empty: every operator request is 401."""
NOTICE_FIELDS = ("text", "author", "publish_s")
"""What an operator may post; a scenario-only field such as `expect` is refused."""


def check_operator(request: Request) -> None:
    """401 unless `Authorization: Bearer <token>` matches `EDGEAGENTS_OPERATOR_TOKEN`.
    Read per request, so no token sits in a Serve config (which `serve status` shows)."""
    expected = os.environ.get(OPERATOR_TOKEN_ENV, "").strip()
    if not expected:
        raise _unauthorized(
            f"operator endpoints are off: set {OPERATOR_TOKEN_ENV} in the environment the "
            "gateway runs in (that of `ray start`)",
            "operator_token_unset",
        )
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        raise _unauthorized("send the header 'Authorization: Bearer <token>'", "missing_token")
    # Starlette decodes headers as latin-1: encode back to the bytes that were sent.
    if not hmac.compare_digest(given.encode("latin-1"), expected.encode()):
        raise _unauthorized("invalid operator token", "invalid_token")


def _unauthorized(message: str, code: str) -> OpenAIError:
    return OpenAIError(401, message, code=code, headers={"WWW-Authenticate": "Bearer"})


class NoticeBoard:
    """The notices operators posted, by id, in the order they came, and the clock they are
    published on. Serve may run the handle's sync methods (notices, set_clock) on another
    thread: the board takes a lock."""

    def __init__(self) -> None:
        self._epoch0 = time.time()
        self._notices: dict[str, Notice] = {}
        self._lock = threading.Lock()

    @property
    def clock_s(self) -> float:
        """Seconds since the city started serving (`RayServeCity.now`), from the wall clock
        that stamps the request records: the time notices are published on."""
        return max(0.0, time.time() - self._epoch0)

    def set_clock(self, epoch0_s: float) -> float:
        """Start the clock at `epoch0_s` (epoch seconds): `RayServeCity` calls this when it
        starts serving, so that a notice's `publish_s` reads on the agents' clock. Notices
        already held keep their moment (shifted, at least 0). Returns the clock now."""
        if not math.isfinite(epoch0_s):
            raise ValueError(f"set_clock: epoch0_s={epoch0_s!r} is not a finite time")
        with self._lock:
            shift = self._epoch0 - epoch0_s
            self._epoch0 = epoch0_s
            if shift:
                moved = [
                    Notice(text=n.text, author=n.author, publish_s=max(0.0, n.publish_s + shift))
                    for n in self._notices.values()
                ]
                self._notices = {n.id: n for n in moved}
        return self.clock_s

    def held(self, since_s: float) -> list[Notice]:
        """The notices published at or after `since_s`, in the order they came."""
        with self._lock:
            held = list(self._notices.values())
        return [n for n in held if n.publish_s >= since_s]

    def post(self, data: Any, max_notices: int) -> Notice:
        """Hold one posted notice (`text`, optional `author` and `publish_s`, which defaults to
        `clock_s`); 400 for a bad one, 429 past `max_notices`. The same notice posted twice is
        held once."""
        if not isinstance(data, dict):
            raise OpenAIError(
                400, f"a notice is a JSON object, got {json_type(data)}", code="invalid_notice"
            )
        unknown = [k for k in data if k not in NOTICE_FIELDS]
        if unknown:
            raise OpenAIError(
                400,
                f"notice: {unknown[0]}: unknown field (send {', '.join(NOTICE_FIELDS)})",
                code="invalid_notice",
                param=str(unknown[0]),
            )
        fields = {k: v for k, v in data.items() if v is not None}  # null: the default
        publish = fields.setdefault("publish_s", self.clock_s)
        if isinstance(publish, bool) or not isinstance(publish, int | float):
            raise OpenAIError(
                400,
                f"notice: publish_s: a number of seconds, got {json_type(publish)}",
                code="invalid_notice",
                param="publish_s",
            )
        try:
            notice = notice_from(fields, "notice")
        except NoticeError as e:
            raise OpenAIError(400, " ".join(str(e).split()), code="invalid_notice") from None
        with self._lock:
            if notice.id not in self._notices:
                if len(self._notices) >= max_notices:
                    raise OpenAIError(
                        429,
                        f"the gateway holds {max_notices} operator notices, its "
                        "bound (max_notices); no more are taken until it is redeployed",
                        code="too_many_notices",
                        type_="rate_limit_error",
                    )
                self._notices[notice.id] = notice
        return notice
