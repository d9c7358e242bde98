"""Many episodes of one controller at once, on a ``WalkTask`` batch.

Evaluations and demonstrations used to step one ``PiDogEnv`` robot at a time, so their Python
ran once per robot and step. Here every running episode is a row of one batch: one physics call
(on the thread pool), one observation build and one controller call per control step for all of
them. Episode ``k`` starts its robot from ``robot_seed(seeds[k])``, the seed ``PiDogEnv.reset``
derives from the same number, so a batched episode is the single-robot episode of that seed
(tests/sim/test_rollout.py compares them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from pidog_description.rotations import yaw_from_quaternion
from pidog_description.spec import ACTION_DIM, CONTROL_DT, clip_command

from .env import draw_robot_seed
from .spaces import HeadCamera
from .task import WalkTask

# Robots stepped together: past a few dozen the batch's per-step cost grows linearly anyway, and
# this keeps a camera run's images (64 x 96 x 128 x 3 bytes) small.
MAX_BATCH = 64


def robot_seed(seed: int) -> int:
    """The seed of the robot that ``PiDogEnv.reset(seed=seed)`` builds."""
    return draw_robot_seed(np.random.default_rng(seed))


def batch_actor(controller: Callable[[Any], np.ndarray]) -> Callable[[Any], np.ndarray]:
    """(k, OBS_DIM) observations (or a dict of such arrays) -> (k, 8) actions.

    Uses the controller's own ``act_batch`` where it has one (``OnnxPolicy``: one session run
    for the batch); any other ``obs -> action`` callable is called once per row.
    """
    batched = getattr(controller, "act_batch", None)
    if batched is None:
        batched = getattr(getattr(controller, "__self__", None), "act_batch", None)  # a bound .act
    if batched is not None:
        return batched

    def per_row(obs: Any) -> np.ndarray:
        if isinstance(obs, dict):
            rows = len(obs["state"])
            return np.stack([np.asarray(controller({k: v[i] for k, v in obs.items()})) for i in range(rows)])
        return np.stack([np.asarray(controller(row)) for row in obs])

    return per_row


def _declared(controller: Any, name: str) -> Any:
    """A fact about its policy a controller declares as attribute ``name``: an ``OnnxPolicy``
    (also through its bound ``act``/``act_batch``), ``export.policy_controller``; None when it
    says nothing (the scripted gaits)."""
    owner = getattr(controller, "__self__", controller)
    value = getattr(owner, name, None)
    return getattr(controller, name, None) if value is None else value


def controller_history(controller: Any) -> int | None:
    """The past frames a controller's policy reads (its observation ``layout``); None when it
    does not say (the scripted gaits read the present values, the same in every layout)."""
    layout = _declared(controller, "layout")
    return None if layout is None else int(layout.history)


def controller_action_filter(controller: Any) -> float | None:
    """The action filter cutoff (Hz, 0: none) a controller's policy was trained behind; None
    when it does not say (the scripted gaits run behind the config's)."""
    cutoff = _declared(controller, "action_filter_hz")
    return None if cutoff is None else float(cutoff)


def env_config_for(controller: Any, config: dict[str, Any] | None) -> dict[str, Any]:
    """``config`` (sim options) with the observation history ``controller`` reads and the
    action filter it was trained behind, so a policy trained with ``env.obs_history`` or
    ``env.action_filter_hz`` is evaluated on the observations and the robot it knows. A config
    that asks for another history or filter is refused by name."""
    config = dict(config or {})
    declared = (
        ("obs_history", controller_history(controller), "the policy reads {} past frames"),
        (
            "action_filter_hz",
            controller_action_filter(controller),
            "the policy was trained behind a {:g} Hz action filter (0: none)",
        ),
    )
    for option, value, says in declared:
        if value is None:
            continue
        asked = config.setdefault(option, value)
        if asked != value:
            raise ValueError(f"sim config option '{option}' is {asked!r}, but " + says.format(value))
    return config


def is_stateless(controller: Any) -> bool:
    """Controllers with a ``reset()`` keep state between steps of one episode: a batch would
    share it between robots, so they run one episode at a time."""
    return not hasattr(controller, "reset")


@dataclass
class EpisodeRecord:
    """One finished episode; the per-step lists are filled only where asked for."""

    index: int
    seed: int
    steps: int = 0
    fell: bool = False
    total_return: float = 0.0
    distance: float = 0.0
    forward: list[float] = field(default_factory=list)  # heading-frame vx after each scored step
    yaw: list[float] = field(default_factory=list)  # base yaw after each scored step
    states: list[np.ndarray] = field(default_factory=list)  # the 26-value observation it acted on
    actions: list[np.ndarray] = field(default_factory=list)  # the controller's action, clipped to [-1, 1]

    def mean_forward(self) -> float:
        return float(np.mean(self.forward)) if self.forward else float("nan")

    def yaw_rate(self) -> float:
        """Heading change / time over the scored steps (rad/s)."""
        if len(self.yaw) < 2:
            return float("nan")
        heading = np.unwrap(self.yaw)
        return float((heading[-1] - heading[0]) / (CONTROL_DT * (len(heading) - 1)))


def run_episodes(
    controller: Callable[[Any], np.ndarray],
    seeds: Sequence[int],
    env_config: dict[str, Any] | None = None,
    randomize: bool = True,
    commands: np.ndarray | None = None,
    settle_steps: int = 0,
    record: bool = False,
    action_noise: float = 0.0,
    use_camera: bool = False,
    max_batch: int = MAX_BATCH,
    threads: int | None = None,
    on_step: Callable[[int, EpisodeRecord, WalkTask, bool], None] | None = None,
    on_episode: Callable[[EpisodeRecord], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[EpisodeRecord]:
    """Run one episode per seed (``env_config`` as for ``PiDogEnv``, e.g. ``episode_seconds``),
    up to ``max_batch`` at a time; records in seed order.

    ``commands`` (n, 2) pins each episode's command (else the env's command mode decides). The
    first ``settle_steps`` of each are run but not scored. ``record`` keeps the observations and
    actions (demonstrations). ``action_noise`` > 0 perturbs the executed action (DART) with a
    stream per episode (``SeedSequence([seed, 1])``) while the clean action is the one recorded.
    ``on_step(slot, record, task, done)`` runs after every step of every running episode,
    before a finished robot is reset (meters that read ``task.sim`` row ``slot``);
    ``on_episode`` sees each record as it finishes (progress bars); ``should_stop`` is polled
    every step and raises ``InterruptedError`` when true. A controller with a ``reset()`` keeps
    state between steps, so its episodes run one at a time, each after a ``reset()``.
    """
    seeds = [int(s) for s in seeds]
    n = len(seeds)
    if n == 0:
        raise ValueError("run_episodes needs at least one seed")
    if commands is not None:
        commands = np.stack([clip_command(c) for c in np.asarray(commands, dtype=np.float64).reshape(n, 2)])
    act = batch_actor(controller)
    stateless = is_stateless(controller)
    slots = min(n, max(1, int(max_batch))) if stateless else 1
    task = WalkTask(
        slots, randomize=randomize, config=env_config_for(controller, env_config), threads=threads
    )
    camera = HeadCamera(task.sim) if use_camera else None
    running: list[EpisodeRecord | None] = [None] * slots
    noise: list[np.random.Generator | None] = [None] * slots
    done: list[EpisodeRecord] = []
    started = 0

    def start(slot: int) -> None:
        nonlocal started
        k = started
        started += 1
        task.reset(
            np.array([slot]),
            seeds=np.array([robot_seed(seeds[k])]),
            commands=None if commands is None else commands[k][None],
        )
        if not stateless:
            controller.reset()  # type: ignore[attr-defined]
        running[slot] = EpisodeRecord(index=k, seed=seeds[k])
        noise[slot] = np.random.default_rng([seeds[k], 1]) if action_noise > 0 else None

    try:
        for slot in range(slots):
            start(slot)
        while any(r is not None for r in running):
            if should_stop is not None and should_stop():
                raise InterruptedError("stopped on request")
            rows = np.arange(slots)
            state = task.observe()
            obs: Any = state
            if camera is not None:
                obs = {"state": state, "image": camera.images(rows)}
            actions = np.asarray(act(obs), dtype=np.float64).reshape(slots, ACTION_DIM)
            executed = actions.copy()
            for slot, rec in enumerate(running):
                if rec is None:
                    continue
                if record:
                    rec.states.append(state[slot].copy())
                    rec.actions.append(np.clip(actions[slot], -1.0, 1.0).astype(np.float32))
                gen = noise[slot]
                if gen is not None:
                    executed[slot] += gen.normal(0.0, action_noise, ACTION_DIM)
            out = task.step(executed)
            yaws = cast(np.ndarray, yaw_from_quaternion(task.sim.base_quaternion()))  # a batch: an array
            distance = task.distance()
            for slot, rec in enumerate(running):
                if rec is None:
                    continue
                rec.steps += 1
                rec.total_return += float(out["reward"][slot])
                if rec.steps > settle_steps:
                    rec.forward.append(float(out["forward_speed"][slot]))
                    rec.yaw.append(float(yaws[slot]))
                finished = bool(out["terminated"][slot] or out["truncated"][slot])
                if on_step is not None:
                    on_step(slot, rec, task, finished)
                if not finished:
                    continue
                rec.fell = bool(out["terminated"][slot])
                rec.distance = float(distance[slot])
                done.append(rec)
                if on_episode is not None:
                    on_episode(rec)
                running[slot] = None
                if started < n:
                    start(slot)
    finally:
        if camera is not None:
            camera.close()
        task.close()
    return sorted(done, key=lambda r: r.index)
