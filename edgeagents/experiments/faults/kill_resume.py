"""The kill-and-resume row: `edgeagents run` as a subprocess, SIGKILLed once its agents have
checkpointed about half their episode, resumed with `--resume`, and compared with an
uninterrupted run of the same options and seed (no checkpoint at all)."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edgeagents.experiments.faults.report import FaultsSettings, ProcessFaultFigures

KILL_SHARE = 0.5
"""The run is killed once its agents have checkpointed this share of the horizon's ticks."""
POLL_S = 0.002
RUN_TIMEOUT_S = 600.0
WALL_KEYS = ("wall", "sim_prompts_per_s")
"""Report fields that hold wall-clock time: the only ones a resumed run may change."""


def run_args(settings: FaultsSettings, *extra: str) -> list[str]:
    """`python -m edgeagents run` on the campaign's city, seed, horizon, LM and baseline."""
    s = settings
    return [
        sys.executable, "-m", "edgeagents", "run", "--scenario", s.scenario, "--seed",
        str(s.seed), "--duration", f"{s.duration_s:g}", "--llm", s.llm, "--decision-s",
        f"{s.decision_s:g}", "--baselines", s.baseline, "--no-with-none", *extra,
    ]  # fmt: skip


def agents_cycles(path: Path) -> int:
    """Cycles of the agents' episode in a checkpoint being written (read only, never made)."""
    if not path.is_file():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            row = conn.execute("SELECT count(*) FROM cycle WHERE episode = 'agents'").fetchone()
    except sqlite3.Error:
        return 0
    return int(row[0])


def kill_mid_episode(args: list[str], path: Path, cycles: int) -> tuple[int, int]:
    """Start the run, SIGKILL it once `cycles` agents cycles are checkpointed: its exit code
    (-9 when killed) and the cycles then in the file."""
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + RUN_TIMEOUT_S
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if agents_cycles(path) >= cycles:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(POLL_S)
        code = proc.wait(timeout=RUN_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    return code, agents_cycles(path)


def wall_free(report: Any) -> Any:
    """A report's JSON without its wall-clock fields."""
    if isinstance(report, dict):
        return {k: wall_free(v) for k, v in report.items() if not any(w in k for w in WALL_KEYS)}
    if isinstance(report, list):
        return [wall_free(v) for v in report]
    return report


def differences(a: Any, b: Any, at: str = "") -> list[str]:
    """Where two wall-free reports differ, as JSON paths."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted({*a, *b}) for d in differences(a.get(k), b.get(k), f"{at}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in differences(x, y, f"{at}[{i}]")]  # fmt: skip
    return [] if a == b else [at or "."]


def timed(args: list[str]) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    return proc, time.perf_counter() - t0


def last_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit {proc.returncode}"


def kill_and_resume(settings: FaultsSettings, folder: Path, ticks: int) -> ProcessFaultFigures:
    """The uninterrupted run, the killed one, the checkpoint opened, the resumed run, and
    whether the resumed run's figures are the uninterrupted one's (wall clock aside)."""
    path = folder / "run.checkpoint.sqlite"
    plain_json, resumed_json = folder / "plain.json", folder / "resumed.json"
    plain, plain_s = timed(run_args(settings, "--json", str(plain_json)))
    if plain.returncode != 0:
        raise RuntimeError(f"the uninterrupted run failed: {last_line(plain)}")
    target = max(1, round(ticks * KILL_SHARE))
    code, cycles = kill_mid_episode(run_args(settings, "--checkpoint", str(path)), path, target)
    opens, open_error = checkpoint_opens(path)
    resumed, resume_s = timed(
        run_args(settings, "--checkpoint", str(path), "--resume", "--json", str(resumed_json))
    )
    figures = ProcessFaultFigures(
        checkpoint=str(path), killed_exit_code=code, killed_after_cycles=cycles,
        target_cycles=target, checkpoint_opens=opens, open_error=open_error,
        resume_exit_code=resumed.returncode, uninterrupted_wall_s=plain_s,
        resume_wall_s=resume_s,
    )  # fmt: skip
    if resumed.returncode != 0:
        figures.resume_error = last_line(resumed)
        return figures
    a, b = (json.loads(p.read_text()) for p in (plain_json, resumed_json))
    figures.differences = differences(wall_free(a), wall_free(b))[:20]
    figures.same_figures = not figures.differences
    figures.prompts = {r["policy"]: r["prompts"] for r in b["results"]}
    figures.uninterrupted_prompts = {r["policy"]: r["prompts"] for r in a["results"]}
    figures.replay_s, figures.resumed_at_s = resume_point(path)
    return figures


def checkpoint_opens(path: Path) -> tuple[bool, str | None]:
    """Whether the killed run's file opens as SQLite and passes its integrity check."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            check = conn.execute("PRAGMA integrity_check").fetchone()[0]
            conn.execute("SELECT count(*) FROM cycle").fetchone()
    except sqlite3.Error as e:
        return False, str(e)
    return (check == "ok"), (None if check == "ok" else str(check))


def resume_point(path: Path) -> tuple[float | None, float | None]:
    """The resume's replay wall seconds, and the simulated time of the cycle it went on from."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        row = conn.execute(
            "SELECT r.replay_s, c.tick_s FROM resume r JOIN cycle c ON c.episode = r.episode "
            "AND c.k = r.cycles - 1 WHERE r.episode = 'agents' ORDER BY r.rowid DESC LIMIT 1"
        ).fetchone()
    return (float(row[0]), float(row[1])) if row else (None, None)
