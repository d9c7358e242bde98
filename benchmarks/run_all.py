"""`make bench`: run every benchmark and assemble docs/BENCHMARKS.md from their sections.

Each benchmark writes docs/benchmarks/<name>.md; this script runs them in order (each in its
own process, so one failing does not hide the others) and concatenates what they wrote.
"""

from __future__ import annotations

import subprocess
import sys
import time

from benchmarks.common import REPO, RESULTS_DIR, machine_summary

# (module, section file, extra args) in report order.
BENCHMARKS: list[tuple[str, str, list[str]]] = [
    ("benchmarks.bench_sim", "sim", []),
    ("benchmarks.bench_rollout", "rollout", []),
    ("benchmarks.bench_policy", "policy", []),
    ("benchmarks.bench_bc", "bc", []),
    ("benchmarks.bench_training", "training", []),
    ("benchmarks.bench_video", "video", []),
    ("benchmarks.bench_steering", "steering", []),
    ("benchmarks.bench_grid_seeds", "grid_seeds", []),
    ("benchmarks.bench_grid_seeds", "grid_seeds_filter", ["--imu-orientation", "filter"]),
    ("benchmarks.bench_matched_slip", "matched_slip", []),
    ("benchmarks.bench_deploy_gap", "deploy_gap", []),
    ("benchmarks.bench_ros_tracking", "ros_tracking", []),
    ("benchmarks.bench_study", "study", []),
    ("benchmarks.bench_cluster", "cluster", []),
    ("benchmarks.bench_robustness", "robustness", []),
    ("benchmarks.bench_robustness", "robustness_trot", ["--policy", "trot"]),
    ("benchmarks.bench_robustness", "robustness_filter", ["--imu-orientation", "filter"]),
    ("benchmarks.bench_observability", "observability", []),
    ("benchmarks.bench_contact", "contact", []),
    ("benchmarks.bench_sysid", "sysid", []),
    ("benchmarks.bench_twin", "twin", []),
    ("benchmarks.bench_dds_kill", "dds_kill", []),
]


def main(argv: list[str] | None = None) -> int:
    only = set(argv if argv is not None else sys.argv[1:])
    failures = []
    for module, name, extra in BENCHMARKS:
        if only and name not in only:
            continue
        if not (REPO / (module.replace(".", "/") + ".py")).exists():
            print(f"skipping {module}: not present")
            continue
        print(f"== {module}", flush=True)
        t = time.time()
        rc = subprocess.call([sys.executable, "-m", module, *extra], cwd=REPO)
        print(f"== {module} finished in {time.time() - t:.0f} s (exit {rc})", flush=True)
        if rc != 0:
            failures.append(module)
    sections = [
        "# Benchmarks",
        "",
        "Produced by `make bench` (`python -m benchmarks.run_all [section ...]`); each section below",
        "is written by its own script in `benchmarks/` and says how to re-run it.",
        "",
        f"Last assembled on: {machine_summary()}",
        "",
    ]
    for _module, name, _extra in BENCHMARKS:
        path = RESULTS_DIR / f"{name}.md"
        if path.exists():
            sections.append(path.read_text().strip())
            sections.append("")
    (REPO / "docs" / "BENCHMARKS.md").write_text("\n".join(sections))
    print(f"wrote {REPO / 'docs' / 'BENCHMARKS.md'}")
    if failures:
        print(f"failed: {failures}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
