"""A Pololu Maestro on the far end of a real pseudo-terminal. TEST/DEMO ONLY.

A thread reads the pty master byte by byte and parses the compact protocol the way the Maestro
user's guide describes it: a byte with the top bit set starts a command, data bytes carry
7 bits, a command byte arriving where data was expected (or an unknown command, or a channel
the device does not have) sets the "serial protocol error" bit and the bytes are dropped.
Targets are clamped to the channel range, positions move toward targets at the Set Speed limit
((0.25 us)/(10 ms), 0 = unlimited; a channel leaving the "off" state jumps), and Get Position /
Get Errors answer little-endian. Acceleration is recorded but not modelled.

Faults to inject: unsolicited garbage, dropped, truncated or corrupted replies, error bits,
and unplugging (the pty is closed and, with ``link_path``, the by-id style symlink removed;
``replug`` makes a fresh pty behind the same link, like a re-enumerated USB device).
"""

from __future__ import annotations

import json
import os
import select
import struct
import threading
import time
import tty
from pathlib import Path
from typing import Any

SET_TARGET, SET_SPEED, SET_ACCELERATION = 0x84, 0x87, 0x89
GET_POSITION, GET_MOVING_STATE, SET_MULTIPLE_TARGETS = 0x90, 0x93, 0x9F
GET_ERRORS, GO_HOME = 0xA1, 0xA2
DATA_BYTES = {
    SET_TARGET: 3,
    SET_SPEED: 3,
    SET_ACCELERATION: 3,
    GET_POSITION: 1,
    GET_MOVING_STATE: 0,
    GET_ERRORS: 0,
    GO_HOME: 0,
}
PROTOCOL_ERROR_BIT = 1 << 4


