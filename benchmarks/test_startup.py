"""Start-up time (issue 14): `import mlframework` and `aotc --help` in fresh processes,
beside bare `python -c pass` in the same run.

    .venv/bin/python -m pytest benchmarks/test_startup.py --benchmark-only -s

Targets: `import mlframework` at most 0.3 s above bare Python, `aotc --help` at most
0.3 s. Each round starts every command once, in turn, so that a change in the machine's
load reaches all of them alike; the medians over the rounds are printed and kept in the
benchmark's extra_info. Beside the wall time, each process's CPU time (user + system,
from the kernel's accounting of the child) is reported: on a shared machine, where
waiting for a core inflates the wall time, it is the closer estimate of the wall time on
an idle one. `import numpy` is shown as the floor that `import mlframework` stands on.
The processes run in a scratch folder, as a user's would.
"""
from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROUNDS = 10
AOTC = str(Path(sys.executable).with_name("aotc"))
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "import numpy": [sys.executable, "-c", "import numpy"],
    "import mlframework": [sys.executable, "-c", "import mlframework"],
    "aotc --help": [AOTC, "--help"],
}


def _cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _seconds(argv: list[str], cwd: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one run of `argv`."""
    cpu0, t0 = _cpu_of_children(), time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0, _cpu_of_children() - cpu0


def test_startup(benchmark, tmp_path):
    wall: dict[str, list[float]] = {name: [] for name in COMMANDS}
    cpu: dict[str, list[float]] = {name: [] for name in COMMANDS}

    def one_round():
        for name, argv in COMMANDS.items():
            w, c = _seconds(argv, tmp_path)
            wall[name].append(w)
            cpu[name].append(c)

    for argv in COMMANDS.values():  # warm the file cache
        _seconds(argv, tmp_path)
    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    print(f"\nstart-up, medians of {ROUNDS} fresh processes (seconds; above bare python):")
    for kind, times in (("wall", wall), ("cpu", cpu)):
        median = {name: statistics.median(ts) for name, ts in times.items()}
        bare = median["python -c pass"]
        benchmark.extra_info.update({f"{kind}_s[{name}]": m for name, m in median.items()})
        print(f"  {kind}: " + ", ".join(f"{name} {m:.3f} ({m - bare:+.3f})"
                                        for name, m in median.items()))
