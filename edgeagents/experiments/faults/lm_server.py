"""A tiny OpenAI-compatible LM server on 127.0.0.1 that misbehaves on purpose.

The agents' LM rows of `bench faults` point `openai:fake` at it, so the whole HTTP path (the
openai client, LangChain's structured output, `structured_call`'s deadline) meets a real
socket that answers late or wrongly, not a stub inside the process. It serves
`GET /v1/models` honestly (an endpoint that lists its model, as `check_reachable` wants) and
`POST /v1/chat/completions` in one of its modes:

- `slow`: a well-formed answer, sent only after `delay_s` (longer than the agents' LM limit);
- `garbage-text`: HTTP 200, a well-formed chat completion whose message is prose, not the
  schema's JSON;
- `garbage-json`: HTTP 200 with `Content-Type: application/json` and a body that is not JSON.

Started and stopped by a context manager; stopping wakes every waiting handler and joins its
thread, so nothing is left listening or running.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Literal, cast, get_args

LMServerMode = Literal["slow", "garbage-text", "garbage-json"]
LM_SERVER_MODES: tuple[LMServerMode, ...] = get_args(LMServerMode)
MODEL_NAME = "fake"
GARBAGE_TEXT = "I would go with the second option, it looks fine to me."
GARBAGE_JSON = b'{"id": "chatcmpl-garbage", "choices": [{"message": {"content": '
VALID_ANSWER = '{"choice": 1, "rationale": "slow but valid"}'


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago (the LM-down row's
    endpoint; also where a server of ours binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def completion(content: str) -> dict[str, object]:
    """An OpenAI chat completion carrying `content` as the assistant's message."""
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": MODEL_NAME,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


class FakeLMServer:
    """The misbehaving server in a thread. Use as `with FakeLMServer("slow") as srv:`;
    `srv.base_url` is the OpenAI base URL, `srv.requests` counts requests per path."""

    def __init__(self, mode: LMServerMode, *, delay_s: float = 2.0) -> None:
        if mode not in LM_SERVER_MODES:
            raise ValueError(f"mode {mode!r}: expected one of {', '.join(LM_SERVER_MODES)}")
        self.mode: LMServerMode = mode
        self.delay_s = delay_s
        self.requests: Counter[str] = Counter()
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake LM server is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def count(self, path: str) -> None:
        with self._lock:
            self.requests[path] += 1

    def start(self) -> FakeLMServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(self))
        server.daemon_threads = False  # so that server_close() joins every handler
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-lm-server"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Wake waiting handlers, stop serving, join every thread."""
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> FakeLMServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def handler_for(owner: FakeLMServer) -> type[BaseHTTPRequestHandler]:
    """The request handler class bound to one server's mode and counters."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request a connection: none stays open at stop
        timeout = 10.0  # a client that connects and sends nothing does not hold stop up

        def log_message(self, format: str, *args: object) -> None:  # quiet: no stderr noise
            return

        def send(self, status: int, body: bytes) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
            except OSError:  # the client gave up (its timeout): nothing to answer
                self.close_connection = True

        def do_GET(self) -> None:
            owner.count(self.path)
            if self.path.rstrip("/") == "/v1/models":
                models = {"object": "list", "data": [{"id": MODEL_NAME, "object": "model"}]}
                self.send(200, json.dumps(models).encode())
            else:
                self.send(404, b'{"error": {"message": "not found"}}')

        def do_POST(self) -> None:
            owner.count(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            if self.path.rstrip("/") != "/v1/chat/completions":
                self.send(404, b'{"error": {"message": "not found"}}')
                return
            if owner.mode == "slow":
                if owner.stopping.wait(owner.delay_s):
                    self.close_connection = True
                    return
                self.send(200, json.dumps(completion(VALID_ANSWER)).encode())
            elif owner.mode == "garbage-text":
                self.send(200, json.dumps(completion(GARBAGE_TEXT)).encode())
            else:
                self.send(200, GARBAGE_JSON)

    return Handler


@contextmanager
def lm_endpoint(mode: str, *, delay_s: float = 2.0) -> Iterator[tuple[str, FakeLMServer | None]]:
    """An OpenAI base URL that fails in `mode`, and its server: `down` is a free port nothing
    listens on (no server); any other mode is a `FakeLMServer`, stopped on leaving."""
    if mode == "down":
        yield f"http://127.0.0.1:{free_port()}/v1", None
        return
    if mode not in LM_SERVER_MODES:
        raise ValueError(f"mode {mode!r}: expected down or one of {', '.join(LM_SERVER_MODES)}")
    with FakeLMServer(cast(LMServerMode, mode), delay_s=delay_s) as server:
        yield server.base_url, server
