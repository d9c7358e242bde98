"""PiDogVecEnv: stable-baselines3's VecEnv over the batched core (N robots, one process).

Replaces SubprocVecEnv of PiDogEnv copies: no pipes and no per-robot Python in the step, the
physics of all robots runs on a thread pool (``BatchSim``), and the learner's policy sees the
whole batch in one forward pass. Finished robots reset automatically (SB3 convention: the
returned observation is the new episode's first, the last one is in
``infos[i]["terminal_observation"]``); ``infos[i]["episode"]`` carries the return and length
as SB3's Monitor would, so ``ep_info_buffer`` and the progress logs work unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

from pidog_description.spec import ACTION_DIM, clip_command

from .spaces import HeadCamera, action_space, observation_space
from .task import PRIVILEGED_DIM, WalkTask


class PiDogVecEnv(VecEnv):
    """``n_envs`` simulated PiDogs stepped as one batch; physics on ``physics_threads`` threads."""

    def __init__(
        self,
        n_envs: int,
        randomize: bool = True,
        use_camera: bool = False,
        config: dict[str, Any] | None = None,
        model_path: str | None = None,
        physics_threads: int | None = None,
        privileged: bool = False,
        **env_options: Any,
    ) -> None:
        overrides = dict(config or {})
        overrides.update({k: v for k, v in env_options.items() if v is not None})
        self.task = WalkTask(
            n_envs, randomize=randomize, config=overrides, model_path=model_path, threads=physics_threads
        )
        self.render_mode = None
        self.use_camera = bool(use_camera)
        # privileged: the sim-only state (task.PRIVILEGED_LAYOUT) appended after the deployable
        # observation, for an asymmetric critic; the actor reads the deployable values only.
        self.privileged = bool(privileged)
        space = observation_space(self.use_camera, PRIVILEGED_DIM if self.privileged else 0, self.task.layout)
        super().__init__(self.task.n, space, action_space())
        self._actions = np.zeros((self.num_envs, ACTION_DIM))
        self._returns = np.zeros(self.num_envs)
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)
        self._start = time.monotonic()
        self._term_sums: dict[str, float] = {}
        self._term_steps = 0
        self._camera: HeadCamera | None = None

    @property
    def physics_threads(self) -> int:
        return self.task.sim.threads

    # --- VecEnv API ------------------------------------------------------------------------
    def reset(self) -> VecEnvObs:
        robots = np.arange(self.num_envs)
        seeds = np.array(
            [s if s is not None else int(np.random.randint(0, 2**31 - 1)) for s in self._seeds],
            dtype=np.int64,
        )
        commands = None
        if any("command" in o for o in self._options):
            if not all("command" in o for o in self._options):
                raise ValueError("set_options: give a 'command' for every robot or for none")
            commands = np.stack([clip_command(o["command"]) for o in self._options])
        self.task.reset(robots, seeds=seeds, commands=commands)
        self._returns[:] = 0.0
        self._lengths[:] = 0
        self._reset_seeds()
        self._reset_options()
        return self._observe(robots)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.float64).reshape(self.num_envs, ACTION_DIM)

    def step_wait(self) -> VecEnvStepReturn:
        out = self.task.step(self._actions)
        reward = out["reward"].astype(np.float32)
        self._returns += out["reward"]
        self._lengths += 1
        self._accumulate_terms(out["terms"])
        terminated, truncated = out["terminated"], out["truncated"]
        done = terminated | truncated
        obs = self._observe(None)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        finished = np.flatnonzero(done)
        if finished.size:
            elapsed = round(time.monotonic() - self._start, 6)
            for i in finished:
                info = infos[i]
                info["terminal_observation"] = _row(obs, i)
                info["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
                info["episode"] = {"r": float(self._returns[i]), "l": int(self._lengths[i]), "t": elapsed}
                if out["unstable"][i]:
                    info["unstable"] = True
            self.task.reset(finished)
            self._returns[finished] = 0.0
            self._lengths[finished] = 0
            fresh = self._observe(finished)
            if isinstance(obs, dict):
                for key in obs:
                    obs[key][finished] = fresh[key]
            else:
                obs[finished] = fresh
        return obs, reward, done, infos

    def close(self) -> None:
        if self._camera is not None:
            self._camera.close()
            self._camera = None
        self.task.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self, attr_name) for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        return [getattr(self, method_name)(*method_args, **method_kwargs) for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None for _ in range(self.num_envs)]

    # --- extras ----------------------------------------------------------------------------
    def update_task_config(self, overrides: dict[str, Any]) -> None:
        """WalkTask.update_config on this batch (a training curriculum calls it on the innermost
        VecEnv, ``unwrapped``; RayVecEnv forwards it to each worker's batch)."""
        self.task.update_config(overrides)

    def reward_term_means(self) -> dict[str, float]:
        """Mean of each reward term per robot-step since the last call (for TensorBoard)."""
        means = {k: v / max(self._term_steps, 1) for k, v in self._term_sums.items()}
        self._term_sums = {}
        self._term_steps = 0
        return means

    @property
    def unstable_resets(self) -> int:
        """Robots reset because their physics diverged, since construction."""
        return self.task.sim.unstable_resets

    # --- internals -------------------------------------------------------------------------
    def _indices(self, indices: VecEnvIndices) -> Iterable[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, int):
            return [indices]
        return indices

    def _accumulate_terms(self, terms: dict[str, np.ndarray]) -> None:
        for name, values in terms.items():
            self._term_sums[name] = self._term_sums.get(name, 0.0) + float(values.sum())
        self._term_steps += self.num_envs

    def _observe(self, robots: np.ndarray | None) -> np.ndarray | dict[str, np.ndarray]:
        state = self.task.observe(robots)
        if self.privileged:
            state = np.concatenate([state, self.task.privileged(robots)], axis=1)
        if not self.use_camera:
            return state
        rows = np.arange(self.num_envs) if robots is None else robots
        return {"state": state, "image": self._camera_images(rows)}

    def _camera_images(self, robots: np.ndarray) -> np.ndarray:
        if self._camera is None:
            self._camera = HeadCamera(self.task.sim)
        return self._camera.images(robots)


def _row(obs: VecEnvObs, i: int | np.integer) -> Any:
    if isinstance(obs, dict):
        return {key: value[i].copy() for key, value in obs.items()}
    return obs[i].copy()
