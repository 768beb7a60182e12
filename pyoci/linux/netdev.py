"""linux.netDevices: move host network devices into the container's network
namespace, with pyroute2 (imported only by configs that list devices).

What happens, as runtime-spec 1.2's config-linux.md asks and runc does:

* before anything exists (:func:`check_host`): the caller can move devices
  (CAP_NET_ADMIN; a rootless caller cannot, as with runc) and every device
  named exists on the host;
* at SYNC 2, when the init is in its network namespace and before it goes on
  (:meth:`Mover.move`): each device is moved and renamed in one RTM_NEWLINK
  (so a name taken on either side never sees a half-done move), its
  permanent global-scope IPv4/IPv6 addresses (IFA_F_PERMANENT,
  RT_SCOPE_UNIVERSE; the kernel drops every address on a move) are added
  again inside, and it is set up (the spec: the runtime MUST set it "up");
* if create fails after a move, :meth:`Mover.restore` moves the devices back
  to the host under their names, with their addresses and up/down state: the
  namespace is held open until then, so even a veth survives;
* on `delete` nothing is done: the spec says a runtime MUST NOT move devices
  out before the namespace goes.  When the container's network namespace
  dies, the kernel moves physical devices back to the host's initial network
  namespace (under the name they had inside; `dev%d` if that is taken) and
  destroys virtual ones (a veth with its peer, a macvlan, ...).  In a
  namespace joined by path the devices stay there with it.
"""

from __future__ import annotations

import os

from pyoci.errors import ConfigError, PyociError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

F = "$.linux.netDevices"
CAP_NET_ADMIN = 12
IFF_UP = 0x1
IFA_F_PERMANENT = 0x80
RT_SCOPE_UNIVERSE = 0
# Address flags a new address may carry over (the rest are the kernel's state):
# NODAD, HOMEADDRESS, MANAGETEMPADDR, NOPREFIXROUTE, MCAUTOJOIN.
IFA_KEEP = 0x02 | 0x10 | 0x100 | 0x200 | 0x400
ROOTLESS_HINT = ("moving a network device needs CAP_NET_ADMIN in the network namespace it is in; "
                 "run the container as root, or leave linux.netDevices out and let the "
                 "engine's network setup (slirp4netns, pasta) give it a network")


def field(host_name: str) -> str:
    if host_name.isidentifier():
        return f"{F}.{host_name}"
    return F + "['" + host_name.replace("\\", "\\\\").replace("'", "\\'") + "']"


def has_cap_net_admin() -> bool:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_NET_ADMIN & 1)
    except (OSError, ValueError):
        pass
    return False


def check_host(devices: dict[str, Any]) -> None:
    """Before anything exists: refuse what cannot be moved here."""
    if not has_cap_net_admin():
        who = "a rootless container" if os.geteuid() != 0 else "this process (without CAP_NET_ADMIN)"
        raise PyociError(f"{F}: {who} cannot move network devices", field=F, hint=ROOTLESS_HINT)
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        for host_name in devices:
            if not ipr.link_lookup(ifname=host_name):
                raise ConfigError(field(host_name), f"no network device {host_name!r} on the host",
                                  hint="`ip link show` lists the host's devices")


class Moved:
    """A device moved in: where it is inside, and how to put it back."""

    __slots__ = ("host_name", "index", "name", "addrs", "was_up")

    def __init__(self, host_name: str, index: int, name: str, addrs: list[dict[str, Any]],
                 was_up: bool) -> None:
        self.host_name = host_name
        self.index = index
        self.name = name
        self.addrs = addrs
        self.was_up = was_up


def _addresses(ipr: Any, index: int) -> list[dict[str, Any]]:
    """The device's permanent, global-scope addresses, as arguments for addr('add')."""
    out = []
    for msg in ipr.get_addr(index=index):
        flags = msg.get_attr("IFA_FLAGS")
        if flags is None:
            flags = msg["flags"]
        if not flags & IFA_F_PERMANENT or msg["scope"] != RT_SCOPE_UNIVERSE:
            continue
        a: dict[str, Any] = {"family": msg["family"], "prefixlen": msg["prefixlen"],
                             "address": msg.get_attr("IFA_ADDRESS")}
        local = msg.get_attr("IFA_LOCAL")
        if local is not None:
            a["local"] = local
        broadcast = msg.get_attr("IFA_BROADCAST")
        if broadcast is not None:
            a["broadcast"] = broadcast
        if flags & IFA_KEEP:
            a["flags"] = flags & IFA_KEEP
        out.append(a)
    return out


def _template_match(template: str, name: str) -> bool:
    """Whether the kernel could have made ``name`` from ``template`` ("eth%d")."""
    if "%d" not in template:
        return name == template
    head, tail = template.split("%d", 1)
    num = name[len(head):len(name) - len(tail)] if tail else name[len(head):]
    return name.startswith(head) and name.endswith(tail) and num.isdigit()


def _find_inside(ipr: Any, old_index: int, name: str, mac: str | None) -> tuple[int, str]:
    """The moved device inside: it keeps its index unless that is taken, and
    its MAC address; its name is ``name`` or what the kernel made of a template."""
    found: list[tuple[int, str]] = []
    for link in ipr.get_links():
        ifname = link.get_attr("IFLA_IFNAME")
        if not _template_match(name, ifname):
            continue
        if link["index"] == old_index:
            return old_index, ifname
        if mac is None or link.get_attr("IFLA_ADDRESS") == mac:
            found.append((link["index"], ifname))
    if len(found) == 1:
        return found[0]
    raise PyociError(f"find network device {name!r} in the container's network namespace after moving it",
                     op="RTM_GETLINK")


