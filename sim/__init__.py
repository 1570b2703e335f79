"""Simulation of a build folder: cocotb testbench + runner (Verilator, Icarus) and the C++ fast path.

- :func:`bnn2fpga.sim.runner.run_cocotb` -- bit-exact check under random back-pressure and the
  measured latency / initiation interval, through cocotb (few hundred images).
- :func:`bnn2fpga.sim.bulk.run` -- the Verilator C++ harness, for the whole test set.
- :mod:`bnn2fpga.contract.manifest` -- the manifest.json fields both read, frame packing, host prediction.

Submodules are imported on use: importing this package pulls in neither cocotb nor a simulator.
"""
