"""The two seed pruning methods: weight-flipping frequency and input bit-slice pruning.

See docs/flip-pruning.md and docs/bitslice-pruning.md.

Each method module offers ``run(...)`` on a loaded checkpoint and dataset with typed
options (:class:`.flip.FlipConfig`, :class:`.bitslice.BitsliceOptions`) and returns
its result for the caller to report and save; ``bnn2fpga prune`` (bnn2fpga/cli/commands/prune.py) holds the
command-line options.
"""

from __future__ import annotations

METHODS: tuple[str, ...] = ("bitslice", "flip")
