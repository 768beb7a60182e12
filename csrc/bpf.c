/* bpf.c -- cgroup v2 device rules: load an eBPF program of type
 * BPF_PROG_TYPE_CGROUP_DEVICE and attach it to (or detach it from) a cgroup2
 * directory.  The program itself is assembled in Python
 * (pyoci/linux/bpfdev.py); each function here is one bpf(2) command, so an
 * error names exactly the command that failed.  All return >= 0 or -errno. */
#include "internal.h"

#include <linux/bpf.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int sys_bpf(int cmd, union bpf_attr *attr)
{
    long r = syscall(__NR_bpf, cmd, attr, sizeof(*attr));
    return r < 0 ? -errno : (int)r;
}

static uint64_t ptr(const void *p)
{
    return (uint64_t)(uintptr_t)p;
}

int pyoci_bpf_prog_load_devices(const unsigned char *insns, int n_insns, char *log, int loglen)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    attr.insns = ptr(insns);
    attr.insn_cnt = (uint32_t)n_insns;
    attr.license = ptr("Apache-2.0");       /* the program calls no GPL-only helper */
    int fd = sys_bpf(BPF_PROG_LOAD, &attr); /* the kernel makes it O_CLOEXEC */
    if (fd >= 0 || log == NULL || loglen <= 0 || fd == -EPERM)
        return fd;
    /* Again with the verifier's log, so the error can say why. */
    log[0] = '\0';
    attr.log_level = 1;
    attr.log_buf = ptr(log);
    attr.log_size = (uint32_t)loglen;
    int again = sys_bpf(BPF_PROG_LOAD, &attr);
    if (again >= 0)
        return again;
    if (again == -ENOSPC) {
        /* The log did not fit: its end, which says why, is missing.  Say
         * so rather than show its beginning as the reason. */
        static const char note[] = "(the verifier's log did not fit in its buffer)";
        if ((size_t)loglen >= sizeof note)
            memcpy(log, note, sizeof note);
        else
            log[0] = '\0';
        return fd;
    }
    return again;
}

int pyoci_bpf_prog_query_devices(int cgroup_fd, unsigned int *ids, int max_ids)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.query.target_fd = (uint32_t)cgroup_fd;
    attr.query.attach_type = BPF_CGROUP_DEVICE;
    attr.query.prog_ids = ptr(ids);
    attr.query.prog_cnt = (uint32_t)max_ids;
    int r = sys_bpf(BPF_PROG_QUERY, &attr);
    return r < 0 ? r : (int)attr.query.prog_cnt;
}

int pyoci_bpf_prog_attach_devices(int cgroup_fd, int prog_fd)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.target_fd = (uint32_t)cgroup_fd;
    attr.attach_bpf_fd = (uint32_t)prog_fd;
    attr.attach_type = BPF_CGROUP_DEVICE;
    attr.attach_flags = BPF_F_ALLOW_MULTI;
    return sys_bpf(BPF_PROG_ATTACH, &attr);
}

int pyoci_bpf_prog_get_fd_by_id(unsigned int id)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.prog_id = id;
    return sys_bpf(BPF_PROG_GET_FD_BY_ID, &attr);
}

int pyoci_bpf_prog_detach_devices(int cgroup_fd, int prog_fd)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.target_fd = (uint32_t)cgroup_fd;
    attr.attach_bpf_fd = (uint32_t)prog_fd;
    attr.attach_type = BPF_CGROUP_DEVICE;
    return sys_bpf(BPF_PROG_DETACH, &attr);
}
