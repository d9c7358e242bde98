"""Can a policy tell how strong its robot is? (issue 14: the weak, heavy cells)

    python -m benchmarks.bench_observability [--policy FILE.onnx] [--robots 576] [--seconds 16]
                                             [--threads N] [--results-dir DIR]

The shipped policy keeps its speed on 55 of issue 14's 60 robustness cells and loses it on weak
servos under a heavy body. A single policy could only do better there if it could tell such a
robot from its own signals. This measures how much of the robot's strength-to-weight ratio,
log(servo stall-torque multiplier / total mass in kg), is in what a policy sees.

The policy walks N randomised simulated PiDogs (training's randomisation and sampled commands;
one servo strength for all eight servos, 0.6-1.4x, and the torso mass 0.8-1.35x: 0.21-0.49
N·m and 0.85-1.19 kg, issue 14's target range inside). Every control step records the policy's
observation (``pidog_description.spec.build_observation``), the accelerometer (which the real IMU has but
the observation leaves out; white noise of ``ACCEL_NOISE`` added) and the true joint angle minus
the servo-model estimate (what servos that report their position would add; PiDog's do not).
For each set of signals and each window of the last K control steps, a small MLP learns the ratio
from window features (the last frame, and each signal's mean, std and mean step change over the
window) on three of four groups of robots and is scored (R^2) on the fourth, each group in turn.
R^2 near 0: the signals do not carry it; near 1: a policy given them (and that history) could.

This is about information, not a training result: a policy given more inputs must still learn
to use them, and its own gait changes what the signals carry. Results:
docs/benchmarks/observability.md (or in --results-dir DIR).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.common import (
    SHIPPED_POLICY,
    add_results_dir_argument,
    machine_summary,
    repo_relative,
    write_result,
)
from pidog_description.spec import ACTION_DIM, CONTROL_DT, seconds_to_steps
from pidog_sim.evaluation import TRACKING_SETTLE_S

STRENGTH_RANGE = (0.6, 1.4)  # stall torque multipliers: 0.21-0.49 N·m on the model's 0.35
MASS_SCALE_RANGE = (0.8, 1.35)  # torso mass multipliers
ACCEL_NOISE = 0.1  # m/s^2, std per sample: a round, pessimistic figure (the SH3001's is not measured here)
# Windows end after the start-up, which the tracking grid does not score either.
SETTLE_STEPS = seconds_to_steps(TRACKING_SETTLE_S)
WINDOW_STRIDE = 10  # steps between the ends of two windows of one robot (windows overlap anyway)
WINDOWS_STEPS = (1, 10, 25, 50)  # 20 ms to 1 s of history
FOLDS = 4  # every robot is held out once; the table gives the mean and range over the folds
SIGNAL_SETS: dict[str, tuple[str, ...]] = {
    "the policy's observation": ("obs",),
    "+ accelerometer": ("obs", "accel"),
    "+ true joint angle minus the servo estimate": ("obs", "lag"),
}


def collect(
    policy: Path, robots: int, seconds: float, seed: int, threads: int | None
) -> dict[str, np.ndarray]:
    """Walk ``robots`` randomised PiDogs with ``policy``; per control step the observation,
    the noisy accelerometer and the servo lag, (T, N, ...) each, and per robot the target
    log(strength / total mass) and whether it stayed up."""
    from pidog_control.policy_runtime import OnnxPolicy
    from pidog_sim.rollout import env_config_for
    from pidog_sim.task import WalkTask

    act = OnnxPolicy(policy).act_batch
    steps = seconds_to_steps(seconds)
    config = {
        "episode_seconds": seconds + 1.0,
        "command_mode": "sample",
        # One strength for all eight servos, as the robustness chart varies it (training draws
        # one per servo, and eight such draws average out to a robot of about nominal strength).
        "randomization": {
            "servo_strength": STRENGTH_RANGE,
            "servo_strength_draw": "robot",
            "servo_strength_joint_spread": 0.0,
            "mass_scale": MASS_SCALE_RANGE,
        },
    }
    task = WalkTask(robots, randomize=True, config=env_config_for(act, config), threads=threads)
    everyone = np.arange(robots)
    task.reset(everyone, seeds=seed + everyone)
    sim = task.sim
    total_mass = np.array([float(m.body_mass.sum()) for m in sim.models])
    target = np.log(sim.servo_strength[:, 0]) - np.log(total_mass)
    rng = np.random.default_rng(seed)
    signals = {
        "obs": np.zeros((steps, robots, task.layout.dim), np.float32),
        "accel": np.zeros((steps, robots, 3), np.float32),
        "lag": np.zeros((steps, robots, ACTION_DIM), np.float32),  # one per servo
    }
    upright = np.ones(robots, dtype=bool)
    for k in range(steps):
        obs = task.observe().astype(np.float32)
        signals["obs"][k] = obs
        # The last physics step's specific force: the sample a 50 Hz read would get.
        signals["accel"][k] = sim.specific_force_trace()[:, -1] + rng.normal(0.0, ACCEL_NOISE, (robots, 3))
        signals["lag"][k] = sim.joint_positions() - sim.joint_estimate()
        upright &= ~task.step(act(obs))["terminated"]
    task.close()
    return {**signals, "target": target, "upright": upright}


def window_features(
    signals: dict[str, np.ndarray], names: tuple[str, ...], window: int, robots: np.ndarray
) -> np.ndarray:
    """(windows x robots, features): for every window end from SETTLE_STEPS on, each signal's
    last frame and, over a longer window, its mean, std and mean absolute step change."""
    steps = signals[names[0]].shape[0]
    rows = []
    for end in range(max(SETTLE_STEPS, window), steps, WINDOW_STRIDE):
        parts = []
        for name in names:
            w = signals[name][end - window + 1 : end + 1, robots]
            parts.append(w[-1])
            if window > 1:
                parts += [w.mean(axis=0), w.std(axis=0), np.abs(np.diff(w, axis=0)).mean(axis=0)]
        rows.append(np.concatenate(parts, axis=1))
    return np.concatenate(rows)


def held_out_r2(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, seed: int = 0
) -> float:
    """R^2 on the test rows of a 2 x 256 tanh MLP fitted to the training rows (standardised
    inputs, Adam, 40 epochs): how much of y the features carry for robots it never saw."""
    import torch

    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-6
    y_mean, y_std = y_train.mean(), y_train.std() + 1e-12
    xt = torch.tensor((x_train - mean) / std, dtype=torch.float32)
    yt = torch.tensor((y_train - y_mean) / y_std, dtype=torch.float32)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(xt.shape[1], 256),
        torch.nn.Tanh(),
        torch.nn.Linear(256, 256),
        torch.nn.Tanh(),
        torch.nn.Linear(256, 1),
    )
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(seed)
    for _epoch in range(40):
        order = torch.randperm(len(xt), generator=generator)
        for start in range(0, len(xt), 1024):
            batch = order[start : start + 1024]
            optimiser.zero_grad()
            loss = ((net(xt[batch]).squeeze(1) - yt[batch]) ** 2).mean()
            loss.backward()
            optimiser.step()
    with torch.no_grad():
        predicted = net(torch.tensor((x_test - mean) / std, dtype=torch.float32)).squeeze(1).numpy()
    predicted = predicted * y_std + y_mean
    return float(1.0 - np.mean((predicted - y_test) ** 2) / np.var(y_test))


def measure(
    data: dict[str, np.ndarray], folds: int = FOLDS, seed: int = 0
) -> dict[str, dict[int, list[float]]]:
    """Held-out R^2 per signal set and window, one per fold: the robots that stayed up are split
    into ``folds`` groups and each group is scored by an MLP fitted on the others."""
    import torch

    # One thread: the nets are small, and a second thread on a busy 2-core machine stalls both.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _measure(data, folds, seed)
    finally:
        torch.set_num_threads(threads)


def _measure(data: dict[str, np.ndarray], folds: int, seed: int) -> dict[str, dict[int, list[float]]]:
    robots = np.random.default_rng(seed).permutation(np.flatnonzero(data["upright"]))
    groups = np.array_split(robots, folds)
    results: dict[str, dict[int, list[float]]] = {}
    for label, names in SIGNAL_SETS.items():
        results[label] = {}
        for window in WINDOWS_STEPS:
            scores = []
            for k, test in enumerate(groups):
                train = np.concatenate([g for j, g in enumerate(groups) if j != k])
                x_train = window_features(data, names, window, train)
                x_test = window_features(data, names, window, test)
                # Rows are window ends x robots, robots inner (window_features).
                y_train = np.tile(data["target"][train], len(x_train) // len(train))
                y_test = np.tile(data["target"][test], len(x_test) // len(test))
                scores.append(held_out_r2(x_train, y_train, x_test, y_test, seed))
            results[label][window] = scores
            print(f"{label}, {window} steps: R^2 " + ", ".join(f"{r:.3f}" for r in scores), flush=True)
    return results


def report(
    results: dict[str, dict[int, float]], data: dict[str, np.ndarray], args: argparse.Namespace, wall: float
) -> str:
    policy = (
        "the shipped policy"
        if args.policy.resolve() == SHIPPED_POLICY.resolve()
        else f"`{repo_relative(args.policy)}`"
    )
    upright = int(data["upright"].sum())
    header = " | ".join(
        f"{w} step{'s' if w > 1 else ''} ({1000 * w * CONTROL_DT:.0f} ms)" for w in WINDOWS_STEPS
    )
    lines = [
        "## What a policy can tell about its robot's strength (`python -m benchmarks.bench_observability`)",
        "",
        f"Ran: `python -m benchmarks.bench_observability --robots {args.robots} --seconds {args.seconds:g}"
        f"{'' if policy == 'the shipped policy' else f' --policy {repo_relative(args.policy)}'}` "
        f"({wall / 60:.1f} min) on {machine_summary()}.",
        "",
        f"{policy.capitalize() if policy.startswith('the') else policy} walked {args.robots} randomised robots for "
        f"{args.seconds:g} s (sampled commands; one servo strength for all eight servos, "
        f"{STRENGTH_RANGE[0]:g}-{STRENGTH_RANGE[1]:g}x, "
        f"torso mass {MASS_SCALE_RANGE[0]:g}-{MASS_SCALE_RANGE[1]:g}x; {upright} stayed up and are used). "
        "Held-out R^2 of log(strength / total mass) from windows of each set of signals: an MLP fitted on "
        f"{FOLDS - 1} of {FOLDS} groups of robots scores the robots of the other, for each group in turn; "
        "the mean over the groups and, in brackets, their range (windows from 2 s on, every "
        f"{WINDOW_STRIDE} steps). Accelerometer: the simulated specific force with {ACCEL_NOISE:g} m/s^2 "
        "white noise; the servo lag is what position-reporting servos would add (PiDog's report nothing).",
        "",
        f"| signals | {header} |",
        "|---|" + "---:|" * len(WINDOWS_STEPS),
    ]
    for label, row in results.items():
        cells = (f"**{np.mean(row[w]):.2f}** ({min(row[w]):.2f} to {max(row[w]):.2f})" for w in WINDOWS_STEPS)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--policy", type=Path, default=SHIPPED_POLICY, help="an ONNX policy (default: the shipped one)"
    )
    p.add_argument("--robots", type=int, default=576)
    p.add_argument("--seconds", type=float, default=16.0)
    p.add_argument("--seed", type=int, default=777)
    p.add_argument("--threads", type=int, default=None, help="physics threads (default: every core)")
    add_results_dir_argument(p)
    args = p.parse_args(argv)
    if not args.policy.is_file():
        p.error(f"--policy {args.policy}: no such file")
    if args.robots < 8:
        p.error(f"--robots {args.robots}: at least 8 (they are split into {FOLDS} groups)")

    shortest = (max(SETTLE_STEPS, *WINDOWS_STEPS) + 4 * WINDOW_STRIDE) * CONTROL_DT
    if args.seconds < shortest:
        p.error(
            f"--seconds {args.seconds:g}: at least {shortest:g} (the windows start after {SETTLE_STEPS * CONTROL_DT:g} s)"
        )
    t0 = time.monotonic()
    data = collect(args.policy, args.robots, args.seconds, args.seed, args.threads)
    print(
        f"walked {args.robots} robots in {time.monotonic() - t0:.0f} s; {int(data['upright'].sum())} stayed up",
        flush=True,
    )
    results = measure(data, seed=0)
    path = write_result("observability", report(results, data, args, time.monotonic() - t0), args.results_dir)
    print(path.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
