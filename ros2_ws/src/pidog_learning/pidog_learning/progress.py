"""Training progress a person can read: env steps/s on a bar, a line now and then in a log.

On a terminal: a tqdm bar in env steps with their rate. Elsewhere (CI, ``nohup``, the
learning node), or with the bar off: one line every ``log_every_s`` seconds. Either way the
rate and the batched simulator's mean reward terms go to TensorBoard once per rollout.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback


class TrainingProgress(BaseCallback):
    def __init__(self, show_bar: bool, log_every_s: float = 30.0, stream: Any = None) -> None:
        super().__init__()
        self.show_bar = show_bar
        self.log_every_s = log_every_s
        self.stream = stream if stream is not None else sys.stdout
        self._bar: Any = None
        self._start_steps = 0
        self._start_time = 0.0
        self._last_log = 0.0
        self._rollout_steps = 0
        self._rollout_time = 0.0

    @property
    def steps_per_s(self) -> float:
        elapsed = time.monotonic() - self._start_time
        return (self.model.num_timesteps - self._start_steps) / elapsed if elapsed > 0 else 0.0

    def _on_training_start(self) -> None:
        self._start_steps = self.model.num_timesteps
        self._start_time = self._last_log = self._rollout_time = time.monotonic()
        self._rollout_steps = self.model.num_timesteps
        total = self.locals["total_timesteps"]
        if self.show_bar and self.stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(
                total=total,
                initial=self.model.num_timesteps,
                unit=" env steps",
                unit_scale=True,
                desc="PPO",
                dynamic_ncols=True,
                file=self.stream,
            )

    def _on_step(self) -> bool:
        if self._bar is not None:
            self._bar.update(self.training_env.num_envs)
        elif time.monotonic() - self._last_log >= self.log_every_s:
            self._last_log = time.monotonic()
            self._log_line()
        return True

    def _on_rollout_end(self) -> None:
        now = time.monotonic()
        steps = self.model.num_timesteps - self._rollout_steps
        if now > self._rollout_time and steps > 0:
            # Rate over the whole previous cycle: collection + the update before it.
            self.logger.record("time/env_steps_per_s", steps / (now - self._rollout_time))
        self._rollout_steps, self._rollout_time = self.model.num_timesteps, now
        env = self.training_env.unwrapped if hasattr(self.training_env, "unwrapped") else self.training_env
        if hasattr(env, "reward_term_means"):
            for name, value in env.reward_term_means().items():
                self.logger.record(f"reward/{name}", value)
        if self._bar is not None and self.model.ep_info_buffer:
            returns = [e["r"] for e in self.model.ep_info_buffer]
            self._bar.set_postfix(ret=f"{sum(returns) / len(returns):.1f}")

    def _on_training_end(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        else:
            self._log_line()

    def _log_line(self) -> None:
        total = self.locals.get("total_timesteps", 0)
        done = self.model.num_timesteps
        rate = self.steps_per_s
        eta = (total - done) / rate if rate > 0 and total > done else 0.0
        assert self.model.ep_info_buffer is not None  # learn() sets it up before any callback runs
        returns = [e["r"] for e in self.model.ep_info_buffer]
        ret = f", return {sum(returns) / len(returns):.1f}" if returns else ""
        print(
            f"PPO {done:,}/{total:,} env steps ({done / max(total, 1):.0%}), {rate:,.0f} steps/s{ret}, "
            f"eta {eta / 60:.1f} min",
            file=self.stream,
            flush=True,
        )
