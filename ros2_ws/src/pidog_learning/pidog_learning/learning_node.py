"""learning_node: the training pipeline as a ROS 2 node (issue 5, part 3).

    python -m pidog_learning.learning_node --ros-args -p config:=demo -p total_rl_timesteps:=100000

Parameters are the pipeline's options (``pidog_learning.config``; nested knobs as dotted names
such as ``ppo.n_steps``), plus ``config`` (preset), ``config_file`` (YAML/JSON of nested
overrides, as ``pidog-train --config FILE``), ``set`` (string array of ``KEY=VALUE``, as
``pidog-train --set``) and ``resume`` (experiment folder). Their defaults are the preset's with
the file and ``set`` applied; an invalid value is refused at start, naming the parameter.
The pipeline runs in a worker thread (the simulators are in-process: DDS is for watching, not
for stepping training). Topics:

- ``/learning/status`` (std_msgs/String, JSON): phase, timesteps, total_timesteps, reward
  (mean training episode return), eval_forward_speed_mps, eval_falls, experiment_dir, message.
- ``/learning/policy`` (std_msgs/String, reliable + transient-local, depth 1): the absolute
  path of each newly exported ``.onnx`` (after BC and at every PPO evaluation), so a
  ``policy_node`` with ``follow_learning:=true`` hot-reloads the newest policy.

Ctrl-C stops training at the next step and saves a checkpoint (continue with ``resume``).
"""

from __future__ import annotations

import json
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_msgs.msg import String

from pidog_description.topics import LATCHED_QOS, LEARNING_POLICY_TOPIC, LEARNING_STATUS_TOPIC, STREAM_QOS

from .config import (
    DEFAULT_CONFIG,
    PRESETS,
    RESUMABLE_OVERRIDES,
    ConfigError,
    as_json,
    combine,
    flatten,
    load_config_file,
    merge,
    parse_assignments,
    resolve_config,
    unflatten,
)

NODE_DEFAULTS = {"progress_bar": False}  # a node's log is no terminal: no progress bars
HEARTBEAT_S = 2.0
# A list of mappings is no ROS parameter type: these come from config_file or set:=["KEY=JSON"].
FILE_ONLY_OPTIONS: frozenset[str] = frozenset({"curriculum"})


