"""`serve deploy serving/config.yaml` on a `ray start --head` cluster reaches RUNNING and the
openai client talks to the gateway on 127.0.0.1:8000, as serving/README.md tells a user.

The cluster is this test's own (`ray start --block` in a new process group, its own temp dir,
loopback only) and is ended by that group's id at the end. Select with `-m serve`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("ray.serve")
pytest.importorskip("diffusers")
pytestmark = [pytest.mark.serve, pytest.mark.enable_socket]

CONFIG = Path(__file__).resolve().parents[1] / "serving" / "config.yaml"
BIN = Path(sys.executable).parent
SITES = {"site-temple-meads": 1, "site-harbourside": 1, "site-clifton": 1}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_busy(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _serve(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "serve"), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def cluster() -> Any:
    """A head node with three site resources and a dashboard on 127.0.0.1."""
    if _port_busy(8000):
        pytest.skip("127.0.0.1:8000 is in use; the checked-in config serves there")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    temp = tempfile.mkdtemp(prefix="rayd-", dir="/tmp")  # short: Ray's socket paths
    dash = _free_port()
    proc = subprocess.Popen(
        [
            str(BIN / "ray"),
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--port={_free_port()}",
            "--num-cpus=8",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dash}",
            f"--temp-dir={temp}",
            f"--resources={json.dumps(SITES)}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    address = f"http://127.0.0.1:{dash}"
    try:
        deadline = time.time() + 90
        while _serve("status", "-a", address, env=env).returncode != 0:
            assert proc.poll() is None, "ray start exited"
            assert time.time() < deadline, "the dashboard did not come up in 90 s"
            time.sleep(2)
        yield {"address": address, "env": env}
    finally:
        with contextlib.suppress(Exception):
            _serve("shutdown", "-y", "-a", address, env=env, timeout=60)
        for sig, wait_s in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=wait_s)
                break
        shutil.rmtree(temp, ignore_errors=True)


def test_serve_deploy_of_the_checked_in_config_reaches_running(cluster: dict[str, Any]) -> None:
    import openai

    env, address = cluster["env"], cluster["address"]
    r = _serve("deploy", str(CONFIG), "-a", address, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    wanted = {a["name"] for a in yaml.safe_load(CONFIG.read_text())["applications"]}
    deadline = time.time() + 180
    while True:
        status = yaml.safe_load(_serve("status", "-a", address, env=env).stdout) or {}
        apps = {name: a["status"] for name, a in (status.get("applications") or {}).items()}
        if set(apps) == wanted and set(apps.values()) == {"RUNNING"}:
            break
        assert "DEPLOY_FAILED" not in apps.values(), status
        assert time.time() < deadline, f"not RUNNING after 180 s: {apps}"
        time.sleep(2)

    client = openai.OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused", max_retries=0)
    models = {m.id: m.model_extra["x_edgeagents"]["sites"] for m in client.models.list().data}
    assert models["llama-3.1-8b"] == ["temple-meads"]
    reply = client.chat.completions.create(
        model="llama-3.1-8b", messages=[{"role": "user", "content": "Hello"}], max_tokens=6
    )
    assert reply.choices[0].message.content
    assert reply.model_extra["x_edgeagents"]["site"] == "temple-meads"
