"""The robot parameters file: the simulator's physical parameters identified from a robot.

``pidog-sysid`` writes it; ``pidog-train --robot-params``, ``pidog-eval --robot-params`` and
``sim_node``'s ``robot_params`` parameter read it. YAML, no pickle::

    format: pidog_robot_params
    version: 1
    parameters:
      servo_strength: {value: 0.62, uncertainty: 0.05}   # stall torque x the model's 0.35 N·m
      servo_speed:    {value: 0.95, uncertainty: 0.05}   # max speed x 428 °/s
      latency_steps:  {value: 1,    uncertainty: 0.5}    # 20 ms control steps
      mass_scale:     {value: 1.10, uncertainty: 0.08}   # torso (base body) mass x the model's
      friction:       {value: 0.9,  uncertainty: 0.2}    # foot sliding friction coefficient
      contact_timeconst: {value: 0.01, uncertainty: 0.003}  # s, foot-floor contact softness
      imu_gyro_bias:  {value: [0.01, -0.02, 0.0], uncertainty: 0.005}   # rad/s
    fit: {...}   # optional, informative: what pidog-sysid measured (quality, correlations)

Every parameter is optional (absent: the simulator's default stays); ``uncertainty`` is one
standard deviation. ``sim_config_override`` turns it into a sim config override: nominal values
(``config["nominal"]``, used when randomisation is off) from the file, and randomisation ranges
centred on them, ``value ± RANGE_SIGMAS x uncertainty`` (clipped to the plausible bounds).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .config import CONTACT_TIMECONST_BOUNDS

FORMAT = "pidog_robot_params"
VERSION = 1
RANGE_SIGMAS = 2.0
"""Randomisation half-width, in standard deviations of the identified value."""
MIN_HALF_WIDTH: dict[str, float] = {
    "servo_strength": 0.03,
    "servo_speed": 0.03,
    "mass_scale": 0.03,
    "friction": 0.05,
    "contact_timeconst": 0.05,
    "imu_gyro_bias": 0.002,
}
"""Randomise at least this much even around a perfectly identified value (robots drift)."""

# name -> (lowest, highest) physically plausible value; also the optimiser's search box.
BOUNDS: dict[str, tuple[float, float]] = {
    "servo_strength": (0.2, 2.0),
    "servo_speed": (0.3, 2.0),
    "latency_steps": (0, 5),
    "mass_scale": (0.3, 2.5),
    "friction": (0.1, 2.0),
    "contact_timeconst": CONTACT_TIMECONST_BOUNDS,  # s
    "imu_gyro_bias": (-0.5, 0.5),
}
PARAMETERS: tuple[str, ...] = tuple(BOUNDS)


class RobotParamsError(ValueError):
    """A parameters file that cannot be used; the message names the file and the key."""


def _number(path: Path | str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RobotParamsError(f"{path}: '{key}' must be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise RobotParamsError(f"{path}: '{key}' must be finite, got {value!r}")
    return float(value)


def validate(params: Mapping[str, Any], where: Path | str = "<robot params>") -> dict[str, dict[str, Any]]:
    """``{name: {value, uncertainty}}`` checked by name; returns a clean copy."""
    if not isinstance(params, Mapping):
        raise RobotParamsError(f"{where}: 'parameters' must be a mapping, got {params!r}")
    clean: dict[str, dict[str, Any]] = {}
    for name, entry in params.items():
        if name not in BOUNDS:
            raise RobotParamsError(f"{where}: unknown parameter '{name}'; known: {sorted(BOUNDS)}")
        if not isinstance(entry, Mapping) or "value" not in entry:
            raise RobotParamsError(f"{where}: '{name}' must be a mapping with 'value' (and 'uncertainty')")
        unknown = set(entry) - {"value", "uncertainty"}
        if unknown:
            raise RobotParamsError(f"{where}: '{name}' has unknown keys {sorted(unknown)}")
        lo, hi = BOUNDS[name]
        raw = entry["value"]
        if name == "imu_gyro_bias":
            if not isinstance(raw, list | tuple) or len(raw) != 3:
                raise RobotParamsError(
                    f"{where}: '{name}.value' must be a list of 3 numbers (rad/s), got {raw!r}"
                )
            value: Any = [_number(where, f"{name}.value[{i}]", v) for i, v in enumerate(raw)]
            out_of_range = any(not lo <= v <= hi for v in value)
        else:
            value = _number(where, f"{name}.value", raw)
            if name == "latency_steps":
                if value != int(value):
                    raise RobotParamsError(
                        f"{where}: '{name}.value' must be a whole number of steps, got {raw!r}"
                    )
                value = int(value)
            out_of_range = not lo <= value <= hi
        if out_of_range:
            raise RobotParamsError(
                f"{where}: '{name}.value' = {raw!r} is outside the plausible range [{lo}, {hi}]"
            )
        unc = _number(where, f"{name}.uncertainty", entry.get("uncertainty", 0.0))
        if unc < 0:
            raise RobotParamsError(f"{where}: '{name}.uncertainty' must be >= 0, got {unc}")
        clean[name] = {"value": value, "uncertainty": unc}
    return clean


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a parameters file: ``{"parameters": {...}, "fit": {...}}``."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise RobotParamsError(f"cannot read robot parameters file {path}: {exc.strerror or exc}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RobotParamsError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(doc, Mapping):
        raise RobotParamsError(
            f"{path}: expected a mapping with 'format: {FORMAT}', got {type(doc).__name__}"
        )
    if doc.get("format") != FORMAT:
        raise RobotParamsError(f"{path}: 'format' must be {FORMAT!r}, got {doc.get('format')!r}")
    if doc.get("version") != VERSION:
        raise RobotParamsError(f"{path}: 'version' must be {VERSION}, got {doc.get('version')!r}")
    unknown = set(doc) - {"format", "version", "parameters", "fit"}
    if unknown:
        raise RobotParamsError(f"{path}: unknown keys {sorted(unknown)}")
    fit = doc.get("fit") or {}
    if not isinstance(fit, Mapping):
        raise RobotParamsError(f"{path}: 'fit' must be a mapping")
    return {"parameters": validate(doc.get("parameters") or {}, path), "fit": dict(fit)}


def save(
    path: str | os.PathLike[str], parameters: Mapping[str, Any], fit: Mapping[str, Any] | None = None
) -> Path:
    """Validate and write atomically (temp file + rename: never a half-written file)."""
    path = Path(path)
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "parameters": validate(parameters, path),
        "fit": _plain(dict(fit or {})),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(doc, f, sort_keys=False)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; this is an ordinary file to share
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _plain(obj: Any) -> Any:
    """numpy scalars/arrays -> plain YAML types."""
    if isinstance(obj, Mapping):
        return {(k if isinstance(k, int) else str(k)): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if hasattr(obj, "tolist"):
        return _plain(obj.tolist())
    return obj


def sim_config_override(params: Mapping[str, Any]) -> dict[str, Any]:
    """A partial sim config (``pidog_sim.config``): nominal values and centred ranges.

    ``params``: ``load``'s result or its ``parameters`` mapping.
    """
    params = validate(params["parameters"] if "parameters" in params else params)
    nominal: dict[str, Any] = {}
    ranges: dict[str, Any] = {}
    for name, entry in params.items():
        value, unc = entry["value"], entry["uncertainty"]
        lo, hi = BOUNDS[name]
        if name == "latency_steps":
            nominal[name] = value
            half = int(math.ceil(RANGE_SIGMAS * unc - 1e-9))
            ranges[name] = (max(0, value - half), min(int(hi), value + half))
        elif name == "imu_gyro_bias":
            nominal[name] = tuple(value)
            ranges[name] = max(RANGE_SIGMAS * unc, MIN_HALF_WIDTH[name])
        else:
            nominal[name] = value
            half = max(RANGE_SIGMAS * unc, MIN_HALF_WIDTH[name] * value)
            ranges[name] = (max(lo, value - half), min(hi, value + half))
    return {"nominal": nominal, "randomization": ranges}


def load_override(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``sim_config_override(load(path))``: what the CLIs and sim_node apply."""
    return sim_config_override(load(path)["parameters"])
