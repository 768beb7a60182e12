"""The launcher's module bundle: pyoci's modules compiled into one file.

Importing a module the usual way costs this project's machines about 0.1 ms
beyond running it (the path finder's stat and directory checks, opening and
reading the .pyc), and `create` imports some thirty of pyoci's modules.  At
install, :func:`build` compiles every module of the package into one file,
and the launcher calls :func:`install` first thing: a finder at the front of
``sys.meta_path`` answers for pyoci's modules from that file (one
``pread`` and one ``marshal.loads`` each) and for nothing else.

The bundle never serves stale code: each entry records the size and mtime of
the source it was compiled from, and a module whose source differs (an
editable install being worked on) is left to the normal import system, as is
everything when the file is missing or was written by another Python.  The
modules it serves are the same as imported normally: ``__file__``,
``__spec__``, package ``__path__`` and tracebacks name the real sources.

Only built-in modules here (this runs before anything else is imported).
"""

import _frozen_importlib as _bootstrap  # type: ignore[import-not-found]  # always loaded
import _frozen_importlib_external as _external  # type: ignore[import-not-found]
import marshal
import posix
import sys

FORMAT = b"pyoci-modules-1\n"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

# name -> (offset, length, source mtime_ns, source size, is_package)
Entry = tuple[int, int, int, int, bool]


class BundleFinder:
    """A meta path finder and loader for the modules in one bundle file."""

    def __init__(self, fd: int, base: str, index: dict[str, Entry], data_start: int) -> None:
        self.fd = fd
        self.base = base            # the directory holding the package
        self.index = index
        self.data_start = data_start

    def find_spec(self, name: str, path: "Sequence[str] | None" = None,
                  target: "ModuleType | None" = None) -> "ModuleSpec | None":
        entry = self.index.get(name)
        if entry is None:
            return None
        _off, _len, mtime_ns, size, is_pkg = entry
        rel = name.replace(".", "/")
        origin = f"{self.base}/{rel}/__init__.py" if is_pkg else f"{self.base}/{rel}.py"
        try:
            st = posix.stat(origin)
        except OSError:
            return None
        if st.st_mtime_ns != mtime_ns or st.st_size != size:
            return None             # changed since the bundle was built
        spec: ModuleSpec = _bootstrap.ModuleSpec(name, self, origin=origin,  # type: ignore[arg-type]
                                                 is_package=is_pkg)
        spec.has_location = True
        if is_pkg:
            spec.submodule_search_locations = [origin.rpartition("/")[0]]
        return spec

    def create_module(self, spec: "ModuleSpec") -> None:
        return None                 # the default module object

    def exec_module(self, module: "ModuleType") -> None:
        off, length, _m, _s, _p = self.index[module.__name__]
        code = marshal.loads(posix.pread(self.fd, length, self.data_start + off))
        exec(code, module.__dict__)  # noqa: S102  # our own compiled source


def install(path: str, base: str) -> None:
    """Put the bundle at ``path`` in front of the import system for the
    package under ``base``; a missing or foreign bundle changes nothing."""
    try:
        fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
    except OSError:
        return
    try:
        head = posix.read(fd, 65536)
        magic = _external.MAGIC_NUMBER
        start = len(FORMAT) + len(magic) + 8
        if head[:len(FORMAT)] != FORMAT or head[len(FORMAT):start - 8] != magic:
            raise ValueError("not a bundle of this Python")
        n = int.from_bytes(head[start - 8:start], "little")
        if start + n > len(head):
            head += posix.pread(fd, start + n - len(head), len(head))
        index = marshal.loads(head[start:start + n])
    except (OSError, ValueError, EOFError, TypeError):
        posix.close(fd)
        return
    sys.meta_path.insert(0, BundleFinder(fd, base, index, start + n))


def build(out: str, base: str, package: str = "pyoci") -> int:
    """Compile every module of ``package`` (under ``base``) into ``out``;
    return how many.  Written to a temporary name and renamed."""
    import os

    entries: dict[str, Entry] = {}
    blobs: list[bytes] = []
    offset = 0
    for dirpath, dirnames, filenames in os.walk(os.path.join(base, package)):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for fn in sorted(filenames):
            if not fn.endswith(".py"):
                continue
            src_path = os.path.join(dirpath, fn)
            rel = os.path.relpath(src_path, base)[:-3].replace(os.sep, ".")
            is_pkg = rel.endswith(".__init__")
            name = rel[:-len(".__init__")] if is_pkg else rel
            with open(src_path, "rb") as f:
                source = f.read()
            st = os.stat(src_path)
            code = compile(source, src_path, "exec", dont_inherit=True)
            blob = marshal.dumps(code)
            entries[name] = (offset, len(blob), st.st_mtime_ns, st.st_size, is_pkg)
            blobs.append(blob)
            offset += len(blob)
    index = marshal.dumps(entries)
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(FORMAT + _external.MAGIC_NUMBER + len(index).to_bytes(8, "little") + index)
        f.write(b"".join(blobs))
    os.replace(tmp, out)
    return len(entries)
