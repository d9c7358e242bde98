"""Drive the emulated devices of another process through a JSON file. TEST/DEMO ONLY.

Tests run ``hw_node`` as its own process, so its emulated bus lives in that process. To make
the physical world change under it (the pack discharges, the MCU browns out, someone lifts the
robot), a test writes a small JSON file with ``write_control``; the bus polls the file (a stat
every ``POLL_S``) and applies each new version once:

``{"seq": 3, "battery_v": 6.1, "mcu_reset_boot_s": 0.3, "imu_specific_force": [0, 0, 0],
"imu_rate": [0, 0, 0], "bus_stall_s": 1.5}`` - every key but ``seq`` optional; ``mcu_reset_boot_s``
resets the Robot HAT MCU (``RobotHatMcu.reset``) once per version that carries it;
``bus_stall_s`` holds the transaction that reads the version for that long before it answers (a
slave stretching the clock, a hung bus: the caller is blocked in the call). A device with an
``apply_control(command)`` method (the twin's, ``twin.py``) is handed every new version too.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

POLL_S = 0.02
ROBOT_HAT_ADDRESS, SH3001_ADDRESS = 0x14, 0x36


class EmulatorControl:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._next_poll = 0.0
        self._seq: int | None = None

    def poll(self, devices: dict[int, Any]) -> float:
        """Apply a new version of the file, if there is one; returns how long the transaction
        that polled must stall (``bus_stall_s``, else 0)."""
        now = time.monotonic()
        if now < self._next_poll:
            return 0.0
        self._next_poll = now + POLL_S
        try:
            command = json.loads(self.path.read_text())
        except FileNotFoundError:
            return 0.0
        if command.get("seq") == self._seq:
            return 0.0
        self._seq = command.get("seq")
        mcu, imu = devices.get(ROBOT_HAT_ADDRESS), devices.get(SH3001_ADDRESS)
        if "battery_v" in command and mcu is not None:
            mcu.battery_v = float(command["battery_v"])
        if "mcu_reset_boot_s" in command and mcu is not None:
            mcu.reset(float(command["mcu_reset_boot_s"]))
        if imu is not None and ("imu_specific_force" in command or "imu_rate" in command):
            imu.set_motion(
                command.get("imu_specific_force", imu.specific_force_body.tolist()),
                command.get("imu_rate", imu.rate_body.tolist()),
            )
        device: Any
        for device in (mcu, imu):
            # Devices with more to change (the twin's servo wiring, twin.py) take the rest.
            if hasattr(device, "apply_control"):
                device.apply_control(command)
        return float(command.get("bus_stall_s", 0.0))


def write_control(path: str | os.PathLike[str], **changes: Any) -> None:
    """Apply ``changes`` (keys as in the module docstring) to the emulator watching ``path``:
    a new ``seq``, written atomically so the emulator never reads half a file."""
    path = Path(path)
    try:
        seq = json.loads(path.read_text()).get("seq", 0) + 1
    except FileNotFoundError:
        seq = 1
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"seq": seq, **changes}))
    os.replace(tmp, path)
