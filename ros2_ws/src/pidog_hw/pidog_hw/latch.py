"""The e-stop latch on disk: an e-stop outlives the hw_node process that received it.

``/estop`` messages vanish with their publisher (``ros2 topic pub --once`` exits at once), so
the node persists a latched e-stop in a small JSON file and reads it at start: a restarted
``hw_node`` comes up e-stopped, without a pulse, until an operator calls ``~/reset``. Written
atomically (temp file in the same folder, fsync, rename): a power cut mid-write leaves the old
file or the new one, never half a file. A file that cannot be read counts as latched.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

DEFAULT_STATE_PATH = Path("~/.local/state/pidog_hw/latch.json").expanduser()
FORMAT = "pidog_hw/latch-v1"


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class EstopLatch:
    """The persisted e-stop: ``reason`` is None when released. ``path`` None = not persisted."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.reason: str | None = None
        self.load_note = ""
        if path is not None and path.exists():
            try:
                data = json.loads(path.read_text())
                if data.get("format") != FORMAT:
                    raise ValueError(f"format is {data.get('format')!r}, expected {FORMAT!r}")
                self.reason = data.get("estop") or None
            except (OSError, ValueError) as exc:
                # Unreadable: assume the worst, the operator resets (and the file is rewritten).
                self.reason = f"state file {path} unreadable ({exc}): treated as e-stopped"
            if self.reason:
                self.load_note = f"e-stop latched before this start ({self.reason}), read from {path}"

    @property
    def active(self) -> bool:
        return self.reason is not None

    def set(self, reason: str) -> None:
        """Latch (in memory first: the robot stops even if the file cannot be written)."""
        self.reason = reason
        self._write(reason)

    def clear(self) -> None:
        """Release (on disk first: if that fails, the e-stop stays latched)."""
        self._write(None)
        self.reason = None

    def _write(self, reason: str | None) -> None:
        if self.path is None:
            return
        payload = {"format": FORMAT, "estop": reason, "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        write_text_atomic(self.path, json.dumps(payload) + "\n")
