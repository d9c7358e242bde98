"""Roll out a controller in PiDogEnv and summarise how well it walks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pidog_description.spec import CONTROL_DT

from .env import PiDogEnv

Controller = Callable[[np.ndarray], np.ndarray]


def evaluate(
    controller: Controller,
    episodes: int = 10,
    seconds: float = 10.0,
    randomize: bool = True,
    seed: int = 0,
    video_path: str | Path | None = None,
    env_kwargs: dict[str, Any] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Run ``episodes`` episodes of ``seconds`` each; the first one is filmed if ``video_path``."""
    if episodes <= 0:
        raise ValueError(f"episodes must be positive, got {episodes}")
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    kwargs = dict(env_kwargs or {})
    kwargs.update(randomize=randomize, episode_seconds=seconds)
    if video_path is not None:
        kwargs["render_mode"] = "rgb_array"
    env = PiDogEnv(**kwargs)
    speeds, distances, returns, durations, falls = [], [], [], [], 0
    frames: list[np.ndarray] = []
    iterator = range(episodes)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="evaluating", unit="episode")
    try:
        for ep in iterator:
            obs, info = env.reset(seed=seed + ep)
            if hasattr(controller, "reset"):
                controller.reset()
            total, steps, done = 0.0, 0, False
            while not done:
                obs, reward, terminated, truncated, info = env.step(controller(obs))
                total += reward
                steps += 1
                done = terminated or truncated
                if video_path is not None and ep == 0 and steps % 2 == 0:  # 25 fps is plenty
                    frames.append(env.render())
            duration = steps * CONTROL_DT
            falls += int(info["fell"])
            distances.append(info["distance"])
            speeds.append(info["distance"] / duration)
            returns.append(total)
            durations.append(duration)
    finally:
        env.close()
    if video_path is not None:
        write_video(video_path, frames, fps=int(round(0.5 / CONTROL_DT)))
    return {
        "episodes": episodes,
        "seconds": seconds,
        "randomize": randomize,
        "seed": seed,
        "mean_forward_speed_mps": float(np.mean(speeds)),
        "std_forward_speed_mps": float(np.std(speeds)),
        "falls": falls,
        "mean_return": float(np.mean(returns)),
        "mean_distance_m": float(np.mean(distances)),
        "mean_episode_seconds": float(np.mean(durations)),
        "per_episode_speed_mps": [float(s) for s in speeds],
    }


def write_video(path: str | Path, frames: list[np.ndarray], fps: int) -> Path:
    """Write an MP4 atomically (temp file, then rename)."""
    import imageio.v2 as imageio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    with imageio.get_writer(tmp, fps=fps, codec="libx264", quality=7, macro_block_size=8) as writer:
        for frame in frames:
            writer.append_data(frame)
    tmp.replace(path)
    return path


def evaluate_tracking(
    controller: Controller,
    commands: list[tuple[float, float]],
    seconds: float = 8.0,
    randomize: bool = True,
    seed: int = 0,
    settle_seconds: float = 2.0,
) -> dict[str, Any]:
    """How closely a controller follows velocity commands (vx m/s, wz rad/s).

    Each command gets one episode; the first ``settle_seconds`` (acceleration) are not scored.
    Returns per-command achieved velocities and the mean absolute tracking errors.
    """
    if seconds <= settle_seconds:
        raise ValueError(f"seconds ({seconds}) must exceed settle_seconds ({settle_seconds})")
    env = PiDogEnv(randomize=randomize, episode_seconds=seconds)
    rows = []
    try:
        for i, (vx_cmd, wz_cmd) in enumerate(commands):
            obs, _ = env.reset(seed=seed + i, options={"command": [vx_cmd, wz_cmd]})
            if hasattr(controller, "reset"):
                controller.reset()
            vxs, wzs, fell, steps = [], [], False, 0
            done = False
            while not done:
                obs, _, terminated, truncated, info = env.step(controller(obs))
                steps += 1
                if steps * CONTROL_DT > settle_seconds:
                    vxs.append(info["forward_speed"])
                    wzs.append(float(env.sim.data.qvel[5]))
                fell = fell or info["fell"]
                done = terminated or truncated
            rows.append(
                {
                    "command_vx": vx_cmd,
                    "command_wz": wz_cmd,
                    "vx": float(np.mean(vxs)) if vxs else float("nan"),
                    "wz": float(np.mean(wzs)) if wzs else float("nan"),
                    "fell": bool(fell),
                }
            )
    finally:
        env.close()
    scored = [r for r in rows if not r["fell"]]
    return {
        "commands": rows,
        "falls": sum(r["fell"] for r in rows),
        "mean_abs_vx_error": float(np.mean([abs(r["vx"] - r["command_vx"]) for r in scored]))
        if scored
        else float("nan"),
        "mean_abs_wz_error": float(np.mean([abs(r["wz"] - r["command_wz"]) for r in scored]))
        if scored
        else float("nan"),
    }