class MaestroEmulator:
    def __init__(
        self,
        n_channels: int = 12,
        min_us: float = 500.0,
        max_us: float = 2500.0,
        link_path: str | os.PathLike[str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.n_channels = n_channels
        self.min_q, self.max_q = int(min_us * 4), int(max_us * 4)
        self.link_path = Path(link_path) if link_path else None
        self._log_file = open(Path(log_path), "a", buffering=1) if log_path else None  # noqa: SIM115 - closed in close()
        self.log: list[dict[str, Any]] = []
        self.received = bytearray()  # every byte that arrived, for byte-exact checks
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._reset_device()
        self._open_pty()

    # --- device state --------------------------------------------------------------------
    def _reset_device(self) -> None:
        self.targets = [0] * self.n_channels
        self.positions = [0.0] * self.n_channels
        self.speeds = [0] * self.n_channels
        self.accelerations = [0] * self.n_channels
        self.error_word = 0
        self._cmd: int | None = None
        self._data: list[int] = []
        self._last_update = time.monotonic()
        self._drop = self._truncate = self._corrupt = 0

    def _open_pty(self) -> None:
        self.master_fd, self._slave_fd = os.openpty()
        tty.setraw(self._slave_fd)  # no echo or line discipline before the client configures it
        self.tty_name = os.ttyname(self._slave_fd)
        if self.link_path is not None:
            self.link_path.unlink(missing_ok=True)
            self.link_path.symlink_to(self.tty_name)
        self.plugged = True

    @property
    def port(self) -> str:
        """The path a client opens: the symlink if there is one, else the pty itself."""
        return str(self.link_path) if self.link_path is not None else self.tty_name

    def start(self) -> MaestroEmulator:
        self._running = True
        self._thread = threading.Thread(target=self._serve, name="maestro-emulator", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        while self._running:
            try:
                ready, _, _ = select.select([self.master_fd], [], [], 0.01)
                chunk = os.read(self.master_fd, 1024) if ready else b""
            except OSError:
                break  # unplugged (fd closed under us)
            with self._lock:
                self._advance()
                for byte in chunk:
                    self.received.append(byte)
                    self._feed(byte)

    # --- protocol -------------------------------------------------------------------------
    def _protocol_error(self, why: str) -> None:
        self.error_word |= PROTOCOL_ERROR_BIT
        self._record({"event": "protocol_error", "why": why})

    def _feed(self, byte: int) -> None:
        if byte & 0x80:
            if self._cmd is not None:
                self._protocol_error(f"command 0x{byte:02X} arrived inside command 0x{self._cmd:02X}")
            self._cmd, self._data = None, []
            if byte != SET_MULTIPLE_TARGETS and byte not in DATA_BYTES:
                self._protocol_error(f"unknown command byte 0x{byte:02X}")
                return
            self._cmd = byte
        elif self._cmd is None:
            self._protocol_error(f"data byte 0x{byte:02X} without a command")
            return
        else:
            self._data.append(byte)
        needed = DATA_BYTES.get(self._cmd)
        if needed is None:  # Set Multiple Targets: count, first channel, 2 bytes per target
            needed = 2 + 2 * self._data[0] if self._data else 1
        if len(self._data) >= needed:
            cmd, data = self._cmd, self._data
            self._cmd, self._data = None, []
            self._execute(cmd, data)

    def _channel_ok(self, channel: int, cmd: int) -> bool:
        if channel >= self.n_channels:
            self._protocol_error(
                f"command 0x{cmd:02X} for channel {channel}; this Maestro has {self.n_channels}"
            )
            return False
        return True

    def _execute(self, cmd: int, data: list[int]) -> None:
        if cmd == SET_MULTIPLE_TARGETS:
            count, first = data[0], data[1]
            values = [data[2 + 2 * i] | data[3 + 2 * i] << 7 for i in range(count)]
            if count and self._channel_ok(first + count - 1, cmd):
                for i, value in enumerate(values):
                    self._set_target(first + i, value)
                self._record({"cmd": "set_multiple_targets", "first": first, "targets": values})
        elif cmd in (SET_TARGET, SET_SPEED, SET_ACCELERATION):
            channel, value = data[0], data[1] | data[2] << 7
            if not self._channel_ok(channel, cmd):
                return
            if cmd == SET_TARGET:
                self._set_target(channel, value)
                self._record({"cmd": "set_target", "channel": channel, "target": value})
            elif cmd == SET_SPEED:
                self.speeds[channel] = value
                self._record({"cmd": "set_speed", "channel": channel, "speed": value})
            else:
                self.accelerations[channel] = value
                self._record({"cmd": "set_acceleration", "channel": channel, "acceleration": value})
        elif cmd == GET_POSITION:
            if self._channel_ok(data[0], cmd):
                self._reply(struct.pack("<H", int(round(self.positions[data[0]]))))
        elif cmd == GET_MOVING_STATE:
            moving = any(self.positions[c] != self.targets[c] for c in range(self.n_channels))
            self._reply(bytes([int(moving)]))
        elif cmd == GET_ERRORS:
            word, self.error_word = self.error_word, 0
            self._record({"cmd": "get_errors", "word": word})
            self._reply(struct.pack("<H", word))
        elif cmd == GO_HOME:
            for channel in range(self.n_channels):
                self._set_target(channel, 0)
            self._record({"cmd": "go_home"})

    def _set_target(self, channel: int, value: int) -> None:
        if value != 0:
            value = min(max(value, self.min_q), self.max_q)  # the channel's configured range
            if self.targets[channel] == 0 or self.positions[channel] == 0:
                self.positions[channel] = float(value)  # leaving "off": no ramp from an unknown place
        else:
            self.positions[channel] = 0.0
        self.targets[channel] = value

    def _advance(self) -> None:
        now = time.monotonic()
        elapsed, self._last_update = now - self._last_update, now
        for c in range(self.n_channels):
            target, position = self.targets[c], self.positions[c]
            if target == 0 or position == target:
                continue
            if self.speeds[c] == 0:
                self.positions[c] = float(target)
                continue
            step = self.speeds[c] * elapsed / 0.010
            delta = target - position
            self.positions[c] = (
                float(target) if abs(delta) <= step else position + step * (1 if delta > 0 else -1)
            )

    def _reply(self, data: bytes) -> None:
        if self._drop:
            self._drop -= 1
            return
        if self._truncate:
            self._truncate -= 1
            data = data[:1]
        elif self._corrupt:
            self._corrupt -= 1
            data = b"\xff" * len(data)
        os.write(self.master_fd, data)

    def _record(self, entry: dict[str, Any]) -> None:
        entry = {"t": round(time.monotonic(), 6), **entry}
        self.log.append(entry)
        if self._log_file is not None:
            self._log_file.write(json.dumps(entry) + "\n")

    # --- what tests look at and do -------------------------------------------------------
    def position_us(self, channel: int) -> float:
        with self._lock:
            self._advance()
            return self.positions[channel] / 4.0

    def commands(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.log if e.get("cmd") == name]

    def send_garbage(self, data: bytes) -> None:
        os.write(self.master_fd, data)

    def drop_replies(self, n: int = 1) -> None:
        with self._lock:
            self._drop += n

    def truncate_replies(self, n: int = 1) -> None:
        with self._lock:
            self._truncate += n

    def corrupt_replies(self, n: int = 1) -> None:
        with self._lock:
            self._corrupt += n

    def set_error_bits(self, mask: int) -> None:
        with self._lock:
            self.error_word |= mask

    def unplug(self) -> None:
        """Close both pty ends (the client then gets I/O errors) and remove the symlink."""
        self._running = False
        if self._thread is not None:
            self._thread.join(timeout=2)
        for fd in (self.master_fd, self._slave_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.link_path is not None:
            self.link_path.unlink(missing_ok=True)
        self.plugged = False

    def replug(self) -> None:
        """A fresh pty behind the same symlink and a device that just powered up."""
        if self.plugged:
            self.unplug()
        with self._lock:
            self._reset_device()
        self._open_pty()
        self.start()

    def close(self) -> None:
        if self.plugged:
            self.unplug()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
