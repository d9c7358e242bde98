"""Maestro backend over a real pseudo-terminal against the protocol emulator, faults included."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import numpy as np
import pytest

from pidog_hw.calibration import Calibration
from pidog_hw.emulation import MaestroEmulator
from pidog_hw.errors import DeviceNotFoundError, DisconnectedError, SerialProtocolError, SerialTimeoutError
from pidog_hw.maestro import MaestroServos

DEG = math.pi / 180


@pytest.fixture
def servos(maestro: MaestroEmulator) -> Iterator[MaestroServos]:
    backend = MaestroServos(maestro.port, Calibration(), timeout_s=0.05)
    backend.open()
    yield backend
    backend.close()


def sent_after(maestro: MaestroEmulator, mark: int, timeout: float = 1.0, length: int | None = None) -> bytes:
    """Bytes the emulator received after ``mark``, waiting until ``length`` arrived."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and length is not None and len(maestro.received) - mark < length:
        time.sleep(0.005)
    return bytes(maestro.received[mark:])


def test_open_sets_speed_limit_and_clears_errors(maestro: MaestroEmulator, servos: MaestroServos) -> None:
    data = sent_after(maestro, 0, length=1 + 8 * 8)
    assert data[0] == 0xA1  # Get Errors first: proves a Maestro is there
    # 428 deg/s over 2000 us per 180 deg = 4756 us/s = 190.2 quarter-us per 10 ms, rounded up.
    for ch in range(8):
        assert bytes([0x87, ch, 191 & 0x7F, 191 >> 7]) in data
        assert bytes([0x89, ch, 0, 0]) in data
    assert [c["speed"] for c in maestro.commands("set_speed")] == [191] * 8


def test_set_multiple_targets_bytes(maestro: MaestroEmulator, servos: MaestroServos) -> None:
    sent_after(maestro, 0, length=65)
    mark = len(maestro.received)
    q = np.zeros(8)
    q[0] = 30 * DEG  # lf_hip: servo +30 deg -> 1833.33 us -> 7333 quarter-us = 0x39 << 7 | 0x25
    q[2] = 30 * DEG  # rf_hip: mirrored, servo -30 deg -> 1166.67 us -> 4667 = 0x24 << 7 | 0x3B
    servos.write_targets(q)
    zero = [0x70, 0x2E]  # 1500 us -> 6000 quarter-us = 0x2E << 7 | 0x70
    expected = bytes([0x9F, 8, 0, 0x25, 0x39, *zero, 0x3B, 0x24, *zero, *zero, *zero, *zero, *zero])
    assert sent_after(maestro, mark, length=len(expected)) == expected


def test_non_consecutive_channels_use_set_target(maestro: MaestroEmulator) -> None:
    channels = (0, 1, 2, 3, 6, 7, 8, 9)
    servos = MaestroServos(maestro.port, Calibration(), channels=channels)
    servos.open()
    try:
        mark = len(sent_after(maestro, 0, length=65))
        servos.write_targets(np.zeros(8))
        expected = b"".join(bytes([0x84, ch, 0x70, 0x2E]) for ch in channels)
        assert sent_after(maestro, mark, length=len(expected)) == expected
    finally:
        servos.close()


def test_get_position_feedback_follows_the_speed_limit(
    maestro: MaestroEmulator, servos: MaestroServos
) -> None:
    servos.write_targets(np.zeros(8))  # from "off" the first target takes effect at once
    assert np.allclose(servos.read_positions(), 0.0, atol=0.2 * DEG)
    target = np.zeros(8)
    target[0] = 80 * DEG  # ~190 ms at 428 deg/s
    servos.write_targets(target)
    seen = []
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        seen.append(servos.read_positions()[0])
        if abs(seen[-1] - target[0]) < 0.2 * DEG:
            break
    assert abs(seen[-1] - target[0]) < 0.2 * DEG, "the servo never reached its target"
    assert any(0.05 < s < target[0] - 0.05 for s in seen), f"no intermediate position seen: {seen}"
    assert all(b >= a - 1e-9 for a, b in zip(seen, seen[1:], strict=False)), "position went backwards"


def test_calibration_offsets_apply_both_ways(maestro: MaestroEmulator) -> None:
    calibration, _ = Calibration().with_offset("rf_knee", 4.5)
    servos = MaestroServos(maestro.port, calibration)
    servos.open()
    try:
        servos.write_targets(np.zeros(8))
        assert np.allclose(servos.read_positions(), 0.0, atol=0.05 * DEG)  # a round trip: all bytes parsed
        assert maestro.position_us(3) == pytest.approx(1500.0 + 4.5 * 2000 / 180, abs=0.3)  # rf_knee on ch 3
    finally:
        servos.close()


def test_limp_stops_pulses_and_reports_no_position(maestro: MaestroEmulator, servos: MaestroServos) -> None:
    servos.write_targets(np.zeros(8))
    servos.stop_pulses()
    assert np.isnan(servos.read_positions()).all()
    assert maestro.commands("set_multiple_targets")[-1]["targets"] == [0] * 8


