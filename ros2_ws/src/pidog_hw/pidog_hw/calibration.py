"""Per-joint servo calibration offsets: a small YAML file, loaded strictly, saved atomically.

Offsets are in SunFounder servo degrees (the unit a user sees when lining a leg up with the
calibration ruler), added to every command by ``pidog_description.servo.joint_rad_to_servo_deg``.
Like SunFounder's SDK they are limited to +-20 degrees: the tool clamps what you type, and a
file with a larger value is refused (it is a typo or a mis-assembled servo horn, not an offset).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from pidog_description.robot import JOINT_NAMES, N_JOINTS

from .errors import CalibrationError
from .latch import write_text_atomic

FORMAT = "pidog_hw/calibration-v1"
MAX_OFFSET_DEG: float = 20.0
DEFAULT_CALIBRATION_PATH: Path = Path("~/.config/pidog_hw/calibration.yaml").expanduser()


@dataclass
class Calibration:
    """Servo offsets (degrees, JOINT_NAMES order) and where they came from."""

    offsets_deg: np.ndarray = field(default_factory=lambda: np.zeros(N_JOINTS))
    source: str = "none (all offsets zero)"

    def offset(self, joint: str) -> float:
        return float(self.offsets_deg[_joint_index(joint)])

    def with_offset(self, joint: str, value_deg: float) -> tuple[Calibration, bool]:
        """A copy with one offset set, clamped to +-MAX_OFFSET_DEG; also says if it was clamped."""
        value = _finite(joint, value_deg)
        clamped = float(np.clip(value, -MAX_OFFSET_DEG, MAX_OFFSET_DEG))
        offsets = self.offsets_deg.copy()
        offsets[_joint_index(joint)] = clamped
        return Calibration(offsets, self.source), clamped != value

    def as_dict(self) -> dict[str, float]:
        return {name: round(float(v), 3) for name, v in zip(JOINT_NAMES, self.offsets_deg, strict=True)}


def _joint_index(joint: str) -> int:
    try:
        return JOINT_NAMES.index(joint)
    except ValueError:
        raise CalibrationError(f"unknown joint {joint!r}; expected one of {list(JOINT_NAMES)}") from None


def _finite(joint: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CalibrationError(f"offset for {joint} must be a number of degrees, got {value!r}")
    if not math.isfinite(float(value)):
        raise CalibrationError(f"offset for {joint} must be finite, got {value!r}")
    return float(value)


def calibration_from_mapping(data: object, source: str) -> Calibration:
    """Validate parsed YAML. Every joint must be present, numeric, finite and within +-20 deg."""
    if not isinstance(data, dict):
        raise CalibrationError(
            f"{source}: expected a mapping with 'format' and 'offsets_deg', got {type(data).__name__}"
        )
    if data.get("format") != FORMAT:
        raise CalibrationError(f"{source}: 'format' must be {FORMAT!r}, got {data.get('format')!r}")
    offsets = data.get("offsets_deg")
    if not isinstance(offsets, dict):
        raise CalibrationError(f"{source}: 'offsets_deg' must map joint names to degrees")
    unknown = sorted(set(offsets) - set(JOINT_NAMES))
    if unknown:
        raise CalibrationError(f"{source}: unknown joints {unknown}; expected {list(JOINT_NAMES)}")
    missing = [name for name in JOINT_NAMES if name not in offsets]
    if missing:
        raise CalibrationError(f"{source}: offsets_deg lacks joints {missing}")
    values = np.array([_finite(name, offsets[name]) for name in JOINT_NAMES])
    too_big = [f"{n}={v:g}" for n, v in zip(JOINT_NAMES, values, strict=True) if abs(v) > MAX_OFFSET_DEG]
    if too_big:
        raise CalibrationError(
            f"{source}: offsets beyond +-{MAX_OFFSET_DEG:g} deg: {', '.join(too_big)} "
            "(re-seat the servo horn instead of calibrating that far)"
        )
    return Calibration(values, source)


def load_calibration(path: str | os.PathLike[str]) -> Calibration:
    path = Path(path).expanduser()
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise CalibrationError(
            f"calibration file {path} does not exist (create it with pidog-calibrate)"
        ) from None
    except OSError as exc:  # a directory, no permission, an I/O error: say which file
        raise CalibrationError(f"cannot read calibration file {path}: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CalibrationError(f"{path}: not valid YAML: {exc}") from exc
    return calibration_from_mapping(data, str(path))


def save_calibration(calibration: Calibration, path: str | os.PathLike[str]) -> Path:
    """Write atomically (temp file in the same folder, fsync, rename): never a half-written file."""
    path = Path(path).expanduser()
    document = {
        "format": FORMAT,
        "units": "servo degrees (SunFounder convention)",
        "offsets_deg": calibration.as_dict(),
    }
    text = "# PiDog servo calibration written by pidog-calibrate\n" + yaml.safe_dump(
        document, sort_keys=False
    )
    write_text_atomic(path, text)
    return path


def resolve_calibration(parameter_value: str) -> tuple[Calibration, str | None]:
    """The node's rule: an explicit file must load; with none given, use the default path if
    it exists, else zero offsets and a warning text for the caller to log."""
    if parameter_value:
        return load_calibration(parameter_value), None
    if DEFAULT_CALIBRATION_PATH.exists():
        return load_calibration(DEFAULT_CALIBRATION_PATH), None
    return Calibration(), (
        f"no calibration file given and {DEFAULT_CALIBRATION_PATH} does not exist: all servo offsets are zero "
        "(run pidog-calibrate)"
    )
