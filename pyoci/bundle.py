"""The launcher's module bundle: pyoci's modules compiled into one file.

Importing a module the usual way costs this project's machines about 0.1 ms
beyond running it (the path finder's stat and directory checks, opening and
reading the .pyc), and `create` imports some thirty of pyoci's modules.  At
install, :func:`build` compiles every module of the package into one file,
and the launcher calls :func:`install` first thing: a finder at the front of
``sys.meta_path`` answers for pyoci's modules from that file (one
``pread`` and one ``marshal.loads`` each).  It also names where the
extension modules of the hot paths are (pyoci's cffi helper, ``_json``,
``_cffi_backend``; loaded by the usual loader) and carries ``__future__``:
found the usual way, those cost a listing of the stdlib's directories or of
site-packages.  It answers for nothing else.

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

FORMAT = b"pyoci-modules-2\n"

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ast
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

# name -> (origin, offset, length, mtime_ns and size of origin, is_package);
# offset -1: an extension module, loaded from origin by the usual loader
Entry = tuple[str, int, int, int, int, bool]

# Outside the package: the modules pyoci's hot paths import that the usual
# finder would look for along the whole of sys.path (the stdlib's
# directories, site-packages) -- one directory listing each, or more.
EXTRA = ("__future__", "_json", "_cffi_backend")


class BundleFinder:
    """A meta path finder and loader for the modules in one bundle file."""

    def __init__(self, path: str, fd: int, index: dict[str, Entry], data_start: int) -> None:
        self.path = path
        self.fd = fd
        self.index = index
        self.data_start = data_start

    def find_spec(self, name: str, path: "Sequence[str] | None" = None,
                  target: "ModuleType | None" = None) -> "ModuleSpec | None":
        entry = self.index.get(name)
        if entry is None:
            return None
        origin, off, _len, mtime_ns, size, is_pkg = entry
        try:
            st = posix.stat(origin)
        except OSError:
            return None
        if st.st_mtime_ns != mtime_ns or st.st_size != size:
            return None             # changed since the bundle was built
        if off < 0:
            loader = _external.ExtensionFileLoader(name, origin)
            ext: ModuleSpec = _bootstrap.ModuleSpec(name, loader, origin=origin)
            ext.has_location = True
            return ext
        spec: ModuleSpec = _bootstrap.ModuleSpec(name, self, origin=origin,  # type: ignore[arg-type]
                                                 is_package=is_pkg)
        spec.has_location = True
        # Where the compiled code lives (set, so that importlib does not
        # work out a __pycache__ path for each module).
        spec.cached = self.path
        if is_pkg:
            spec.submodule_search_locations = [origin.rpartition("/")[0]]
        return spec

    def create_module(self, spec: "ModuleSpec") -> None:
        return None                 # the default module object

    def exec_module(self, module: "ModuleType") -> None:
        _o, off, length, _m, _s, _p = self.index[module.__name__]
        code = marshal.loads(posix.pread(self.fd, length, self.data_start + off))
        exec(code, module.__dict__)  # noqa: S102  # our own compiled source


def install(path: str) -> None:
    """Put the bundle at ``path`` in front of the import system; a missing or
    foreign bundle changes nothing."""
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
    sys.meta_path.insert(0, BundleFinder(path, fd, index, start + n))


def _lean(source: bytes, src_path: str) -> "ast.Module":
    """The module's syntax tree less what only readers and type checkers use:
    function and class docstrings and function annotations (the module's
    own docstring stays, as pyoci.cli.manpages reads those).  A sixth less
    code to unmarshal on every call; tracebacks keep their line numbers."""
    import ast

    def strip_doc(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        body = node.body
        if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]

    tree = ast.parse(source, src_path)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            strip_doc(node)
            node.returns = None
            a = node.args
            for arg in (*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg):
                if arg is not None:
                    arg.annotation = None
        elif isinstance(node, ast.ClassDef):
            strip_doc(node)     # (class-level annotations stay: NamedTuple needs them)
    return ast.fix_missing_locations(tree)


def build(out: str, base: str, package: str = "pyoci", extra: tuple[str, ...] = EXTRA) -> int:
    """Compile every module of ``package`` (under ``base``) into ``out``, and
    the ``extra`` modules this interpreter finds (their code, or the path of
    an extension module); return how many.  Written to a temporary name and
    renamed.  Run under ``-X no_debug_ranges`` (pyoci.launcher does), the
    code carries no column positions either (another sixth less)."""
    import importlib.util
    import os

    entries: dict[str, Entry] = {}
    blobs: list[bytes] = []
    offset = 0

    def add_source(name: str, src_path: str, is_pkg: bool) -> None:
        nonlocal offset
        with open(src_path, "rb") as f:
            source = f.read()
        st = os.stat(src_path)
        code = compile(_lean(source, src_path), src_path, "exec", dont_inherit=True)
        blob = marshal.dumps(code)
        entries[name] = (src_path, offset, len(blob), st.st_mtime_ns, st.st_size, is_pkg)
        blobs.append(blob)
        offset += len(blob)

    for dirpath, dirnames, filenames in os.walk(os.path.join(base, package)):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for fn in sorted(filenames):
            src_path = os.path.join(dirpath, fn)
            rel = os.path.relpath(src_path, base).replace(os.sep, ".")
            if fn.endswith(".py"):
                is_pkg = rel.endswith(".__init__.py")
                add_source(rel[:-len(".__init__.py")] if is_pkg else rel[:-3], src_path, is_pkg)
            elif fn.endswith(".so") and "." in fn[:-3]:
                # an extension module of the package (the cffi helper)
                name = rel.split(".cpython-")[0].split(".abi3")[0]
                st = os.stat(src_path)
                entries[name] = (src_path, -1, 0, st.st_mtime_ns, st.st_size, False)
    for name in extra:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin or not os.path.isfile(spec.origin):
            continue                # built in, frozen or absent here
        if spec.origin.endswith(".py"):
            add_source(name, spec.origin, False)
        elif spec.origin.endswith(".so"):
            st = os.stat(spec.origin)
            entries[name] = (spec.origin, -1, 0, st.st_mtime_ns, st.st_size, False)
    index = marshal.dumps(entries)
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(FORMAT + _external.MAGIC_NUMBER + len(index).to_bytes(8, "little") + index)
        f.write(b"".join(blobs))
    os.replace(tmp, out)
    return len(entries)
