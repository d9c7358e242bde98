"""pidog-eval: how well does a controller walk in the simulated PiDog?

pidog-eval --controller {trot|PATH.zip|PATH.onnx} --episodes N --seconds S
           [--no-randomize] [--seed K] [--json OUT.json] [--video OUT.mp4] [--viewer]
pidog-eval --grid --controller trot --controller PATH.onnx [--episodes N] [--seconds S]
    both: [--robot-params FILE] [--set env.KEY=VALUE ...]   (the simulated robot and floor)

Speeds are heading-frame forward velocities, means with a 95 % confidence interval over
episodes. Episode k uses seed K + k, so controllers are compared on the same episodes.
--grid runs the command-tracking grid (standing, forward, backward, turning in place, arcs)
and prints achieved vx and wz per command, errors, falls and gait quality per controller.
--viewer watches the episodes live in MuJoCo's viewer (real time); in its window the arrow
keys set the command (up/down: vx, left/right: wz) and space stops: driving a policy without ROS.
--set changes the simulator as pidog-train's --set env.KEY=VALUE does, e.g. a grippier floor:
--set env.nominal.contact_timeconst=0.005 --no-randomize (docs/benchmarks/contact.md).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import write_json


def load_controller(spec: str) -> Callable[[np.ndarray], np.ndarray]:
    """'trot', an SB3 checkpoint (.zip) or an exported policy (.onnx) -> callable obs -> action."""
    if spec == "trot":
        from pidog_sim.controllers import TrotController

        return TrotController()
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"controller file not found: {path} (expected 'trot', a .zip or a .onnx)")
    if path.suffix == ".onnx":
        from pidog_control.policy_runtime import OnnxPolicy

        return OnnxPolicy(path).act
    if path.suffix == ".zip":
        from .export import load_sb3_controller

        return load_sb3_controller(path)
    raise ValueError(f"unknown controller kind {path.suffix!r} for {path}: use 'trot', a .zip or a .onnx")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pidog-eval", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--controller",
        action="append",
        default=None,
        help="'trot', PATH.zip (SB3) or PATH.onnx; repeat to compare on the same episodes (default: trot)",
    )
    parser.add_argument(
        "--grid", action="store_true", help="evaluate command tracking over the grid of (vx, wz) commands"
    )
    parser.add_argument(
        "--episodes", type=int, default=None, help="episodes (per command with --grid); default 10, --grid 2"
    )
    parser.add_argument("--seconds", type=float, default=None, help="episode length; default 10, --grid 8")
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=2.0,
        help="--grid: seconds not scored at the start of each episode",
    )
    parser.add_argument("--no-randomize", action="store_true", help="disable domain randomisation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--forward-speed", type=float, default=None, help="commanded forward speed, m/s")
    parser.add_argument("--yaw-rate", type=float, default=None, help="commanded yaw rate, rad/s")
    parser.add_argument(
        "--robot-params",
        type=Path,
        default=None,
        metavar="FILE",
        help="robot parameters file (pidog-sysid): nominal physics from it, randomisation centred on it",
    )
    parser.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="env.KEY=VALUE",
        help="a simulator option, as pidog-train's --set env.KEY=VALUE (repeatable; after --robot-params),\n"
        "e.g. env.nominal.contact_timeconst=0.005 (a stiffer floor) or env.imu_orientation=filter",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the summary here")
    parser.add_argument("--video", type=Path, default=None, help="film the first episode (MP4)")
    parser.add_argument(
        "--viewer",
        action="store_true",
        help="watch live in MuJoCo's viewer (arrows: vx/wz, space: stop); without a display it says so",
    )
    args = parser.parse_args(argv)
    args.controller = args.controller or ["trot"]
    if args.episodes is None:
        args.episodes = 2 if args.grid else 10
    if args.seconds is None:
        args.seconds = 8.0 if args.grid else 10.0
    if args.episodes <= 0:
        parser.error(f"--episodes must be positive, got {args.episodes}")
    if args.seconds <= 0:
        parser.error(f"--seconds must be positive, got {args.seconds}")
    if args.grid and args.seconds <= args.settle_seconds:
        parser.error(f"--seconds ({args.seconds:g}) must exceed --settle-seconds ({args.settle_seconds:g})")
    if args.grid and args.viewer:
        parser.error("--viewer watches a plain evaluation's episodes: drop --grid")
    if args.grid and (args.video or args.forward_speed is not None or args.yaw_rate is not None):
        parser.error(
            "--grid chooses its own commands and films nothing: drop --video/--forward-speed/--yaw-rate"
        )
    return args


def simulator_options(
    robot_params: Path | None, assignments: list[str], randomize: bool
) -> dict[str, Any] | None:
    """The simulator's overrides (pidog-eval's, pidog-calibrate-commands'): a robot parameters
    file's, then ``--set env.KEY=VALUE`` on top.
    Checked by building one simulated robot with them, so a bad key or value is refused (a
    ValueError naming it) before any episode runs."""
    from pidog_sim.env import PiDogEnv

    from .config import check_env_types, combine, parse_assignments

    layers: list[dict[str, Any]] = []
    if robot_params is not None:
        from pidog_sim.robot_params import load_override

        layers.append(load_override(robot_params))
    overrides = parse_assignments(assignments)
    others = sorted(key for key in overrides if key != "env")
    if others:
        raise ValueError(f"--set takes the simulator's options (env.KEY=VALUE), not {others}")
    if "env" in overrides:
        check_env_types(overrides["env"])  # names the whole key: env.nominal.X
        layers.append(overrides["env"])
    if not layers:
        return None
    options = combine(*layers)
    PiDogEnv(randomize=randomize, **options).close()
    return options


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from pidog_sim.evaluation import evaluate, evaluate_tracking, tracking_table

    try:
        controllers = {spec: load_controller(spec) for spec in args.controller}
    except (FileNotFoundError, ValueError) as exc:
        print(f"pidog-eval: {exc}", file=sys.stderr)
        return 2
    try:
        env_kwargs = simulator_options(args.robot_params, args.assignments, randomize=not args.no_randomize)
    except ValueError as exc:
        print(f"pidog-eval: {exc}", file=sys.stderr)
        return 2
    randomized = "randomised" if not args.no_randomize else "nominal"
    results: dict[str, dict] = {}
    if args.grid:
        for name, controller in controllers.items():
            results[name] = evaluate_tracking(
                controller,
                seconds=args.seconds,
                randomize=not args.no_randomize,
                seed=args.seed,
                settle_seconds=args.settle_seconds,
                episodes_per_command=args.episodes,
                env_kwargs=env_kwargs,
                progress=True,
            )
            results[name]["controller"] = name
        print(
            f"Command tracking, {args.episodes} {randomized} episode(s) of {args.seconds:g} s per command, "
            f"first {args.settle_seconds:g} s not scored:\n"
        )
        print("\n".join(tracking_table(results)))
    else:
        command = None
        if args.forward_speed is not None or args.yaw_rate is not None:
            from pidog_sim.config import DEFAULT_SIM_CONFIG

            vx = DEFAULT_SIM_CONFIG["forward_speed"] if args.forward_speed is None else args.forward_speed
            command = (vx, args.yaw_rate or 0.0)
        viewer = None
        if args.viewer:
            from pidog_sim.model import load_model
            from pidog_sim.viewer import LiveViewer

            viewer = LiveViewer.open(load_model(), "pidog-eval", key_control=True)
        for name, controller in controllers.items():
            result = evaluate(
                controller,
                episodes=args.episodes,
                seconds=args.seconds,
                randomize=not args.no_randomize,
                seed=args.seed,
                video_path=args.video if len(controllers) == 1 else None,
                env_kwargs=env_kwargs,
                progress=True,
                command=command,
                viewer=viewer,
            )
            result["controller"] = name
            if viewer is not None:  # the commands the keyboard applied: (sim time s, vx, wz)
                result["viewer_commands"] = [list(entry) for entry in viewer.key_log]
                # ... and the commands in the observations the controller acted on.
                result["viewer_commands_seen"] = [list(entry) for entry in viewer.seen_log]
            results[name] = result
            print(
                f"{name}: {result['mean_forward_speed_mps']:.3f} ± {result['ci95_forward_speed_mps']:.3f} m/s "
                f"(mean ± 95 % CI, heading frame) over {result['episodes']} x {args.seconds:g} s episodes "
                f"({randomized}), falls {result['falls']}, mean yaw rate {result['mean_yaw_rate_radps']:+.3f} rad/s, "
                f"mean return {result['mean_return']:.1f} ± {result['ci95_return']:.1f}"
            )
        if viewer is not None:
            viewer.close()
    if args.json:
        write_json(args.json, results[args.controller[0]] if len(results) == 1 else results)
        print(f"wrote {args.json}")
    if args.video and len(controllers) == 1 and not args.grid:
        print(f"wrote {args.video}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
