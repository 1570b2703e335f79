"""The build folder as a typed contract, shared by the compiler, the simulators, the host side and the
board driver: a leaf (no Amaranth, no PyTorch).

- :mod:`bnn2fpga.contract.manifest` -- ``manifest.json``: its format, the one writer, the typed reader;
- :mod:`bnn2fpga.contract.wire` -- the UART bridge's bytes (requests, replies, CRC-8, payload packing);
- :mod:`bnn2fpga.contract.planes` -- the kept-bit-planes rule, checked once (:class:`Planes`);
- :mod:`bnn2fpga.contract.codes` -- the input-table rule, checked once (:class:`CodeTable`).
"""
