"""A UART board build's link: its manifest block, and opening its serial port with pyserial.

A build for a board with a USB-serial bridge (``--board ulx3s-85f``, ``--board icebreaker``)
carries in manifest.json::

    "uart": {"top": "<name>_board", "sources": ["<name>_board.v", "<name>_rom.v"], "baud": 3000000,
             "divisor": 8, "clock_hz": 25000000, "frame_bytes": 98, "pixels": 784, "planes": [7],
             "bits_per_pixel": 1, "classes": 10, "timeout_bytes": 4}

``frame_bytes`` is the request's payload: the ``pixels`` with only their kept ``planes``
(``bnn2fpga.contract.wire.pack_payload``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..boards import OPEN_FLOWS
from ..contract.manifest import Manifest, UartRecord
from ..errors import UserError

if TYPE_CHECKING:
    import serial

__all__ = ["UartConfig", "NotUartBuild", "uart_config", "uart_boards", "open_port"]


class NotUartBuild(UserError):
    """The build folder has no ``uart`` block: it was not built for a USB-serial board."""


#: A UART build's link, as its manifest records it.
UartConfig = UartRecord


def uart_boards() -> list[str]:
    """Boards whose builds carry a UART bridge (their host link is a USB serial port)."""
    return sorted(OPEN_FLOWS)


def uart_config(manifest: Manifest) -> UartConfig:
    """The manifest's ``uart`` record (checked by :func:`~bnn2fpga.contract.manifest.load_manifest`)."""
    record = manifest.uart
    if record is None:
        names = [f"--board {b}" for b in uart_boards()]
        boards = " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
        where = manifest.build_dir / "manifest.json"
        raise NotUartBuild(f"{manifest.build_dir} is a build for {manifest.board or 'another board'}, "
                           f"which has no UART bridge ({where} has no 'uart' block): rebuild with {boards}")
    return record


def open_port(path: str, baud: int, timeout: float) -> serial.Serial:
    """``path`` opened 8N1 at ``baud`` with pyserial, exclusively; one clear error if it cannot be."""
    import serial

    if not Path(path).exists():
        raise UserError(f"no serial port {path}: plug the board in and pass its port (Linux: ls /dev/ttyUSB* "
                        "/dev/ttyACM*; macOS: ls /dev/cu.usbserial*)")
    try:
        return serial.Serial(path, baudrate=baud, bytesize=serial.EIGHTBITS, parity=serial.PARITY_NONE,
                             stopbits=serial.STOPBITS_ONE, timeout=timeout, write_timeout=timeout, exclusive=True)
    except (serial.SerialException, OSError, ValueError) as e:
        hint = ("add yourself to the port's group (Linux: sudo usermod -aG dialout $USER, then log in again)"
                if "ermission" in str(e) else "check that it is the board's port and that no other program holds it")
        raise UserError(f"cannot open serial port {path} at {baud} baud: {e}; {hint}") from None
