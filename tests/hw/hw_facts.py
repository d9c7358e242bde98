"""SunFounder facts and log helpers the hardware tests check against (DESIGN.md §6).

Written out here on purpose rather than imported from the package, so a wrong constant in the
package cannot make its own test pass.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

LEG_CHANNELS = [
    2,
    3,
    7,
    8,
    0,
    1,
    10,
    11,
]  # lf_hip, lf_knee, rf_hip, rf_knee, lh_hip, lh_knee, rh_hip, rh_knee
SIGNS = [1, 1, -1, -1, 1, 1, -1, -1]  # right legs mirrored
TICK_US = 351 / 72.0  # one timer tick at prescaler register 350 on the 72 MHz MCU


def expected_pulse_us(joint_deg: list[float], offsets_deg: list[float] | None = None) -> np.ndarray:
    """Pulse width (us) per joint: servo deg = sign * joint deg + offset; 500..2500 us over -90..90."""
    offsets = offsets_deg or [0.0] * 8
    servo = [s * d + o for s, d, o in zip(SIGNS, joint_deg, offsets, strict=True)]
    return np.array([1500.0 + v * 2000.0 / 180.0 for v in servo])


def read_jsonl(path: Path) -> list[dict]:
    """Entries of a log another process is still appending to.

    Only newline-terminated lines count: the writer may be mid-line when we read (CI once
    caught a half-written entry), and that entry is complete on the next read.
    """
    if not path.exists():
        return []
    text = path.read_text()
    complete = text[: text.rfind("\n") + 1]
    return [json.loads(line) for line in complete.splitlines() if line.strip()]
