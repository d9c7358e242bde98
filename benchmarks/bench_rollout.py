"""Benchmark: evaluations and demonstrations, one robot at a time vs as one batch.

The same episodes (same seeds, same results: tests/sim/test_rollout.py) run with
``max_batch=1`` (one robot per step, as PiDogEnv ran them) and with the default batch
(``pidog_sim.rollout.MAX_BATCH``). Workloads are the pipeline's: the final evaluation, the
command-tracking grid with its gait meters, and the scripted-trot demonstrations.

    python -m benchmarks.bench_rollout      # writes docs/benchmarks/rollout.md
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from benchmarks.common import SHIPPED_POLICY, machine_summary, write_result
from pidog_control.policy_runtime import OnnxPolicy
from pidog_sim.controllers import TrotController
from pidog_sim.evaluation import evaluate, evaluate_tracking
from pidog_sim.rollout import MAX_BATCH, run_episodes


def timed(work: Callable[[int], Any], max_batch: int) -> tuple[float, Any]:
    start = time.perf_counter()
    result = work(max_batch)
    return time.perf_counter() - start, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=1000)
    args = parser.parse_args(argv)
    policy = OnnxPolicy(SHIPPED_POLICY)
    trot = TrotController()
    seed = args.seed
    workloads: list[tuple[str, Callable[[int], Any], Callable[[Any], Any]]] = [
        (
            "final evaluation: shipped policy, 10 episodes x 20 s",
            lambda b: evaluate(policy.act, episodes=10, seconds=20.0, seed=seed, max_batch=b),
            lambda r: r["per_episode_speed_mps"],
        ),
        (
            "tracking grid: shipped policy, 22 commands x 2 episodes x 8 s, gait meters",
            lambda b: evaluate_tracking(policy.act, episodes_per_command=2, seed=seed, max_batch=b),
            lambda r: (r["mean_abs_vx_error"], r["mean_abs_wz_error"], r["median_clearance_mm"]),
        ),
        (
            "tracking grid: scripted trot, the same",
            lambda b: evaluate_tracking(trot, episodes_per_command=2, seed=seed, max_batch=b),
            lambda r: (r["mean_abs_vx_error"], r["mean_abs_wz_error"], r["median_clearance_mm"]),
        ),
        (
            "demonstrations: scripted trot, 50 episodes x 20 s, recorded",
            lambda b: run_episodes(
                trot, range(seed, seed + 50), env_config={"episode_seconds": 20.0}, record=True, max_batch=b
            ),
            lambda records: [(r.steps, r.fell, r.mean_forward()) for r in records],
        ),
    ]
    rows = []
    for name, work, fingerprint in workloads:
        one, a = timed(work, 1)
        batch, b = timed(work, MAX_BATCH)
        same = fingerprint(a) == fingerprint(b)
        rows.append((name, one, batch, same))
        print(f"{name}: one at a time {one:.1f} s, batched {batch:.1f} s, same results: {same}", flush=True)
    load = os.getloadavg()[0]
    lines = [
        "## Evaluations and demonstrations as one batch (`python -m benchmarks.bench_rollout`)",
        "",
        f"Machine: {machine_summary()}",
        f"Load average at the start: {load:.2f} (1 min).",
        "",
        f"The same episodes (seeds from {seed}) run one robot per step (`max_batch=1`, as "
        f"`PiDogEnv` ran them before) and {MAX_BATCH} at a time (`pidog_sim.rollout.run_episodes`). "
        "Wall-clock seconds; 'same' compares the results (per-episode speeds, the grid's errors "
        "and clearance, the demonstrations' lengths, falls and speeds).",
        "",
        "| workload | one at a time (s) | batched (s) | speed-up | same results |",
        "|---|---:|---:|---:|---|",
    ]
    for name, one, batch, same in rows:
        lines.append(f"| {name} | {one:.1f} | {batch:.1f} | {one / batch:.1f}x | {'yes' if same else 'NO'} |")
    lines += [
        "",
        "Both controllers act for the whole batch in one call (`OnnxPolicy.act_batch`: one "
        "session run; `TrotController.act_batch`: the gait and leg IK over arrays), so the "
        "one-at-a-time column pays them per robot and the batched one does not. What remains per "
        "robot is the gait meter (`GaitMeter.update`, per robot and step).",
        "",
    ]
    path = write_result("rollout", "\n".join(lines))
    print(f"wrote {path}")
    return 0 if all(same for *_rest, same in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
