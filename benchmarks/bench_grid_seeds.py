"""How much of a steering verdict is the grid's luck (issue 12): the same policies on the
tracking grid at several evaluation seeds, each seed a block like the one the pipeline's report
and bench_steering use (seed 1000, 2 paired episodes per command), and all blocks pooled.

    python -m benchmarks.bench_grid_seeds [--policy FILE ...] [--seeds 1000 5000 7000] [--episodes 2]
                                          [--imu-orientation noisy_truth|filter]

Without --policy it runs the shipped policy. The scripted gait always runs too: the
turn-in-place and top-speed targets are relative to it. Pooled: errors weighted by each block's
scored (non-fallen) episodes, falls summed, per-command speeds averaged before the top speed
and turn rates are read off. ``--imu-orientation filter``: every controller observes the
orientation hw_node publishes (its complementary filter) instead of training's noisy truth.
Results: docs/benchmarks/grid_seeds.md (grid_seeds_filter.md with the filter), or in --results-dir DIR.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_steering import summary, target_checks
from benchmarks.common import (
    FILTER_OBSERVATION,
    FILTER_TITLE,
    IMU_FILTER,
    SHIPPED_POLICY,
    add_imu_orientation_argument,
    add_results_dir_argument,
    machine_summary,
    repo_relative,
    write_result,
)

GAIT = "scripted gait"


def _mean(values: list[float], weights: list[float]) -> float:
    """Weighted mean over the finite values with positive weight (NaN if none)."""
    v, w = np.array(values, dtype=float), np.array(weights, dtype=float)
    ok = np.isfinite(v) & (w > 0)
    return float(np.average(v[ok], weights=w[ok])) if ok.any() else float("nan")


def pool(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """One grid result from several blocks of the same grid (same commands, other seeds)."""
    scored = [b["episodes"] - b["falls"] for b in blocks]
    rows = []
    for per_block in zip(*(b["commands"] for b in blocks), strict=True):
        standing = [r["episodes"] - r["falls"] for r in per_block]
        falls = sum(r["falls"] for r in per_block)
        episodes = sum(r["episodes"] for r in per_block)
        stance = [r["stance_samples"] for r in per_block]
        rows.append(
            {
                "command_vx": per_block[0]["command_vx"],
                "command_wz": per_block[0]["command_wz"],
                "vx": _mean([r["vx"] for r in per_block], standing),
                "wz": _mean([r["wz"] for r in per_block], standing),
                "falls": falls,
                "episodes": episodes,
                "fell": falls == episodes,
                "stance_slip_mps": _mean([r["stance_slip_mps"] for r in per_block], stance),
                "stance_samples": sum(stance),
            }
        )
    return {
        # every stance sample of every block weighs the same, as within a block
        "mean_stance_slip_mps": _mean(
            [r["stance_slip_mps"] for r in rows], [r["stance_samples"] for r in rows]
        ),
        "commands": rows,
        "episodes": sum(b["episodes"] for b in blocks),
        "falls": sum(b["falls"] for b in blocks),
        "mean_abs_vx_error": _mean([b["mean_abs_vx_error"] for b in blocks], scored),
        "mean_abs_wz_error": _mean([b["mean_abs_wz_error"] for b in blocks], scored),
        "low_g_percent": float(np.mean([b["low_g_percent"] for b in blocks])),
        # hw_node's lift test (older results have none): the largest window, latches summed
        "max_lift_mean_mps2": max(b.get("max_lift_mean_mps2", float("nan")) for b in blocks),
        "lift_trips": sum(b.get("lift_trips", 0) for b in blocks),
    }


def turns(result: dict[str, Any]) -> str:
    """Turn-in-place rate at +1 and -1 rad/s commanded (mean over the standing episodes)."""
    out = []
    for sign in (1.0, -1.0):
        row = next(r for r in result["commands"] if r["command_vx"] == 0.0 and r["command_wz"] == sign)
        out.append(f"{row['wz']:+.2f}" if np.isfinite(row["wz"]) else "fell")
    return " / ".join(out)


def row(name: str, seed: str, result: dict[str, Any], gait: dict[str, Any]) -> str:
    met = target_checks(result, gait).values()
    return (
        f"| {name} | {seed} | {result['mean_abs_vx_error']:.3f} | {result['mean_abs_wz_error']:.3f} "
        f"| {result['falls']}/{result['episodes']} | {turns(result)} | {summary(result)['top_speed']:.3f} "
        f"| {result['mean_stance_slip_mps']:.3f} | {result['low_g_percent']:.1f} | {result['max_lift_mean_mps2']:.2f}, {result['lift_trips']} "
        f"| {sum(met)} of 5 |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--policy", type=Path, action="append", default=None, help="ONNX policy (repeatable)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1000, 5000, 7000])
    parser.add_argument("--episodes", type=int, default=2, help="paired episodes per command and seed")
    add_imu_orientation_argument(parser)
    add_results_dir_argument(parser)
    args = parser.parse_args()
    filtered = args.imu_orientation == IMU_FILTER
    if len(args.seeds) < 2:
        parser.error("--seeds: give at least two (one seed is bench_steering's grid)")
    policies = args.policy or [SHIPPED_POLICY]
    for path in policies:
        if not path.is_file():
            parser.error(f"--policy {path}: no such file")

    from pidog_control.policy_runtime import OnnxPolicy
    from pidog_sim.controllers import TrotController
    from pidog_sim.evaluation import TRACKING_GRID, TRACKING_TARGETS, evaluate_tracking

    controllers: dict[str, Any] = {GAIT: TrotController()}
    controllers.update({f"`{repo_relative(p)}`": OnnxPolicy(p).act for p in policies})
    blocks: dict[str, list[dict[str, Any]]] = {name: [] for name in controllers}
    for seed in args.seeds:
        for name, controller in controllers.items():
            blocks[name].append(
                evaluate_tracking(
                    controller,
                    TRACKING_GRID,
                    seconds=8.0,
                    seed=seed,
                    episodes_per_command=args.episodes,
                    env_kwargs={"imu_orientation": args.imu_orientation},
                )
            )
            done = blocks[name][-1]
            print(
                f"seed {seed} {name}: vx error {done['mean_abs_vx_error']:.3f}, "
                f"wz error {done['mean_abs_wz_error']:.3f}, falls {done['falls']}/{done['episodes']}",
                flush=True,
            )

    lines = [
        "## How much of the steering verdict is the grid's luck (`python -m benchmarks.bench_grid_seeds`)"
        + (FILTER_TITLE if filtered else ""),
        "",
        f"Ran: `{' '.join(['python -m benchmarks.bench_grid_seeds', *sys.argv[1:]])}`",
        "",
        f"Machine: {machine_summary()}",
        "",
        f"The tracking grid ({len(TRACKING_GRID)} commands, randomised sim, 8 s episodes, the first 2 s not scored) "
        f"at {len(args.seeds)} evaluation seeds, {args.episodes} paired episodes per command each: the pipeline's report "
        "and `bench_steering` use one such block (seed 1000). *Pooled* weighs the blocks by their scored episodes and "
        "reads top speed and turn rates off the pooled per-command speeds. Stance slip: the mean "
        "horizontal speed of the feet on the floor over every scored sample (issue 12: no worse than the gait's). "
        "Targets met: issue 12's five grid targets "
        f"(vx error <= {TRACKING_TARGETS['vx_error']} m/s, wz error <= {TRACKING_TARGETS['wz_error']} rad/s, turn in place >= "
        f"{TRACKING_TARGETS['turn_in_place']} rad/s or 90 % of the gait's, top speed >= {TRACKING_TARGETS['top_speed_ratio']}x the gait's, "
        "0 falls), against the scripted gait of the same block. Lift test: `hw_node`'s 'picked up' test "
        "(`pidog_description.spec.picked_up`) on the accelerometer read every 10 ms: the largest 0.3 s window mean "
        "(the mean alone latched above 2.5 m/s^2 before 2026-12-02) and how often the test latches."
        + (f" Every controller observes {FILTER_OBSERVATION}." if filtered else "")
        + (
            " Policies named by a path outside the repository come from training runs kept out of it "
            "(docs/ABLATIONS.md says how each was trained)."
            if any(repo_relative(p).is_absolute() for p in policies)
            else ""
        ),
        "",
        "| controller | grid seed | vx error (m/s) | wz error (rad/s) | falls | turn in place +1 / -1 (rad/s) "
        "| top speed (m/s) | stance slip (m/s) | low g (% of time) | lift test: largest window mean (m/s^2), latches "
        "| targets met |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    gait_pooled = pool(blocks[GAIT])
    for name, results in blocks.items():
        for seed, result, gait in zip(args.seeds, results, blocks[GAIT], strict=True):
            lines.append(row(name, str(seed), result, gait))
        lines.append(row(f"**{name}**", "**pooled**", pool(results), gait_pooled))
    lines.append("")
    section = f"grid_seeds_{IMU_FILTER}" if filtered else "grid_seeds"
    print(f"written to {write_result(section, chr(10).join(lines), args.results_dir)}")


if __name__ == "__main__":
    main()
