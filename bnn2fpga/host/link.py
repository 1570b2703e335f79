"""A UART board build's link: its manifest block, and opening its serial port with pyserial.

A build for a board with a USB-serial bridge (``--board ulx3s-85f``, ``--board icebreaker``)
carries in manifest.json::

    "uart": {"top": "<name>_board", "sources": ["<name>_board.v", "<name>_rom.v"], "baud": 3000000,
             "divisor": 8, "clock_hz": 25000000, "frame_bytes": 98, "pixels": 784, "planes": [7],
             "bits_per_pixel": 1, "classes": 10, "timeout_bytes": 4}

``frame_bytes`` is the request's payload: the ``pixels`` with only their kept ``planes``
(``bnn2fpga.host.protocol.pack_payload``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..boards import OPEN_FLOWS
from ..errors import UserError
from .protocol import payload_bytes, request_bytes

if TYPE_CHECKING:
    import serial

    from ..sim.manifest import Manifest

__all__ = ["UartConfig", "NotUartBuild", "uart_config", "uart_boards", "open_port"]


class NotUartBuild(UserError):
    """The build folder has no (valid) ``uart`` block: it was not built for a USB-serial board."""


@dataclass(frozen=True)
class UartConfig:
    build_dir: Path
    top: str                    # the board core's module: bridge + accelerator
    sources: tuple[Path, ...]   # absolute paths
    baud: int
    divisor: int                # clocks per bit
    clock_hz: int
    frame_bytes: int            # payload bytes per request
    classes: int                # popcounts per reply
    timeout_bytes: int          # idle byte times that end a broken request
    pixels: int                 # pixels per frame
    planes: tuple[int, ...] = tuple(range(8))  # the bit planes a payload carries (pack_payload)

    def wire_seconds(self, nbytes: int, baud: float | None = None) -> float:
        """Time ``nbytes`` take on the line, 10 bits each (8N1)."""
        return nbytes * 10 / (baud or self.baud)

    @property
    def request_bytes(self) -> int:
        return request_bytes(self.frame_bytes)

    @property
    def reply_bytes(self) -> int:
        return 2 * self.classes + 3


def uart_boards() -> list[str]:
    """Boards whose builds carry a UART bridge (their host link is a USB serial port)."""
    return sorted(OPEN_FLOWS)


def uart_config(manifest: Manifest) -> UartConfig:
    """The ``uart`` block of ``manifest``, checked against the rest of it."""
    where = manifest.build_dir / "manifest.json"
    block: Any = manifest.raw.get("uart")
    names = [f"--board {b}" for b in uart_boards()]
    boards = " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
    if block is None:
        raise NotUartBuild(f"{manifest.build_dir} is a build for {manifest.raw.get('board', 'another board')}, "
                           f"which has no UART bridge ({where} has no 'uart' block): rebuild with {boards}")
    if not isinstance(block, dict):
        raise NotUartBuild(f"{where}: 'uart' must be an object, not {type(block).__name__}")

    def number(key: str, minimum: int = 1) -> int:
        value = block.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise NotUartBuild(f"{where}: uart.{key} must be an integer >= {minimum}, not {value!r}; rebuild")
        return value

    sources = block.get("sources")
    if not isinstance(sources, list) or not sources or not all(isinstance(s, str) for s in sources):
        raise NotUartBuild(f"{where}: uart.sources must be a list of file names; rebuild")
    top = block.get("top")
    if not isinstance(top, str) or not top:
        raise NotUartBuild(f"{where}: uart.top must name the board core's module; rebuild")
    # Builds made before payloads were packed have no "pixels" or "planes": one byte a pixel.
    frame_bytes = number("frame_bytes")
    pixels = number("pixels") if "pixels" in block else frame_bytes
    planes = block.get("planes", list(range(8)))
    if (not isinstance(planes, list) or not planes or not all(isinstance(p, int) and 0 <= p <= 7 for p in planes)
            or planes != sorted(set(planes))):
        raise NotUartBuild(f"{where}: uart.planes must be ascending bit planes in 0..7, not {planes!r}; rebuild")
    config = UartConfig(build_dir=manifest.build_dir, top=top, sources=tuple(manifest.build_dir / s for s in sources),
                        baud=number("baud"), divisor=number("divisor", 4), clock_hz=number("clock_hz"),
                        frame_bytes=frame_bytes, classes=number("classes"), timeout_bytes=number("timeout_bytes"),
                        pixels=pixels, planes=tuple(planes))
    if config.pixels != manifest.samples_per_frame or config.classes != manifest.classes:
        raise NotUartBuild(f"{where}: uart.pixels/classes ({config.pixels}/{config.classes}) are not the "
                           f"accelerator's ({manifest.samples_per_frame}/{manifest.classes}); rebuild")
    packed = payload_bytes(pixels, len(planes))
    if frame_bytes != packed:
        raise NotUartBuild(f"{where}: uart.frame_bytes is {frame_bytes}, but {pixels} pixels of {len(planes)} planes "
                           f"take {packed} bytes; rebuild")
    return config


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
