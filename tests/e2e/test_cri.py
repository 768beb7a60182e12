"""The Kubernetes CRI path: containerd 1.6's CRI plugin with a runtime
handler per runtime (``io.containerd.runc.v2`` with ``BinaryName``: see
tools.engines.Containerd.config), driven over gRPC with the CRI v1
stubs of PyPI's container-runtime-interface-api, as the kubelet would.

Every test runs once per runtime; the pod names the handler
(``runtime_handler``, what a Kubernetes RuntimeClass's ``handler`` sets).
Pods use the host network (no CNI) and a cgroup parent of their own; the
sandbox is the pause image built from busybox (``sleep inf``).  After each
test nothing may be left (helpers.e2e_engines.LeakCheck): no pod or container in
ListPodSandbox/ListContainers, no state under the handler's ``Root``, no
cgroup, mount or process.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.e2e import engine_cgroup
from helpers.e2e_engines import LeakCheck, cgroup_file, cgroup_of, runtime_state
from helpers.ocitest import wait_for

from tools.engines import BUSYBOX_REF, Containerd

grpc = pytest.importorskip("grpc", reason="grpcio missing (pip install container-runtime-interface-api)")
pb = pytest.importorskip("cri_api.v1.api_pb2", reason="pip install container-runtime-interface-api")
rpc = pytest.importorskip("cri_api.v1.api_pb2_grpc", reason="pip install container-runtime-interface-api")

MiB = 1 << 20


class CRI:
    """The CRI RuntimeService of one containerd, for one runtime handler."""

    def __init__(self, ctd: Containerd, runtime: tuple[str, str]) -> None:
        self.ctd = ctd
        self.handler, self.binary = runtime
        self.channel = grpc.insecure_channel(f"unix://{ctd.socket}")
        self.rt: Any = rpc.RuntimeServiceStub(self.channel)
        self.state_dir = os.path.join(ctd.runtime_root(self.handler), "k8s.io")   # the runtime's --root
        self.cgroup_parent = engine_cgroup("cri")

    def close(self) -> None:
        self.channel.close()

    def sandbox_config(self) -> Any:
        uid = uuid.uuid4().hex[:10]
        return pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=f"pod-{uid}", namespace="e2e", uid=uid, attempt=0),
            log_directory=os.path.join(self.ctd.base, "pod-logs", uid),
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=self.cgroup_parent,
                security_context=pb.LinuxSandboxSecurityContext(
                    namespace_options=pb.NamespaceOption(network=pb.NODE))))

    def run_pod(self) -> tuple[str, Any]:
        cfg = self.sandbox_config()
        resp = self.rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg, runtime_handler=self.handler))
        return resp.pod_sandbox_id, cfg

    def create(self, pod: str, pod_cfg: Any, command: list[str], **linux: Any) -> str:
        cfg = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name="c-" + uuid.uuid4().hex[:8]),
            image=pb.ImageSpec(image=BUSYBOX_REF), command=command, log_path="c.log",
            linux=pb.LinuxContainerConfig(resources=pb.LinuxContainerResources(**linux)))
        resp = self.rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=pod, config=cfg,
                                                                 sandbox_config=pod_cfg))
        return str(resp.container_id)

    def container_status(self, cid: str) -> Any:
        return self.rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status

    def remove_pod(self, pod: str) -> None:
        self.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod))
        self.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod))

    def listing(self) -> list[str]:
        pods = self.rt.ListPodSandbox(pb.ListPodSandboxRequest()).items
        ctrs = self.rt.ListContainers(pb.ListContainersRequest()).containers
        return [f"pod {p.id} {p.metadata.name}" for p in pods] + [f"container {c.id}" for c in ctrs]

    def remove_all(self) -> None:
        for p in self.rt.ListPodSandbox(pb.ListPodSandboxRequest()).items:
            self.remove_pod(p.id)

    def state(self, cid: str) -> dict[str, Any] | None:
        return runtime_state(self.binary, self.state_dir, cid)


@pytest.fixture
def cri(containerd: Containerd, runtime: tuple[str, str], e2e_base: Path) -> Iterator[CRI]:
    assert containerd.proc is not None
    c = CRI(containerd, runtime)
    leak = LeakCheck(str(e2e_base), {containerd.proc.pid}, [c.state_dir], c.cgroup_parent, c.listing)
    try:
        yield c
        leak.assert_clean(c.remove_all)
    finally:
        c.close()


def test_handler_is_configured(cri: CRI) -> None:
    """containerd took the handler from its config: Status(verbose) shows
    the runc shim with our BinaryName and Root."""
    resp = cri.rt.Status(pb.StatusRequest(verbose=True))
    config = json.loads(resp.info["config"])
    rt = config["containerd"]["runtimes"][cri.handler]
    assert rt["runtimeType"] == "io.containerd.runc.v2", rt
    assert rt["options"]["BinaryName"] == cri.binary, rt
    assert rt["options"]["Root"] == cri.ctd.runtime_root(cri.handler), rt
    assert {c.type: c.status for c in resp.status.conditions}["RuntimeReady"] is True


def test_pod_lifecycle(cri: CRI) -> None:
    pod, pod_cfg = cri.run_pod()
    try:
        status = cri.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod)).status
        assert status.state == pb.SANDBOX_READY
        sb = cri.state(pod)     # the handler's runtime made the sandbox
        assert sb is not None and sb["status"] == "running", sb
        pause = int(sb["pid"])
        # (runc's init may still be on its way to execve)
        wait_for(lambda: Path(f"/proc/{pause}/cmdline").read_bytes() == b"/bin/sleep\0inf\0",
                 what="the pause container to run sleep")
        assert cgroup_of(pause, "memory") == f"{cri.cgroup_parent}/{pod}"
        # the sandbox's oomScoreAdj (-998), raised by restrict_oom_score_adj to containerd's own
        assert cri.ctd.proc is not None
        ctd_adj = Path(f"/proc/{cri.ctd.proc.pid}/oom_score_adj").read_text()
        assert Path(f"/proc/{pause}/oom_score_adj").read_text() == ctd_adj
        # the sandbox's root is read-only (its last mount on "/")
        root_mounts = [ln.split() for ln in Path(f"/proc/{pause}/mountinfo").read_text().splitlines()
                       if ln.split()[4] == "/"]
        assert "ro" in root_mounts[-1][5].split(","), root_mounts

        cid = cri.create(pod, pod_cfg, ["sh", "-c", "echo started; while :; do sleep 0.1; done"],
                         memory_limit_in_bytes=128 * MiB, oom_score_adj=500)
        cri.rt.StartContainer(pb.StartContainerRequest(container_id=cid))
        assert cri.container_status(cid).state == pb.CONTAINER_RUNNING
        st = cri.state(cid)
        assert st is not None and st["status"] == "running", st
        pid = int(st["pid"])
        assert cgroup_file(cri.cgroup_parent, cid, "memory", "memory.limit_in_bytes") == str(128 * MiB)
        assert Path(f"/proc/{pid}/oom_score_adj").read_text() == "500\n"

        # the container joined the sandbox's namespaces by /proc/<pid>/ns/* paths
        for ns in ("pid", "ipc", "uts", "net"):
            assert os.readlink(f"/proc/{pid}/ns/{ns}") == os.readlink(f"/proc/{pause}/ns/{ns}"), ns
        assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink(f"/proc/{pause}/ns/mnt")

        r = cri.rt.ExecSync(pb.ExecSyncRequest(
            container_id=cid, timeout=30,
            cmd=["sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo to-stderr >&2; exit 3"]))
        assert (r.exit_code, r.stdout, r.stderr) == (3, b"/bin/sleep inf \n", b"to-stderr\n"), r

        cri.rt.UpdateContainerResources(pb.UpdateContainerResourcesRequest(
            container_id=cid, linux=pb.LinuxContainerResources(memory_limit_in_bytes=64 * MiB,
                                                               cpu_shares=512)))
        assert cgroup_file(cri.cgroup_parent, cid, "memory", "memory.limit_in_bytes") == str(64 * MiB)
        assert cgroup_file(cri.cgroup_parent, cid, "cpu", "cpu.shares") == "512"

        try:
            stats = cri.rt.ContainerStats(pb.ContainerStatsRequest(container_id=cid)).stats
        except grpc.RpcError as e:    # the shim found no cgroup for the container's init
            cgroups = Path(f"/proc/{pid}/cgroup").read_text()
            raise AssertionError(f"ContainerStats: {e.details()}\n/proc/{pid}/cgroup:\n{cgroups}") from e
        assert stats.attributes.id == cid
        assert stats.cpu.usage_core_nano_seconds.value > 0, stats
        assert stats.memory.working_set_bytes.value > 0, stats
        assert stats.memory.available_bytes.value <= 64 * MiB, stats

        # StopContainer: SIGTERM (sh is not pid 1 here: the pause is), then
        # `kill --all 9` for the rest
        cri.rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=10))
        status = cri.container_status(cid)
        assert status.state == pb.CONTAINER_EXITED and status.exit_code == 143, status
        assert b"started" in Path(status.log_path).read_bytes()
        cri.rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid))
        assert cri.state(cid) is None
    finally:
        cri.remove_pod(pod)
    assert cri.listing() == []
    wait_for(lambda: not os.path.exists(f"/proc/{pause}/cmdline")
             or Path(f"/proc/{pause}/cmdline").read_bytes() == b"", what="the pause process to go")


def test_start_failure_carries_the_runtime_error(cri: CRI) -> None:
    pod, pod_cfg = cri.run_pod()
    try:
        cid = cri.create(pod, pod_cfg, ["/nonexistent"])
        with pytest.raises(grpc.RpcError) as exc:
            cri.rt.StartContainer(pb.StartContainerRequest(container_id=cid))
        msg = exc.value.details()
        assert "OCI runtime create failed" in msg and "/nonexistent" in msg, msg
        assert "no such file or directory" in msg, msg
        assert cri.container_status(cid).state in (pb.CONTAINER_CREATED, pb.CONTAINER_EXITED)
        cri.rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid))
    finally:
        cri.remove_pod(pod)
