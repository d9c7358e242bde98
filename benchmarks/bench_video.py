"""Video rendering cost: the training pipeline films rollouts with software OpenGL (OSMesa).

    MUJOCO_GL=osmesa python -m benchmarks.bench_video

A default `pidog-train` films the BC policy, one PPO rollout every ``visualize_freq`` steps and
the final policy (``FRAMES_PER_TRAINING_RUN``, from ``pidog_learning.config.DEFAULT_CONFIG``).
This measures one 640x480 frame of the tracking camera at MuJoCo's defaults (shadow map 4096,
4x multisampling), at the model's shadow map (``models/pidog.xml``, ``<quality shadowsize>``)
and as videos are filmed (``pidog_sim.env.video_renderer``: the model's shadow map, no
multisampling), and one filmed rollout end to end (``pidog_learning.video.record_rollout``,
physics and video encoding included). Results: docs/benchmarks/video.md.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine_summary, write_result
from pidog_description.spec import CONTROL_DT
from pidog_learning.config import DEFAULT_CONFIG
from pidog_sim.evaluation import VIDEO_FRAME_EVERY

FRAMES = 40
VIDEO_SECONDS = float(DEFAULT_CONFIG["eval"]["video_seconds"])
VIDEO_FPS = 1.0 / (VIDEO_FRAME_EVERY * CONTROL_DT)
VIDEOS_PER_TRAINING_RUN = 2 + DEFAULT_CONFIG["total_rl_timesteps"] // DEFAULT_CONFIG["visualize_freq"]
FRAMES_PER_TRAINING_RUN = VIDEOS_PER_TRAINING_RUN * int(round(VIDEO_SECONDS * VIDEO_FPS))


def ms_per_frame(shadowsize: int | None, multisample: bool) -> float:
    """Mean milliseconds to render one frame of the tracking camera (after one warm-up frame):
    ``shadowsize`` None is the model's; ``multisample`` False is the video renderer."""
    import mujoco

    from pidog_sim.env import RENDER_SHAPE, video_renderer
    from pidog_sim.model import load_model

    model = load_model(None)
    if shadowsize is not None:
        model.vis.quality.shadowsize = shadowsize
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    renderer = mujoco.Renderer(model, *RENDER_SHAPE) if multisample else video_renderer(model)
    try:
        renderer.update_scene(data, camera="track")
        renderer.render()
        start = time.perf_counter()
        for _ in range(FRAMES):
            renderer.update_scene(data, camera="track")
            renderer.render()
        return (time.perf_counter() - start) / FRAMES * 1000.0
    finally:
        renderer.close()


def rollout_seconds() -> float:
    """Wall time to film one VIDEO_SECONDS rollout of the scripted gait to an MP4."""
    from pidog_learning.video import record_rollout
    from pidog_sim.controllers import TrotController

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        record_rollout(TrotController(), Path(tmp) / "trot.mp4", VIDEO_SECONDS, seed=0)
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args(argv)
    if os.environ.get("MUJOCO_GL") not in ("osmesa", "egl"):
        raise SystemExit("set MUJOCO_GL=osmesa (or egl) to measure headless rendering")
    from pidog_sim.model import load_model

    model_size = int(load_model(None).vis.quality.shadowsize)
    settings = [
        ("4096, 4x multisampling (MuJoCo's defaults)", 4096, True),
        (f"{model_size} (`models/pidog.xml`), 4x multisampling", None, True),
        (
            f"{model_size}, no multisampling (`pidog_sim.env.video_renderer`: how videos are filmed)",
            None,
            False,
        ),
    ]
    rows = [
        (label, float(np.median([ms_per_frame(size, ms) for _ in range(3)]))) for label, size, ms in settings
    ]
    film = rollout_seconds()
    lines = [
        "## Video rendering (`python -m benchmarks.bench_video`)",
        "",
        f"Machine: {machine_summary()}; MUJOCO_GL={os.environ['MUJOCO_GL']}",
        "",
        f"One 640x480 frame of the tracking camera, median of 3 x {FRAMES} frames; one filmed "
        f"{VIDEO_SECONDS:.0f} s rollout of the scripted gait at {VIDEO_FPS:.0f} fps, physics and encoding included.",
        "",
        f"| shadow map, anti-aliasing | ms per frame | a default `pidog-train`'s {FRAMES_PER_TRAINING_RUN} frames |",
        "|---|---:|---:|",
        *(f"| {label} | {ms:.1f} | {ms * FRAMES_PER_TRAINING_RUN / 1000:.0f} s |" for label, ms in rows),
        "",
        f"One filmed rollout as videos are filmed: {film:.1f} s.",
        "",
    ]
    path = write_result("video", "\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
