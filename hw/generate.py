"""Turn an :class:`AcceleratorSpec` into an in-memory bundle of Verilog and ``.mem`` files.

Bundle (relative file name -> content), all in one folder:

* ``<name>.v``       -- AXI4-Stream top (module ``<name>``, ``templates/top.v.j2``)
* ``<name>_core.v``  -- the Amaranth accelerator behind its packet framer
  (:class:`~bnn2fpga.hw.packets.PacketAccelerator`) converted to Verilog (module ``<name>_core``
  and its submodules ``<name>_core.*``)
* ``<name>_rom.v``   -- the ROM module ``<name>_rom`` (``templates/rom.v.j2``)
* ``<name>_<layer>_pe<p>.mem`` -- one ``$readmemh`` file per PE weight ROM (layers with
  ``cycles == 1`` have one-word ROMs, which are constants in the core and get no file)

ROM instances get ``INIT_FILE = "<name>_<layer>_pe<p>.mem"``: a bare file name,
resolved against the working directory of the simulator / synthesis run,
which must therefore be the build folder (or define ``BNN2FPGA_MEM_DIR``, see
the ROM template). Identical specs give byte-identical bundles: no source
locations, no dates, no absolute paths.
"""

from __future__ import annotations

from importlib import resources

import jinja2
from amaranth.back import verilog
from amaranth.hdl import ClockDomain, Module, Value
from amaranth.lib import wiring

from .board import UartBoard
from .packets import PacketAccelerator
from .rom import has_rom, mem_filename, mem_text, weight_words
from .spec import AcceleratorSpec

__all__ = ["generate", "generate_board", "board_module", "manifest_entries", "memory_files", "render_template",
           "VERILATOR_WAIVERS"]

#: Verilator configuration (pass the text as a ``.vlt`` file before the sources) that waives
#: the -Wall warnings Amaranth's Verilog always produces, for the generated core file only;
#: the hand-written top and ROM templates lint clean without waivers. Besides these,
#: -Wno-WIDTH is needed everywhere (Amaranth output is not WIDTH-clean).
#: - DECLFILENAME: one file holds the core and all its submodules.
#: - PROCASSINIT: Amaranth declares registers with their reset value (``reg x = 0;``),
#:   the FPGA power-on value, and also assigns them in ``always`` blocks.
#: - UNUSEDSIGNAL: Amaranth keeps alias wires of every named signal and the unused
#:   high bits of intermediate expressions.
VERILATOR_WAIVERS = """`verilator_config
lint_off -rule DECLFILENAME -file "*_core.v"
lint_off -rule PROCASSINIT -file "*_core.v"
lint_off -rule UNUSEDSIGNAL -file "*_core.v"
"""


def render_template(template: str, **context: object) -> str:
    """Render ``templates/<template>`` with the project's Jinja settings."""
    env = jinja2.Environment(keep_trailing_newline=True, undefined=jinja2.StrictUndefined,
                             autoescape=False)
    text = resources.files("bnn2fpga.templates").joinpath(template).read_text(encoding="utf-8")
    return env.from_string(text).render(**context)


def _names(spec: AcceleratorSpec) -> dict[str, str]:
    return {"top": spec.name, "core": f"{spec.name}_core", "rom": f"{spec.name}_rom"}


def manifest_entries(spec: AcceleratorSpec) -> dict[str, object]:
    """``top``, ``sources`` (Verilog, top first) and ``memories`` (``.mem`` files, in layer/PE order)
    exactly as ``generate`` names them; cheap (no Verilog conversion)."""
    names = _names(spec)
    return {
        "top": names["top"],
        "sources": [f"{names['top']}.v", f"{names['core']}.v", f"{names['rom']}.v"],
        "memories": [mem_filename(spec.name, layer.name, p)
                     for layer in spec.mvtus if has_rom(layer) for p in range(layer.pe)],
    }


def memory_files(spec: AcceleratorSpec) -> dict[str, str]:
    """The ``.mem`` file of every PE weight ROM, by name, in layer/PE order (no Amaranth needed)."""
    files = {}
    for layer in spec.mvtus:
        if not has_rom(layer):  # one-word ROMs are constants inside the core
            continue
        for p, words in enumerate(weight_words(layer)):
            files[mem_filename(spec.name, layer.name, p)] = mem_text(words, layer.simd)
    return files


def convert_reset_tree(component: wiring.Component, name: str) -> str:
    """Verilog of ``component`` (built with a distributed reset, ``hw/reset.py``) as a top module
    whose ``sync`` domain has no reset of its own: ports ``clk``, ``rst`` (the component's reset
    input) and the component's other ports, named as Amaranth names a component's ports."""
    top = Module()
    top.domains.sync = sync = ClockDomain("sync", reset_less=True)
    top.submodules.core = component
    ports = [sync.clk, *(Value.cast(value) for _, _, value in component.signature.flatten(component))]
    return verilog.convert(top, name=name, ports=ports, emit_src=False)


def generate(spec: AcceleratorSpec) -> dict[str, str | bytes]:
    if not isinstance(spec, AcceleratorSpec):
        raise TypeError(f"generate needs an AcceleratorSpec, not {spec!r}")
    names = _names(spec)
    bundle: dict[str, str | bytes] = {}
    bundle[f"{names['top']}.v"] = render_template(
        "top.v.j2", top=names["top"], core=names["core"], name=spec.name,
        in_bits=spec.tdata_bits, pixels_per_beat=spec.pixels_per_beat,
        input_beats=spec.input_beats, classes=spec.classes,
    )
    core = PacketAccelerator(spec, rom="instance", rom_module=names["rom"], reset_tree=True)
    bundle[f"{names['core']}.v"] = convert_reset_tree(core, names["core"])
    bundle[f"{names['rom']}.v"] = render_template(
        "rom.v.j2", module=names["rom"],
        example_file=mem_filename(spec.name, spec.mvtus[0].name, 0),
    )
    bundle.update(memory_files(spec))
    assert list(bundle) == [*manifest_entries(spec)["sources"], *manifest_entries(spec)["memories"]]
    return bundle


def board_module(spec: AcceleratorSpec) -> str:
    """Module (and file stem) of the UART board core: bridge + accelerator, without pins or PLL."""
    return f"{spec.name}_board"


def generate_board(spec: AcceleratorSpec, divisor: int, timeout_bytes: int = 4) -> dict[str, str]:
    """``<name>_board.v``: the :class:`~bnn2fpga.hw.board.UartBoard` of ``spec`` as Verilog, its ROMs the
    instances of ``<name>_rom.v`` (the same ``.mem`` files :func:`generate` writes).

    Ports: ``clk``, ``rst`` (synchronous, high), ``rx`` / ``tx`` (serial lines, idle high), ``busy``
    and ``errors`` (16 bits). What a board-level simulation runs; the bitstream flow elaborates the
    same component with its ROMs as block RAM initial contents."""
    name = board_module(spec)
    board = UartBoard(spec, divisor, timeout_bytes=timeout_bytes, rom="instance", rom_module=f"{spec.name}_rom",
                      reset_tree=True)
    return {f"{name}.v": convert_reset_tree(board, name)}
