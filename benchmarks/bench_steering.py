"""Steering (issue 12): the policy `pidog-train` trains by default, on a grid of commands.

    python -m benchmarks.bench_steering [--experiment DIR | --seed 0] [--episodes 2] [--ship]

Without ``--experiment`` it runs ``pidog-train`` with its defaults (plus --seed and an output
folder) as a subprocess and times it: the wall-clock target is <= 15 min on 2 cores. Then the
scripted gait, the BC policy and the deployed policy (both as their ONNX files, as the robot
runs them) follow ``pidog_sim.evaluation.TRACKING_GRID`` (standing, forward, backward, turning
in place, arcs) in the randomised sim, ``--episodes`` paired episodes per command, and we
report tracking errors, falls, gait quality, top forward speed and the turn-in-place rate.
``--ship`` copies the deployed policy with its evaluations to models/policies/pidog_walk.*.
Results: docs/benchmarks/steering.md and docs/benchmarks/steering.png.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import REPO, RESULTS_DIR, SHIPPED_POLICY, machine_summary, write_result
from pidog_sim.evaluation import TRACKING_TARGETS

SHIP_DIR = SHIPPED_POLICY.parent
SEQUENCE_SEED = 3
UNCALIBRATED = "deployed without its command calibration"


def train_defaults(seed: int, out: Path) -> tuple[Path, float]:
    name = f"steering_seed{seed}"
    t0 = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pidog_learning.train_cli",
            "--seed",
            str(seed),
            "--output-dir",
            str(out),
            "--experiment-name",
            name,
        ],
        cwd=REPO,
        check=True,
    )
    return out / name, time.monotonic() - t0


def how_trained(exp_dir: Path) -> str:
    """ "seed S" and the ``--set`` overrides that separate this experiment's config from the
    defaults (nothing else: output folders and names are not part of how a policy was trained)."""
    from pidog_learning.config import flatten, resolve_config

    ran = flatten(json.loads((exp_dir / "config.json").read_text()))
    defaults = flatten(resolve_config())
    ignored = {"seed", "output_dir", "experiment_name", "progress_bar"}
    changed = [f"{k}={ran[k]}" for k in sorted(ran) if k not in ignored and ran[k] != defaults.get(k)]
    return f"seed {ran['seed']}; " + (
        f"`--set {' --set '.join(changed)}`" if changed else "every other option at its default"
    )


def summary(result: dict[str, Any]) -> dict[str, float]:
    """Top forward speed, turn-in-place rate (mean |wz| at vx=0, |wz cmd|=1) from a grid result."""
    rows = result["commands"]
    # Achieved vx is averaged over a command's non-fallen episodes (NaN if all fell).
    top = max(r["vx"] for r in rows if r["command_wz"] == 0.0 and np.isfinite(r["vx"]))
    turns = [
        abs(r["wz"]) for r in rows if r["command_vx"] == 0.0 and abs(r["command_wz"]) == 1.0 and not r["fell"]
    ]
    return {"top_speed": top, "turn_in_place": sum(turns) / len(turns) if turns else float("nan")}


def target_checks(result: dict[str, Any], gait: dict[str, Any]) -> dict[str, bool]:
    """Issue 12's grid targets for ``result``, the scripted gait's ``gait`` on the same grid."""
    s, g = summary(result), summary(gait)
    return {
        "vx_error": result["mean_abs_vx_error"] <= TRACKING_TARGETS["vx_error"],
        "wz_error": result["mean_abs_wz_error"] <= TRACKING_TARGETS["wz_error"],
        "turn_in_place": s["turn_in_place"]
        >= min(TRACKING_TARGETS["turn_in_place"], 0.9 * g["turn_in_place"]),
        "top_speed": s["top_speed"] >= TRACKING_TARGETS["top_speed_ratio"] * g["top_speed"],
        "falls": result["falls"] == 0,
    }


def plot(results: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for name, r in results.items():
        rows = r["commands"]
        axes[0].scatter([x["command_vx"] for x in rows], [x["vx"] for x in rows], label=name, s=18)
        axes[1].scatter([x["command_wz"] for x in rows], [x["wz"] for x in rows], label=name, s=18)
    for ax, (lo, hi), unit in ((axes[0], (-0.2, 0.35), "vx (m/s)"), (axes[1], (-1.1, 1.1), "wz (rad/s)")):
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlabel(f"commanded {unit}")
        ax.set_ylabel(f"achieved {unit}")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle("Command tracking on the randomised sim (mean over the scored window)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--experiment", type=Path, default=None, help="evaluate this finished experiment")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episodes", type=int, default=2, help="paired episodes per grid command")
    parser.add_argument("--out", type=Path, default=None, help="where to train (default: a temp dir)")
    parser.add_argument("--ship", action="store_true")
    parser.add_argument(
        "--wall-min",
        type=float,
        default=None,
        help="with --experiment: its training wall-clock, measured when it ran",
    )
    args = parser.parse_args()

    from pidog_control.policy_runtime import OnnxPolicy
    from pidog_sim.controllers import TrotController
    from pidog_sim.evaluation import TRACKING_GRID, evaluate_tracking, tracking_table

    wall = None if args.wall_min is None else args.wall_min * 60.0
    out_root = args.out or Path(tempfile.mkdtemp(prefix="pidog-steering-"))
    if args.experiment is None:
        exp_dir, wall = train_defaults(args.seed, out_root)
    else:
        exp_dir = args.experiment
    from pidog_learning.command_calibration import CALIBRATION_KEY, policy_inside

    deployed_policy = OnnxPolicy(exp_dir / "policy.onnx")
    controllers = {
        "scripted gait": TrotController(),
        "BC": OnnxPolicy(exp_dir / "bc_policy.onnx").act,
        "deployed (policy.onnx)": deployed_policy.act,
    }
    if CALIBRATION_KEY in deployed_policy.metadata:  # the same policy without its command calibration
        controllers[UNCALIBRATED] = policy_inside(exp_dir / "policy.onnx").act
    results = {}
    for name, controller in controllers.items():
        results[name] = evaluate_tracking(
            controller,
            TRACKING_GRID,
            seconds=8.0,
            seed=1000,
            episodes_per_command=args.episodes,
            progress=True,
        )
        print(
            name,
            {k: results[name][k] for k in ("mean_abs_vx_error", "mean_abs_wz_error", "falls")},
            flush=True,
        )
    stats = {name: summary(r) for name, r in results.items()}
    gait_top = stats["scripted gait"]["top_speed"]
    deployed = results["deployed (policy.onnx)"]
    dstats = stats["deployed (policy.onnx)"]
    selected = json.loads((exp_dir / "eval.json").read_text()).get("selected", "?")
    met = target_checks(deployed, results["scripted gait"])
    check = lambda key: "met" if met[key] else "**missed**"  # noqa: E731
    lines = [
        "## Steering (`python -m benchmarks.bench_steering`)",
        "",
        f"Machine: {machine_summary()}",
        "",
        f"Policy trained by `pidog-train` ({how_trained(exp_dir)})"
        + (f" in {wall / 60:.1f} min wall-clock (target <= 15 min)" if wall else "")
        + (f" ({exp_dir.name})" if args.experiment else "")
        + f"; the pipeline deployed the {selected} policy. Randomised sim, {len(TRACKING_GRID)} commands x "
        f"{args.episodes} paired episodes of 8 s, the first 2 s not scored; velocities are heading-frame forward "
        "speed and world yaw rate averaged over the scored window."
        + (
            f" `policy.onnx` carries the pipeline's command calibration; the row '{UNCALIBRATED}' is the"
            " policy inside it (`pidog_learning.command_calibration`)."
            if UNCALIBRATED in results
            else ""
        ),
        "",
        *tracking_table(results),
        "",
        "| target | deployed | scripted gait | BC | verdict |",
        "|---|---:|---:|---:|---|",
        f"| mean abs vx error <= {TRACKING_TARGETS['vx_error']} m/s | {deployed['mean_abs_vx_error']:.3f} "
        f"| {results['scripted gait']['mean_abs_vx_error']:.3f} | {results['BC']['mean_abs_vx_error']:.3f} "
        f"| {check('vx_error')} |",
        f"| mean abs wz error <= {TRACKING_TARGETS['wz_error']} rad/s | {deployed['mean_abs_wz_error']:.3f} "
        f"| {results['scripted gait']['mean_abs_wz_error']:.3f} | {results['BC']['mean_abs_wz_error']:.3f} "
        f"| {check('wz_error')} |",
        f"| turn in place (abs wz at cmd 0, +-1 rad/s) >= {TRACKING_TARGETS['turn_in_place']} rad/s or 90 % of the gait's "
        f"| {dstats['turn_in_place']:.2f} | {stats['scripted gait']['turn_in_place']:.2f} | {stats['BC']['turn_in_place']:.2f} "
        f"| {check('turn_in_place')} |",
        f"| top forward speed >= {TRACKING_TARGETS['top_speed_ratio']}x the scripted gait's | {dstats['top_speed']:.3f} m/s ({dstats['top_speed'] / gait_top:.2f}x) "
        f"| {gait_top:.3f} m/s | {stats['BC']['top_speed']:.3f} m/s "
        f"| {check('top_speed')} |",
        f"| 0 falls over the grid | {deployed['falls']} | {results['scripted gait']['falls']} | {results['BC']['falls']} "
        f"| {check('falls')} |",
        "",
        "![commanded vs achieved](benchmarks/steering.png)",
        "",
        "The deployed policy driven through a command sequence (`pidog_sim.evaluation.command_sequence`,",
        f"randomised sim, seed {SEQUENCE_SEED}; every `make demo` / `pidog-train` report has the same plot for its policy):",
        "",
        "![commanded vs achieved over time](benchmarks/steering_sequence.png)",
        "",
    ]
    if wall:
        lines.insert(6, "")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    plot(results, RESULTS_DIR / "steering.png")
    from pidog_learning.plots import plot_command_tracking
    from pidog_sim.evaluation import command_sequence

    sequence = command_sequence(controllers["deployed (policy.onnx)"], seed=SEQUENCE_SEED)
    plot_command_tracking(sequence, RESULTS_DIR / "steering_sequence.png")
    path = write_result("steering", "\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {path}")
    if args.ship:
        SHIP_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(exp_dir / "policy.onnx", SHIPPED_POLICY)
        stem = SHIPPED_POLICY.with_suffix("")  # its evaluations sit beside it: pidog_walk.*.json
        shutil.copyfile(exp_dir / "eval.json", f"{stem}.training_eval.json")
        shutil.copyfile(exp_dir / "config.json", f"{stem}.config.json")
        Path(f"{stem}.steering.json").write_text(json.dumps(results, indent=1) + "\n")
        print(f"shipped {exp_dir / 'policy.onnx'} -> {SHIPPED_POLICY}")


if __name__ == "__main__":
    main()
