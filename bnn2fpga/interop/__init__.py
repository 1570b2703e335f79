"""Importers: networks made elsewhere (QONNX/FINN-ONNX graphs) as bnn2fpga checkpoints."""
