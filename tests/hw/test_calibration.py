"""Calibration file, the pidog-calibrate tool (non-interactive and keyboard on a real pty),
and the safe stand-up / lie-down sequences."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from hw_facts import LEG_CHANNELS, TICK_US, expected_pulse_us, read_jsonl

from pidog_description.kinematics import LIE_POSE, STAND_POSE
from pidog_description.robot import SERVO_MAX_SPEED
from pidog_hw.calibrate import build_parser, run
from pidog_hw.calibration import Calibration, load_calibration, save_calibration
from pidog_hw.errors import CalibrationError
from pidog_hw.sequences import SEQUENCE_SPEED, lie_down, stand_up

GOOD = {
    "lf_hip": 1.5,
    "lf_knee": -2.0,
    "rf_hip": 0.0,
    "rf_knee": 20.0,
    "lh_hip": 0,
    "lh_knee": 0,
    "rh_hip": -20,
    "rh_knee": 3,
}


def write_yaml(path: Path, offsets: dict, fmt: str = "pidog_hw/calibration-v1") -> Path:
    path.write_text(yaml.safe_dump({"format": fmt, "offsets_deg": offsets}))
    return path


def test_save_and_load_round_trip_atomically(tmp_path: Path) -> None:
    calibration = Calibration(np.array(list(GOOD.values()), dtype=float))
    path = save_calibration(calibration, tmp_path / "sub" / "cal.yaml")
    assert load_calibration(path).as_dict() == {k: float(v) for k, v in GOOD.items()}
    assert sorted(p.name for p in path.parent.iterdir()) == ["cal.yaml"]  # no temp file left behind


@pytest.mark.parametrize(
    ("offsets", "message"),
    [
        ({**GOOD, "rf_knee": 20.5}, r"beyond \+-20 deg: rf_knee=20.5"),
        ({k: v for k, v in GOOD.items() if k != "lh_knee"}, r"lacks joints \['lh_knee'\]"),
        ({**GOOD, "tail": 1.0}, r"unknown joints \['tail'\]"),
        ({**GOOD, "lf_hip": "two"}, "offset for lf_hip must be a number"),
        ({**GOOD, "lf_hip": float("nan")}, "offset for lf_hip must be finite"),
    ],
)
def test_bad_files_are_refused_naming_the_problem(tmp_path: Path, offsets: dict, message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        load_calibration(write_yaml(tmp_path / "cal.yaml", offsets))


def test_bad_format_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="'format' must be"):
        load_calibration(write_yaml(tmp_path / "a.yaml", GOOD, fmt="sunfounder"))
    (tmp_path / "b.yaml").write_text("offsets_deg: [1, 2\n")
    with pytest.raises(CalibrationError, match="not valid YAML"):
        load_calibration(tmp_path / "b.yaml")
    with pytest.raises(CalibrationError, match="does not exist"):
        load_calibration(tmp_path / "none.yaml")


def cli(tmp_path: Path, *argv: str) -> str:
    out = io.StringIO()
    args = build_parser().parse_args(["--file", str(tmp_path / "cal.yaml"), *argv])
    assert run(args, out) == 0
    return out.getvalue()


def test_cli_set_clamps_saves_and_applies(tmp_path: Path) -> None:
    log = tmp_path / "i2c.jsonl"
    text = cli(
        tmp_path,
        "--i2c-bus",
        "emulated",
        "--emulator-log",
        str(log),
        "set",
        "lf_knee=2.5",
        "rh_hip=-31",
        "--apply",
    )
    assert "rh_hip: -31 deg clamped to -20" in text
    saved = load_calibration(tmp_path / "cal.yaml")
    assert saved.offset("lf_knee") == 2.5 and saved.offset("rh_hip") == -20.0
    last = {e["channel"]: e["pulse_us"] for e in read_jsonl(log) if "channel" in e}
    got = np.array([last[ch] for ch in LEG_CHANNELS])
    want = expected_pulse_us([0] * 8, [0, 2.5, 0, 0, 0, 0, -20, 0])  # calibration pose: all joints 0
    assert np.abs(got - want).max() <= TICK_US / 2 + 1e-6


def test_cli_set_refuses_unknown_joint_and_bad_value(tmp_path: Path) -> None:
    for assignment, message in (
        ("tail=3", "unknown joint 'tail'"),
        ("lf_hip=abc", "must be a number"),
        ("lf_hip", "JOINT="),
    ):
        with pytest.raises(CalibrationError, match=message):
            cli(tmp_path, "set", assignment)
    assert not (tmp_path / "cal.yaml").exists()


def test_cli_stand_and_lie_on_the_emulated_hat(tmp_path: Path) -> None:
    log = tmp_path / "i2c.jsonl"
    cli(tmp_path, "--i2c-bus", "emulated", "--emulator-log", str(log), "stand")
    writes = [e for e in read_jsonl(log) if "channel" in e]
    first = {e["channel"]: e["pulse_us"] for e in writes[:8]}
    last = {e["channel"]: e["pulse_us"] for e in writes}
    lie_deg, stand_deg = np.rad2deg(LIE_POSE).tolist(), np.rad2deg(STAND_POSE).tolist()
    assert np.abs(np.array([first[c] for c in LEG_CHANNELS]) - expected_pulse_us(lie_deg)).max() < TICK_US
    assert np.abs(np.array([last[c] for c in LEG_CHANNELS]) - expected_pulse_us(stand_deg)).max() < TICK_US
    log.unlink()
    cli(tmp_path, "--i2c-bus", "emulated", "--emulator-log", str(log), "lie")
    writes = [e for e in read_jsonl(log) if "channel" in e]
    assert [e["pulse_us"] for e in writes[-8:]] == [0.0] * 8  # pulses stopped at the end
    held = {e["channel"]: e["pulse_us"] for e in writes[-16:-8]}
    assert np.abs(np.array([held[c] for c in LEG_CHANNELS]) - expected_pulse_us(lie_deg)).max() < TICK_US


def test_sequences_are_slow_and_end_where_they_should() -> None:
    dt = 0.02
    up = np.array(stand_up(LIE_POSE, dt))
    assert np.allclose(up[0], LIE_POSE) and np.allclose(up[-1], STAND_POSE)
    assert np.abs(np.diff(up, axis=0)).max() <= SEQUENCE_SPEED * dt + 1e-12
    assert SEQUENCE_SPEED < SERVO_MAX_SPEED / 4
    down = np.array(lie_down(STAND_POSE, dt))
    assert (
        np.allclose(down[-1], LIE_POSE) and np.abs(np.diff(down, axis=0)).max() <= SEQUENCE_SPEED * dt + 1e-12
    )


def read_until(fd: int, needle: str, timeout: float = 10.0) -> str:
    text, end = "", time.monotonic() + timeout
    while needle not in text and time.monotonic() < end:
        if select.select([fd], [], [], 0.1)[0]:
            try:
                text += os.read(fd, 4096).decode(errors="replace")
            except OSError:
                break
    assert needle in text, f"{needle!r} not seen in:\n{text}"
    return text


def test_interactive_keyboard_mode_on_a_real_terminal(tmp_path: Path) -> None:
    cal, log = tmp_path / "cal.yaml", tmp_path / "i2c.jsonl"
    master, slave = pty.openpty()
    cmd = [sys.executable, "-m", "pidog_hw.calibrate", "--file", str(cal), "--i2c-bus", "emulated"]
    proc = subprocess.Popen(
        [*cmd, "--emulator-log", str(log), "interactive"], stdin=slave, stdout=slave, stderr=slave
    )
    os.close(slave)
    try:
        read_until(master, "Robot on its stand?")
        os.write(master, b"y")
        read_until(master, "[1] lf_hip")
        os.write(master, b"2")  # lf_knee
        read_until(master, "[2] lf_knee")
        for key in (b"w", b"w", b"w", b"W"):  # +0.5 x3, +2
            os.write(master, key)
        read_until(master, "+3.5 deg  [unsaved]")
        os.write(master, b"x")
        read_until(master, "saved")
        os.write(master, b"s")  # an unsaved change, then quit and discard it
        read_until(master, "+3.0 deg  [unsaved]")
        os.write(master, b"q")
        read_until(master, "q again to discard")
        os.write(master, b"q")
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert load_calibration(cal).offset("lf_knee") == 3.5
    writes = [e for e in read_jsonl(log) if e.get("channel") == 3]
    assert writes[-1]["pulse_us"] == 0.0  # pulses stopped on exit
    shown = [e["pulse_us"] for e in writes if e["pulse_us"] > 0]
    assert abs(shown[-2] - expected_pulse_us([0] * 8, [0, 3.5] + [0] * 6)[1]) < TICK_US  # what was saved
    assert (
        abs(shown[-1] - expected_pulse_us([0] * 8, [0, 3.0] + [0] * 6)[1]) < TICK_US
    )  # live, then discarded


def test_interactive_mode_needs_a_terminal(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pidog_hw.calibrate", "--file", str(tmp_path / "c.yaml"), "interactive"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "interactive mode needs a terminal" in result.stderr
