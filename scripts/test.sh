#!/usr/bin/env bash
# Install everything the tests need on a fresh machine, then run the whole suite.
#   bash scripts/test.sh            # default suite, then the slow/synth suite
#   bash scripts/test.sh -m "not slow and not synth"   # extra args go to the first pytest call
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: the real dataset (parity and e2e tests), Icarus (second simulator), tclsh
# (the generated Vivado script is run with Vivado's commands stubbed) and g++.
need=()
[ -e /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ] || need+=(dataset-fashion-mnist)
command -v iverilog >/dev/null || need+=(iverilog)
command -v tclsh >/dev/null || need+=(tcl)
command -v g++ >/dev/null || need+=(g++)  # Verilator's harnesses and the HLS backend's C simulation
if [ ${#need[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get install -y "${need[@]}" || { $sudo apt-get update && $sudo apt-get install -y "${need[@]}"; }
fi

python -m pip install -q -e '.[test]'
ruff check .
bnn2fpga doctor

# Fast suite first (unit, hw components, small builds), then the long and tool-heavy tests.
python -m pytest -q -m "not slow and not synth" "$@"
python -m pytest -q -m "slow or synth" --durations=10
