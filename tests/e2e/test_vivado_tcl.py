"""The generated vivado.tcl, run by tclsh against a strict stand-in for Vivado (``VIVADO_STUB``).

The stub knows per part family which IPs exist, the pins, interface pins and CONFIG names of every
cell it can create, and the installed board parts: a wrong processor for the part, a port the
processing system lacks or a setting an IP does not take is a Tcl error, so the script fails here as
it would in Vivado. Runs, logs, block RAM counts and timing come from a scenario, so that each of
the script's checks is shown to stop it (exit 1, its message, no .bit or .hwh copied) and the good
path to copy both. No Vivado is needed; builds use ``--no-synth`` (seconds each).
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bnn2fpga import boards
from bnn2fpga.boards import ZynqBlockDesign, zynq_7000, zynq_ultrascale
from bnn2fpga.cli import main
from tests.conftest import random_checkpoint

XILINX = ("pynq-z2", "zcu104", "ultra96-v2", "kv260")
BOARD_PARTS = tuple(b.block_design.board_part for b in boards.BOARDS.values() if b.block_design is not None)

VIVADO_STUB = r"""
# A strict stand-in for the Vivado commands vivado.tcl uses, for tclsh (tests/e2e/test_vivado_tcl.py).
#
# It knows, per part family, which IPs exist, which pins and interface pins each cell has (as its
# CONFIG leaves them), which CONFIG properties each IP takes and which board parts are installed:
# a cell of an absent IP, a pin the cell lacks, an unknown CONFIG name, a second driver on a net or
# an unconnected required pin at validate_bd_design is a Tcl error, as in Vivado. Runs, logs, block
# RAM counts and timing come from ::scenario (set by the test before this file is sourced), so the
# script's checks can be driven to fail one at a time. What the script did is dumped to ::dump_path
# when it exits, whether by `exit` or by reaching its end.

set ::calls {}
set ::part ""
set ::project ""
set ::projects [dict create]
set ::cells [dict create]
set ::nets {}
set ::intf_nets {}
set ::connected [dict create]
set ::external [dict create]
set ::params [dict create board.repoPaths {}]
set ::ipx [dict create]
set ::user_ips {}
set ::design ""
set ::runs [dict create]
set ::addresses_assigned 0
set ::validated 0

proc record {args} { lappend ::calls $args }
proc stub_error {msg} { return -code error "stub Vivado: $msg" }
proc sc {key} { return [dict get $::scenario $key] }

proc family {} {
    if {[string match xc7z* $::part]} { return zynq7 }
    if {[string match xczu* $::part] || [string match xck* $::part]} { return zynqmp }
    stub_error "no family for part '$::part'"
}

# --- the IP catalog ------------------------------------------------------------------
set ::catalog [dict create \
    common {xilinx.com:ip:axi_dma:7.1 xilinx.com:ip:proc_sys_reset:5.0 xilinx.com:ip:util_vector_logic:2.0
            xilinx.com:ip:smartconnect:1.0 xilinx.com:ip:axis_subset_converter:1.1} \
    zynq7 {xilinx.com:ip:processing_system7:5.5} \
    zynqmp {xilinx.com:ip:zynq_ultra_ps_e:3.5}]

