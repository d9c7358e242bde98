"""Videos of deterministic rollouts, rendered headless (MUJOCO_GL=osmesa or egl)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pidog_sim.evaluation import evaluate


def record_rollout(
    controller: Callable[[Any], np.ndarray],
    path: str | os.PathLike[str],
    seconds: float,
    seed: int,
    env_kwargs: Mapping[str, Any] | None = None,
    viewer: Any | None = None,
) -> dict[str, Any]:
    """Film one randomised episode of ``controller`` to an MP4 (written atomically by evaluate),
    shown live as well in ``viewer`` (a ``pidog_sim.viewer.LiveViewer``, pidog-train --viewer).

    Returns the episode's evaluation summary (speed, fall) so a caption can quote it.
    """
    summary = evaluate(
        controller,
        episodes=1,
        seconds=seconds,
        randomize=True,
        seed=seed,
        video_path=Path(path),
        env_kwargs=dict(env_kwargs or {}),
        viewer=viewer,
    )
    summary["video"] = str(Path(path))
    return summary
