"""The test suite on a loaded machine: a CPU burner keeps one core busy while pytest runs, N times.

    python scripts/test_stress.py [--runs 3] [-- PYTEST ARGS...]     (make test-stress)

The burner is a separate process spinning in a tight loop (one core's worth of load, as a
second job on a CI runner would be). Each run's outcome and duration are printed, then a
summary; the exit code is non-zero if any run failed. Timing-sensitive tests must hold here:
they count over sim time or long windows, or compare ratios, instead of assuming an idle CPU.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def burn() -> None:
    """Spin forever: one core's worth of CPU load."""
    x = 0
    while True:
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    pytest_args: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, pytest_args = argv[:split], argv[split + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="pytest runs in a row (default 3)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, got {args.runs}")

    burner = multiprocessing.Process(target=burn, daemon=True)
    burner.start()
    print(f"test-stress: CPU burner pid {burner.pid} on 1 of {os.cpu_count()} cores", flush=True)
    results: list[tuple[int, float]] = []
    try:
        for run in range(1, args.runs + 1):
            start = time.monotonic()
            code = subprocess.call([sys.executable, "-m", "pytest", *pytest_args], cwd=REPO)
            results.append((code, time.monotonic() - start))
            print(f"test-stress: run {run}/{args.runs}: exit {code} in {results[-1][1]:.0f} s", flush=True)
    finally:
        burner.terminate()
        burner.join(timeout=5)
    failed = [i + 1 for i, (code, _) in enumerate(results) if code != 0]
    total = sum(seconds for _, seconds in results)
    print(
        f"test-stress: {len(results) - len(failed)}/{len(results)} runs passed under load "
        f"({total:.0f} s in all){f'; failed runs: {failed}' if failed else ''}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
