#!/usr/bin/env python3
"""Flash and RAM of the firmware image by part (driver, smoltcp, websocket, app...).

    firmware/tools/size-by-part.py [ELF]      (default: `ci/cargo-firmware path`)

.text is attributed byte by byte with the DWARF line table, so code that LTO
inlined across crates still counts for the crate whose source it is; lines from
generic `core` code go to the function they were inlined into. .rodata and RAM
are attributed by symbol where the symbol is named; anonymous constants (strings,
jump tables, panic locations) are listed as such. Generic `core` code inlined
into a function counts for the source lines around it (the last non-core line
before it in that function), so the split is an estimate to a few hundred bytes.
"""
import bisect, re, subprocess, sys
from collections import defaultdict

PARTS = [
    ("driver", r"firmware/src/ethernet|firmware::ethernet"),
    ("app", r"firmware/src/app|firmware::app|firmware/src/portable/messages|firmware::messages|firmware/reverse-echo|reverse_echo::"),
    ("websocket", r"firmware/websocket|websocket::|/md-?5-|/sha1-|/digest-|/block-buffer|/crypto-common|/hybrid-array|\bmd5::|\bsha1::|\bdigest::|block_buffer"),
    ("smoltcp", r"smoltcp|heapless|managed|byteorder"),
    ("firmware (boot, net glue, log, args)", r"firmware/src|firmware::|^firmware$"),
    ("runtime (cortex-m, semihosting, panic)", r"cortex[-_]m|panic[-_]semihosting|lm3s6965|vcell|volatile[-_]register|critical[-_]section|bare[-_]metal|__RESET|__EXCEPTIONS|__INTERRUPTS|Reset|HardFault|DefaultHandler"),
    ("core (fmt, mem, panics)", r"rustlib|library/core|core::|compiler_builtins|/rustc/|^<?&?(str|char|u8|u16|u32|u64|usize|i32|i64)\b"),
]


def owner(symbol):
    """The path a symbol is defined under: `<smoltcp::x::Y as core::T>::f` -> `smoltcp::x`,
    ignoring generic arguments (a `dispatch_ip::<firmware::ethernet::TxToken>` is smoltcp)."""
    name = symbol.lstrip("<&")
    name = re.split(r"[<> ]", name)[0]
    return "::".join(name.split("::")[:3])


def part_of(text):
    for name, pattern in PARTS:
        if re.search(pattern, text):
            return name
    return None


def run(*args):
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def main():
    elf = sys.argv[1] if len(sys.argv) > 1 else run("ci/cargo-firmware", "path").strip()
    sections = {}
    for line in run("llvm-size", "-A", elf).splitlines():
        f = line.split()
        if len(f) == 3 and f[1].isdigit():
            sections[f[0]] = (int(f[1]), int(f[2]))

    # Symbols: (addr, size, name) for functions and data.
    syms = []
    for line in run("llvm-nm", "--print-size", "--size-sort", "-C", "--radix=d", elf).splitlines():
        m = re.match(r"(\d+) (\d+) (\w) (.*)", line)
        if m:
            syms.append((int(m.group(1)), int(m.group(2)), m.group(3), m.group(4)))
    funcs = sorted((a, s, n) for a, s, t, n in syms if t in "tT")
    starts = [a for a, _, _ in funcs]

    def func_at(addr):
        i = bisect.bisect_right(starts, addr) - 1
        if i >= 0 and funcs[i][0] <= addr < funcs[i][0] + funcs[i][1]:
            return owner(funcs[i][2])
        return ""

    # Line table rows: address -> file, per sequence.
    rows = []
    files = {}
    dirs = {}
    seq = []
    cur_file_name = None
    for line in run("llvm-dwarfdump", "--debug-line", elf).splitlines():
        if line.startswith("debug_line["):
            files, dirs = {}, {}
        m = re.match(r'include_directories\[\s*(\d+)\] = "(.*)"', line)
        if m:
            dirs[int(m.group(1))] = m.group(2)
            continue
        m = re.match(r"file_names\[\s*(\d+)\]:", line)
        if m:
            cur = int(m.group(1))
            continue
        m = re.match(r'\s+name: "(.*)"', line)
        if m:
            cur_file_name = m.group(1)
            continue
        m = re.match(r"\s+dir_index: (\d+)", line)
        if m and cur_file_name is not None:
            files[cur] = dirs.get(int(m.group(1)), "") + "/" + cur_file_name
            cur_file_name = None
            continue
        m = re.match(r"0x([0-9a-f]+)\s+\d+\s+\d+\s+(\d+)\s.*?(end_sequence)?\s*$", line)
        if m:
            seq.append((int(m.group(1), 16), files.get(int(m.group(2)), "?")))
            if m.group(3):
                for (a, f), (b, _) in zip(seq, seq[1:]):
                    if b > a:
                        rows.append((a, b, f))
                seq = []

    text_start, text_size = sections[".text"][1], sections[".text"][0]
    text = defaultdict(int)
    covered = 0
    rows.sort()
    done = text_start
    last_func, last_part = None, None
    for a, b, f in rows:
        a, b = max(a, text_start, done), min(b, text_start + text_size)
        if b <= a:
            continue
        func = func_at(a)
        if func != last_func:
            last_func, last_part = func, None
        p = part_of(f)
        if p is None or p.startswith("core"):
            # Generic core code (slices, options, integers) inlined somewhere counts
            # for the code around it: the last non-core line in the same function,
            # else the function's own crate.
            p = last_part or part_of(func) or p or "other"
        else:
            last_part = p
        text[p] += b - a
        covered += b - a
        done = b
    text["(no line info)"] += text_size - covered

    rodata = defaultdict(int)
    ro_start, ro_size = sections[".rodata"][1], sections[".rodata"][0]
    named = 0
    for a, s, t, n in syms:
        if ro_start <= a < ro_start + ro_size and s:
            rodata[part_of(owner(n)) or "other"] += s
            named += s
    rodata["(anonymous: strings, tables, panic locations)"] += ro_size - named

    ram = defaultdict(int)
    for sec in (".data", ".bss", ".uninit"):
        if sec not in sections:
            continue
        size, start = sections[sec]
        named = 0
        for a, s, t, n in syms:
            if start <= a < start + size and s and t in "dDbB":
                ram[part_of(owner(n)) or "other"] += s
                named += s
        if size - named:
            ram["(anonymous " + sec + ")"] += size - named

    flash = sections[".vector_table"][0] + text_size + ro_size + sections.get(".data", (0, 0))[0]
    print("image %s" % elf)
    print("flash total %d bytes (%.1f KiB): vectors %d + text %d + rodata %d + data %d"
          % (flash, flash / 1024, sections[".vector_table"][0], text_size, ro_size,
             sections.get(".data", (0, 0))[0]))
    ram_total = sections.get(".data", (0, 0))[0] + sections.get(".bss", (0, 0))[0] + sections.get(".uninit", (0, 0))[0]
    print("static RAM %d bytes (data + bss + uninit); add the stack high-water mark printed at exit" % ram_total)
    statics = sorted(
        ((s, n) for a, s, t, n in syms if t in "dDbB" and s >= 32), reverse=True)
    for title, table in (("text by part", text), ("rodata by part", rodata)):
        print("\n%s:" % title)
        for k, v in sorted(table.items(), key=lambda kv: -kv[1]):
            if v:
                print("  %7d  %s" % (v, k))
    print("\nstatic RAM, statics of 32 bytes or more:")
    for size, name in statics:
        print("  %7d  %s" % (size, name))


if __name__ == "__main__":
    main()