class _Code(Exception):
    """An errno found before asking the kernel, worded as if it had answered."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _netlink_error(e: Exception, host_name: str, name: str, what: str) -> PyociError:
    code = getattr(e, "code", 0) or 0
    hint = None
    msg = f"{field(host_name)}: {what}"
    if code == 17:      # EEXIST
        hint = (f'a device named "{name}" already exists in the container\'s network namespace; '
                'choose another "name", or end it with %d to let the kernel number it')
    elif code == 19:    # ENODEV
        hint = "the device went away from the host"
    elif code == 22:    # EINVAL
        hint = "the kernel keeps some devices in their namespace (lo, bridges, ...) and refuses the move"
    elif code == 1:     # EPERM
        hint = ROOTLESS_HINT
    return PyociError(msg, field=field(host_name), op="netlink", errno=code or None, hint=hint)


def _same_namespace(fd: int) -> bool:
    try:
        mine = os.stat("/proc/self/ns/net")
        theirs = os.fstat(fd)
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)


class Mover:
    """Moves linux.netDevices into a container's network namespace and, when
    create fails afterwards, back out."""

    def __init__(self, devices: dict[str, Any]) -> None:
        self.devices = devices
        self.ns_fd = -1
        self.moved: list[Moved] = []

    def _ns_path(self) -> str:
        # The namespace by our fd, so it can be reached after its last process
        # died (the fd keeps it alive); pyroute2 opens it in a child of ours.
        return f"/proc/{os.getpid()}/fd/{self.ns_fd}"

    def move(self, pid: int) -> None:
        """SYNC 2: move every device into the network namespace of ``pid``."""
        from pyroute2 import IPRoute, NetlinkError

        try:
            self.ns_fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise PyociError.from_os("open the container's network namespace", e) from None
        if _same_namespace(self.ns_fd):
            # (a joined namespace that is pyoci's own: the "move" would rename
            # the host's devices in place)
            raise PyociError(f"{F}: the container's network namespace is the host's, so its devices "
                             "cannot be moved into it", field=F,
                             hint="give the container a network namespace of its own")
        with IPRoute() as host, IPRoute(netns=self._ns_path(), flags=0) as inside:
            for host_name, dev in self.devices.items():
                name = dev.get("name") or host_name
                found = host.link_lookup(ifname=host_name)
                if not found:
                    raise ConfigError(field(host_name), f"no network device {host_name!r} on the host",
                                      hint="`ip link show` lists the host's devices")
                index = found[0]
                link = host.get_links(index)[0]
                was_up = bool(link["flags"] & IFF_UP)
                addrs = _addresses(host, index)
                mac = link.get_attr("IFLA_ADDRESS")
                if "%" not in name and inside.link_lookup(ifname=name):
                    # (the kernel would move the device first and fail the
                    # rename after: refuse before anything moves)
                    raise _netlink_error(_Code(17), host_name, name,
                                         "move into the container's network namespace")
                try:
                    host.link("set", index=index, net_ns_fd=self.ns_fd, ifname=name)
                except NetlinkError as e:
                    # Moved but not renamed (a name taken meanwhile)?  Then it
                    # is ours to put back.
                    try:
                        at, now = _find_inside(inside, index, host_name, mac)
                        self.moved.append(Moved(host_name, at, now, addrs, was_up))
                    except PyociError:
                        pass
                    raise _netlink_error(e, host_name, name,
                                         "move into the container's network namespace") from None
                new_index, new_name = _find_inside(inside, index, name, mac)
                self.moved.append(Moved(host_name, new_index, new_name, addrs, was_up))
                for a in addrs:
                    try:
                        inside.addr("add", index=new_index, **a)
                    except NetlinkError as e:
                        raise _netlink_error(e, host_name, new_name,
                                             f"add address {a['address']}/{a['prefixlen']} inside "
                                             "the container") from None
                try:
                    inside.link("set", index=new_index, state="up")
                except NetlinkError as e:
                    raise _netlink_error(e, host_name, new_name, "set it up inside the container") from None
                from pyoci.report import debug

                debug(f"moved network device {host_name} into pid {pid}'s network namespace as "
                      f"{new_name}, with {len(addrs)} address(es), up")

    def restore(self) -> None:
        """create failed: put the moved devices back on the host as they were
        (best effort: what cannot be restored is a warning)."""
        if self.ns_fd < 0:
            return
        try:
            if self.moved:
                self._restore()
        except Exception as e:  # noqa: BLE001 (the create's own error is the one to report)
            from pyoci.report import warning

            warning(f"{F}: could not return the network devices to the host after the failed "
                    f"create: {e}")
        finally:
            self.close()

    def _restore(self) -> None:
        from pyroute2 import IPRoute

        from pyoci.report import warning

        host_fd = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            with IPRoute() as host, IPRoute(netns=self._ns_path(), flags=0) as inside:
                for m in reversed(self.moved):
                    try:
                        inside.link("set", index=m.index, net_ns_fd=host_fd, ifname=m.host_name)
                        index = host.link_lookup(ifname=m.host_name)[0]
                        for a in m.addrs:
                            host.addr("add", index=index, **a)
                        host.link("set", index=index, state="up" if m.was_up else "down")
                    except Exception as e:  # noqa: BLE001 (best effort; the create error is what counts)
                        warning(f"{field(m.host_name)}: could not return the network device to the host "
                                f"after the failed create: {e}")
        finally:
            os.close(host_fd)
        self.moved = []

    def close(self) -> None:
        """Let go of the container's network namespace (it lives on with the init)."""
        if self.ns_fd >= 0:
            os.close(self.ns_fd)
            self.ns_fd = -1
