"""pidog_sim: MuJoCo simulation of the PiDog. Importing it registers ``PiDog-v0``."""

from gymnasium.envs.registration import register, registry

from .env import PiDogEnv
from .sim import PiDogSim

if "PiDog-v0" not in registry:
    register(id="PiDog-v0", entry_point="pidog_sim.env:PiDogEnv")

__all__ = ["PiDogEnv", "PiDogSim"]
