"""A NUL inside a config string must not silently shorten it (issue 12 item 12).

C ends a string at its first NUL, so a runtime that hands config strings to C
unchecked acts on a different value than the one the config says, and the
one an engine's policy looked at: a bind-mount source written
``/srv/secret\\u0000.public`` passes a rule "only *.public files may be
mounted" and mounts /srv/secret; a masked path ``/etc/passwd\\u0000x`` masks
/etc/passwd.  The naive path below is exactly that truncation (cffi's
``char[]``, as pyoci's encoder builds its strings) followed by the mount;
pyoci must refuse the config, naming the field, and mount nothing.
"""

from __future__ import annotations

from helpers.ocitest import find_mount_leaks
from helpers.secutil import Side, describe, refused

SECRET = "TOPSECRET-5b1e"


def _truncated_by_c(value: str) -> str:
    """What C code receives for *value*: the bytes up to the first NUL."""
    from pyoci.native._helper import ffi

    buf = ffi.new("char[]", value.encode())
    text: str = ffi.string(buf).decode()
    return text


def test_nul_in_mount_source_does_not_mount_another_file(side: Side) -> None:
    host = side.workdir("host")
    secret = host / "secret"
    secret.write_text(SECRET + "\n")
    side.chown(secret)
    # The engine's policy: only files named *.public may be bind-mounted.
    source = f"{secret}\x00.public"
    assert source.endswith(".public")

    # Naive: the string as C sees it is the secret file, and mounting it shows the secret.
    seen = _truncated_by_c(source)
    assert seen == str(secret)
    target = side.workdir("mnt") / "f"
    target.write_text("")
    side.chown(target)
    p = side.naive('mount --bind "$SRC" "$DST" && cat "$DST"', pid=False,
                   env={"SRC": seen, "DST": str(target)})
    assert SECRET in p.stdout, f"the naive demonstration did not work:\n{describe(p)}"

    # pyoci: refused, naming the field; nothing mounted, the container never ran.
    b = side.bundle(["sh", "-c", "cat /mnt/pub; echo ran"])
    b.config["mounts"].append({"destination": "/mnt/pub", "type": "bind", "source": source,
                               "options": ["bind", "ro"]})
    side.save(b)
    r = side.pyoci("run", "--bundle", str(b.path), side.oci.cid())
    assert refused(r), str(r)
    n = len(b.config["mounts"]) - 1
    assert f"$.mounts[{n}].source" in r.stderr and "NUL" in r.stderr, r.stderr
    assert SECRET not in r.stdout and "ran" not in r.stdout
    assert not find_mount_leaks(side.oci)


def test_nul_in_masked_path_masks_nothing_else(side: Side) -> None:
    b = side.bundle(["true"])
    b.linux["maskedPaths"] = ["/etc/passwd\x00xyz"]
    side.save(b)
    assert _truncated_by_c(b.linux["maskedPaths"][0]) == "/etc/passwd"     # what C would mask
    r = side.pyoci("run", "--bundle", str(b.path), side.oci.cid())
    assert refused(r), str(r)
    assert "$.linux.maskedPaths[0]" in r.stderr, r.stderr