class LearningNode(Node):
    def __init__(self) -> None:
        super().__init__("learning_node")
        self.config, self.resume = self._read_parameters()
        self.status_pub = self.create_publisher(String, LEARNING_STATUS_TOPIC, STREAM_QOS)
        self.policy_pub = self.create_publisher(String, LEARNING_POLICY_TOPIC, LATCHED_QOS)
        self.stop_event = threading.Event()
        self.failed = False
        self._last_status: dict[str, Any] = {"phase": "starting"}
        self._lock = threading.Lock()
        self.create_timer(HEARTBEAT_S, self._heartbeat)  # late subscribers still hear the phase
        self.worker = threading.Thread(target=self._run, name="pipeline", daemon=True)

    # --- parameters ---
    def _read_parameters(self) -> tuple[dict[str, Any], str | None]:
        """Declare every option with the preset's default; return (validated config, None), or
        when resuming (the overrides to resume with, the folder)."""
        preset: str = self.declare_parameter("config", "default").value
        if preset not in PRESETS:
            raise ConfigError(f"parameter 'config' must be one of {sorted(PRESETS)}, got {preset!r}")
        config_file: str = self.declare_parameter("config_file", "").value
        assignments: list[str] = list(self.declare_parameter("set", Parameter.Type.STRING_ARRAY).value or [])
        layers = [load_config_file(config_file)] if config_file else []
        layers.append(parse_assignments(assignments))
        base = merge(merge(merge(DEFAULT_CONFIG, PRESETS[preset]), NODE_DEFAULTS), combine(*layers))
        resume: str | None = self.declare_parameter("resume", "").value or None
        values: dict[str, Any] = {}
        # Dynamic typing: validate_config checks the types and names the option, so
        # `learning_rate:=1` (an int) is fine and `n_envs:=abc` gets a message, not a traceback.
        descriptor = ParameterDescriptor(dynamic_typing=True)
        for name, default in flatten(base).items():
            if name in FILE_ONLY_OPTIONS:
                values[name] = default  # from config_file / set, not a parameter of its own
                continue
            if isinstance(default, list | tuple) and not default:
                # Typed: [] has no type.
                param: Parameter[Any] = self.declare_parameter(name, Parameter.Type.STRING_ARRAY)
                values[name] = list(param.value or [])
                continue
            optional = default is None  # an unset option (None) is the empty string as a parameter
            if optional:
                default = ""
            value = self.declare_parameter(
                name, list(default) if isinstance(default, tuple) else default, descriptor
            ).value
            if optional and value == "":
                value = None
            values[name] = list(value) if isinstance(value, list | tuple) else value
        config = unflatten(values)
        if resume is None:
            return resolve_config("default", config), None
        resolve_config("default", config)  # same checks; the saved config decides the rest
        # Resuming: the options a resume may change that this launch sets (and the node's own
        # defaults); the others, a saved curriculum among them, stay as the run saved them.
        # Option by option, not group by group: `calibration.episodes` set here must not reset
        # the run's other calibration options to the preset's.
        preset_defaults = flatten(merge(DEFAULT_CONFIG, PRESETS[preset]))
        overrides = unflatten(
            {
                name: value
                for name, value in flatten(config).items()
                if name.split(".")[0] in RESUMABLE_OVERRIDES
                and (name in NODE_DEFAULTS or as_json(value) != as_json(preset_defaults.get(name)))
            }
        )
        return overrides, resume

    # --- publishing ---
    def _publish(self, publisher: Any, data: str) -> None:
        # After Ctrl-C the context is gone while the worker still saves its checkpoint.
        if self.context.ok():
            try:
                publisher.publish(String(data=data))
            except Exception as exc:  # the context went away between the check and the call
                self.get_logger().debug(f"not published: {exc}")

    def publish_status(self, state: dict[str, Any]) -> None:
        with self._lock:
            self._last_status = dict(state)
        self._publish(self.status_pub, json.dumps(state, default=str))
        if state.get("message"):
            self._log(f"[{state.get('phase')}] {state['message']}")

    def announce_policy(self, path: Path) -> None:
        self._publish(self.policy_pub, str(path))
        self._log(f"new policy: {path}")

    def _log(self, text: str) -> None:
        if self.context.ok():
            self.get_logger().info(text)
        else:  # rosout is gone after Ctrl-C; the checkpoint message still matters
            print(text, file=sys.stderr, flush=True)

    def _heartbeat(self) -> None:
        with self._lock:
            state = {k: v for k, v in self._last_status.items() if k != "message"}
        self._publish(self.status_pub, json.dumps(state, default=str))

    # --- the work ---
    def _run(self) -> None:
        from .pipeline import PipelineError, PipelineStopped, Reporter, run_pipeline
        from .ppo_finetune import TrainingInterrupted

        reporter = Reporter(on_status=self.publish_status, on_policy=self.announce_policy)
        try:
            if self.resume:
                exp_dir, _ = run_pipeline(
                    resume=self.resume,
                    resume_overrides=self.config,
                    reporter=reporter,
                    stop_event=self.stop_event,
                )
            else:
                exp_dir, _ = run_pipeline(self.config, reporter=reporter, stop_event=self.stop_event)
            self.get_logger().info(f"pipeline finished; artifacts in {exp_dir.resolve()}")
        except (ConfigError, PipelineError) as exc:
            self.failed = True
            reporter.status(phase="error", message=str(exc))
            self.get_logger().error(f"refusing to train: {exc}")
        except (TrainingInterrupted, PipelineStopped) as exc:
            reporter.status(phase="stopped", message=str(exc))
        except Exception as exc:  # keep the node alive to report what went wrong
            self.failed = True
            reporter.status(phase="error", message=f"{type(exc).__name__}: {exc}")
            self.get_logger().error(traceback.format_exc())


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    node: LearningNode | None = None
    try:
        node = LearningNode()
    except (ConfigError, ParameterException) as exc:
        rclpy.logging.get_logger("learning_node").fatal(
            f"invalid parameter: {str(exc).replace('option ', 'parameter ', 1)}"
        )
        rclpy.try_shutdown()
        sys.exit(2)
    node.worker.start()
    try:
        # Keep spinning after success: the latched /learning/policy stays available.
        while rclpy.ok() and not (node.failed and not node.worker.is_alive()):
            rclpy.spin_once(node, timeout_sec=0.2)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.stop_event.set()
        node.worker.join(timeout=60.0)
        failed = node.failed
        node.destroy_node()
        rclpy.try_shutdown()
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
