"""cffi build script for pyoci's C helper (out-of-line API mode).

Run at install time (setup.py's ``cffi_modules``); produces the extension
module ``pyoci.native._helper``.  The cdef is the CDEF block of helper.h, so
the header is the single description of the Python <-> C interface.
"""

from __future__ import annotations

import pathlib

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent
SOURCES = ["spawn.c", "ops.c", "process.c", "tty.c", "seccomp.c", "bpf.c"]


def _cdef() -> str:
    text = (HERE / "helper.h").read_text()
    start = text.index("/* CDEF-BEGIN */") + len("/* CDEF-BEGIN */")
    end = text.index("/* CDEF-END */")
    block = text[start:end]
    # cffi wants "#define NAME ..." for constants it reads from the compiler.
    lines = []
    for line in block.splitlines():
        if line.startswith("#define "):
            name = line.split()[1]
            lines.append(f"#define {name} ...")
        else:
            lines.append(line)
    return "\n".join(lines)


ffibuilder = FFI()
ffibuilder.cdef(_cdef())
ffibuilder.set_source(
    "pyoci.native._helper",
    '#include "helper.h"\n',
    sources=[f"csrc/{s}" for s in SOURCES],
    include_dirs=["csrc"],
    libraries=["seccomp"],
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
