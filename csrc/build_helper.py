"""cffi build script for pyoci's C helper (out-of-line API mode).

Run at install time (setup.py's ``cffi_modules``).  It builds two programs
from csrc/ (see internal.h):

* ``pyoci-init``, a static executable (glibc's static libc, no other
  library): the container's side of a spawn (stage1, stage2).  Built first,
  with the C compiler, into build/pyoci-init;
* the extension module ``pyoci.native._helper``: the parent's side, which
  carries pyoci-init's bytes (``.incbin``) and runs them from a sealed memfd
  (launch.c).

The cdef is the CDEF block of helper.h, so the header is the single
description of the Python <-> C interface.
"""

from __future__ import annotations

import os
import pathlib
import shlex
import subprocess
import sysconfig

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent
BUILD = HERE.parent / "build"
EXT_SOURCES = ["launch.c", "blob.c", "msg.c", "sys.c", "seccomp_bpf.c", "bpf.c"]
INIT_SOURCES = ["init.c", "blob.c", "msg.c", "spawn.c", "ops.c", "process.c", "tty.c", "seccomp.c"]
# Warnings are errors, for csrc/ and for the code cffi generates around it.
CFLAGS = ["-O2", "-Wall", "-Wextra", "-Werror", "-std=gnu11"]


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


def build_init() -> pathlib.Path:
    """Compile and link pyoci-init statically; return its path."""
    BUILD.mkdir(exist_ok=True)
    out = BUILD / "pyoci-init"
    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    cmd = [*cc, *CFLAGS, "-static", "-s", "-fno-pie", "-no-pie", "-I", str(HERE),
           *[str(HERE / s) for s in INIT_SOURCES], "-o", str(out)]
    subprocess.run(cmd, check=True)
    return out


INIT = build_init()
# The bytes of pyoci-init as two symbols of the extension (hidden: not
# exported from the shared object).
EMBED = f"""
__asm__(".section .rodata\\n"
        ".balign 16\\n"
        ".globl pyoci_init_elf\\n.hidden pyoci_init_elf\\n"
        "pyoci_init_elf:\\n"
        ".incbin \\"{INIT}\\"\\n"
        ".globl pyoci_init_elf_end\\n.hidden pyoci_init_elf_end\\n"
        "pyoci_init_elf_end:\\n"
        ".previous\\n");
"""

ffibuilder = FFI()
ffibuilder.cdef(_cdef())
ffibuilder.set_source(
    "pyoci.native._helper",
    '#include "helper.h"\n' + EMBED,
    sources=[f"csrc/{s}" for s in EXT_SOURCES],
    include_dirs=["csrc"],
    libraries=["seccomp"],
    extra_compile_args=CFLAGS,
    depends=[str(INIT)],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
