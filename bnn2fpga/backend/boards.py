"""Moved to :mod:`bnn2fpga.boards` (a leaf module, so that the host side and the hardware generator
can read boards without importing the backend); this name stays until the CLI imports the new one."""

from ..boards import *  # noqa: F403
from ..boards import BOARDS, Board, UnknownBoardError, get_board  # noqa: F401
