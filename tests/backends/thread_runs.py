"""A test script run in a fresh process per thread count (MLF_NUM_THREADS is read when a
c executable is built, so 1 and 2 threads need separate processes)."""
from __future__ import annotations

import json
import os
import subprocess
import sys


def worst_errors(script: str, cases: list, threads: int) -> list[float]:
    """The JSON list `script` prints last, run as `python -c script json(cases)` with
    MLF_NUM_THREADS=threads; fails the test with the script's stderr if it fails."""
    env = dict(os.environ, MLF_NUM_THREADS=str(threads))
    res = subprocess.run([sys.executable, "-c", script, json.dumps(cases)], env=env,
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])
