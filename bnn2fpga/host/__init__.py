"""The host side of the UART bridge of open-toolchain boards (``bnn2fpga run``).

- :mod:`bnn2fpga.contract.wire` -- request / reply bytes and CRC-8, one exception per malformed reply;
- :mod:`bnn2fpga.host.session` -- stop-and-wait frames over a pyserial port, with deadlines and resends;
- :mod:`bnn2fpga.host.link` -- a build's ``uart`` manifest block, opening its port;
(`bnn2fpga run`, which sends test images through a board or its Verilator model, is `bnn2fpga.run`.)
"""
