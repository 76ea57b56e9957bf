#!/usr/bin/env python3
"""Write a minimal x86-64 ELF executable: one PT_LOAD at a physical address
holding the given machine code, entered in 64-bit mode by pocketvm.

usage: mini_elf.py OUT HEXBYTES [LOAD_ADDR]
"""
import struct
import sys


def make_elf(code, load=0x100000):
    ehdr_size, phdr_size = 64, 56
    off = 0x1000
    ehdr = struct.pack("<4sBBBBB7xHHIQQQIHHHHHH",
                       b"\x7fELF", 2, 1, 1, 0, 0,    # 64-bit, LE, v1, SysV
                       2, 0x3e, 1,                   # EXEC, x86-64, v1
                       load, ehdr_size, 0, 0,        # entry, phoff, shoff, flags
                       ehdr_size, phdr_size, 1, 64, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 7, off, load, load, len(code), len(code) + 4096,
                       0x1000)
    img = ehdr + phdr
    img += b"\0" * (off - len(img)) + code
    return img


if __name__ == "__main__":
    code = bytes.fromhex(sys.argv[2])
    load = int(sys.argv[3], 0) if len(sys.argv) > 3 else 0x100000
    with open(sys.argv[1], "wb") as f:
        f.write(make_elf(code, load))