def test_error_bits_are_decoded_and_cleared(maestro: MaestroEmulator, servos: MaestroServos) -> None:
    maestro.set_error_bits(0b1_0000_0010)
    assert servos.poll_device_errors() == ["serial_overrun_error", "script_program_counter_error"]
    assert servos.poll_device_errors() == []
    assert servos.device_errors_seen == {"serial_overrun_error": 1, "script_program_counter_error": 1}


def test_channel_the_device_lacks_shows_as_protocol_error(maestro: MaestroEmulator) -> None:
    servos = MaestroServos(
        maestro.port, Calibration(), channels=(0, 1, 2, 3, 4, 5, 6, 16)
    )  # a 12-channel Maestro
    servos.open()
    try:
        servos.write_targets(np.zeros(8))
        assert servos.poll_device_errors() == ["serial_protocol_error"]
    finally:
        servos.close()


def test_garbage_bytes_are_reported_and_discarded(maestro: MaestroEmulator, servos: MaestroServos) -> None:
    servos.write_targets(np.zeros(8))
    maestro.send_garbage(b"\x13\x37\xff")
    time.sleep(0.05)
    with pytest.raises(SerialProtocolError, match="3 unexpected bytes.*13 37 ff"):
        servos.read_positions()
    assert servos.counters["unsolicited_bytes"] == 3
    assert np.allclose(servos.read_positions(), 0.0, atol=0.2 * DEG)  # back in step


def test_short_reply_is_a_timeout(maestro: MaestroEmulator, servos: MaestroServos) -> None:
    servos.write_targets(np.zeros(8))
    maestro.truncate_replies(1)
    with pytest.raises(SerialTimeoutError, match="15 of 16 bytes"):
        servos.read_positions()
    assert np.allclose(servos.read_positions(), 0.0, atol=0.2 * DEG)


def test_silent_device_is_a_timeout(maestro: MaestroEmulator, servos: MaestroServos) -> None:
    maestro.drop_replies(1)
    with pytest.raises(SerialTimeoutError, match="Get Errors answered 0 of 2 bytes"):
        servos.poll_device_errors()
    assert servos.counters["timeouts"] == 1
    assert servos.poll_device_errors() == []


def test_corrupted_replies_are_refused(maestro: MaestroEmulator, servos: MaestroServos) -> None:
    servos.write_targets(np.zeros(8))
    maestro.corrupt_replies(1)
    with pytest.raises(SerialProtocolError, match="impossible pulse widths"):
        servos.read_positions()
    maestro.corrupt_replies(1)
    with pytest.raises(SerialProtocolError, match="undefined bits 0xFFFF"):
        servos.poll_device_errors()


def test_unplug_is_detected_and_reconnect_needs_the_device(
    maestro: MaestroEmulator, servos: MaestroServos
) -> None:
    servos.write_targets(np.zeros(8))
    maestro.unplug()
    with pytest.raises(DisconnectedError, match="disconnected during set targets"):
        servos.write_targets(np.zeros(8))
    assert servos.counters["disconnects"] == 1
    with pytest.raises(DisconnectedError, match="not open"):
        servos.read_positions()
    with pytest.raises(DeviceNotFoundError, match="cannot open Maestro serial port"):
        servos.reconnect()
    speeds_before = len(maestro.commands("set_speed"))
    maestro.replug()  # re-enumerated behind the same symlink, freshly powered
    servos.reconnect()
    end = time.monotonic() + 1.0  # the emulator thread parses asynchronously
    while len(maestro.commands("set_speed")) < speeds_before + 8 and time.monotonic() < end:
        time.sleep(0.005)
    assert len(maestro.commands("set_speed")) == speeds_before + 8  # set-up sent again to the new device
    servos.write_targets(np.zeros(8))
    assert np.allclose(servos.read_positions(), 0.0, atol=0.2 * DEG)


def test_open_refuses_missing_port_and_silent_device(tmp_path, maestro: MaestroEmulator) -> None:
    with pytest.raises(DeviceNotFoundError, match="cannot open Maestro serial port"):
        MaestroServos(str(tmp_path / "nothing"), Calibration()).open()
    silent = MaestroEmulator()  # a pty nobody answers on
    try:
        with pytest.raises(DeviceNotFoundError, match="no Maestro answered"):
            MaestroServos(silent.port, Calibration(), timeout_s=0.05).open()
    finally:
        silent.close()


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.full(8, np.nan), "not finite"),
        (np.r_[np.zeros(7), 2.0], r"outside the joint limits: rh_knee=2\.000"),
        (np.zeros(7), "shape"),
    ],
)
def test_bad_targets_are_refused_before_any_byte(
    maestro: MaestroEmulator, servos: MaestroServos, bad: np.ndarray, message: str
) -> None:
    mark = len(sent_after(maestro, 0, length=65))
    with pytest.raises(ValueError, match=message):
        servos.write_targets(bad)
    # A valid write after it, as a marker: the pty is a FIFO, so any byte of the refused write
    # would arrive before the marker's. Waiting for the marker makes "nothing" a fact, not a
    # guess about how long the emulator thread takes on a loaded machine.
    servos.write_targets(np.zeros(8))
    marker = 3 + 2 * 8  # Set Multiple Targets: 0x9F, count, first channel, 8 x 2 bytes
    data = sent_after(maestro, mark, timeout=10.0, length=marker)
    assert data[0] == 0x9F and len(data) == marker, data.hex(" ")
