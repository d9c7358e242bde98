"""pidog_sim: MuJoCo simulation of the PiDog. Importing it registers ``PiDog-v0``."""

import os

# Headless machines (CI, a training box over SSH) have no display for MuJoCo's default GLFW
# backend: rendering videos would abort a run after its demos and BC. Without a display, and
# unless the user chose a backend, render offscreen with OSMesa (`make setup` installs it).
if not os.environ.get("MUJOCO_GL") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    os.environ["MUJOCO_GL"] = "osmesa"
    os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

from gymnasium.envs.registration import register, registry  # noqa: E402

from .env import PiDogEnv  # noqa: E402
from .sim import PiDogSim  # noqa: E402

if "PiDog-v0" not in registry:
    register(id="PiDog-v0", entry_point="pidog_sim.env:PiDogEnv")

__all__ = ["PiDogEnv", "PiDogSim"]
