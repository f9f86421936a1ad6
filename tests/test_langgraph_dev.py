"""`langgraph dev` serves the graph offline; a langgraph-sdk client runs one control cycle."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("langgraph_sdk", reason="needs the `agents` extra")
pytestmark = [pytest.mark.enable_socket, pytest.mark.allow_hosts(["127.0.0.1"])]
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dev_server():
    port = free_port()
    cli = Path(sys.executable).with_name("langgraph")
    env = {**os.environ, "EDGEAGENTS_LLM": "none", "LANGSMITH_TRACING": "false"}
    proc = subprocess.Popen(
        [str(cli), "dev", "--no-browser", "--no-reload", "--port", str(port),
         "--host", "127.0.0.1"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/ok", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"langgraph dev exited: {proc.stdout.read()[-2000:]}")
                time.sleep(0.5)
        else:
            pytest.fail("langgraph dev did not come up in 90 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_sdk_client_runs_one_control_cycle(dev_server):
    from langgraph_sdk import get_client

    async def run() -> dict:
        client = get_client(url=dev_server)
        thread = await client.threads.create()
        return await client.runs.wait(thread["thread_id"], "edgeagents", input={})

    out = asyncio.run(run())
    assert out["cycle"] == 1
    agents = {r["agent"].split(":")[0] for r in out["decision"]["records"]}
    assert agents == {"planner", "deployer", "scheduler"}
    assert out["telemetry"]["sites"] and out["routing"]["routes"]
