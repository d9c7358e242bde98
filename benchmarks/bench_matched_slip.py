"""Stance slip at the scripted gait's own motions (issue 12's slip target, read like for like).

    python -m benchmarks.bench_matched_slip [--policy FILE ...] [--seeds 1000 5000] [--episodes 2]

Issue 12 asks for a stance slip no worse than the scripted gait's on the tracking grid. On the
grid's commands a policy that tracks them moves faster and turns more than the gait, which
cannot follow its fast arcs and turns (docs/benchmarks/steering.md), and a foot slides more the
faster the robot goes, the gait's own included. This benchmark also asks each policy for the
motion the gait achieved: the gait runs the grid (its blocks pooled, as bench_grid_seeds does),
each cell's achieved (heading-frame vx, yaw rate) becomes that cell's command, and the policy
walks those commands on the same seeds. How closely the policy then moved like the gait is
reported beside its slip. Without --policy it runs the shipped policy.
Results: docs/benchmarks/matched_slip.md, or in --results-dir DIR.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_grid_seeds import pool
from benchmarks.common import (
    SHIPPED_POLICY,
    add_results_dir_argument,
    machine_summary,
    repo_relative,
    write_result,
)

SECONDS = 8.0


def matched_commands(gait: dict[str, Any]) -> list[tuple[float, float]]:
    """Each grid cell's command replaced by the motion the gait achieved there (its standing
    episodes' mean; the cell's own command where every episode fell)."""
    out = []
    for row in gait["commands"]:
        vx, wz = row["vx"], row["wz"]
        ok = np.isfinite(vx) and np.isfinite(wz)
        out.append(
            (round(float(vx), 3), round(float(wz), 3)) if ok else (row["command_vx"], row["command_wz"])
        )
    return out


def motion_gap(result: dict[str, Any], gait: dict[str, Any]) -> tuple[float, float]:
    """Mean |vx - gait's vx| (m/s) and |wz - gait's wz| (rad/s) over the cells both walked."""
    pairs = [
        (abs(r["vx"] - g["vx"]), abs(r["wz"] - g["wz"]))
        for r, g in zip(result["commands"], gait["commands"], strict=True)
        if np.isfinite(r["vx"]) and np.isfinite(g["vx"])
    ]
    return float(np.mean([p[0] for p in pairs])), float(np.mean([p[1] for p in pairs]))


def report(
    gait: dict[str, Any], policies: dict[str, dict[str, dict[str, Any]]], seeds: list[int], episodes: int
) -> str:
    lines = [
        "## Stance slip at the scripted gait's motions (`python -m benchmarks.bench_matched_slip`)",
        "",
        f"Machine: {machine_summary()}",
        "",
        f"Randomised sim, the tracking grid's 22 commands x {episodes} paired episodes of {SECONDS:.0f} s per "
        f'seed ({", ".join(map(str, seeds))}, pooled), the first 2 s not scored. "At the gait\'s motions": '
        "each command replaced by the heading-frame vx and yaw rate the scripted gait achieved at it, so "
        "a policy is asked to move as the gait moved; the motion gap says how closely it did.",
        "",
        "| controller | grid: slip (m/s) | grid: vx / wz error | at the gait's motions: slip (m/s) "
        "| motion gap to the gait: vx (m/s) / wz (rad/s) | falls (grid, matched) |",
        "|---|---:|---|---:|---|---|",
        f"| scripted gait | {gait['mean_stance_slip_mps']:.3f} | {gait['mean_abs_vx_error']:.3f} / "
        f"{gait['mean_abs_wz_error']:.3f} | {gait['mean_stance_slip_mps']:.3f} (its own) | 0 / 0 "
        f"| {gait['falls']}/{gait['episodes']} |",
    ]
    for name, res in policies.items():
        grid, matched = res["grid"], res["matched"]
        gap_vx, gap_wz = motion_gap(matched, gait)
        lines.append(
            f"| {name} | {grid['mean_stance_slip_mps']:.3f} | {grid['mean_abs_vx_error']:.3f} / "
            f"{grid['mean_abs_wz_error']:.3f} | {matched['mean_stance_slip_mps']:.3f} | {gap_vx:.3f} / {gap_wz:.2f} "
            f"| {grid['falls']}/{grid['episodes']}, {matched['falls']}/{matched['episodes']} |"
        )
    head = "| grid command (vx, wz) | gait: achieved vx, wz; slip |"
    rule = "|---|---|"
    for name in policies:
        head += f" {name} on the grid: vx, wz; slip | {name} at the gait's motion: vx, wz; slip |"
        rule += "---|---|"
    lines += ["", "Per command (slip in m/s):", "", head, rule]

    def cell(r: dict[str, Any]) -> str:
        if not np.isfinite(r["vx"]):
            return "fell"
        return f"{r['vx']:+.3f}, {r['wz']:+.2f}; {r['stance_slip_mps']:.3f}"

    for i, g in enumerate(gait["commands"]):
        line = f"| {g['command_vx']:+.2f}, {g['command_wz']:+.1f} | {cell(g)} |"
        for res in policies.values():
            line += f" {cell(res['grid']['commands'][i])} | {cell(res['matched']['commands'][i])} |"
        lines.append(line)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--policy", type=Path, action="append", default=None, help="ONNX policy (repeatable)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--episodes", type=int, default=2, help="paired episodes per command and seed")
    add_results_dir_argument(parser)
    args = parser.parse_args()
    paths = args.policy or [SHIPPED_POLICY]
    for path in paths:
        if not path.is_file():
            parser.error(f"--policy {path}: no such file")

    from pidog_control.policy_runtime import OnnxPolicy
    from pidog_sim.controllers import TrotController
    from pidog_sim.evaluation import TRACKING_GRID, evaluate_tracking

    def blocks(controller: Any, commands: list[tuple[float, float]]) -> dict[str, Any]:
        return pool(
            [
                evaluate_tracking(
                    controller, commands, seconds=SECONDS, seed=s, episodes_per_command=args.episodes
                )
                for s in args.seeds
            ]
        )

    gait = blocks(TrotController(), list(TRACKING_GRID))
    print(f"scripted gait: slip {gait['mean_stance_slip_mps']:.3f} m/s", flush=True)
    commands = matched_commands(gait)
    policies: dict[str, dict[str, dict[str, Any]]] = {}
    for path in paths:
        name = f"`{repo_relative(path)}`"
        policy = OnnxPolicy(path).act
        policies[name] = {"grid": blocks(policy, list(TRACKING_GRID)), "matched": blocks(policy, commands)}
        print(
            f"{name}: slip {policies[name]['grid']['mean_stance_slip_mps']:.3f} on the grid, "
            f"{policies[name]['matched']['mean_stance_slip_mps']:.3f} at the gait's motions",
            flush=True,
        )
    path = write_result("matched_slip", report(gait, policies, args.seeds, args.episodes), args.results_dir)
    print(path.read_text())


if __name__ == "__main__":
    main()
