"""pidog-eval: how well does a controller walk in the simulated PiDog?

pidog-eval --controller {trot|PATH.zip|PATH.onnx} --episodes N --seconds S
           [--no-randomize] [--seed K] [--json OUT.json] [--video OUT.mp4]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

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
        from .policy_runtime import OnnxPolicy

        return OnnxPolicy(path).act
    if path.suffix == ".zip":
        from .export import load_sb3_controller

        return load_sb3_controller(path)
    raise ValueError(f"unknown controller kind {path.suffix!r} for {path}: use 'trot', a .zip or a .onnx")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pidog-eval", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--controller", default="trot", help="'trot', PATH.zip (SB3) or PATH.onnx")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--no-randomize", action="store_true", help="disable domain randomisation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--forward-speed", type=float, default=None, help="commanded forward speed, m/s")
    parser.add_argument("--yaw-rate", type=float, default=0.0, help="commanded yaw rate, rad/s")
    parser.add_argument("--json", type=Path, default=None, help="write the summary here")
    parser.add_argument("--video", type=Path, default=None, help="film the first episode (MP4)")
    args = parser.parse_args(argv)
    if args.episodes <= 0:
        parser.error(f"--episodes must be positive, got {args.episodes}")
    if args.seconds <= 0:
        parser.error(f"--seconds must be positive, got {args.seconds}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from pidog_sim.evaluation import evaluate

    try:
        controller = load_controller(args.controller)
    except (FileNotFoundError, ValueError) as exc:
        print(f"pidog-eval: {exc}", file=sys.stderr)
        return 2
    env_kwargs: dict = {}
    if args.forward_speed is not None or args.yaw_rate:
        from pidog_sim.config import DEFAULT_SIM_CONFIG

        vx = DEFAULT_SIM_CONFIG["forward_speed"] if args.forward_speed is None else args.forward_speed
        env_kwargs["forward_speed"] = vx
        if args.yaw_rate:
            env_kwargs["config"] = {
                "command_mode": "sample",
                "command_ranges": {"vx": (vx, vx), "wz": (args.yaw_rate, args.yaw_rate)},
            }
    result = evaluate(
        controller,
        episodes=args.episodes,
        seconds=args.seconds,
        randomize=not args.no_randomize,
        seed=args.seed,
        video_path=args.video,
        env_kwargs=env_kwargs,
        progress=True,
    )
    result["controller"] = args.controller
    print(
        f"{args.controller}: {result['mean_forward_speed_mps']:.3f} ± {result['std_forward_speed_mps']:.3f} m/s "
        f"over {result['episodes']} x {args.seconds:g} s episodes "
        f"({'randomised' if not args.no_randomize else 'nominal'}), falls {result['falls']}, "
        f"mean distance {result['mean_distance_m']:.2f} m, mean return {result['mean_return']:.1f}"
    )
    if args.json:
        write_json(args.json, result)
        print(f"wrote {args.json}")
    if args.video:
        print(f"wrote {args.video}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
