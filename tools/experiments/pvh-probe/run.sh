#!/usr/bin/env bash
# Measures how fast QEMU's direct `-kernel` boot (PVH entry note) reaches a
# serial marker, with the benchmark flags and no firmware disk boot or VESA
# setup: the lower bound for replacing the bootloader_api BIOS path
# (docs/benchmarks.md). Needs binutils (as, ld) and QEMU.
#   tools/experiments/pvh-probe/run.sh [RUNS]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
as --32 "$here/probe.S" -o "$work/probe.o"
ld -m elf_i386 -Ttext=0x100000 -e _start "$work/probe.o" -o "$work/probe.elf"
for _ in $(seq "${1:-5}"); do
    t0=$EPOCHREALTIME
    timeout 20 qemu-system-x86_64 -machine q35 -accel tcg -cpu qemu64 -smp 1 -m 512M \
        -nodefaults -no-user-config -display none -serial stdio -no-reboot \
        -kernel "$work/probe.elf" -device isa-debug-exit,iobase=0xf4,iosize=0x04 </dev/null |
        while IFS= read -r line; do
            case $line in *AETHER_CONSOLE_READY*) awk -v a="$t0" -v b="$EPOCHREALTIME" \
                'BEGIN { printf "BENCH pvh_probe_qemu_start_to_marker %.1f ms\n", (b - a) * 1000 }';; esac
        done || true
done
