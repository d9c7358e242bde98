"""RayVecEnv: PPO's batched simulators as Ray actors on other machines, behind SB3's VecEnv.

Each actor (``SimWorker``) owns one ``pidog_sim.vec_env.PiDogVecEnv`` of n robots, stepping its
physics on its own CPUs. ``step_async`` sends every actor its slice of the action batch,
``step_wait`` gathers their observation/reward/done batches and concatenates them, so the
learner (policy forward pass, rollout buffer, PPO update) stays in the ``pidog-train`` process
and sees one VecEnv of ``n_envs`` robots. Per step and actor one numpy batch goes each way
(~n x 130 bytes), small enough for Ray to inline in the task message.

Placement (``ray`` config group): ``workers_per_node`` actors on every alive node except the
learner's (``include_learner_node`` adds it; a one-node cluster always uses it), each reserving
``cpus_per_worker`` CPUs (0: the node's CPUs shared evenly) and stepping physics on as many
threads. The ``n_envs`` robots are split as evenly as possible over the actors.

Seeding matches PiDogVecEnv: robot i of the whole batch gets ``seed + i``, whichever actor
holds it. A worker that dies (its node is gone) stops training with a message; the last
periodic checkpoint resumes it (``pidog-train --resume``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

from .ray_cluster import ClusterError, NodeInfo, alive_nodes, connect, current_node_id, import_ray, shutdown

WORKER_START_TIMEOUT_S = 300.0  # actor start = a fresh Python importing MuJoCo, torch and SB3


class SimWorker:
    """One Ray actor: a PiDogVecEnv of ``n_envs`` robots (see RayVecEnv)."""

    def __init__(self, n_envs: int, physics_threads: int, env_kwargs: Mapping[str, Any]) -> None:
        from pidog_sim.vec_env import PiDogVecEnv

        self.venv = PiDogVecEnv(n_envs, physics_threads=physics_threads, **dict(env_kwargs))

    def spaces(self) -> tuple[Any, Any, dict[str, Any]]:
        place = {"node_id": current_node_id(), "pid": os.getpid(), "robots": self.venv.num_envs}
        return self.venv.observation_space, self.venv.action_space, place

    def reset(self, seed: int | None, options: list[dict[str, Any]]) -> VecEnvObs:
        if seed is not None:
            self.venv.seed(seed)
        self.venv.set_options(options)
        return self.venv.reset()

    def step(self, actions: np.ndarray) -> VecEnvStepReturn:
        self.venv.step_async(actions)
        return self.venv.step_wait()

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.venv, method)(*args, **kwargs)

    def unstable_resets(self) -> int:
        return self.venv.unstable_resets

    def close(self) -> None:
        self.venv.close()


def plan_workers(
    nodes: Sequence[NodeInfo],
    learner_node: str,
    n_envs: int,
    ray_options: Mapping[str, Any],
) -> list[tuple[NodeInfo, int, int]]:
    """[(node, cpus, robots)] per actor; ClusterError when the cluster cannot host them."""
    workers_per_node = int(ray_options.get("workers_per_node", 1))
    cpus_per_worker = int(ray_options.get("cpus_per_worker", 0))
    include_learner_node = bool(ray_options.get("include_learner_node", False))
    hosts = [n for n in nodes if include_learner_node or n.node_id != learner_node]
    if not hosts:
        hosts = [n for n in nodes if n.node_id == learner_node]  # one machine: simulate here
    slots: list[tuple[NodeInfo, int]] = []
    for node in hosts:
        cpus = cpus_per_worker or int(node.cpus // workers_per_node)
        if cpus < 1 or cpus * workers_per_node > node.cpus:
            raise ClusterError(
                f"node {node.ip} ({node.node_id[:8]}) has {node.cpus:g} CPUs: too few for "
                f"ray.workers_per_node={workers_per_node} x ray.cpus_per_worker={cpus_per_worker or 1}"
            )
        slots += [(node, cpus)] * workers_per_node
    if n_envs < len(slots):
        raise ClusterError(
            f"n_envs={n_envs} robots cannot fill {len(slots)} simulator workers "
            f"({len(hosts)} node(s) x ray.workers_per_node={workers_per_node}); raise --n-envs "
            "or lower --ray-workers-per-node"
        )
    robots = [len(part) for part in np.array_split(np.arange(n_envs), len(slots))]
    return [(node, cpus, n) for (node, cpus), n in zip(slots, robots, strict=True)]


def preflight(ray_options: Mapping[str, Any], n_envs: int | None) -> None:
    """Before any work: join the cluster (the connection stays for RayVecEnv) and, given n_envs,
    check that it can host the simulator workers; ClusterError says what is wrong."""
    started = connect(ray_options.get("address"))
    try:
        if n_envs is not None:
            plan_workers(alive_nodes(), current_node_id(), int(n_envs), ray_options)
    except BaseException:
        shutdown(started)
        raise


class RayVecEnv(VecEnv):
    """``n_envs`` robots on Ray actors (see the module docstring)."""

    def __init__(self, n_envs: int, ray_options: Mapping[str, Any], **env_kwargs: Any) -> None:
        self._started = connect(ray_options.get("address"))
        ray = import_ray()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self._ray = ray
        self.actors: list[Any] = []
        try:
            plan = plan_workers(alive_nodes(), current_node_id(), int(n_envs), ray_options)
            remote = ray.remote(SimWorker)
            for node, cpus, robots in plan:
                self.actors.append(
                    remote.options(
                        num_cpus=cpus,
                        # Hard affinity: a simulator is where the plan put it or nowhere (a
                        # silent fallback onto the learner's node would hide a lost machine).
                        scheduling_strategy=NodeAffinitySchedulingStrategy(node.node_id, soft=False),
                    ).remote(robots, cpus, env_kwargs)
                )
            try:
                described = ray.get([a.spaces.remote() for a in self.actors], timeout=WORKER_START_TIMEOUT_S)
            except ray.exceptions.GetTimeoutError:
                raise ClusterError(
                    f"{len(self.actors)} simulator workers did not start within {WORKER_START_TIMEOUT_S:.0f} s: "
                    "the cluster's CPUs are busy (other jobs?) or a node cannot import pidog_sim"
                ) from None
        except BaseException:
            self._release()
            raise
        observation_space, action_space, _ = described[0]
        self.placement: list[dict[str, Any]] = [place for *_, place in described]
        self._bounds = np.cumsum([0] + [p["robots"] for p in self.placement])
        self._pending: list[Any] | None = None
        super().__init__(int(self._bounds[-1]), observation_space, action_space)
        print(f"pidog: {self.describe()}", file=sys.stderr, flush=True)

    def describe(self) -> str:
        per_node: dict[str, int] = {}
        for place in self.placement:
            per_node[place["node_id"]] = per_node.get(place["node_id"], 0) + place["robots"]
        nodes = ", ".join(f"{robots} on node {node}" for node, robots in per_node.items())
        return f"{self.num_envs} simulated robots on {len(self.actors)} Ray workers: {nodes}"

    # --- VecEnv API ------------------------------------------------------------------------
    def reset(self) -> VecEnvObs:
        refs = []
        for k, actor in enumerate(self.actors):
            lo, hi = self._bounds[k], self._bounds[k + 1]
            refs.append(actor.reset.remote(self._seeds[lo], list(self._options[lo:hi])))
        obs = _concat_obs(self._gather(refs))
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        actions = np.asarray(actions)
        self._pending = [
            actor.step.remote(actions[self._bounds[k] : self._bounds[k + 1]])
            for k, actor in enumerate(self.actors)
        ]

    def step_wait(self) -> VecEnvStepReturn:
        if self._pending is None:
            raise RuntimeError("step_wait() without step_async()")
        parts, self._pending = self._gather(self._pending), None
        obs = _concat_obs([p[0] for p in parts])
        rewards = np.concatenate([p[1] for p in parts])
        dones = np.concatenate([p[2] for p in parts])
        infos = [info for p in parts for info in p[3]]
        return obs, rewards, dones, infos

    def close(self) -> None:
        if self.actors:
            try:
                self._ray.get([a.close.remote() for a in self.actors], timeout=30)
            except Exception:  # noqa: BLE001 - a dead worker has nothing left to close
                pass
        self._release()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        values = self._gather([a.call.remote("get_attr", attr_name) for a in self.actors])
        flat = [v for part in values for v in part]
        return [flat[i] for i in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        self._gather([a.call.remote("set_attr", attr_name, value) for a in self.actors])

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        values = self._gather(
            [a.call.remote("env_method", method_name, *method_args, **method_kwargs) for a in self.actors]
        )
        flat = [v for part in values for v in part]
        return [flat[i] for i in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None for _ in range(self.num_envs)]

    # --- PiDogVecEnv extras (progress logging, curriculum) --------------------------------
    def reward_term_means(self) -> dict[str, float]:
        """Per robot-step means over all workers (weighted by their robots: they step in lockstep)."""
        parts = self._gather([a.call.remote("reward_term_means") for a in self.actors])
        weights = np.diff(self._bounds) / self.num_envs
        means: dict[str, float] = {}
        for part, weight in zip(parts, weights, strict=True):
            for name, value in part.items():
                means[name] = means.get(name, 0.0) + float(weight) * value
        return means

    @property
    def unstable_resets(self) -> int:
        return int(sum(self._gather([a.unstable_resets.remote() for a in self.actors])))

    def update_task_config(self, overrides: dict[str, Any]) -> None:
        """PiDogVecEnv.update_task_config on every worker's batch (a training curriculum)."""
        self._gather([a.call.remote("update_task_config", overrides) for a in self.actors])

    # --- internals -------------------------------------------------------------------------
    def _gather(self, refs: list[Any]) -> list[Any]:
        try:
            return self._ray.get(refs)
        except self._ray.exceptions.RayActorError as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]  # Ray's first line says why
            raise ClusterError(
                f"a simulator worker died (its node left the cluster?): {reason}; the latest periodic "
                "checkpoint continues the run: pidog-train --resume <experiment folder>"
            ) from exc

    def _release(self) -> None:
        for actor in self.actors:
            self._ray.kill(actor)
        self.actors = []
        shutdown(self._started)
        self._started = False


def _concat_obs(parts: list[VecEnvObs]) -> VecEnvObs:
    # Every worker's part has the first one's form.
    if isinstance(parts[0], dict):
        dicts = cast(list[dict[str, np.ndarray]], parts)
        return {key: np.concatenate([p[key] for p in dicts]) for key in parts[0]}
    return np.concatenate(cast(list[np.ndarray], parts))
