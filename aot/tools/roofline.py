"""The roofline model of `aotc inspect`: where each kernel sits against the machine's peaks.

    peaks = machine_peaks()                   # measured once, then read from the cache
    peaks = machine_peaks(gflops=50, gbs=12)  # or given (`--peak-gflops`, `--peak-gbs`)
    svg = roofline_svg(costs, peaks, highlight=2)

A kernel doing F FLOPs over B bytes has arithmetic intensity I = F / B (FLOP/byte). It
cannot run faster than min(peak compute, I * peak bandwidth): below the ridge point
I = peak compute / peak bandwidth it is bound by memory, above it by compute.

The peaks come from a small C probe run on one core (generated kernels run on one core
unless built with OpenMP): independent fused multiply-adds for compute, a sum over a
64 MiB array for bandwidth. The result is cached as `roofline_peaks.json` in the build
cache (`$MLF_CACHE_DIR`, else ~/.cache/mlframework/c), keyed by the probe's text and
the host, so it runs once per machine (delete the file to measure again, for instance
after a measurement on a busy machine).
"""
from __future__ import annotations

import hashlib
import json
import math
import platform
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from aot.build.compiler import cache_dir, compile_standalone

PROBE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

#define LANES 64          /* independent multiply-add chains: enough to fill the FMA units */
#define ROUNDS 4000000L
#define WORDS (16L << 20) /* 16 Mi floats: 64 MiB, far beyond the caches */

