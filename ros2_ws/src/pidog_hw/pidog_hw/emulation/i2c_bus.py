"""An smbus2.SMBus-shaped I2C bus that routes each call, as the wire transaction it would be,
to register-level device models. TEST/DEMO ONLY: there is no real bus behind it.

Each smbus2 method becomes what the kernel puts on the wire: a write is ``[register, data...]``
to the device; a register read is a write of ``[register]`` followed (repeated start) by a read
of N bytes. Devices see only those bytes, the way the chip would. An address with no device
NACKs (``OSError`` EREMOTEIO, what the Raspberry Pi's I2C driver raises), and faults can be
injected on any transaction. Every transaction is recorded, optionally as JSON lines in a file.
"""

from __future__ import annotations

import errno
import json
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .control import EmulatorControl

BLOCK_MAX = 32  # smbus2.I2C_SMBUS_BLOCK_MAX


class I2CTarget(Protocol):
    """A device model on the emulated bus."""

    def i2c_write(self, data: bytes) -> dict[str, Any] | None:
        """A write transaction; may return a decoded description for the log."""

    def i2c_read(self, length: int) -> bytes:
        """A read transaction of ``length`` bytes (after a register-pointer write)."""


@dataclass
class _Fault:
    address: int | None
    op: str | None
    register: int | None
    remaining: int
    errno: int


def _check_byte(name: str, value: int) -> int:
    if not isinstance(value, int) or not 0 <= value <= 0xFF:
        raise ValueError(f"{name} must be an int 0..255, got {value!r}")
    return value


class EmulatedI2CBus:
    """Emulated I2C bus with smbus2's method signatures (the subset our drivers use, and more)."""

    def __init__(
        self,
        log_path: str | os.PathLike[str] | None = None,
        keep: int = 20000,
        control_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.devices: dict[int, I2CTarget] = {}
        self._control = EmulatorControl(control_path) if control_path else None
        self.transactions: deque[dict[str, Any]] = deque(maxlen=keep)
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._log = open(Path(log_path), "a", buffering=1) if log_path else None  # noqa: SIM115 - closed in close()
        self.closed = False

    # --- set-up and fault injection --------------------------------------------------------
    def attach(self, address: int, device: I2CTarget) -> None:
        self.devices[address] = device

    def detach(self, address: int) -> None:
        self.devices.pop(address, None)

    def inject_fault(
        self,
        address: int | None = None,
        op: str | None = None,
        register: int | None = None,
        count: int = 1,
        error: int = errno.EREMOTEIO,
    ) -> None:
        """Fail the next ``count`` transactions matching address/op ('write', 'read',
        'quick')/register (None matches anything) with ``OSError(error)``."""
        if op not in (None, "write", "read", "quick"):
            raise ValueError(f"op must be None, 'write', 'read' or 'quick', got {op!r}")
        with self._lock:
            self._faults.append(_Fault(address, op, register, count, error))

    def clear_faults(self) -> None:
        """Stop injecting: every pending fault is dropped."""
        with self._lock:
            self._faults.clear()

    def _take_fault(self, address: int, op: str, register: int | None) -> _Fault | None:
        for fault in self._faults:
            if (
                fault.remaining > 0
                and fault.address in (None, address)
                and fault.op in (None, op)
                and fault.register in (None, register)
            ):
                fault.remaining -= 1
                return fault
        return None

    # --- the transaction -------------------------------------------------------------------
    def _transaction(
        self, address: int, op: str, register: int | None, data: bytes = b"", read: int = 0
    ) -> bytes:
        if self.closed:
            raise OSError(errno.EBADF, "emulated I2C bus is closed")
        if not isinstance(address, int) or not 0 <= address <= 0x7F:
            raise ValueError(f"I2C address must be 0..0x7F, got {address!r}")
        with self._lock:
            entry: dict[str, Any] = {"t": round(time.monotonic(), 6), "addr": address, "op": op}
            if register is not None:
                entry["reg"] = register
            if self._control is not None and (stall_s := self._control.poll(self.devices)) > 0:
                entry["stall_s"] = stall_s
                time.sleep(stall_s)  # the caller blocked in the call, as on a hung bus
            fault = self._take_fault(address, op, register)
            device = self.devices.get(address)
            # A device that is booting (RobotHatMcu.reset) does not ACK its address.
            if device is not None and not getattr(device, "answers", lambda: True)():
                device = None
            if fault is not None or device is None:
                code = fault.errno if fault is not None else errno.EREMOTEIO
                entry.update(data=list(data), nack=True, injected=fault is not None)
                self._record(entry)
                raise OSError(code, os.strerror(code))
            answer = b""
            if op == "quick":
                pass
            elif op == "write":
                entry["data"] = list(data)
                decoded = device.i2c_write(bytes([register, *data]) if register is not None else bytes(data))
                if decoded:
                    entry.update(decoded)
            else:
                if register is not None:
                    device.i2c_write(bytes([register]))
                answer = bytes(device.i2c_read(read))
                entry["data"] = list(answer)
            self._record(entry)
            return answer

    def _record(self, entry: dict[str, Any]) -> None:
        self.transactions.append(entry)
        if self._log is not None:
            self._log.write(json.dumps(entry) + "\n")

    # --- smbus2.SMBus methods --------------------------------------------------------------
    def write_quick(self, i2c_addr: int, force: bool | None = None) -> None:
        self._transaction(i2c_addr, "quick", None)

    def read_byte(self, i2c_addr: int, force: bool | None = None) -> int:
        return self._transaction(i2c_addr, "read", None, read=1)[0]

    def write_byte(self, i2c_addr: int, value: int, force: bool | None = None) -> None:
        self._transaction(i2c_addr, "write", None, bytes([_check_byte("value", value)]))

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        return self._transaction(i2c_addr, "read", _check_byte("register", register), read=1)[0]

    def write_byte_data(self, i2c_addr: int, register: int, value: int, force: bool | None = None) -> None:
        self._transaction(
            i2c_addr, "write", _check_byte("register", register), bytes([_check_byte("value", value)])
        )

    def read_word_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        data = self._transaction(i2c_addr, "read", _check_byte("register", register), read=2)
        return data[0] | data[1] << 8  # SMBus words are little-endian on the wire

    def write_word_data(self, i2c_addr: int, register: int, value: int, force: bool | None = None) -> None:
        if not isinstance(value, int) or not 0 <= value <= 0xFFFF:
            raise ValueError(f"word value must be 0..0xFFFF, got {value!r}")
        self._transaction(
            i2c_addr, "write", _check_byte("register", register), bytes([value & 0xFF, value >> 8])
        )

    def read_i2c_block_data(
        self, i2c_addr: int, register: int, length: int, force: bool | None = None
    ) -> list[int]:
        if length > BLOCK_MAX:
            raise ValueError(f"Desired block length over {BLOCK_MAX} bytes")
        return list(self._transaction(i2c_addr, "read", _check_byte("register", register), read=length))

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: list[int], force: bool | None = None
    ) -> None:
        if len(data) > BLOCK_MAX:
            raise ValueError(f"Data length cannot exceed {BLOCK_MAX} bytes")
        payload = bytes(_check_byte("data byte", b) for b in data)
        self._transaction(i2c_addr, "write", _check_byte("register", register), payload)

    def close(self) -> None:
        self.closed = True
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> EmulatedI2CBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
