"""What training does not see of deployment (issue 12): a policy with and without PPO's
exploration noise, on the nominal robot at each control latency, and with the orientation
hw_node estimates.

    python -m benchmarks.bench_deploy_gap [--policy LABEL=FILE.onnx ...] [--sigma S]

- Noise: PPO tunes the mean action for the noisy policy it explores with, and the robot runs
  the mean. Per-joint white noise at 50 Hz disturbs every stride, so the mean may learn to stride
  harder and the noise-free policy then overshoots. Randomised sim, as deployed and with Gaussian
  noise added to every joint and step: of the std PPO explored with when the file was exported
  (``exploration_std`` in its ``training_info``; with the default ``finetune.log_std_lr_scale``
  PPO learns it down to ~0.09-0.15), or ``--sigma`` for files exported before it was recorded
  (default exp(policy.initial_log_std) = 0.223, where a policy trained at log_std_lr_scale 1
  stays).
- Latency: training draws 0-2 steps per episode and the policy cannot observe which; `sim_node`
  runs 0 by default, the twin and the robot have their own. Nominal robot (no randomisation) at
  latency 0, 1 and 2 steps.
- Orientation: training observes the simulator's orientation with white noise; hw_node
  publishes its complementary filter's estimate, which in a trot leans and lags by degrees
  (sim config ``imu_orientation: filter`` runs that filter over the simulated IMU). Nominal
  robot with the filter, at latency 0 and 1.

- Every command a user can drive with: ``keyboard_teleop`` steps the command by 0.05 m/s and
  0.25 rad/s, so it sends 90 commands (``pidog_description.spec.teleop_commands``), the top
  forward speed (0.3, 0) among them; the tracking grid has 22. Each, 2 episodes on the nominal
  robot (what ``sim_node`` runs) and 2 on randomised robots: which ones make the policy fall. A
  candidate that passed the grid, the twin and the ROS graph fell at (0.3, 0) on the nominal
  robot every time (docs/ABLATIONS.md, twenty-fifth session).

Fixed commands, 3 episodes of 8 s per cell (the first 2 s not scored), measured as the tracking
grid measures (``evaluate_tracking``: heading-frame forward speed and yaw rate, fallen episodes
left out and counted). Default: the shipped policy. Results: docs/benchmarks/deploy_gap.md
(or in --results-dir DIR).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.common import (
    FILTER_OBSERVATION,
    IMU_FILTER,
    SHIPPED_POLICY,
    add_results_dir_argument,
    machine_summary,
    repo_relative,
    write_result,
)

COMMANDS: list[tuple[float, float]] = [
    (0.0, 0.0),
    (0.05, 0.0),
    (0.1, 0.0),
    (0.2, 0.0),
    (0.3, 0.0),
    (0.05, 1.0),
]
SECONDS, SETTLE, SEED = 8.0, 2.0, 2000
TELEOP_EPISODES = 2  # per keyboard command, nominal and randomised
SHIPPED = SHIPPED_POLICY


def measure(
    policy, sigma: float, episodes: int, randomize: bool, latency: int | None, imu_filter: bool = False
) -> list[str]:
    """One cell text per command: achieved vx, wz (``pidog_sim.evaluation.evaluate_tracking``,
    the grid's own measure), the policy's action perturbed by Gaussian noise of std ``sigma``."""
    from pidog_description.spec import ACTION_DIM
    from pidog_sim.evaluation import evaluate_tracking

    rng = np.random.default_rng(SEED)

    def controller(obs: np.ndarray) -> np.ndarray:
        return np.clip(policy(obs) + sigma * rng.standard_normal(ACTION_DIM), -1.0, 1.0)

    # The noisy policy reads the same observations and acts behind the same action filter (the
    # noise enters before it, as PPO's does in training).
    controller.layout = policy.__self__.layout  # type: ignore[attr-defined]
    controller.action_filter_hz = policy.__self__.action_filter_hz  # type: ignore[attr-defined]

    env_kwargs: dict = {} if latency is None else {"nominal": {"latency_steps": latency}}  # the env config
    if imu_filter:
        env_kwargs["imu_orientation"] = IMU_FILTER
    result = evaluate_tracking(
        controller if sigma > 0 else policy,
        COMMANDS,
        seconds=SECONDS,
        randomize=randomize,
        seed=SEED,
        settle_seconds=SETTLE,
        episodes_per_command=episodes,
        env_kwargs=env_kwargs or None,
    )
    return [
        f"{r['vx']:+.3f}, {r['wz']:+.2f}" + (f" ({r['falls']} fell)" if r["falls"] else "")
        for r in result["commands"]
    ]


def teleop_falls(policy: Callable[[np.ndarray], np.ndarray], randomize: bool) -> str:
    """Falls over every command keyboard_teleop can send: "N of M" and the commands that fell."""
    from pidog_sim.evaluation import format_commands, keyboard_falls

    check = keyboard_falls(
        policy,
        randomize,
        seconds=SECONDS,
        seed=SEED,
        settle_seconds=SETTLE,
        episodes_per_command=TELEOP_EPISODES,
    )
    fell = format_commands(check["fell_at"])
    return f"{check['falls']} of {check['episodes']}" + (f": {fell}" if fell else "")


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
        "--sigma",
        type=float,
        default=math.exp(-1.5),
        help="training noise std (action units) for files that do not record their own",
    )
    parser.add_argument("--episodes", type=int, default=3)
    add_results_dir_argument(parser)
    args = parser.parse_args()

    from pidog_control.policy_runtime import OnnxPolicy
    from pidog_description.spec import TELEOP_STEPS, teleop_commands
    from pidog_learning.export import recorded_exploration_std

    policies = args.policy or [("shipped", SHIPPED)]
    header = (
        "| policy | command (vx m/s, wz rad/s) | randomised, as deployed | randomised + training noise "
        "| nominal, latency 0 | latency 1 | latency 2 | hw_node's orientation filter, latency 0 | filter, latency 1 |"
    )
    rows = [header, "|---|---|---|---|---|---|---|---|---|"]
    teleop_rows = ["| policy | falls, nominal robot | falls, randomised robots |", "|---|---|---|"]
    sigmas = []
    for label, path in policies:
        runtime = OnnxPolicy(path)
        policy = runtime.act
        recorded = recorded_exploration_std(runtime.metadata)
        sigma = args.sigma if recorded is None else recorded
        sigmas.append(f"`{label}` {sigma:.3f}")
        teleop_rows.append(f"| {label} | {teleop_falls(policy, False)} | {teleop_falls(policy, True)} |")
        print(teleop_rows[-1], flush=True)
        columns = [
            measure(policy, 0.0, args.episodes, True, None),
            measure(policy, sigma, args.episodes, True, None),
            *(measure(policy, 0.0, args.episodes, False, lat) for lat in (0, 1, 2)),
            *(measure(policy, 0.0, args.episodes, False, lat, imu_filter=True) for lat in (0, 1)),
        ]
        for command, cells in zip(COMMANDS, zip(*columns, strict=True), strict=True):
            rows.append(f"| {label} | {command[0]:+.2f}, {command[1]:+.1f} | {' | '.join(cells)} |")
            print(rows[-1], flush=True)
    names = ", ".join(f"`{label}` ({repo_relative(p)})" for label, p in policies)
    lines = [
        "## What training does not see of deployment (`python -m benchmarks.bench_deploy_gap`)",
        "",
        f"Machine: {machine_summary()}",
        "",
        f"Policies: {names}. Each cell: achieved vx (m/s), wz (rad/s), {args.episodes} episodes of "
        f"{SECONDS:.0f} s (first {SETTLE:.0f} s not scored). Training noise: per joint and step, as PPO explored "
        f"when the file was exported, std in action units {', '.join(sigmas)} (`--sigma` {args.sigma:.3f} where "
        "a file does not record it). Latency columns: the nominal robot (no randomisation) "
        "at a fixed control latency; `sim_node` runs latency 0 by default. Filter columns: the nominal robot "
        f"observing {FILTER_OBSERVATION}; the twin and the robot run it, `sim_node` when its parameter "
        "`imu_orientation` is `filter`.",
        "",
        *rows,
        "",
        f"Every command `keyboard_teleop` can send ({len(teleop_commands())} commands: {TELEOP_STEPS[0]:g} m/s and "
        f"{TELEOP_STEPS[1]:g} rad/s per key press, `pidog_description.spec.teleop_commands`), {TELEOP_EPISODES} episodes each of "
        f"{SECONDS:.0f} s: falls, and the commands (vx, wz) that fell.",
        "",
        *teleop_rows,
        "",
    ]
    path = write_result("deploy_gap", "\n".join(lines), args.results_dir)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