int main(void) {
    float acc[LANES], b = 0.999999f, c = 1e-7f;
    for (int j = 0; j < LANES; j++) acc[j] = (float)j;
    double best_flops = 0, best_bytes = 0;
    for (int trial = 0; trial < 3; trial++) {
        double t0 = now();
        for (long r = 0; r < ROUNDS; r++)
            for (int j = 0; j < LANES; j++) acc[j] = acc[j] * b + c;
        double dt = now() - t0;
        if (2.0 * LANES * ROUNDS / dt > best_flops) best_flops = 2.0 * LANES * ROUNDS / dt;
    }
    float* a = malloc(WORDS * sizeof(float));
    for (long i = 0; i < WORDS; i++) a[i] = (float)(i & 7);
    float sums[16] = {0};
    for (int trial = 0; trial < 5; trial++) {
        double t0 = now();
        for (long i = 0; i < WORDS; i += 16)
            for (int j = 0; j < 16; j++) sums[j] += a[i + j];
        double dt = now() - t0;
        if (WORDS * sizeof(float) / dt > best_bytes) best_bytes = WORDS * sizeof(float) / dt;
    }
    float keep = 0;
    for (int j = 0; j < LANES; j++) keep += acc[j];
    for (int j = 0; j < 16; j++) keep += sums[j];
    printf("%.6g %.6g %g\n", best_flops / 1e9, best_bytes / 1e9, keep);
    free(a);
    return 0;
}
"""
CACHE_NAME = "roofline_peaks.json"


class ProbeError(RuntimeError):
    """The peak probe did not compile or run; pass --peak-gflops and --peak-gbs instead."""


@dataclass(frozen=True)
class Peaks:
    """Peak compute (GFLOP/s) and memory bandwidth (GB/s), and where they came from."""

    gflops: float
    gbs: float
    source: str

    def __post_init__(self):
        for name in ("gflops", "gbs"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"Peaks.{name} requires a positive number, got {value!r}")

    @property
    def ridge(self) -> float:
        """The arithmetic intensity (FLOP/byte) where memory- and compute-bound meet."""
        return self.gflops / self.gbs

    def attainable(self, intensity: float) -> float:
        """The roof at `intensity`: the most GFLOP/s a kernel of that intensity can reach."""
        return min(self.gflops, intensity * self.gbs)

    def bound(self, intensity: float) -> str:
        return "compute" if intensity >= self.ridge else "memory"


def _probe_key() -> str:
    return hashlib.sha256(f"{PROBE}{platform.node()}{platform.machine()}".encode()).hexdigest()


def measure_peaks() -> Peaks:
    """Runs the probe (about a second); no cache.

    Raises:
        ProbeError: when gcc or the probe fails.
    """
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "roofline_probe"
        built = compile_standalone(PROBE, exe, ["-fno-tree-loop-distribute-patterns"])
        if built.returncode != 0:
            raise ProbeError(f"the roofline probe did not compile: {built.stderr.strip()}; pass "
                             "--peak-gflops and --peak-gbs to give the peaks instead")
        ran = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    if ran.returncode != 0:
        raise ProbeError(f"the roofline probe failed ({ran.returncode}): {ran.stderr.strip()}")
    gflops, gbs, _ = ran.stdout.split()
    return Peaks(float(gflops), float(gbs), "measured on one core by the roofline probe")


def machine_peaks(gflops: float | None = None, gbs: float | None = None,
                  cache: Path | None = None) -> Peaks:
    """The peaks: as given, else the cached measurement, else measured now and cached.

    `cache` is the folder of the cache file (default: the build cache). Giving one of
    `gflops`, `gbs` replaces that one peak only.

    Raises:
        ValueError: for a given peak that is not a positive number.
        ProbeError: when a peak must be measured and the probe fails.
    """
    if gflops is not None and gbs is not None:
        return Peaks(gflops, gbs, "given")
    path = (cache or cache_dir()) / CACHE_NAME
    key = _probe_key()
    measured = None
    try:
        stored = json.loads(path.read_text())
        if stored.get("key") == key:
            measured = Peaks(stored["gflops"], stored["gbs"], f"{stored['source']}, cached")
    except (OSError, ValueError, KeyError, TypeError):
        measured = None  # no cache, or an unreadable one: measure again
    if measured is None:
        measured = measure_peaks()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"key": key, "gflops": measured.gflops,
                                    "gbs": measured.gbs, "source": measured.source}))
    if gflops is None and gbs is None:
        return measured
    return Peaks(gflops or measured.gflops, gbs or measured.gbs,
                 f"{'compute given' if gflops else 'bandwidth given'}, the other "
                 f"{measured.source}")


# ---- drawing ----

W, H, PAD = 420.0, 260.0, 44.0


def roofline_svg(costs: list[dict], peaks: Peaks, highlight: int | None = None,
                 width: float = W, height: float = H) -> str:
    """A log-log roofline: the roof, the ridge point, and one dot per kernel placed at its
    intensity on the roof (its best attainable speed). `highlight` is the index of the
    kernel drawn large and named (without one, every dot is labelled k0, k1...); kernels
    without FLOPs or bytes are left out."""
    points = [(t, c) for t, c in enumerate(costs) if c["flops"] and c["bytes"]]
    lo_i = min([peaks.ridge / 100] + [c["flops"] / c["bytes"] / 2 for _, c in points])
    hi_i = max([peaks.ridge * 100] + [c["flops"] / c["bytes"] * 2 for _, c in points])
    lo_p, hi_p = peaks.attainable(lo_i) / 2, peaks.gflops * 2

    def px(i):
        return PAD + math.log10(i / lo_i) / math.log10(hi_i / lo_i) * (width - PAD - 10)

    def py(p):
        return height - PAD - math.log10(p / lo_p) / math.log10(hi_p / lo_p) * (height - PAD - 10)

    roof = " ".join(f"{px(i):.1f},{py(peaks.attainable(i)):.1f}"
                    for i in (lo_i, peaks.ridge, hi_i))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="roofline" width="{width:.0f}" '
             f'height="{height:.0f}" font-family="system-ui,sans-serif" font-size="10">',
             f'<rect x="{PAD}" y="10" width="{width - PAD - 10:.1f}" '
             f'height="{height - PAD - 10:.1f}" fill="#fff" stroke="#ccc"/>',
             f'<polyline points="{roof}" fill="none" stroke="#c33" stroke-width="2"/>',
             f'<line x1="{px(peaks.ridge):.1f}" y1="10" x2="{px(peaks.ridge):.1f}" '
             f'y2="{height - PAD:.1f}" stroke="#c33" stroke-dasharray="3,3"/>',
             f'<text x="{px(peaks.ridge) + 3:.1f}" y="{height - PAD - 4:.1f}" fill="#c33">'
             f'ridge {peaks.ridge:.2g} FLOP/B</text>',
             f'<text x="{width - 12:.1f}" y="{py(peaks.gflops) - 4:.1f}" text-anchor="end" '
             f'fill="#c33">peak {peaks.gflops:.3g} GFLOP/s</text>',
             f'<text x="{PAD + 4:.1f}" y="24" fill="#c33">memory roof '
             f'{peaks.gbs:.3g} GB/s &#215; intensity</text>',
             f'<text x="{(width + PAD) / 2:.1f}" y="{height - 6:.1f}" text-anchor="middle">'
             'arithmetic intensity (FLOP/byte, log)</text>',
             f'<text x="12" y="{(height - PAD) / 2:.1f}" text-anchor="middle" '
             f'transform="rotate(-90 12 {(height - PAD) / 2:.1f})">GFLOP/s (log)</text>']
    for e in range(math.ceil(math.log10(lo_i)), math.floor(math.log10(hi_i)) + 1):
        parts.append(f'<text x="{px(10.0 ** e):.1f}" y="{height - PAD + 12:.1f}" '
                     f'text-anchor="middle" fill="#666">{10.0 ** e:g}</text>')
    for e in range(math.ceil(math.log10(lo_p)), math.floor(math.log10(hi_p)) + 1):
        parts.append(f'<text x="{PAD - 3:.1f}" y="{py(10.0 ** e) + 3:.1f}" text-anchor="end" '
                     f'fill="#666">{10.0 ** e:g}</text>')
    for t, c in points:
        i = c["flops"] / c["bytes"]
        big = t == highlight
        parts.append(f'<circle cx="{px(i):.1f}" cy="{py(peaks.attainable(i)):.1f}" '
                     f'r="{6 if big else 3.5}" fill="{"#236" if big else "#69c"}" '
                     f'stroke="#fff"><title>{c["kernel"]}: {i:.3g} FLOP/B, at most '
                     f'{peaks.attainable(i):.3g} GFLOP/s ({peaks.bound(i)}-bound)</title>'
                     '</circle>')
        if big or highlight is None:  # the overview names every kernel by its index
            parts.append(f'<text x="{px(i) + 5:.1f}" y="{py(peaks.attainable(i)) + 13:.1f}" '
                         f'font-weight="600">{c["kernel"] if big else f"k{t}"}</text>')
    parts.append("</svg>")
    return "".join(parts)


__all__ = ["CACHE_NAME", "Peaks", "ProbeError", "machine_peaks", "measure_peaks",
           "roofline_svg"]