# CONFIG properties and their defaults, per IP.
set ::ipconfig [dict create \
    processing_system7 {PCW_USE_M_AXI_GP0 0 PCW_USE_M_AXI_GP1 0 PCW_USE_S_AXI_HP0 0 PCW_S_AXI_HP0_DATA_WIDTH 64
                        PCW_FPGA0_PERIPHERAL_FREQMHZ 50 PCW_EN_CLK0_PORT 1 PCW_EN_RST0_PORT 1 PCW_USE_S_AXI_GP0 0} \
    zynq_ultra_ps_e {PSU__USE__M_AXI_GP0 0 PSU__USE__M_AXI_GP1 0 PSU__USE__M_AXI_GP2 0 PSU__USE__S_AXI_GP2 0
                     PSU__SAXIGP2__DATA_WIDTH 128 PSU__MAXIGP0__DATA_WIDTH 128 PSU__FPGA_PL0_ENABLE 1
                     PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ 100} \
    axi_dma {c_include_sg 1 c_sg_length_width 14 c_include_mm2s 1 c_include_s2mm 1 c_m_axis_mm2s_tdata_width 32
             c_m_axi_mm2s_data_width 32 c_s_axis_s2mm_tdata_width 32 c_m_axi_s2mm_data_width 32
             c_mm2s_burst_size 16 c_s2mm_burst_size 16 c_addr_width 32 c_micro_dma 0 c_include_mm2s_dre 0
             c_include_s2mm_dre 0 c_sg_include_stscntrl_strm 0} \
    proc_sys_reset {C_EXT_RST_WIDTH 4 C_AUX_RST_WIDTH 4 C_EXT_RESET_HIGH 0 C_AUX_RESET_HIGH 0 C_NUM_BUS_RST 1
                    C_NUM_PERP_RST 1 C_NUM_INTERCONNECT_ARESETN 1 C_NUM_PERP_ARESETN 1} \
    util_vector_logic {C_OPERATION and C_SIZE 8} \
    smartconnect {NUM_SI 1 NUM_MI 1 NUM_CLKS 1 HAS_ARESETN 1} \
    axis_subset_converter {S_TDATA_NUM_BYTES 1 M_TDATA_NUM_BYTES 1 S_HAS_TKEEP 0 S_HAS_TLAST 0 M_HAS_TKEEP 0
                           M_HAS_TLAST 0 TDATA_REMAP {tdata[7:0]} TLAST_REMAP {1'b0} TKEEP_REMAP {}
                           S_TUSER_WIDTH 0 M_TUSER_WIDTH 0} \
    accel {}]

proc is_pow2_in {v lo hi} {
    if {![string is integer -strict $v] || $v < $lo || $v > $hi} { return 0 }
    return [expr {($v & ($v - 1)) == 0}]
}

# Values the IPs would reject.
proc check_value {ip key value} {
    set ok 1
    switch -glob -- "$ip/$key" {
        axi_dma/c_sg_length_width { set ok [expr {[string is integer -strict $value] && $value >= 8 && $value <= 26}] }
        axi_dma/c_m_axis_mm2s_tdata_width - axi_dma/c_s_axis_s2mm_tdata_width { set ok [is_pow2_in $value 8 1024] }
        axi_dma/c_m_axi_*_data_width { set ok [is_pow2_in $value 32 1024] }
        axi_dma/c_*_burst_size { set ok [is_pow2_in $value 2 256] }
        axi_dma/c_include_* { set ok [expr {$value in {0 1}}] }
        util_vector_logic/C_OPERATION { set ok [expr {$value in {and or xor not}}] }
        util_vector_logic/C_SIZE { set ok [expr {[string is integer -strict $value] && $value >= 1}] }
        processing_system7/PCW_S_AXI_HP0_DATA_WIDTH { set ok [expr {$value in {32 64}}] }
        zynq_ultra_ps_e/PSU__SAXIGP2__DATA_WIDTH { set ok [expr {$value in {32 64 128}}] }
        */*FREQMHZ { set ok [expr {[string is double -strict $value] && $value > 0 && $value <= 250}] }
        smartconnect/NUM_* { set ok [expr {[string is integer -strict $value] && $value >= 1 && $value <= 16}] }
        axis_subset_converter/*_NUM_BYTES {
            set ok [expr {[string is integer -strict $value] && $value >= 1 && $value <= 512}]
        }
    }
    if {!$ok} { stub_error "$ip: CONFIG.$key cannot be '$value'" }
}

proc on {cell key} { return [expr {[dict get $::cells $cell config $key] ne "0"}] }

# Pins (name direction) and interface pins (name mode) of a cell as its CONFIG stands.
proc cell_pins {cell} {
    set ip [dict get $::cells $cell ip]
    switch $ip {
        processing_system7 {
            set p {FCLK_CLK0 O FCLK_RESET0_N O}
            if {[on $cell PCW_USE_M_AXI_GP0]} { lappend p M_AXI_GP0_ACLK I }
            if {[on $cell PCW_USE_M_AXI_GP1]} { lappend p M_AXI_GP1_ACLK I }
            if {[on $cell PCW_USE_S_AXI_HP0]} { lappend p S_AXI_HP0_ACLK I }
        }
        zynq_ultra_ps_e {
            set p {pl_clk0 O pl_resetn0 O}
            if {[on $cell PSU__USE__M_AXI_GP0]} { lappend p maxihpm0_fpd_aclk I }
            if {[on $cell PSU__USE__M_AXI_GP1]} { lappend p maxihpm1_fpd_aclk I }
            if {[on $cell PSU__USE__M_AXI_GP2]} { lappend p maxihpm0_lpd_aclk I }
            if {[on $cell PSU__USE__S_AXI_GP2]} { lappend p saxihp0_fpd_aclk I }
        }
        axi_dma {
            set p {s_axi_lite_aclk I axi_resetn I}
            if {[on $cell c_include_mm2s]} { lappend p m_axi_mm2s_aclk I mm2s_prmry_reset_out_n O mm2s_introut O }
            if {[on $cell c_include_s2mm]} { lappend p m_axi_s2mm_aclk I s2mm_prmry_reset_out_n O s2mm_introut O }
            if {[on $cell c_include_sg]} { lappend p m_axi_sg_aclk I }
        }
        proc_sys_reset {
            set p {slowest_sync_clk I ext_reset_in I aux_reset_in I? mb_debug_sys_rst I? dcm_locked I? mb_reset O
                   bus_struct_reset O peripheral_reset O interconnect_aresetn O peripheral_aresetn O}
        }
        util_vector_logic { set p {Op1 I Op2 I Res O} }
        smartconnect - axis_subset_converter { set p {aclk I aresetn I} }
        accel { set p {ap_clk I ap_rst_n I} }
    }
    return $p
}

proc cell_intf {cell} {
    set ip [dict get $::cells $cell ip]
    set p {}
    switch $ip {
        processing_system7 {
            set p {DDR M FIXED_IO M}
            if {[on $cell PCW_USE_M_AXI_GP0]} { lappend p M_AXI_GP0 M }
            if {[on $cell PCW_USE_M_AXI_GP1]} { lappend p M_AXI_GP1 M }
            if {[on $cell PCW_USE_S_AXI_HP0]} { lappend p S_AXI_HP0 S }
        }
        zynq_ultra_ps_e {
            if {[on $cell PSU__USE__M_AXI_GP0]} { lappend p M_AXI_HPM0_FPD M }
            if {[on $cell PSU__USE__M_AXI_GP1]} { lappend p M_AXI_HPM1_FPD M }
            if {[on $cell PSU__USE__M_AXI_GP2]} { lappend p M_AXI_HPM0_LPD M }
            if {[on $cell PSU__USE__S_AXI_GP2]} { lappend p S_AXI_HP0_FPD S }
        }
        axi_dma {
            set p {S_AXI_LITE S}
            if {[on $cell c_include_mm2s]} { lappend p M_AXI_MM2S M M_AXIS_MM2S M }
            if {[on $cell c_include_s2mm]} { lappend p M_AXI_S2MM M S_AXIS_S2MM S }
            if {[on $cell c_include_sg]} { lappend p M_AXI_SG M }
        }
        smartconnect {
            for {set i 0} {$i < [dict get $::cells $cell config NUM_SI]} {incr i} { lappend p [format S%02d_AXI $i] S }
            for {set i 0} {$i < [dict get $::cells $cell config NUM_MI]} {incr i} { lappend p [format M%02d_AXI $i] M }
        }
        axis_subset_converter { set p {S_AXIS S M_AXIS M} }
        accel { set p {s_axis S m_axis M} }
    }
    return $p
}

proc split_pin {spec} {
    set spec [string trimleft $spec /]
    set parts [split $spec /]
    if {[llength $parts] != 2} { stub_error "not a cell/pin path: '$spec'" }
    lassign $parts cell pin
    if {![dict exists $::cells $cell]} { stub_error "no cell '$cell' in the block design" }
    return $parts
}

# --- projects, files, parameters -----------------------------------------------------------
proc opt {argv name} {
    set i [lsearch -exact $argv $name]
    if {$i < 0} { return "" }
    return [lindex $argv [expr {$i + 1}]]
}

proc need_project {} { if {$::project eq ""} { stub_error "no open project" } }

proc create_project {args} {
    record create_project {*}$args
    set words [lsearch -all -inline -not -glob $args -*]
    set part [opt $args -part]
    set words [lsearch -all -inline -not -exact $words $part]
    lassign $words name dir
    if {$part eq ""} { stub_error "create_project without -part" }
    set ::part $part
    family
    set ::project $name
    dict set ::projects $name [dict create dir $dir files {} top "" board_part "" msg_config {} ip_repo_paths {}]
    file mkdir $dir
}
proc close_project {args} { record close_project; need_project; set ::project "" }
proc current_project {args} { need_project; return $::project }
proc current_fileset {args} { need_project; return sources_1 }
proc update_compile_order {args} { need_project; record update_compile_order {*}$args }

proc add_files {args} {
    need_project
    set files [lindex $args end]
    foreach f $files {
        if {![file exists $f]} { stub_error "add_files: no such file $f" }
        dict update ::projects $::project p { dict lappend p files $f }
    }
    record add_files $::project {*}$files
}

proc get_files {args} {
    need_project
    set pattern [lindex $args end]
    set hits {}
    foreach f [dict get $::projects $::project files] {
        if {[string match $pattern [file tail $f]] || [string match $pattern $f]} { lappend hits $f }
    }
    return $hits
}

proc set_msg_config {args} {
    need_project
    dict update ::projects $::project p { dict lappend p msg_config $args }
    record set_msg_config {*}$args
}
proc set_param {name value} { dict set ::params $name $value; record set_param $name $value }
proc get_param {name} { return [dict get $::params $name] }
proc get_board_parts {args} {
    set pattern [lindex [lsearch -all -inline -not -glob $args -*] 0]
    return [lsearch -all -inline -glob [sc board_parts] $pattern]
}

proc get_ipdefs {args} {
    set pattern [lindex [lsearch -all -inline -not -glob $args -*] 0]
    set defs [concat [dict get $::catalog common] [dict get $::catalog [family]] $::user_ips]
    return [lsearch -all -inline -glob $defs $pattern]
}

proc update_ip_catalog {args} {
    need_project
    record update_ip_catalog
    foreach root [dict get $::projects $::project ip_repo_paths] {
        if {[dict exists $::ipx saved $root]} { lappend ::user_ips [dict get $::ipx saved $root] }
    }
}

# --- the IP packager (ipx::) ---------------------------------------------------------
namespace eval ipx {}
proc ipx::package_project {args} {
    ::need_project
    set root [::opt $args -root_dir]
    set top [dict get $::projects $::project top]
    if {$top eq ""} { ::stub_error "ipx::package_project: the project has no top" }
    set synth {}
    foreach f [dict get $::projects $::project files] {
        if {[string first "$root/" $f] != 0} { ::stub_error "ipx::package_project: $f lies outside the IP root $root" }
        if {[string match *.v $f]} { lappend synth [string range $f [expr {[string length $root] + 1}] end] }
    }
    set ::ipx [dict merge $::ipx [dict create root $root core "[::opt $args -vendor]:[::opt $args -library]:$top:1.0" \
        busif {s_axis m_axis} ports {ap_clk ap_rst_n} checked 0 checksums 0 \
        groups [dict create xilinx_anylanguagesynthesis $synth xilinx_anylanguagebehavioralsimulation $synth] \
        types [dict create]]]
    ::record ipx::package_project {*}$args
}
proc ipx::current_core {args} {
    if {![dict exists $::ipx core]} { ::stub_error "no current IP core" }
    return core
}
proc ipx::infer_bus_interface {port vlnv core} {
    if {$port ni [dict get $::ipx ports]} { ::stub_error "ipx::infer_bus_interface: no port $port" }
    dict lappend ::ipx busif $port
    ::record ipx::infer_bus_interface $port $vlnv
}
proc ipx::get_bus_interfaces {name args} {
    if {$name ni [dict get $::ipx busif]} { ::stub_error "no bus interface $name on the core" }
    return busif:$name
}
proc ipx::add_bus_parameter {name busif} { ::record ipx::add_bus_parameter $name $busif; return param:$busif:$name }
proc ipx::associate_bus_interfaces {args} {
    foreach b [split [::opt $args -busif] :] { ipx::get_bus_interfaces $b }
    ipx::get_bus_interfaces [::opt $args -clock]
    ::record ipx::associate_bus_interfaces {*}$args
}
proc ipx::get_file_groups {name args} {
    if {[dict exists $::ipx groups $name]} { return $name }
    return ""
}
proc ipx::get_files {path args} {
    set group [::opt $args -of_objects]
    if {$path in [dict get $::ipx groups $group]} { return ipfile:$group:$path }
    return ""
}
proc ipx::add_file {path group} {
    if {![file exists [dict get $::ipx root]/$path]} { ::stub_error "ipx::add_file: no $path under the IP root" }
    if {$path in [dict get $::ipx groups $group]} { ::stub_error "ipx::add_file: $path already in $group" }
    dict update ::ipx groups g { dict lappend g $group $path }
    dict set ::ipx checksums 0
    return ipfile:$group:$path
}
proc ipx::create_xgui_files {core} { ::record ipx::create_xgui_files }
proc ipx::update_checksums {core} { dict set ::ipx checksums 1; ::record ipx::update_checksums }
proc ipx::check_integrity {args} {
    if {![dict get $::ipx checksums]} { ::stub_error "ipx::check_integrity: checksums out of date" }
    dict set ::ipx checked 1
    ::record ipx::check_integrity
}
proc ipx::save_core {core} {
    if {![dict get $::ipx checked]} { ::stub_error "ipx::save_core before ipx::check_integrity" }
    dict set ::ipx saved [dict get $::ipx root] [dict get $::ipx core]
    ::record ipx::save_core
}

# --- properties --------------------------------------------------------------------------
proc set_cell_config {cell key value} {
    set ip [dict get $::cells $cell ip]
    if {![dict exists $::ipconfig $ip $key]} { stub_error "$ip has no CONFIG.$key (cell $cell)" }
    check_value $ip $key $value
    dict set ::cells $cell config $key $value
}

proc set_property {args} {
    if {[lindex $args 0] eq "-dict"} {
        set pairs [lindex $args 1]
        set objects [lindex $args 2]
    } else {
        lassign $args name value objects
        set pairs [list $name $value]
    }
    foreach {name value} $pairs {
        foreach obj $objects {
            if {[string match /* $obj] && [dict exists $::cells [string range $obj 1 end]]} {
                if {![string match CONFIG.* $name]} { stub_error "set_property $name on a cell" }
                set_cell_config [string range $obj 1 end] [string range $name 7 end] $value
            } elseif {[string match ipfile:* $obj]} {
                if {$name ne "type"} { stub_error "set_property $name on an IP file" }
                dict set ::ipx types [lindex [split $obj :] 1] [lindex [split $obj :] 2] $value
            } elseif {$obj eq $::project} {
                switch $name {
                    board_part {
                        if {$value ni [sc board_parts]} { stub_error "board part $value is not installed" }
                        dict set ::projects $::project board_part $value
                    }
                    ip_repo_paths { dict set ::projects $::project ip_repo_paths $value }
                    default { stub_error "set_property $name on the project" }
                }
            } elseif {$obj eq "sources_1" && $name eq "top"} {
                dict set ::projects $::project top $value
            }
            record set_property $name $value $obj
        }
    }
}

# --- block design ----------------------------------------------------------------------
proc create_bd_design {name} {
    need_project
    set dir [dict get $::projects $::project dir]
    set bd $dir/$::project.srcs/sources_1/bd/$name/$name.bd
    file mkdir [file dirname $bd]
    close [open $bd w]
    dict update ::projects $::project p { dict lappend p files $bd }
    set ::bd_name $name
    record create_bd_design $name
}

proc create_bd_cell {args} {
    set vlnv [opt $args -vlnv]
    set name [lindex $args end]
    if {[dict exists $::cells $name]} { stub_error "cell $name exists" }
    set available [get_ipdefs *]
    if {$vlnv ni $available} { stub_error "IP $vlnv is not available for $::part" }
    set ipname [lindex [split $vlnv :] 2]
    if {[string match bnn2fpga.org:* $vlnv]} { set ipname accel }
    dict set ::cells $name [dict create ip $ipname vlnv $vlnv config [dict get $::ipconfig $ipname]]
    record create_bd_cell $vlnv $name
    return /$name
}

proc get_bd_cells {name} {
    set name [string trimleft $name /]
    if {![dict exists $::cells $name]} { stub_error "no cell $name" }
    return /$name
}

proc get_bd_pins {spec} {
    lassign [split_pin $spec] cell pin
    set pins [cell_pins $cell]
    if {![dict exists $pins $pin]} { stub_error "cell $cell ([dict get $::cells $cell ip]) has no pin $pin" }
    return /$cell/$pin
}

proc get_bd_intf_pins {spec} {
    lassign [split_pin $spec] cell pin
    if {![dict exists [cell_intf $cell] $pin]} {
        stub_error "cell $cell ([dict get $::cells $cell ip]) has no interface pin $pin"
    }
    return /$cell/$pin
}

proc connect_bd_net {args} {
    set drivers 0
    foreach p $args {
        lassign [split_pin $p] cell pin
        set pins [cell_pins $cell]
        if {![dict exists $pins $pin]} { stub_error "cell $cell has no pin $pin" }
        if {[dict exists $::connected $cell/$pin]} { stub_error "pin $cell/$pin is connected twice" }
        if {[dict get $pins $pin] eq "O"} { incr drivers }
    }
    if {$drivers != 1} { stub_error "net [join $args] has $drivers drivers" }
    foreach p $args { dict set ::connected [string trimleft $p /] 1 }
    lappend ::nets [lmap p $args {string trimleft $p /}]
    record connect_bd_net {*}$args
}

proc connect_bd_intf_net {a b} {
    set modes {}
    foreach p [list $a $b] {
        lassign [split_pin $p] cell pin
        set intf [cell_intf $cell]
        if {![dict exists $intf $pin]} { stub_error "cell $cell has no interface pin $pin" }
        if {[dict exists $::connected $cell/$pin]} { stub_error "interface pin $cell/$pin is connected twice" }
        lappend modes [dict get $intf $pin]
    }
    if {[lsort $modes] ne {M S}} { stub_error "$a and $b are not a master and a slave" }
    dict set ::connected [string trimleft $a /] 1
    dict set ::connected [string trimleft $b /] 1
    lappend ::intf_nets [list [string trimleft $a /] [string trimleft $b /]]
    record connect_bd_intf_net $a $b
}

proc apply_bd_automation {args} {
    set rule [opt $args -rule]
    set config [opt $args -config]
    set cell [string trimleft [lindex $args end] /]
    set ip [dict get $::cells $cell ip]
    if {$rule ne "xilinx.com:bd_rule:$ip"} { stub_error "automation rule $rule does not apply to $ip" }
    if {![string match {*apply_board_preset "1"*} $config]} { stub_error "the PS needs its board preset" }
    if {[dict get $::projects $::project board_part] eq ""} { stub_error "board preset without a board part" }
    # What the board presets switch on (ZCU104's enables two FPD masters).
    switch $ip {
        processing_system7 {
            dict set ::cells $cell config PCW_USE_M_AXI_GP0 1
            foreach port {DDR FIXED_IO} {
                if {[string match "*make_external*$port*" $config]} { dict set ::connected $cell/$port 1 }
            }
        }
        zynq_ultra_ps_e {
            dict set ::cells $cell config PSU__USE__M_AXI_GP0 1
            dict set ::cells $cell config PSU__USE__M_AXI_GP1 1
        }
    }
    record apply_bd_automation {*}$args
}

proc assign_bd_address {args} { set ::addresses_assigned 1; record assign_bd_address }

proc validate_bd_design {args} {
    if {!$::addresses_assigned} { stub_error "validate_bd_design: unassigned address segments" }
    dict for {cell info} $::cells {
        foreach {pin dir} [cell_pins $cell] {
            if {$dir eq "I" && ![dict exists $::connected $cell/$pin]} {
                stub_error "input $cell/$pin is not connected"
            }
        }
        foreach {pin mode} [cell_intf $cell] {
            if {![dict exists $::connected $cell/$pin]} { stub_error "interface $cell/$pin is not connected" }
        }
    }
    set ::validated 1
    record validate_bd_design
}
proc save_bd_design {args} { record save_bd_design }

proc make_wrapper {args} {
    if {!$::validated} { stub_error "make_wrapper before validate_bd_design" }
    set dir [dict get $::projects $::project dir]
    set wrapper $dir/$::project.gen/sources_1/bd/$::bd_name/hdl/$::bd_name\_wrapper.v
    file mkdir [file dirname $wrapper]
    close [open $wrapper w]
    record make_wrapper {*}$args
}

# --- runs, designs, reports ------------------------------------------------------------------
proc write_file {path text} {
    file mkdir [file dirname $path]
    set f [open $path w]
    puts -nonewline $f $text
    close $f
}

proc new_run {name kind progress status log} {
    set dir [dict get $::projects $::project dir]/$::project.runs/$name
    write_file $dir/runme.log $log
    dict set ::runs $name [dict create kind $kind PROGRESS $progress STATUS $status DIRECTORY $dir]
}

proc launch_runs {args} {
    need_project
    set name [lindex [lsearch -all -inline -not -glob $args -*] 0]
    set dir [dict get $::projects $::project dir]
    record launch_runs {*}$args
    if {$name eq "synth_1"} {
        if {[dict get $::projects $::project top] ne "${::bd_name}_wrapper"} {
            stub_error "synth_1 without the wrapper as top"
        }
        # One out-of-context run per block-design cell, then the top.
        dict for {cell info} $::cells {
            set run ${::bd_name}_${cell}_0_synth_1
            set log "INFO: \[Synth 8-6157\] synthesizing module '$cell'\n"
            if {$cell eq "accel" && [sc log_4445]} {
                append log "WARNING: \[Synth 8-4445\] could not open \$readmem data file 'x_dense0_pe0.mem';"
                append log " please make sure the file is added to project and has read permission, ignoring\n"
            }
            set ok [expr {!($cell eq "accel" && [sc fail] eq "synth_accel")}]
            set status [expr {$ok ? "synth_design Complete!" : "synth_design ERROR"}]
            new_run $run synth [expr {$ok ? "100%" : "30%"}] $status $log
        }
        new_run synth_1 synth 100% "synth_design Complete!" "synth_1\n"
        write_file $dir/$::project.gen/sources_1/bd/$::bd_name/hw_handoff/$::bd_name.hwh "<hwh/>\n"
    } elseif {$name eq "impl_1"} {
        if {![dict exists $::runs synth_1]} { stub_error "impl_1 before synth_1" }
        if {[sc fail] eq "impl"} {
            new_run impl_1 impl 58% "route_design ERROR" "ERROR: \[Route 35-0\]\n"
        } else {
            new_run impl_1 impl 100% "write_bitstream Complete!" "impl_1\n"
            write_file [dict get $::runs impl_1 DIRECTORY]/${::bd_name}_wrapper.bit "bit"
        }
        dict set ::runs impl_1 STATS.WNS [sc wns]
        dict set ::runs impl_1 STATS.WHS [sc whs]
    } else {
        stub_error "launch_runs $name"
    }
}
proc wait_on_run {args} { record wait_on_run {*}$args }

proc get_runs {args} {
    set filter [opt $args -filter]
    if {$filter ne ""} {
        if {$filter ne "IS_SYNTHESIS == 1"} { stub_error "get_runs -filter $filter" }
        set hits {}
        dict for {n r} $::runs { if {[dict get $r kind] eq "synth"} { lappend hits $n } }
        return $hits
    }
    set names [lsearch -all -inline -not -glob $args -*]
    foreach n $names { if {![dict exists $::runs $n]} { stub_error "no run $n" } }
    return $names
}

proc get_property {name object} {
    if {[dict exists $::runs $object]} {
        if {![dict exists $::runs $object $name]} { stub_error "run $object has no property $name" }
        return [dict get $::runs $object $name]
    }
    stub_error "get_property $name $object"
}

proc open_run {name args} {
    if {[dict get $::runs $name PROGRESS] ne "100%"} { stub_error "open_run: $name did not complete" }
    set ::design $name
    record open_run $name
}
proc close_design {args} { set ::design "" }
proc need_design {} { if {$::design eq ""} { stub_error "no open design" } }

proc get_cells {args} {
    need_design
    set filter [opt $args -filter]
    if {![string match "*accel*" $filter]} { stub_error "get_cells: count only the accelerator's cells" }
    if {[string match "*RAMB36*" $filter]} {
        set n [sc bram36]
    } elseif {[string match "*RAMB18*" $filter]} {
        set n [sc bram18]
    } else {
        stub_error "get_cells -filter $filter"
    }
    set cells {}
    for {set i 0} {$i < $n} {incr i} { lappend cells bnn_i/accel/inst/rom$i }
    return $cells
}

proc report_utilization {args} { need_design; write_file [opt $args -file] "utilization of $::design\n" }
proc report_timing_summary {args} { need_design; write_file [opt $args -file] "timing of $::design\n" }

# --- exit and dump ------------------------------------------------------------------------
proc dump {} {
    set f [open $::dump_path w]
    foreach c $::calls { puts $f "call\t[join $c \t]" }
    dict for {cell info} $::cells {
        puts $f "cell\t$cell\t[dict get $info vlnv]"
        dict for {k v} [dict get $info config] { puts $f "config\t$cell\t$k\t$v" }
    }
    foreach n $::nets { puts $f "net\t[join $n \t]" }
    foreach n $::intf_nets { puts $f "intf\t[join $n \t]" }
    dict for {name p} $::projects {
        foreach x [dict get $p files] { puts $f "file\t$name\t$x" }
        puts $f "board_part\t$name\t[dict get $p board_part]"
        foreach m [dict get $p msg_config] { puts $f "msg_config\t$name\t[join $m \t]" }
    }
    if {[dict exists $::ipx groups]} {
        dict for {g files} [dict get $::ipx groups] {
            foreach x $files {
                set t [expr {[dict exists $::ipx types $g $x] ? [dict get $::ipx types $g $x] : ""}]
                puts $f "ipfile\t$g\t$x\t$t"
            }
        }
    }
    close $f
}
rename exit _exit
proc exit {{code 0}} { dump; _exit $code }
"""


@dataclass
class Outcome:
    returncode: int
    stderr: str
    folder: Path
    records: list[list[str]] = field(default_factory=list)

    def rows(self, kind: str) -> list[list[str]]:
        return [r[1:] for r in self.records if r[0] == kind]

    def config(self, cell: str) -> dict[str, str]:
        return {k: v for c, k, v in self.rows("config") if c == cell}

    def net_of(self, pin: str) -> set[str]:
        nets = [set(n) for n in self.rows("net") if pin in n]
        assert len(nets) == 1, f"{pin} is on {len(nets)} nets"
        return nets[0]


def tclsh() -> str:
    path = shutil.which("tclsh")
    if path is None:
        pytest.fail("tclsh is missing: scripts/test.sh installs it (Debian package tcl)")
    return path


def expected_bram18(build: Path) -> int:
    m = re.search(r"^set expected_bram18 (\d+)$", (build / "vivado.tcl").read_text(), re.M)
    assert m, "vivado.tcl states no expected block RAM count"
    return int(m[1])


def run_script(build: Path, work: Path, **scenario: object) -> Outcome:
    """Run a copy of ``build``'s vivado.tcl under the stub; ``scenario`` overrides the good outcome."""
    folder = work / "build"
    shutil.copytree(build, folder)
    values: dict[str, object] = {"board_parts": list(BOARD_PARTS), "log_4445": 0, "fail": "", "wns": 0.125,
                                 "whs": 0.031, "bram36": 0, "bram18": expected_bram18(build)}
    values.update(scenario)

    def tcl_word(v: object) -> str:
        return "{" + " ".join(map(str, v)) + "}" if isinstance(v, list) else "{" + str(v) + "}"

    (work / "stub.tcl").write_text(VIVADO_STUB)
    (work / "run.tcl").write_text(
        "set ::scenario [dict create " + " ".join(f"{k} {tcl_word(v)}" for k, v in values.items()) + "]\n"
        f"set ::dump_path {{{work / 'dump.tsv'}}}\n"
        f"source {{{work / 'stub.tcl'}}}\nsource {{{folder / 'vivado.tcl'}}}\nexit 0\n")
    done = subprocess.run([tclsh(), str(work / "run.tcl")], capture_output=True, text=True, check=False, timeout=60)
    dump = work / "dump.tsv"
    records = [line.split("\t") for line in dump.read_text().splitlines()] if dump.exists() else []
    return Outcome(done.returncode, done.stderr, folder, records)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ck") / "net.pt"
    # 7-byte pixels beats (planes 4, 6, 7) make the DMA's beat wider than the accelerator's: pad_drop.
    random_checkpoint("tfc", widths=[37, 13, 7], planes=[4, 6, 7], dataset="fashion-mnist").save(path)
    return path


def build(checkpoint: Path, out: Path, board: str, *extra: str) -> Path:
    assert main(["build", str(checkpoint), "--board", board, "--no-synth", "--quiet", "--out", str(out), *extra]) == 0
    return out


@pytest.fixture(scope="module")
def builds(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("builds")
    return {board: build(checkpoint, root / board, board) for board in XILINX}


@pytest.fixture(scope="module")
def block_rom_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dense network whose first layer's weight ROMs go to block RAM (the sfc at its default folding)."""
    root = tmp_path_factory.mktemp("sfc")
    random_checkpoint("sfc", dataset="fashion-mnist").save(root / "sfc.pt")
    return build(root / "sfc.pt", root / "out", "pynq-z2")


@pytest.mark.parametrize("board", XILINX)
def test_script_builds_every_xilinx_board(board: str, builds: dict[str, Path], tmp_path: Path) -> None:
    out = run_script(builds[board], tmp_path)
    assert out.returncode == 0, out.stderr
    manifest = json.loads((out.folder / "manifest.json").read_text())
    top, design = manifest["top"], boards.BOARDS[board].block_design
    assert design is not None
    for name in (f"{top}.bit", f"{top}.hwh", f"{top}_timing_summary.rpt", f"{top}_utilization.rpt",
                 f"{top}_synth_utilization.rpt"):
        assert (out.folder / name).is_file(), name
    cells = {c: vlnv for c, vlnv in out.rows("cell")}
    assert cells["ps"].startswith(design.ip + ":")
    assert dict(out.rows("board_part"))[f"{top}_proj"] == design.board_part
    assert out.config("ps")[design.clock_setting] == "100"
    # The DMA: simple mode, 26-bit length register, the manifest's beat.
    dma = out.config("dma")
    assert (dma["c_include_sg"], dma["c_sg_length_width"]) == ("0", "26")
    assert dma["c_m_axis_mm2s_tdata_width"] == str(manifest["input"]["host_beat_bytes"] * 8)
    # The accelerator's reset: system reset AND the DMA's MM2S reset (a DMA soft reset resets it too).
    assert out.config("accel_reset") == {"C_OPERATION": "and", "C_SIZE": "1"}
    assert "accel_reset/Res" in out.net_of("accel/ap_rst_n")
    assert "rst_ps/peripheral_aresetn" in out.net_of("accel_reset/Op1")
    assert out.net_of("accel_reset/Op2") == {"accel_reset/Op2", "dma/mm2s_prmry_reset_out_n"}
    assert f"ps/{design.clock}" in out.net_of("accel/ap_clk")
    padded = manifest["input"]["host_beat_bytes"] * 8 != manifest["input"]["tdata_bits"]
    assert ("pad_drop" in cells) == padded and (not padded or "accel_reset/Res" in out.net_of("pad_drop/aresetn"))
    # Every ROM image in both of the IP's file groups, typed mem; the top-level project holds no RTL.
    ipfiles = {(g, path): kind for g, path, kind in out.rows("ipfile")}
    for m in manifest["memories"]:
        for group in ("xilinx_anylanguagesynthesis", "xilinx_anylanguagebehavioralsimulation"):
            assert ipfiles.get((group, f"src/{m}")) == "mem", (group, m)
    top_files = [f for project, f in out.rows("file") if project == f"{top}_proj"]
    assert [Path(f).name for f in top_files] == ["bnn.bd", "bnn_wrapper.v"]
    calls = [r[0] for r in out.rows("call")]
    assert calls.index("ipx::update_checksums") < calls.index("ipx::check_integrity") < calls.index("ipx::save_core")
    assert ["Synth 8-4445", "-new_severity", "ERROR"] == [w for w in out.rows("msg_config")[0][2:] if w != "-id"]
    assert calls.index("set_msg_config") < calls.index("launch_runs")


def test_expected_block_ram_is_the_block_roms(block_rom_build: Path) -> None:
    manifest = json.loads((block_rom_build / "manifest.json").read_text())
    # A dense-only network: all its estimated block RAM is weight ROMs.
    assert expected_bram18(block_rom_build) == manifest["resources"]["estimate"]["bram18"] > 0


def _ultrascale(**changes: object) -> ZynqBlockDesign:
    return dataclasses.replace(zynq_ultrascale("xilinx.com:zcu104:part0:1.1"), **changes)  # type: ignore[arg-type]


BROKEN_DESIGNS: dict[str, tuple[ZynqBlockDesign, str]] = {
    "Zynq-7000 PS on an UltraScale+ part": (zynq_7000("xilinx.com:zcu104:part0:1.1"),
                                           "processing_system7 is not in this Vivado's IP catalog"),
    "a port the PS lacks": (_ultrascale(slave="S_AXI_HP0"), "has no interface pin S_AXI_HP0"),
    "a setting the PS lacks": (_ultrascale(settings=(*zynq_ultrascale("x").settings, ("PCW_USE_S_AXI_HP0", "1"))),
                               "zynq_ultra_ps_e has no CONFIG.PCW_USE_S_AXI_HP0"),
    "the preset's second master left on": (
        _ultrascale(settings=tuple(s for s in zynq_ultrascale("x").settings if s[0] != "PSU__USE__M_AXI_GP1")),
        "maxihpm1_fpd_aclk is not connected"),
}


@pytest.mark.parametrize("case", BROKEN_DESIGNS)
def test_a_wrong_board_description_fails(case: str, checkpoint: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    design, message = BROKEN_DESIGNS[case]
    monkeypatch.setitem(boards.BOARDS, "zcu104", dataclasses.replace(boards.BOARDS["zcu104"], block_design=design))
    out = run_script(build(checkpoint, tmp_path / "b", "zcu104"), tmp_path)
    assert out.returncode != 0 and message in out.stderr, out.stderr
    assert not list(out.folder.glob("*.bit"))


BAD_OUTCOMES: dict[str, tuple[dict[str, object], str]] = {
    "board files missing": ({"board_parts": []}, "the board files for zcu104 (xilinx.com:zcu104:part0:1.1) are "
                                                 "not installed"),
    "IP synthesis failed": ({"fail": "synth_accel"}, "synthesis run bnn_accel_0_synth_1 stopped at 30%"),
    "ROM image not found": ({"log_4445": 1}, "synthesis could not read a ROM image"),
    "implementation failed": ({"fail": "impl"}, "implementation run impl_1 stopped at 58% (route_design ERROR)"),
    "setup slack negative": ({"wns": -0.25}, "timing not met at 100 MHz: WNS -0.25 ns"),
    "hold slack negative": ({"whs": -0.01}, "WHS -0.01 ns"),
}


@pytest.mark.parametrize("case", BAD_OUTCOMES)
def test_each_bad_outcome_stops_the_script(case: str, builds: dict[str, Path], tmp_path: Path) -> None:
    scenario, message = BAD_OUTCOMES[case]
    out = run_script(builds["zcu104"], tmp_path, **scenario)
    assert out.returncode == 1, out.stderr
    assert out.stderr.startswith("bnn2fpga: ") and message in " ".join(out.stderr.split()), out.stderr
    assert not list(out.folder.glob("*.bit")) and not list(out.folder.glob("*.hwh"))


def test_block_ram_below_the_block_roms_stops_the_script(block_rom_build: Path, tmp_path: Path) -> None:
    need = expected_bram18(block_rom_build)
    out = run_script(block_rom_build, tmp_path / "short", bram18=need - 1)
    assert out.returncode == 1 and f"{need - 1} RAMB18" in out.stderr and "weights were lost" in out.stderr
    assert not list(out.folder.glob("*.bit"))
    # A RAMB36 counts as two RAMB18: the same ROMs in half as many RAMB36 pass.
    out = run_script(block_rom_build, tmp_path / "ramb36", bram36=(need + 1) // 2, bram18=0)
    assert out.returncode == 0, out.stderr


def test_another_version_of_the_board_files_is_used(builds: dict[str, Path], tmp_path: Path) -> None:
    older = "xilinx.com:kv260_som:part0:1.3"
    out = run_script(builds["kv260"], tmp_path, board_parts=[older, "xilinx.com:zcu104:part0:1.1"])
    assert out.returncode == 0, out.stderr
    top = json.loads((out.folder / "manifest.json").read_text())["top"]
    assert dict(out.rows("board_part"))[f"{top}_proj"] == older


def test_open_toolchain_boards_get_no_vivado_script(checkpoint: Path, tmp_path: Path) -> None:
    assert not (build(checkpoint, tmp_path / "ulx3s", "ulx3s-85f") / "vivado.tcl").exists()
