"""What training does not see of deployment (issue 12): a policy with and without PPO's
exploration noise, and on the nominal robot at each control latency.

    python -m benchmarks.bench_deploy_gap [--policy LABEL=FILE.onnx ...] [--sigma S]

- Noise: PPO tunes the mean action for the noisy policy it explores with, and the robot runs
  the mean. Per-joint white noise at 50 Hz disturbs every stride, so the mean may learn to stride
  harder and the noise-free policy then overshoots. Randomised sim, as deployed and with Gaussian
  noise of std ``--sigma`` (default exp(policy.initial_log_std) = 0.223; PPO's learned std stays
  near it, ``train/std`` in TensorBoard) added to every joint and step.
- Latency: training draws 0-2 steps per episode and the policy cannot observe which; `sim_node`
  runs 0 by default, the twin and the robot have their own. Nominal robot (no randomisation) at
  latency 0, 1 and 2 steps.

Fixed commands, 3 episodes of 8 s per cell (the first 2 s not scored); heading-frame forward
speed and yaw rate averaged. Default: the shipped policy. Results: docs/benchmarks/deploy_gap.md.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from benchmarks.common import REPO, machine_summary, write_result

COMMANDS: list[tuple[float, float]] = [
    (0.0, 0.0),
    (0.05, 0.0),
    (0.1, 0.0),
    (0.2, 0.0),
    (0.3, 0.0),
    (0.05, 1.0),
]
SECONDS, SETTLE, SEED = 8.0, 2.0, 2000
SHIPPED = REPO / "models" / "policies" / "pidog_walk.onnx"


def run(
    policy, command: tuple[float, float], sigma: float, episodes: int, randomize: bool, latency: int | None
) -> tuple[float, float]:
    """Mean heading-frame forward speed and yaw rate over the scored windows."""
    from pidog_description.spec import CONTROL_DT
    from pidog_sim.env import PiDogEnv

    rng = np.random.default_rng(SEED)
    config = None if latency is None else {"nominal": {"latency_steps": latency}}
    env = PiDogEnv(randomize=randomize, command_mode="fixed", episode_seconds=SECONDS, config=config)
    speeds, rates = [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=SEED + episode, options={"command": list(command)})
        for step in range(int(round(SECONDS / CONTROL_DT))):
            action = policy(obs) + sigma * rng.standard_normal(8)
            obs, _, terminated, truncated, info = env.step(np.clip(action, -1.0, 1.0))
            if (step + 1) * CONTROL_DT > SETTLE:
                speeds.append(info["forward_speed"])
                rates.append(info["yaw_rate"])
            if terminated or truncated:
                break
    env.close()
    return float(np.mean(speeds)), float(np.mean(rates))


def parse_policy(text: str) -> tuple[str, Path]:
    label, sep, path = text.partition("=")
    if not sep:
        label, path = Path(text).stem, text
    if not Path(path).is_file():
        raise SystemExit(f"--policy {text}: {path} does not exist")
    return label, Path(path)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--policy", action="append", type=parse_policy, help="LABEL=FILE.onnx (repeatable)")
    parser.add_argument(
        "--sigma", type=float, default=math.exp(-1.5), help="training noise std (action units)"
    )
    parser.add_argument("--episodes", type=int, default=3)
    args = parser.parse_args()

    from pidog_control.policy_runtime import OnnxPolicy

    policies = args.policy or [("shipped", SHIPPED)]
    header = (
        "| policy | command (vx m/s, wz rad/s) | randomised, as deployed | randomised + training noise "
        "| nominal, latency 0 | latency 1 | latency 2 |"
    )
    rows = [header, "|---|---|---|---|---|---|---|"]
    for label, path in policies:
        policy = OnnxPolicy(path).act
        for command in COMMANDS:
            cells = [
                run(policy, command, 0.0, args.episodes, True, None),
                run(policy, command, args.sigma, args.episodes, True, None),
                *(run(policy, command, 0.0, args.episodes, False, lat) for lat in (0, 1, 2)),
            ]
            text = " | ".join(f"{vx:+.3f}, {wz:+.2f}" for vx, wz in cells)
            rows.append(f"| {label} | {command[0]:+.2f}, {command[1]:+.1f} | {text} |")
            print(rows[-1], flush=True)
    names = ", ".join(
        f"`{label}` ({p.relative_to(REPO) if p.is_relative_to(REPO) else p})" for label, p in policies
    )
    lines = [
        "## What training does not see of deployment (`python -m benchmarks.bench_deploy_gap`)",
        "",
        f"Machine: {machine_summary()}",
        "",
        f"Policies: {names}. Each cell: achieved vx (m/s), wz (rad/s), {args.episodes} episodes of "
        f"{SECONDS:.0f} s (first {SETTLE:.0f} s not scored). Training noise: std {args.sigma:.3f} action units "
        "per joint and step, as PPO explores. Latency columns: the nominal robot (no randomisation) "
        "at a fixed control latency; `sim_node` runs latency 0 by default.",
        "",
        *rows,
        "",
    ]
    path = write_result("deploy_gap", "\n".join(lines))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
