"""Command following (issue 7): a BC -> PPO policy trained on sampled velocity commands.

    python -m benchmarks.bench_command_following [--timesteps 300000] [--ship]

Trains through the normal pipeline with PiDogEnv(command_mode="sample"): every episode draws
a forward speed and a yaw rate, the trot demonstrations follow them, the reward tracks them.
Then measures how closely the scripted trot, the BC policy and the fine-tuned policy follow a
grid of commands (mean absolute error of the achieved forward speed and yaw rate, randomised
sim, first 2 s of each episode not scored). ``--ship`` copies the fine-tuned policy, its
eval.json and config to models/policies/ as pidog_walk.* (the policy users run without training).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from benchmarks.common import REPO, machine_summary, write_result

COMMANDS = [(vx, wz) for vx in (0.05, 0.1, 0.15, 0.2, 0.25) for wz in (-0.5, 0.0, 0.5)]
SHIP_DIR = REPO / "models" / "policies"


def train(timesteps: int, seed: int, out: Path) -> Path:
    from pidog_learning.config import resolve_config
    from pidog_learning.pipeline import run_pipeline

    overrides = {
        "seed": seed,
        "output_dir": str(out),
        "experiment_name": "command_following",
        "total_rl_timesteps": timesteps,
        "visualize_freq": 0,
        "progress_bar": False,
        "env": {"command_mode": "sample", "episode_seconds": 20.0},
    }
    exp_dir, _ = run_pipeline(resolve_config("default", overrides))
    return exp_dir


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--timesteps", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "command_following")
    parser.add_argument(
        "--experiment", type=Path, default=None, help="evaluate an existing run instead of training"
    )
    parser.add_argument("--ship", action="store_true", help="copy the fine-tuned policy to models/policies/")
    args = parser.parse_args()

    from pidog_learning.policy_runtime import OnnxPolicy
    from pidog_sim.controllers import TrotController
    from pidog_sim.evaluation import evaluate_tracking

    start = time.monotonic()
    exp_dir = args.experiment or train(args.timesteps, args.seed, args.out / time.strftime("%Y%m%d-%H%M%S"))
    train_s = time.monotonic() - start
    controllers = {
        "scripted trot": TrotController(),
        "BC": OnnxPolicy(exp_dir / "bc_policy.onnx"),
        "BC -> PPO": OnnxPolicy(exp_dir / "policy.onnx"),
    }
    results = {
        name: evaluate_tracking(c, COMMANDS, seconds=8.0, randomize=True, seed=500)
        for name, c in controllers.items()
    }
    lines = [
        "## Command following (`python -m benchmarks.bench_command_following`)",
        "",
        f"Machine: {machine_summary()}",
        "",
        f"Policy trained with sampled commands (vx 0-0.25 m/s, wz +-0.6 rad/s), BC from 50 trot episodes then "
        f"PPO; experiment `{exp_dir.name}`, training wall-clock {train_s:.0f} s. Evaluated on {len(COMMANDS)} commands "
        "(vx in 0.05..0.25 m/s x wz in {-0.5, 0, 0.5} rad/s), one randomised 8 s episode each, the first 2 s not scored.",
        "",
        "| controller | mean abs forward-speed error (m/s) | mean abs yaw-rate error (rad/s) | falls |",
        "|---|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['mean_abs_vx_error']:.3f} | {r['mean_abs_wz_error']:.3f} | {r['falls']}/{len(COMMANDS)} |"
        )
    lines += [
        "",
        "Per command, achieved (vx m/s, wz rad/s):",
        "",
        "| command | " + " | ".join(results) + " |",
    ]
    lines.append("|---|" + "---|" * len(results))
    for i, (vx, wz) in enumerate(COMMANDS):
        cells = []
        for r in results.values():
            row = r["commands"][i]
            cells.append(f"{row['vx']:.2f}, {row['wz']:+.2f}" + (" (fell)" if row["fell"] else ""))
        lines.append(f"| {vx:.2f}, {wz:+.1f} | " + " | ".join(cells) + " |")
    path = write_result("command_following", "\n".join(lines) + "\n")
    (exp_dir / "command_following.json").write_text(json.dumps(results, indent=2))
    print(path.read_text())
    if args.ship:
        ship(exp_dir, results)


def ship(exp_dir: Path, tracking: dict) -> None:
    """models/policies/pidog_walk.*: the policy, its training config and evaluations."""
    from pidog_learning.atomic import write_json
    from pidog_learning.policy_runtime import OnnxPolicy
    from pidog_sim.evaluation import evaluate

    SHIP_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(exp_dir / "policy.onnx", SHIP_DIR / "pidog_walk.onnx")
    shutil.copyfile(exp_dir / "config.json", SHIP_DIR / "pidog_walk.config.json")
    shutil.copyfile(exp_dir / "eval.json", SHIP_DIR / "pidog_walk.training_eval.json")
    # What a user gets by default: walk forward at the policy node's default 0.2 m/s command.
    walk = evaluate(
        OnnxPolicy(SHIP_DIR / "pidog_walk.onnx"), episodes=10, seconds=10.0, randomize=True, seed=2024
    )
    walk.update(
        controller="models/policies/pidog_walk.onnx", command={"vx": 0.2, "wz": 0.0}, experiment=exp_dir.name
    )
    write_json(SHIP_DIR / "pidog_walk.eval.json", walk)
    write_json(SHIP_DIR / "pidog_walk.command_following.json", tracking)
    print(
        f"shipped {SHIP_DIR / 'pidog_walk.onnx'}: {walk['mean_forward_speed_mps']:.3f} m/s, falls {walk['falls']}"
    )


if __name__ == "__main__":
    main()
