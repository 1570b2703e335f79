"""``python -m bnn2fpga.cli``: the same as the ``bnn2fpga`` command."""

import sys

from . import main

sys.exit(main())
