"""The host side of the UART bridge of open-toolchain boards (``bnn2fpga run``).

- :mod:`bnn2fpga.host.protocol` -- request / reply bytes and CRC-8, one exception per malformed reply;
- :mod:`bnn2fpga.host.session` -- stop-and-wait frames over a pyserial port, with deadlines and resends;
- :mod:`bnn2fpga.host.link` -- a build's ``uart`` manifest block, opening its port;
- :mod:`bnn2fpga.host.run` -- test images through a board (or its Verilator model) against the reference.
"""
