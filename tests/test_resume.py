"""`edgeagents run --checkpoint/--resume` end to end: a run SIGKILLed mid-episode (and at
random moments) resumes to the very figures of an uninterrupted run of the same seed; a
missing, unreadable or foreign checkpoint is one line and exit 2."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("langgraph", reason="needs the `agents` extra")

from conftest import TINY

from edgeagents.experiments.faults.kill_resume import (
    agents_cycles,
    differences,
    kill_mid_episode,
    wall_free,
)

CITY = {
    "placement": {"a": ["llm"], "c": ["llm"]},
    "control": {"tick_s": 5, "planning_epoch_s": 15, "drain_limit_s": 60},
    "workload": {"demands": [{"model": "llm", "arrivals": {"rate_per_s": 10.0}}]},
    "duration_s": 60,
}
OPTIONS = ["--llm", "none", "--decision-s", "1", "--no-with-none", "--baselines",
           "greedy-autoscale", "--duration", "60"]  # fmt: skip


def command(city: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "edgeagents", "run", "--scenario", str(city), *OPTIONS, *args]


def cli(city: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    return subprocess.run(command(city, *args), capture_output=True, text=True, timeout=300,
                          env=env)  # fmt: skip


@pytest.fixture(scope="module")
def city(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("city") / "tiny.yaml"
    path.write_text(yaml.safe_dump({**yaml.safe_load(TINY), **CITY}))
    return path


@pytest.fixture(scope="module")
def uninterrupted(city: Path, tmp_path_factory) -> dict:
    """The run without any checkpoint: what every resumed run must repeat."""
    out = tmp_path_factory.mktemp("plain") / "run.json"
    res = cli(city, "--json", str(out))
    assert res.returncode == 0, res.stderr
    return json.loads(out.read_text())


def resume(city: Path, checkpoint: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return cli(city, "--checkpoint", str(checkpoint), "--resume", "--json", str(out))


def opens(checkpoint: Path) -> str:
    with sqlite3.connect(f"file:{checkpoint}?mode=ro", uri=True) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def test_killed_mid_episode_resumes_to_the_uninterrupted_figures(city, uninterrupted, tmp_path):
    cp, out = tmp_path / "run.sqlite", tmp_path / "resumed.json"
    code, cycles = kill_mid_episode(command(city, "--checkpoint", str(cp)), cp, 5)
    assert code == -signal.SIGKILL and cycles >= 5
    assert opens(cp) == "ok"
    res = resume(city, cp, out)
    assert res.returncode == 0, res.stderr
    assert f"agents {cycles} cycles" in res.stdout and "greedy-autoscale done" in res.stdout
    resumed = json.loads(out.read_text())
    assert differences(wall_free(uninterrupted), wall_free(resumed)) == []
    assert wall_free(resumed) == wall_free(uninterrupted)
    assert resumed["results"][1]["policy"] == "agents"
    assert resumed["results"][1]["served"] + resumed["results"][1]["refused"] == resumed["prompts"]
    with sqlite3.connect(cp) as conn:
        ((at, replay_s),) = conn.execute("SELECT cycles, replay_s FROM resume").fetchall()
        assert at == cycles and replay_s >= 0
        assert conn.execute("SELECT count(*) FROM episode WHERE finished = 1").fetchone()[0] == 2
    again = resume(city, cp, tmp_path / "again.json")
    assert again.returncode == 0 and "agents done" in again.stdout, "a finished run replays"
    assert wall_free(json.loads((tmp_path / "again.json").read_text())) == wall_free(resumed)


def cycles_in(checkpoint: Path) -> int:
    """Cycles of every episode in a checkpoint being written (0 while it is not there)."""
    if not checkpoint.is_file():
        return 0
    try:
        with sqlite3.connect(f"file:{checkpoint}?mode=ro", uri=True) as conn:
            return int(conn.execute("SELECT count(*) FROM cycle").fetchone()[0])
    except sqlite3.Error:
        return 0


def kill_after(args: list[str], checkpoint: Path, cycles: int, extra_s: float) -> int:
    """SIGKILL the run `extra_s` after the file is there and holds `cycles` cycles (or once
    the run ends)."""
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None and (not checkpoint.exists() or cycles_in(checkpoint) < cycles):
        time.sleep(0.002)
    time.sleep(extra_s)
    proc.send_signal(signal.SIGKILL)
    return proc.wait(timeout=60)


def test_killed_at_random_moments_and_while_resuming_still_opens_and_repeats(
    city, uninterrupted, tmp_path
):
    """SIGKILL at random points of the run (as the file is made, in the baseline's episode, in
    the agents', in a resume's replay or after it), a random few ms after a cycle is written:
    the file opens every time, and the last resume repeats the uninterrupted figures."""
    rng = random.Random(18)
    cp = tmp_path / "run.sqlite"
    # about 13 cycles per episode: as the file is made, in the baseline, twice in the agents
    targets = [0, rng.randint(1, 10), rng.randint(14, 18), rng.randint(19, 23)]
    kills = []
    for k, target in enumerate(targets):
        args = command(city, "--checkpoint", str(cp), *(["--resume"] if k else []))
        kills.append(kill_after(args, cp, target, rng.uniform(0.0, 0.03)))
        assert cp.exists() and opens(cp) == "ok", (k, target)
    assert kills.count(-signal.SIGKILL) >= 3, kills
    res = resume(city, cp, tmp_path / "resumed.json")
    assert res.returncode == 0, res.stderr
    resumed = json.loads((tmp_path / "resumed.json").read_text())
    assert differences(wall_free(uninterrupted), wall_free(resumed)) == []


def one_line_exit_2(res: subprocess.CompletedProcess[str], expected: str) -> None:
    assert res.returncode == 2, res.stdout + res.stderr
    assert expected in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr


def test_resume_without_a_checkpoint_is_one_line_exit_2(city, tmp_path):
    one_line_exit_2(cli(city, "--resume"), "--resume needs --checkpoint PATH")
    one_line_exit_2(cli(city, "--checkpoint", str(tmp_path / "none.sqlite"), "--resume"),
                    "no checkpoint at")  # fmt: skip


def test_bad_or_foreign_checkpoints_are_one_line_exit_2(city, tmp_path):
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"not a database at all" * 100)
    one_line_exit_2(cli(city, "--checkpoint", str(garbage), "--resume"), "unreadable")
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    one_line_exit_2(cli(city, "--checkpoint", str(other), "--resume"),
                    "is not an edgeagents run checkpoint")  # fmt: skip
    cp = tmp_path / "run.sqlite"
    code, _ = kill_mid_episode(command(city, "--checkpoint", str(cp)), cp, 2)
    assert code == -signal.SIGKILL and agents_cycles(cp) >= 2
    one_line_exit_2(cli(city, "--checkpoint", str(cp), "--resume", "--seed", "1"),
                    "seed 0 there, 1 here")  # fmt: skip
    one_line_exit_2(cli(city, "--checkpoint", str(cp), "--resume", "--decision-s", "2"),
                    "decision_charge 1.0 there, 2.0 here")  # fmt: skip
    one_line_exit_2(cli(city, "--checkpoint", str(cp)), "exists; pass --resume")
    one_line_exit_2(cli(city, "--checkpoint", str(cp), "--resume", "--memory"),
                    "--checkpoint with --memory")  # fmt: skip
    with sqlite3.connect(cp) as conn:
        conn.execute("UPDATE run SET value = json_set(value, '$.code', 'elsewhere')")
    one_line_exit_2(cli(city, "--checkpoint", str(cp), "--resume"), "code 'elsewhere' there")
