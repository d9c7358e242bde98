"""Fixtures for the hardware tests: device emulators (pty Maestro, register-level I2C)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pidog_hw.emulation import EmulatedI2CBus, MaestroEmulator, RobotHatMcu, Sh3001Emulator


@pytest.fixture
def maestro(tmp_path: Path) -> Iterator[MaestroEmulator]:
    """A Maestro emulator on a real pty, reachable through a by-id style symlink."""
    emulator = MaestroEmulator(link_path=tmp_path / "ttyMaestro", log_path=tmp_path / "maestro.jsonl").start()
    yield emulator
    emulator.close()


@pytest.fixture
def pidog_bus() -> Iterator[EmulatedI2CBus]:
    """Emulated I2C bus 1: Robot HAT MCU at 0x14, SH3001 at 0x36 (noise-free)."""
    bus = EmulatedI2CBus()
    bus.attach(0x14, RobotHatMcu())
    bus.attach(0x36, Sh3001Emulator())
    yield bus
    bus.close()
