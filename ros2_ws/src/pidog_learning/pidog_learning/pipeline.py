"""The learning pipeline: demonstrations -> BC -> PPO fine-tuning -> ONNX -> evaluation/report.

``run_pipeline(config)`` is what ``pidog-train`` and the learning node call. Everything lands
in ``<output_dir>/<experiment_name>/`` (DESIGN.md §5). Every phase skips work whose artifact
already exists when resuming, so ``--resume DIR`` continues where a run stopped.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import torch

from .atomic import atomic_output, write_json, write_text
from .bc import (
    PretrainedModelError,
    check_compatible,
    checkpoint_metadata,
    load_bc_policy,
    load_policy_weights,
    save_policy_weights,
    train_bc,
)
from .compute import torch_threads
from .config import (
    RESUMABLE_OVERRIDES,
    ConfigError,
    as_json,
    flatten,
    merge,
    validate_config,
    with_saved_before,
)
from .curriculum import CurriculumCallback, base_values, check_values
from .demonstrations import DemonstrationError, Demonstrations
from .experts import ExpertError, collect_demonstrations, load_expert, weak_expert_warning
from .export import checkpoint_metadata_of, export_onnx, load_checkpoint_policy, policy_controller
from .networks import PiDogPolicy, make_policy, policy_kwargs, policy_layout
from .plots import plot_bc_losses, plot_command_tracking, plot_eval_comparison, plot_learning_curve
from .ppo_finetune import (
    AntiForgettingCallback,
    NoiseAnnealCallback,
    PeriodicCallback,
    ProgressCallback,
    TrainingInterrupted,
    build_ppo,
    checkpoint_timesteps,
    finetune,
    make_vec_env,
    restore,
    save_checkpoint,
    segment_seed,
    set_exploration,
    start_from,
)
from .report import continue_hint, write_report
from .video import record_rollout

CONFIG_FILE = "config.json"
DEMOS_FILE = "demonstrations.npz"
BAG_REPORT_FILE = "demo_import_report.txt"
BC_WEIGHTS_FILE = "bc_pretrained_policy.pth"
BC_HISTORY_FILE = "bc_history.json"
BC_ONNX_FILE = "bc_policy.onnx"
POLICY_FILE = "policy.onnx"
LEARNING_CURVE_EVERY_S = 30.0  # redraw the learning curve at most this often while PPO runs
CALIBRATED = "calibrated"  # the deployed policy with its command calibration, in eval.json's tracking
EVAL_FILE = "eval.json"
REPORT_FILE = "report.md"
HISTORY_FILE = "training_history.json"
CHECKPOINT_DIR = "checkpoints"
LATEST_CHECKPOINT = "checkpoints/latest.zip"
FINAL_CHECKPOINT = "checkpoints/ppo_final.zip"
POLICIES_DIR = "policies"
PLOTS = {
    "bc_loss": "plots/bc_loss.png",
    "learning_curve": "plots/learning_curve.png",
    "comparison": "plots/eval_comparison.png",
    "command_tracking": "plots/command_tracking.png",
}
VIDEOS_DIR = "videos"
TENSORBOARD_DIR = "tensorboard"


class PipelineError(ValueError):
    """Bad input found before any training: the message says what and how to fix it."""


class PipelineStopped(Exception):
    """A stop was requested (learning node shutdown) before PPO had anything to save."""


@dataclass
class Reporter:
    """Where progress goes: the CLI prints, the learning node publishes on ROS topics."""

    on_status: Callable[[dict[str, Any]], None] | None = None
    on_policy: Callable[[Path], None] | None = None
    state: dict[str, Any] = field(default_factory=dict)

    def status(self, message: str | None = None, **fields: Any) -> None:
        """Update the lasting fields (phase, timesteps, ...); a message goes out once."""
        self.state.update(fields)
        if self.on_status is not None:
            self.on_status({**self.state, **({"message": message} if message else {})})

    def policy(self, path: Path) -> None:
        if self.on_policy is not None:
            self.on_policy(path.resolve())


# --- setting up a run ----------------------------------------------------------------------------


def new_experiment_dir(config: Mapping[str, Any]) -> Path:
    name = config["experiment_name"] or time.strftime("pidog-%Y%m%d-%H%M%S")
    path = Path(config["output_dir"]) / name
    if path.exists():
        raise PipelineError(
            f"experiment folder {path} already exists; choose another --experiment-name, or continue it "
            f"with --resume {path}"
        )
    return path


def resume_target(path: str | os.PathLike[str]) -> tuple[Path, Path | None]:
    """--resume accepts an experiment folder or one of its checkpoints/*.zip."""
    path = Path(path)
    checkpoint = None
    if path.suffix == ".zip":
        if not path.is_file():
            raise PipelineError(f"--resume: checkpoint not found: {path}")
        checkpoint, path = path, path.parent.parent
    if not (path / CONFIG_FILE).is_file():
        raise PipelineError(f"--resume: {path} is not an experiment folder (no {CONFIG_FILE})")
    return path, checkpoint


def resumed_config(exp_dir: Path, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The saved config (options it predates: as that run did them) with the options that may
    change on resume (RESUMABLE_OVERRIDES: budgets, where the robots run, the curriculum) overridden."""
    saved_raw = json.loads((exp_dir / CONFIG_FILE).read_text())
    saved = with_saved_before(saved_raw)
    saved_flat = flatten(saved)
    for name, value in flatten(overrides).items():
        if name.split(".")[0] in RESUMABLE_OVERRIDES:
            continue
        if as_json(value) != saved_flat.get(name):
            raise PipelineError(
                f"option '{name}' cannot change when resuming ({exp_dir} used {saved_flat.get(name)!r}, "
                f"got {value!r}); only {sorted(RESUMABLE_OVERRIDES)} may"
            )
    config = merge(saved, {k: v for k, v in overrides.items() if k in RESUMABLE_OVERRIDES})
    validate_config(config)
    asked = sorted(n for n in flatten(overrides) if n.startswith("calibration."))
    if asked and not config["calibration"]["enabled"]:
        # Options of a stage that will not run would be ignored in silence.
        raise PipelineError(
            f"{', '.join(asked)}: {exp_dir} runs no command calibration (calibration.enabled is false"
            f"{', as runs saved before the stage existed' if 'calibration' not in saved_raw else ''}); "
            "add --set calibration.enabled=true to calibrate it"
        )
    return config


def check_resumable(exp_dir: Path, checkpoint: Path | None, config: Mapping[str, Any]) -> None:
    """Refuse, before any work, a run whose saved networks this version of the stack cannot
    load (say the privileged critic's layout changed since it was trained): the weights a resume
    continues from are checked against the network its config builds now."""
    kwargs = policy_kwargs(config)
    for source in (checkpoint or exp_dir / LATEST_CHECKPOINT, exp_dir / BC_WEIGHTS_FILE):
        if not source.is_file():
            continue
        try:
            meta = (
                load_policy_weights(source)[1]
                if source.suffix == ".pth"
                else checkpoint_metadata_of(source)[0]
            )
            check_compatible(meta, kwargs, bool(config["use_camera"]), str(source))
        except PretrainedModelError as exc:
            raise PipelineError(
                f"--resume {exp_dir}: {exc}. The run cannot be continued from that file: resume from "
                "another of its checkpoints (--resume <run>/checkpoints/ppo_*.zip), if one fits, or "
                "start a new run (its policy.onnx still runs as it is)"
            ) from exc


def preflight(config: Mapping[str, Any]) -> PiDogPolicy | None:
    """Check every input before any work; returns the loaded --pretrained-model, if any."""
    from pidog_sim.env import PiDogEnv

    try:
        env = PiDogEnv(randomize=True, **config["env"])
    except (TypeError, ValueError) as exc:
        raise PipelineError(f"option 'env': {exc}") from exc
    try:
        check_values(config["curriculum"], env.task)
    finally:
        env.close()
    pretrained = None
    if config["pretrained_model"]:
        try:
            pretrained = load_checkpoint_policy(
                config["pretrained_model"], policy_kwargs(config), config["use_camera"]
            )
        except PretrainedModelError as exc:
            raise PipelineError(f"--pretrained-model: {exc}") from exc
    if config["expert_model"]:
        try:
            load_expert(config["expert_model"])
        except (ExpertError, PretrainedModelError, ValueError) as exc:
            raise PipelineError(f"--expert-model: {exc}") from exc
    for bag in config["demo_bag"]:
        if not Path(bag).exists():
            raise PipelineError(f"--demo-bag: {bag} does not exist")
    return pretrained


# --- the pipeline ---------------------------------------------------------------------------------


# Falls decide which policy is deployed only when their difference is beyond chance. Both
# policies run the same number of episodes, so if they fell equally often the count of the one
# that fell less would be Binomial(total falls, 1/2): one-sided p below FALLS_SIGNIFICANCE
# decides (0 vs 4, 1 vs 6, 2 vs 7, ...). 0.1 rather than the usual 0.05: a fall costs a robot
# more than a tracking error does. Fewer falls on 1 vs 2 or 1 vs 3 is chance: it deployed BC in
# 3 of 12 ablation runs (G1, G2, H2) whose PPO followed the commands far better
# (docs/ABLATIONS.md).
FALLS_SIGNIFICANCE: Final = 0.1


def _name(policy: str) -> str:
    return "BC + PPO" if policy == "finetuned" else "BC"


def falls_p_value(fewer: int, more: int) -> float:
    """One-sided exact p of ``fewer`` falls against ``more`` over as many episodes each."""
    total = fewer + more
    return sum(math.comb(total, k) for k in range(fewer + 1)) / 2**total


def tracking_score(result: Mapping[str, Any]) -> float:
    """A grid result's mean |vx| and |wz| errors, each in units of its steering target (an error
    at its target scores 1)."""
    from pidog_sim.evaluation import TRACKING_TARGETS

    for key in ("mean_abs_vx_error", "mean_abs_wz_error"):
        if key not in result:
            raise KeyError(f"a tracking result has no {key!r}")
    return (
        float(result["mean_abs_vx_error"]) / TRACKING_TARGETS["vx_error"]
        + float(result["mean_abs_wz_error"]) / TRACKING_TARGETS["wz_error"]
    )


def select_policy(
    results: Mapping[str, Mapping[str, Any]], tracking: Mapping[str, Mapping[str, Any]] | None = None
) -> tuple[str, dict[str, Any]]:
    """Deploy the better of BC and BC -> PPO, measured on the same (paired) episodes.

    1. Fewer falls, counted over the random evaluation episodes and the command-tracking grid
       (if it ran), when the difference is beyond chance (``FALLS_SIGNIFICANCE``).
    2. Else the smaller tracking error on the grid (``tracking_score``): 44 episodes of what a
       steered robot does, the most precise measure the pipeline takes. A policy that stands
       still does not fall, and loses here.
    3. Else (no grid, or equal scores) the higher mean return over the random episodes.
    The paired return difference and its 95 % CI are recorded so the report can say whether it
    was measurable at all.
    """
    from pidog_sim.evaluation import paired_difference

    bc, ft = results.get("bc"), results.get("finetuned")
    if ft is None:
        return "bc", {"reason": "PPO fine-tuning was skipped (--total-rl-timesteps 0)"}
    assert bc is not None  # Pipeline.finish always evaluates "bc"
    diff = paired_difference(ft["per_episode_return"], bc["per_episode_return"])
    speed = paired_difference(ft["per_episode_speed_mps"], bc["per_episode_speed_mps"])
    falls = {"bc": int(bc["falls"]), "finetuned": int(ft["falls"])}
    grid = tracking or {}
    has_grid = "bc" in grid and "finetuned" in grid
    if has_grid:
        falls = {name: falls[name] + int(grid[name]["falls"]) for name in falls}
        counted = "evaluation episodes and tracking grid"
    else:
        counted = "evaluation episodes"
    record: dict[str, Any] = {
        "rule": (
            f"fewer falls ({counted}) when beyond chance (one-sided exact test, p < {FALLS_SIGNIFICANCE}), "
            "else the smaller command-tracking error on the grid, else the higher mean return over the "
            "evaluation episodes"
        ),
        "falls": falls,
        "return_difference": diff,  # finetuned - bc, per episode, paired
        "speed_difference_mps": speed,
    }
    fell_less = "finetuned" if falls["finetuned"] < falls["bc"] else "bc"
    fell_more = "bc" if fell_less == "finetuned" else "finetuned"
    p = falls_p_value(falls[fell_less], falls[fell_more])
    record["falls_p_value"] = round(p, 4)
    falls_text = f"{falls['finetuned']} vs {falls['bc']} falls for PPO vs BC over the {counted}"
    if p < FALLS_SIGNIFICANCE:  # equal counts give p >= 0.5
        selected = fell_less
        record["reason"] = f"{_name(selected)} fell less ({falls_text}; one-sided p = {p:.3f})"
        return selected, record
    chance = f"falls within chance ({falls_text}; p = {p:.2f})"
    if has_grid:
        scores = {name: tracking_score(grid[name]) for name in ("bc", "finetuned")}
        record["tracking_score"] = {name: round(v, 3) for name, v in scores.items()}
        if scores["bc"] != scores["finetuned"]:
            selected = min(scores, key=scores.__getitem__)
            errors = "; ".join(
                f"{_name(n)} |vx| {grid[n]['mean_abs_vx_error']:.3f} m/s, |wz| {grid[n]['mean_abs_wz_error']:.3f} rad/s"
                for n in ("finetuned", "bc")
            )
            record["reason"] = f"{chance}; {_name(selected)} follows the grid's commands better ({errors})"
            return selected, record
    measured = "a measured difference" if diff["significant"] else "within the noise (95 % CI includes 0)"
    selected = "finetuned" if diff["mean"] > 0 else "bc"
    record["reason"] = (
        f"{chance}; mean return PPO - BC = {diff['mean']:+.1f} ± {diff['ci95']:.1f} (95 % CI), {measured}"
    )
    return selected, record


class Pipeline:
    def __init__(
        self,
        config: dict[str, Any],
        exp_dir: Path,
        pretrained: PiDogPolicy | None,
        resume_checkpoint: Path | None,
        reporter: Reporter,
        stop_event: threading.Event | None,
    ) -> None:
        self.config = config
        self.dir = exp_dir
        self.pretrained = pretrained
        self.resume_checkpoint = resume_checkpoint
        self.reporter = reporter
        self.stop_event = stop_event
        self.kwargs = policy_kwargs(config)
        self.use_camera = bool(config["use_camera"])
        self.history = self._load_history()
        self._plotted_at = -math.inf  # when the learning curve was last drawn (time.monotonic)
        self.timesteps = 0  # PPO timesteps behind the final policy
        self.viewer: Any | None = None  # pidog-train --viewer: a LiveViewer showing each video rollout

    # -- helpers --
    def path(self, name: str) -> Path:
        return self.dir / name

    def _stopping(self) -> bool:
        return self.stop_event is not None and self.stop_event.is_set()

    def _load_history(self) -> dict[str, Any]:
        file = self.dir / HISTORY_FILE
        if file.is_file():
            return json.loads(file.read_text())
        return {"rewards": [], "evaluations": [], "references": {}}

    def _save_history(self, plot: bool = False) -> None:
        """history.json every time; the learning-curve plot when ``plot`` or when the last one
        is LEARNING_CURVE_EVERY_S old (a redraw costs ~0.8 s of matplotlib)."""
        write_json(self.path(HISTORY_FILE), self.history)
        now = time.monotonic()
        if plot or now - self._plotted_at >= LEARNING_CURVE_EVERY_S:
            plot_learning_curve(
                self.history["rewards"],
                self.history["evaluations"],
                self.path(PLOTS["learning_curve"]),
                self.history["references"],
            )
            self._plotted_at = now

    def _env_kwargs(self, camera: bool) -> dict[str, Any]:
        return {**self.config["env"], "use_camera": camera}

    def _evaluate(self, controller: Callable, camera: bool, final: bool) -> dict[str, Any]:
        from pidog_sim.evaluation import evaluate

        ev = self.config["eval"]
        return evaluate(
            controller,
            episodes=ev["final_episodes"] if final else ev["episodes"],
            seconds=ev["final_seconds"] if final else ev["seconds"],
            randomize=True,
            seed=ev["seed"],
            env_kwargs=self._env_kwargs(camera),
        )

    def _controller(self, policy: PiDogPolicy, onnx_path: Path) -> Callable:
        """Evaluate what is deployed: the ONNX file (camera policies: the torch policy)."""
        if policy.uses_camera:
            return policy_controller(policy)
        from pidog_control.policy_runtime import OnnxPolicy

        return OnnxPolicy(onnx_path).act

    def _export(self, policy: PiDogPolicy, path: Path, **info: Any) -> Path:
        info = {"experiment": self.dir.name, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), **info}
        export_onnx(policy, path, info)
        self.reporter.policy(path)
        return path

    def _video(self, policy: PiDogPolicy, name: str) -> Path | None:
        if self.config["visualize_freq"] <= 0:
            return None
        path = self.path(f"{VIDEOS_DIR}/{name}.mp4")
        record_rollout(
            policy_controller(policy),
            path,
            self.config["eval"]["video_seconds"],
            self.config["eval"]["seed"],
            self._env_kwargs(self.use_camera),
            viewer=self.viewer,
        )
        return path

    # -- phases --
    def demonstrations(self) -> Demonstrations | None:
        cfg = self.config
        needs_prior = (
            cfg["total_rl_timesteps"] > 0
            and max(cfg["finetune"]["bc_loss_weight"], cfg["finetune"]["bc_keep_weight"]) > 0
            and not cfg["no_bc_init"]
        )
        # gSDE's noise is scaled on the states the robot will visit: the demonstrations'.
        needs_states = cfg["total_rl_timesteps"] > 0 and cfg["policy"]["exploration"] == "gsde"
        if cfg["skip_bc"] and not needs_prior and not needs_states:
            return None
        file = self.path(DEMOS_FILE)
        # The filter the run acts behind: the demonstrations' labels are for it.
        action_filter_hz = float(self.kwargs.get("action_filter_hz", 0.0))
        if file.is_file():
            self.reporter.status(phase="demos", message=f"using existing {file}")
            try:
                return Demonstrations.load(file, policy_layout(self.kwargs), action_filter_hz)
            except DemonstrationError as exc:
                raise PipelineError(str(exc)) from exc
        if cfg["demo_bag"]:
            from .bag_import import import_bags  # only the bag path needs rosbags

            self.reporter.status(phase="demos", message=f"importing {len(cfg['demo_bag'])} bag(s)")
            try:
                demos, report = import_bags(
                    cfg["demo_bag"],
                    obs_history=policy_layout(self.kwargs).history,
                    action_filter_hz=action_filter_hz,
                )
            except ValueError as exc:  # BagImportError, DemonstrationError
                raise PipelineError(f"--demo-bag: {exc}") from exc
            write_text(self.path(BAG_REPORT_FILE), report.format() + "\n")
        else:
            expert, description, camera = load_expert(cfg["expert_model"])
            self.reporter.status(
                phase="demos", message=f"{cfg['n_demo_episodes']} episodes from the {description}"
            )
            try:
                demos = collect_demonstrations(
                    expert,
                    cfg["n_demo_episodes"],
                    cfg["demos"]["episode_seconds"],
                    seed=cfg["seed"],
                    env_kwargs=cfg["env"],
                    action_noise=cfg["demos"]["action_noise"],
                    drop_falls=cfg["demos"]["drop_falls"],
                    use_camera=camera,
                    source=description,
                    progress=cfg["progress_bar"],
                    should_stop=self._stopping,
                )
            except InterruptedError as exc:
                raise PipelineStopped(str(exc)) from exc
            clipped = demos.metadata["labels_clipped"]
            if clipped:
                self.reporter.status(
                    phase="demos",
                    message=f"{clipped} of {len(demos)} samples relabelled for the run's "
                    f"{action_filter_hz:g} Hz action filter lay outside [-1, 1] and were clipped "
                    "(the filter cannot follow the expert that fast there)",
                )
            warning = weak_expert_warning(description, demos.metadata["forward_ratio"])
            if warning:
                self.reporter.status(phase="demos", message=warning)
        demos.save(file)
        return demos

    def _seeded_policy(self) -> PiDogPolicy:
        """A fresh policy whose initial weights follow --seed (same seed, same BC policy),
        without touching the global torch RNG."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.config["seed"]))
            return make_policy(self.kwargs, self.use_camera)

    def behaviour_cloning(self, demos: Demonstrations | None) -> PiDogPolicy:
        cfg = self.config
        weights = self.path(BC_WEIGHTS_FILE)
        if cfg["skip_bc"]:
            assert self.pretrained is not None  # skip_bc needs pretrained_model (validate_config)
            policy = self.pretrained
            save_policy_weights(
                policy,
                weights,
                checkpoint_metadata(self.kwargs, self.use_camera, {"source": cfg["pretrained_model"]}),
            )
        elif weights.is_file():
            self.reporter.status(phase="bc", message=f"using existing {weights}")
            policy = load_bc_policy(weights, self.kwargs, self.use_camera)
        else:
            assert demos is not None  # demonstrations() returns None only with skip_bc
            self.reporter.status(
                phase="bc", message=f"{cfg['total_bc_epochs']} epochs on {len(demos)} samples"
            )
            policy = self.pretrained if self.pretrained is not None else self._seeded_policy()
            bc = cfg["bc"]
            # A residual policy learns the whole action, then starts PPO at its prior.
            with torch_threads(int(cfg["update_threads"])), policy.cloning_whole_actions():
                result = train_bc(
                    demos,
                    policy,
                    epochs=cfg["total_bc_epochs"],
                    learning_rate=bc["learning_rate"],
                    batch_size=bc["batch_size"],
                    validation_fraction=bc["validation_fraction"],
                    seed=cfg["seed"],
                    weight_decay=bc["weight_decay"],
                    # A pretrained net keeps the normaliser it learned with.
                    set_normalizer=self.pretrained is None,
                    progress=cfg["progress_bar"],
                    should_stop=self._stopping,
                )
            if self._stopping():
                raise PipelineStopped("stopped during behavioural cloning")
            history = {
                "train_loss": result.train_loss,
                "val_loss": result.val_loss,
                "best_epoch": result.best_epoch,
                "n_train": result.n_train,
                "n_val": result.n_val,
            }
            write_json(self.path(BC_HISTORY_FILE), history)
            plot_bc_losses(result.train_loss, result.val_loss, self.path(PLOTS["bc_loss"]))
            meta = checkpoint_metadata(
                self.kwargs,
                self.use_camera,
                {
                    "epochs": cfg["total_bc_epochs"],
                    "best_epoch": result.best_epoch,
                    "best_val_loss": min(result.val_loss),
                },
            )
            save_policy_weights(policy, weights, meta)
            self.reporter.status(phase="bc", message=f"validation MSE {min(result.val_loss):.2e}")
        self._export(policy, self.path(BC_ONNX_FILE), phase="bc", source_checkpoint=str(weights.resolve()))
        if not self.path(f"{VIDEOS_DIR}/bc.mp4").is_file():
            self._video(policy, "bc")
        return policy

    def reinforcement(self, bc_policy: PiDogPolicy, demos: Demonstrations | None) -> PiDogPolicy:
        cfg = self.config
        total = cfg["total_rl_timesteps"]
        checkpoint = self.resume_checkpoint or (
            self.path(LATEST_CHECKPOINT) if self.path(LATEST_CHECKPOINT).is_file() else None
        )
        # One seed per segment for the envs, PPO (which re-seeds the envs) and the BC batches:
        # a resumed run continues with new episodes and noise instead of replaying the first.
        seed = segment_seed(cfg["seed"], 0 if checkpoint is None else checkpoint_timesteps(checkpoint))
        env = make_vec_env(cfg, seed=seed)
        demo_states = None if demos is None else demos.observations
        try:
            meta = checkpoint_metadata(self.kwargs, self.use_camera, {"experiment": self.dir.name})
            model = build_ppo(cfg, env, self.path(TENSORBOARD_DIR), meta, seed=seed)
            if checkpoint is not None:
                restore(model, checkpoint)
                # From an earlier checkpoint of a longer run: the curve continues from there,
                # without the points the abandoned steps made.
                for key in ("rewards", "evaluations"):
                    self.history[key] = [
                        e for e in self.history[key] if e["timesteps"] <= model.num_timesteps
                    ]
                self.reporter.status(
                    phase="ppo", timesteps=model.num_timesteps, message=f"resumed from {checkpoint}"
                )
            elif not cfg["no_bc_init"]:
                start_from(model, bc_policy, cfg["policy"]["initial_log_std"], demo_states)
            else:
                # Plain PPO from scratch (SB3's log-std 0, see build_ppo), but with the demos'
                # normaliser: a comparison with BC->RL should be about the prior, nothing else.
                model.policy.normalizer.load_state_dict(bc_policy.normalizer.state_dict())
                set_exploration(model.policy, 0.0, demo_states)
            if not self.history["evaluations"]:
                self._evaluate_and_log(model, first=True)
            self.reporter.status(phase="ppo", timesteps=model.num_timesteps, total_timesteps=total)
            ft = cfg["finetune"]
            callbacks = [
                AntiForgettingCallback(
                    0 if cfg["no_bc_init"] else ft["critic_warmup_timesteps"],
                    None if cfg["no_bc_init"] else demos,
                    ft["bc_loss_weight"],
                    ft["bc_loss_decay"],
                    ft["bc_loss_batch_size"],
                    seed,
                    decay_timesteps=ft["bc_loss_decay_timesteps"],
                    handover_weight=0.0 if cfg["no_bc_init"] else ft["handover_bc_weight"],
                    handover_lr_scale=ft["handover_actor_lr_scale"],
                    handover_log_std=ft["handover_log_std"],
                    min_weight=ft["bc_loss_min_weight"],
                    keep_weight=ft["bc_keep_weight"],  # no demos (--no-bc-init): no term
                    keep_commands=ft["bc_keep_commands"],
                ),
                ProgressCallback(
                    lambda s: self.reporter.status(**s), self.history["rewards"], self.stop_event
                ),
            ]
            if ft["noise_anneal_from"] < 1.0:
                callbacks.append(
                    NoiseAnnealCallback(
                        int(ft["noise_anneal_from"] * total),
                        total,
                        0.0 if cfg["no_bc_init"] else cfg["policy"]["initial_log_std"],
                        ft["final_log_std"],
                    )
                )
            if cfg["curriculum"]:
                callbacks.append(
                    CurriculumCallback(
                        cfg["curriculum"],
                        base_values(cfg["env"]),
                        lambda message: self.reporter.status(phase="ppo", message=message),
                    )
                )
            if cfg["eval"]["freq"] > 0:
                callbacks.append(PeriodicCallback(cfg["eval"]["freq"], self._evaluate_and_log))
            if cfg["visualize_freq"] > 0:
                # Not on the last rollout: the final policy is filmed after the evaluation.
                callbacks.append(PeriodicCallback(cfg["visualize_freq"], self._visualize, until=total))
            finetune(
                model, total, callbacks, self.path(LATEST_CHECKPOINT), cfg["progress_bar"], self.stop_event
            )
            self._copy_checkpoint(self.path(LATEST_CHECKPOINT), self.path(FINAL_CHECKPOINT))
            # The curve ends with the final policy, unless an evaluation just saw (almost) it.
            last = self.history["evaluations"][-1]["timesteps"] if self.history["evaluations"] else -1
            if model.num_timesteps - last >= model.n_steps * model.n_envs:
                self._evaluate_and_log(model)
            self.timesteps = model.num_timesteps
            return model.policy
        finally:
            if self.history["evaluations"]:
                self._save_history(plot=True)  # the curve as far as PPO got, stopped or not
            try:
                env.close()
            except (EOFError, BrokenPipeError, ConnectionResetError):
                pass  # a worker already died with the same Ctrl-C: nothing left to close

    def _copy_checkpoint(self, src: Path, dst: Path) -> None:
        with atomic_output(dst) as tmp:
            shutil.copyfile(src, tmp)

    def _evaluate_and_log(self, model: Any, first: bool = False) -> None:
        """Checkpoint, ONNX export (announced), evaluation, TensorBoard, history, curve."""
        t = int(model.num_timesteps)
        policy = model.policy
        if not first:
            save_checkpoint(model, self.path(f"{CHECKPOINT_DIR}/ppo_{t:09d}.zip"))
            self._copy_checkpoint(
                self.path(f"{CHECKPOINT_DIR}/ppo_{t:09d}.zip"), self.path(LATEST_CHECKPOINT)
            )
        if first and not self.config["no_bc_init"]:
            onnx_path = self.path(BC_ONNX_FILE)  # PPO starts as exactly the BC policy
        else:
            onnx_path = self._export(
                policy, self.path(f"{POLICIES_DIR}/policy_{t:09d}.onnx"), phase="ppo", timesteps=t
            )
        result = self._evaluate(self._controller(policy, onnx_path), policy.uses_camera, final=False)
        entry = {
            "timesteps": t,
            "mean_forward_speed_mps": result["mean_forward_speed_mps"],
            "std_forward_speed_mps": result["std_forward_speed_mps"],
            "falls": result["falls"],
            "episodes": result["episodes"],
            "mean_return": result["mean_return"],
            "policy": str(onnx_path),
        }
        self.history["evaluations"].append(entry)
        if first and "trot" not in self.history["references"]:
            from pidog_sim.controllers import TrotController

            trot = self._evaluate(TrotController(), camera=False, final=False)
            self.history["references"]["trot"] = trot["mean_forward_speed_mps"]
        if not first:
            model.logger.record("eval/forward_speed_mps", entry["mean_forward_speed_mps"])
            model.logger.record("eval/falls", entry["falls"])
            model.logger.record("eval/mean_return", entry["mean_return"])
        self._save_history()
        self.reporter.status(
            phase="ppo",
            timesteps=t,
            eval_forward_speed_mps=entry["mean_forward_speed_mps"],
            eval_falls=entry["falls"],
            policy=str(onnx_path.resolve()),
        )

    def _visualize(self, model: Any) -> None:
        self._video(model.policy, f"ppo_{int(model.num_timesteps):09d}")
        self._save_history()

    def _track(self, controller: Callable, camera: bool) -> dict[str, Any]:
        """The command-tracking grid (paired: the same seeds for every controller)."""
        from pidog_sim.evaluation import evaluate_tracking

        ev = self.config["eval"]
        return evaluate_tracking(
            controller,
            seconds=ev["tracking_seconds"],
            randomize=True,
            seed=ev["seed"],
            settle_seconds=ev["tracking_settle_seconds"],
            episodes_per_command=ev["tracking_episodes"],
            env_kwargs=self._env_kwargs(camera),
        )

    def finish(self, bc_policy: PiDogPolicy, final_policy: PiDogPolicy, finetuned: bool) -> dict[str, Path]:
        cfg = self.config
        self.reporter.status(phase="evaluating", message="final evaluation")
        from pidog_sim.controllers import TrotController

        controllers: dict[str, tuple[Callable, bool]] = {
            "trot": (TrotController(), False),
            "bc": (self._controller(bc_policy, self.path(BC_ONNX_FILE)), self.use_camera),
        }
        if finetuned:
            ppo_path = self._export(
                final_policy,
                self.path(f"{POLICIES_DIR}/ppo_final.onnx"),
                phase="ppo",
                timesteps=self.timesteps,
                source_checkpoint=str(self.path(FINAL_CHECKPOINT).resolve()),
            )
            controllers["finetuned"] = (self._controller(final_policy, ppo_path), self.use_camera)
        results = {name: self._evaluate(c, camera, final=True) for name, (c, camera) in controllers.items()}
        tracking = {}
        if cfg["eval"]["tracking_episodes"] > 0:
            self.reporter.status(phase="evaluating", message="command tracking grid")
            tracking = {name: self._track(c, camera) for name, (c, camera) in controllers.items()}
        selected, selection = select_policy(results, tracking)
        deployed = final_policy if selected == "finetuned" else bc_policy
        info = {
            "phase": "final",
            "selected": selected,
            "timesteps": self.timesteps if selected == "finetuned" else 0,
            "finetuned": selected == "finetuned",
        }
        if selected == "finetuned":
            info["source_checkpoint"] = str(self.path(FINAL_CHECKPOINT).resolve())
        self._export(deployed, self.path(POLICY_FILE), **info)
        deployed_controller = controllers["finetuned" if selected == "finetuned" else "bc"][0]
        calibration = self._calibrate(deployed)
        if calibration.get("calibrated"):
            from pidog_control.policy_runtime import OnnxPolicy

            deployed_controller = OnnxPolicy(self.path(POLICY_FILE)).act
            if tracking:
                self.reporter.status(phase="evaluating", message="command tracking grid, calibrated")
                tracking[CALIBRATED] = self._track(deployed_controller, False)
        keyboard = self._keyboard_check(deployed_controller) if not self.use_camera else {}
        evaluation = {
            "policy": POLICY_FILE,
            "selected": selected,
            "selection": selection,
            "calibration": calibration,
            "keyboard": keyboard,
            "timesteps": info["timesteps"],
            "obs_layout_version": policy_layout(self.kwargs).version,
            "results": results,
            "tracking": tracking,
        }
        write_json(self.path(EVAL_FILE), evaluation)
        plot_eval_comparison(results, self.path(PLOTS["comparison"]))
        if not self.use_camera:  # commanded vs achieved over time, for the report
            from pidog_sim.evaluation import command_sequence

            series = command_sequence(
                deployed_controller, seed=cfg["eval"]["seed"], env_kwargs=self.config["env"]
            )
            plot_command_tracking(series, self.path(PLOTS["command_tracking"]))
        video = self._video(deployed, "final")
        artifacts = self.artifacts()
        write_report(self.path(REPORT_FILE), self.dir, cfg, evaluation, artifacts, video)
        artifacts["report"] = self.path(REPORT_FILE)
        hint = continue_hint(self.dir, int(cfg["total_rl_timesteps"]), evaluation)
        if hint:  # also in the report; said here so a user watching the run sees it
            self.reporter.status(message=hint.replace("`", ""))
        return artifacts

    def _keyboard_check(self, controller: Callable) -> dict[str, Any]:
        """The deployed policy on every command keyboard_teleop can send, on the nominal robot
        (``pidog_sim.evaluation.keyboard_falls``, config eval.keyboard_*); {} when it is off."""
        ev = self.config["eval"]
        if ev["keyboard_episodes"] == 0:
            return {}
        from pidog_sim.evaluation import format_commands, keyboard_falls

        self.reporter.status(phase="evaluating", message="every keyboard command, nominal robot")
        check = keyboard_falls(
            controller,
            randomize=False,
            seconds=ev["keyboard_seconds"],
            seed=ev["seed"],
            settle_seconds=ev["tracking_settle_seconds"],
            episodes_per_command=ev["keyboard_episodes"],
            env_kwargs=self._env_kwargs(False),
        )
        if check["fell_at"]:  # also in the report; said here so a user watching the run sees it
            where = format_commands(check["fell_at"])
            self.reporter.status(
                message=f"policy.onnx fell on the nominal robot, commanded (vx m/s, wz rad/s) {where}"
            )
        return check

    def _calibrate(self, deployed: PiDogPolicy) -> dict[str, Any]:
        """Calibrate policy.onnx in place (config 'calibration'); what happened, for eval.json.
        A calibration that cannot be fitted leaves the policy as exported and says why."""
        cal = self.config["calibration"]
        if not cal["enabled"]:
            return {"calibrated": False, "reason": "disabled (calibration.enabled false)"}
        if deployed.uses_camera:
            return {"calibrated": False, "reason": "camera policies are not calibrated (two inputs)"}
        from .command_calibration import CalibrationError, calibrate, examples

        self.reporter.status(phase="evaluating", message="command calibration")
        threads = self.config["physics_threads"] or None
        try:
            fit = calibrate(
                self.path(POLICY_FILE),
                self.path(POLICY_FILE),
                cal["episodes"],
                cal["seconds"],
                cal["seed"],
                env_kwargs=self.config["env"],
                threads=threads,
                randomize=cal["randomize"],
            )
        except CalibrationError as exc:
            self.reporter.status(message=f"policy.onnx left uncalibrated: {exc}")
            return {"calibrated": False, "reason": str(exc)}
        self.reporter.policy(self.path(POLICY_FILE))
        return {
            "calibrated": True,
            "randomized": cal["randomize"],
            "seconds_taken": round(fit["seconds_taken"], 1),
            "lattice_falls": int(fit["falls"].sum()),
            "examples": examples(fit["table"]),
        }

    def artifacts(self) -> dict[str, Path]:
        candidates = {
            "config": CONFIG_FILE,
            "demonstrations": DEMOS_FILE,
            "bc_weights": BC_WEIGHTS_FILE,
            "bc_onnx": BC_ONNX_FILE,
            "policy": POLICY_FILE,
            "final_checkpoint": FINAL_CHECKPOINT,
            "eval": EVAL_FILE,
            "report": REPORT_FILE,
            "tensorboard": TENSORBOARD_DIR,
            "videos": VIDEOS_DIR,
            **PLOTS,
        }
        return {k: self.path(v) for k, v in candidates.items() if self.path(v).exists()}

    def run(self) -> dict[str, Path]:
        demos = self.demonstrations()
        bc_policy = self.behaviour_cloning(demos)
        if self.config["total_rl_timesteps"] > 0:
            final_policy = self.reinforcement(bc_policy, demos)
            finetuned = True
        else:
            final_policy, finetuned = bc_policy, False
        artifacts = self.finish(bc_policy, final_policy, finetuned)
        self.reporter.status(phase="done", message=f"artifacts in {self.dir.resolve()}")
        return artifacts


def run_pipeline(
    config: Mapping[str, Any] | None = None,
    resume: str | os.PathLike[str] | None = None,
    resume_overrides: Mapping[str, Any] | None = None,
    reporter: Reporter | None = None,
    stop_event: threading.Event | None = None,
    viewer: Any | None = None,
) -> tuple[Path, dict[str, Path]]:
    """Run (or resume) the whole pipeline; returns (experiment folder, artifact paths).
    ``viewer`` (a ``pidog_sim.viewer.LiveViewer``) shows each periodic video rollout live.

    Raises PipelineError (and ConfigError) for bad input before any training,
    TrainingInterrupted after saving a checkpoint on Ctrl-C or a stop request.
    """
    reporter = reporter or Reporter()
    if resume is not None:
        exp_dir, checkpoint = resume_target(resume)
        config = resumed_config(exp_dir, resume_overrides or {})
        check_resumable(exp_dir, checkpoint, config)
    else:
        if config is None:
            raise ConfigError("run_pipeline needs a config (pidog_learning.config.resolve_config)")
        config = dict(config)
        validate_config(config)
        exp_dir, checkpoint = new_experiment_dir(config), None
    torch.set_num_threads(int(config["torch_threads"]))
    pretrained = preflight(config)
    exp_dir.mkdir(parents=True, exist_ok=resume is not None)
    config["experiment_name"] = exp_dir.name
    write_json(exp_dir / CONFIG_FILE, config)
    reporter.status(
        phase="starting", experiment_dir=str(exp_dir.resolve()), total_timesteps=config["total_rl_timesteps"]
    )
    pipeline = Pipeline(config, exp_dir, pretrained, checkpoint, reporter, stop_event)
    pipeline.viewer = viewer
    try:
        return exp_dir, pipeline.run()
    except (DemonstrationError, ExpertError) as exc:
        raise PipelineError(str(exc)) from exc
    except TrainingInterrupted:
        reporter.status(phase="stopped")
        raise
