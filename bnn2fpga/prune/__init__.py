"""The two seed pruning methods (SEEDS.md): weight-flipping frequency and input bit-slice pruning.

Each method module offers ``add_arguments(group)`` (its CLI options, added to
``bnn2fpga prune``) and ``run(args)``.
"""

from __future__ import annotations

from types import ModuleType

from . import bitslice, flip

METHODS: dict[str, ModuleType] = {"flip": flip, "bitslice": bitslice}
