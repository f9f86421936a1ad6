"""`python -m edgeagents.experiments.adaptation JOB OUT`: one episode in this process, as
`run_in_new_process` starts each one."""

from __future__ import annotations

import sys
from pathlib import Path

from edgeagents.experiments.adaptation.episode import EpisodeJob, run_job

if __name__ == "__main__":
    job_file, out_file = sys.argv[1:3]
    curve = run_job(EpisodeJob.model_validate_json(Path(job_file).read_text()))
    Path(out_file).write_text(curve.model_dump_json())
