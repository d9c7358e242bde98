"""A training curriculum: the PPO env's reward weights, randomisation and command ranges as a
function of the timestep count.

The config's ``curriculum`` is a list of stages, in order::

    curriculum:
      - from_timesteps: 1_200_000          # when the stage starts
        ramp_timesteps: 400_000            # 0 (default): all at once; else a linear ramp
        env: {randomization: {servo_strength: [0.7, 1.3]}}
      - from_timesteps: 1_600_000
        env: {reward: {foot_slip: 10.0}}

A stage's ``env`` holds sim config options that may change while the robots run
(``pidog_sim.task.RUNTIME_OPTIONS``); numbers ramp from the values the stages before it left
(the ``env`` group's to begin with), ranges end by end. The schedule is a function of the
timestep count alone, so a resumed run picks it up where it stopped, and only the training env
follows it: evaluations, calibration and the reports keep measuring the task ``env`` describes.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from stable_baselines3.common.callbacks import BaseCallback

from .config import ConfigError, check_env_types

if TYPE_CHECKING:
    from pidog_sim.task import WalkTask

STAGE_KEYS: tuple[str, ...] = ("from_timesteps", "ramp_timesteps", "env")


def check_stages(stages: Any) -> None:
    """Raise ConfigError naming the first malformed stage or option (values are the sim's to
    judge: ``check_values``)."""
    if not isinstance(stages, list | tuple):
        raise ConfigError(f"option 'curriculum' must be a list of stages, got {stages!r}")
    from pidog_sim.task import RUNTIME_OPTIONS  # training side only; imported when needed

    previous = -1
    for i, stage in enumerate(stages):
        where = f"curriculum[{i}]"
        if not isinstance(stage, Mapping):
            raise ConfigError(
                f"option '{where}' must be a mapping with keys {list(STAGE_KEYS)}, got {stage!r}"
            )
        unknown = sorted(set(stage) - set(STAGE_KEYS))
        if unknown:
            raise ConfigError(f"option '{where}' has unknown keys {unknown}; valid keys: {list(STAGE_KEYS)}")
        for key, required in (("from_timesteps", True), ("ramp_timesteps", False)):
            if key not in stage:
                if required:
                    raise ConfigError(f"option '{where}.{key}' is missing")
                continue
            value = stage[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"option '{where}.{key}' must be an integer >= 0, got {value!r}")
        if stage["from_timesteps"] < previous:
            raise ConfigError(
                f"option '{where}.from_timesteps' ({stage['from_timesteps']}) comes before the stage "
                f"above it ({previous}): list the stages in order"
            )
        previous = stage["from_timesteps"]
        env = stage.get("env")
        if not isinstance(env, Mapping) or not env:
            raise ConfigError(f"option '{where}.env' must be a non-empty mapping of sim options, got {env!r}")
        for key in env:
            if key not in RUNTIME_OPTIONS:
                raise ConfigError(
                    f"option '{where}.env.{key}' cannot change during training; "
                    f"a stage may set {list(RUNTIME_OPTIONS)}"
                )
        check_env_types(env, where=f"{where}.env.")


def runtime_values(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the options of a sim config that a stage may change."""
    from pidog_sim.task import RUNTIME_OPTIONS

    return {key: copy.deepcopy(cfg[key]) for key in RUNTIME_OPTIONS}


def base_values(env_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The runtime options' values of the task ``env_kwargs`` describes (PiDogEnv's keywords),
    read from the simulator itself: no second copy of how those keywords merge."""
    from pidog_sim.env import PiDogEnv

    env = PiDogEnv(randomize=True, **dict(env_kwargs))
    try:
        return runtime_values(env.cfg)
    finally:
        env.close()


def progress(stage: Mapping[str, Any], timesteps: int) -> float:
    """How far into ``stage`` training is at ``timesteps``: 0 before it, 1 once ramped."""
    start, ramp = stage["from_timesteps"], stage.get("ramp_timesteps", 0)
    if timesteps < start:
        return 0.0
    return 1.0 if ramp == 0 else min(1.0, (timesteps - start) / ramp)


def values_at(stages: Sequence[Mapping[str, Any]], base: Mapping[str, Any], timesteps: int) -> dict[str, Any]:
    """The runtime options' values at ``timesteps``: ``base`` with every begun stage applied."""
    values = copy.deepcopy(dict(base))
    for stage in stages:
        fraction = progress(stage, timesteps)
        if fraction > 0.0:
            values = _blend(values, stage["env"], fraction)
    return values


def stage_index(stages: Sequence[Mapping[str, Any]], timesteps: int) -> int:
    """How many stages have begun at ``timesteps`` (0: the base task)."""
    return sum(timesteps >= stage["from_timesteps"] for stage in stages)


def _blend(current: Any, target: Any, fraction: float) -> Any:
    """``current`` moved ``fraction`` of the way to ``target`` (a partial override of it)."""
    if isinstance(target, Mapping):
        out = dict(current)
        for key, value in target.items():
            out[key] = _blend(current.get(key) if isinstance(current, Mapping) else None, value, fraction)
        return out
    if isinstance(target, list | tuple):
        if isinstance(current, list | tuple) and len(current) == len(target):
            return tuple(_blend(c, t, fraction) for c, t in zip(current, target, strict=True))
        return tuple(target)
    if _number(current) and _number(target):
        value = current + fraction * (target - current)
        # Whole quantities (latency steps) stay whole: the stage's value once it is reached.
        return int(math.floor(value + 0.5)) if isinstance(target, int) and isinstance(current, int) else value
    return copy.deepcopy(target)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_values(stages: Sequence[Mapping[str, Any]], task: WalkTask) -> None:
    """Apply every stage, as it is once ramped, to ``task`` (a throwaway one: it keeps the last
    stage), so a value the sim refuses (a range outside the command limits, a negative sigma)
    is named before any work starts."""
    base = runtime_values(task.cfg)
    for i, stage in enumerate(stages):
        reached = stage["from_timesteps"] + stage.get("ramp_timesteps", 0)
        try:
            task.update_config(values_at(stages[: i + 1], base, reached))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"option 'curriculum[{i}].env': {exc}") from None


class CurriculumCallback(BaseCallback):
    """Applies the curriculum to the training env when training starts (a resumed run catches
    up at once) and when each rollout starts, so a rollout is collected and learnt from under
    one task. ``on_stage(message)`` hears when a stage begins."""

    def __init__(
        self,
        stages: Sequence[Mapping[str, Any]],
        base: Mapping[str, Any],
        on_stage: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__()
        self.stages = [dict(stage) for stage in stages]
        self.base = copy.deepcopy(dict(base))
        self.on_stage = on_stage
        self.applied: dict[str, Any] | None = None
        self.stage = 0

    def _apply(self) -> None:
        timesteps = self.model.num_timesteps
        values = values_at(self.stages, self.base, timesteps)
        if values != self.applied:
            self.training_env.unwrapped.update_task_config(values)  # type: ignore[attr-defined]
            self.applied = values
        stage = stage_index(self.stages, timesteps)
        if stage != self.stage:
            self.stage = stage
            if self.on_stage is not None and stage > 0:
                self.on_stage(
                    f"curriculum stage {stage} of {len(self.stages)} from {timesteps:,} steps: "
                    f"{self.stages[stage - 1]['env']}"
                )
        self.logger.record("curriculum/stage", stage)

    def _on_training_start(self) -> None:
        self._apply()

    def _on_rollout_start(self) -> None:
        self._apply()

    def _on_step(self) -> bool:
        return True
