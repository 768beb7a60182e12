/* launch.c -- pyoci_spawn(): start pyoci-init, which runs the container's
 * side (stage1, stage2).
 *
 * pyoci-init is a static executable built from csrc/ at install time and
 * carried inside this extension (pyoci_init_elf, see build_helper.py).  Each
 * spawn copies it into a memfd, makes the memfd exec-only (mode 0111) and
 * seals it (F_SEAL_SEAL, _SHRINK, _GROW, _WRITE, and _EXEC where the kernel
 * has it), and starts a child sharing the interpreter's memory (vfork
 * style: pyoci_spawn below) that -- in none of the container's namespaces
 * yet -- execveat()s the memfd at once.
 * From then on no process of the container has the host's interpreter, the
 * extension or any other host file as its executable: /proc/<pid>/exe of the
 * container's init, of an `exec`'d process before its execve, and of
 * whatever a `#!/proc/self/exe` script makes the kernel run, is that sealed,
 * anonymous copy, which nobody can write to. */
#include "internal.h"

#include <fcntl.h>
#include <sched.h>
#include <time.h>
#include <linux/capability.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif

/* The bytes of pyoci-init, linked in by the build (build_helper.py). */
extern const unsigned char pyoci_init_elf[];
extern const unsigned char pyoci_init_elf_end[];

/* F_SEAL_WRITE fails with EBUSY while any page of the file has a reference
 * beyond the page cache's: the kernel waits a little for such pins, but a
 * page just written may sit in another CPU's LRU batch (this thread moved
 * between the write and the fcntl), which nothing on this CPU drains.  So:
 * write and seal on one CPU (sched_setaffinity to the current one, restored
 * afterwards), and retry briefly should it still be busy. */
static int add_seals(int fd, int seals)
{
    for (int tries = 0;; tries++) {
        if (fcntl(fd, F_ADD_SEALS, seals) == 0)
            return 0;
        if (errno != EBUSY || tries == 50)
            return -1;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

static int init_memfd_here(int min_fd)
{
    int fd = memfd_create(PYOCI_INIT_ARGV0, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
    if (fd < 0 && errno == EINVAL) /* before Linux 6.3: no MFD_EXEC */
        fd = memfd_create(PYOCI_INIT_ARGV0, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    if (fd < min_fd) {
        int high = fcntl(fd, F_DUPFD_CLOEXEC, min_fd);
        int e = errno;
        close(fd);
        if (high < 0)
            return -e;
        fd = high;
    }
    const unsigned char *p = pyoci_init_elf;
    size_t n = (size_t)(pyoci_init_elf_end - pyoci_init_elf);
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            goto fail;
        p += w;
        n -= (size_t)w;
    }
    /* Exec-only: an exec by a process that cannot read its executable leaves
     * that process non-dumpable from the first instruction on. */
    if (fchmod(fd, 0111) < 0)
        goto fail;
    int seals = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;
    if (add_seals(fd, seals | F_SEAL_EXEC) < 0 && (errno != EINVAL || add_seals(fd, seals) < 0))
        goto fail;
    return fd;
fail:;
    int e = errno;
    close(fd);
    return -e;
}

static int init_memfd(int min_fd)
{
    cpu_set_t was, here;
    int pinned = sched_getaffinity(0, sizeof was, &was) == 0;
    int cpu = pinned ? sched_getcpu() : -1;
    if (cpu >= 0) {
        CPU_ZERO(&here);
        CPU_SET(cpu, &here);
        pinned = sched_setaffinity(0, sizeof here, &here) == 0;
    } else {
        pinned = 0;
    }
    int fd = init_memfd_here(min_fd);
    if (pinned)
        sched_setaffinity(0, sizeof was, &was);
    return fd;
}

/* Close every fd from 3+preserve_fds up except those pyoci-init needs (sync,
 * start, console, seccomp listener, the config and executable memfds, the
 * user namespaces of idmapped mounts), and let those cross the exec: the
 * parent's other fds (its state-dir lock, log files, ...) must never reach
 * the container.
 *
 * In the --preserve-fds range 3..3+N-1, an fd the caller passed crossed the
 * execve of pyoci itself, so it is not close-on-exec; one that is was opened
 * by pyoci (Python opens everything close-on-exec), and one that is not open
 * was not passed: both become /dev/null, so that the numbers the container
 * was promised exist and none of them is pyoci's. */
static void hold_preserved_range(const struct pyoci_spawn_config *cfg)
{
    int null = -1;
    for (int fd = 3; fd < 3 + cfg->preserve_fds; fd++) {
        int fl = fcntl(fd, F_GETFD);
        if (fl >= 0 && !(fl & FD_CLOEXEC))
            continue;
        if (null < 0) {
            /* numbered above the range, so that it is none of the slots */
            int tmp = open("/dev/null", O_RDWR | O_CLOEXEC);
            null = tmp < 0 ? -1 : fcntl(tmp, F_DUPFD_CLOEXEC, 3 + cfg->preserve_fds);
            if (null < 0)
                pyoci_fail(PYOCI_STAGE_NS, PYOCI_STEP_FDS, errno, "open /dev/null for fd %d", fd);
            close(tmp);
        }
        if (dup2(null, fd) < 0) /* the copy is not close-on-exec */
            pyoci_fail(PYOCI_STAGE_NS, PYOCI_STEP_FDS, errno, "put /dev/null at fd %d", fd);
    }
    if (null >= 0)
        close(null);
}

static void pass_fds(const struct pyoci_spawn_config *cfg, int exe, int blob)
{
    unsigned int keep[6 + PYOCI_MAX_IDMAPPED];
    int n = 0;
    int want[6] = {cfg->sync_fd, cfg->start_fd, cfg->console_fd, cfg->seccomp_listener_fd, exe, blob};
    unsigned int from = 3U + (unsigned)cfg->preserve_fds;
    for (int k = 0; k < 6; k++)
        if (want[k] >= 0)
            keep[n++] = (unsigned)want[k];
    for (int i = 0; i < cfg->n_ops; i++) {
        const struct pyoci_op *op = &cfg->ops[i];
        if ((op->flags & PYOCI_F_IDMAP) && op->userns_fd >= 0) {
            if (n == 6 + PYOCI_MAX_IDMAPPED)
                pyoci_fail(PYOCI_STAGE_OPS, i, E2BIG, "more than %d idmapped mounts", PYOCI_MAX_IDMAPPED);
            keep[n++] = (unsigned)op->userns_fd;
        }
    }
    for (int k = 0; k < n; k++)
        if (keep[k] < from)
            pyoci_fail(PYOCI_STAGE_NS, PYOCI_STEP_FDS, EBADF,
                       "pyoci's own fd %u lies in the --preserve-fds range 3-%u", keep[k], from - 1);
    for (int a = 0; a < n; a++) /* sort ascending */
        for (int b = a + 1; b < n; b++)
            if (keep[b] < keep[a]) {
                unsigned int t = keep[a];
                keep[a] = keep[b];
                keep[b] = t;
            }
    for (int k = 0; k < n; k++) {
        if (keep[k] >= from) {
            if (keep[k] > from)
                syscall(SYS_close_range, from, keep[k] - 1, 0);
            from = keep[k] + 1;
        }
    }
    syscall(SYS_close_range, from, ~0U, 0);
    hold_preserved_range(cfg);
    /* The executable memfd stays close-on-exec: execveat of an ELF file
     * does not need it afterwards. */
    for (int k = 0; k < n; k++)
        if ((int)keep[k] != exe)
            fcntl((int)keep[k], F_SETFD, 0);
}

/* Without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH in the effective set, not
 * even root can read the exec-only memfd, and an execve of a file the
 * process cannot read leaves it non-dumpable from its first instruction
 * (the kernel's would_dump()).  The effective set before the execve does not
 * change the capabilities it yields. */
static void drop_read_override(void)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &hdr, data) < 0)
        return;
    data[0].effective &= ~((1U << CAP_DAC_OVERRIDE) | (1U << CAP_DAC_READ_SEARCH));
    syscall(SYS_capset, &hdr, data);
}

/* pyoci-init gets its name and the config fd, and an empty environment:
 * the container's processes can read a process's command line, and with
 * CAP_SYS_PTRACE (no user namespace of their own) its environment too;
 * neither may tell them anything of the caller's. */
static noreturn void start_init(const struct pyoci_spawn_config *cfg, int exe, int blob)
{
    char fdarg[16]; /* any int fits */
    char *argv[] = {PYOCI_INIT_ARGV0, fdarg, NULL};
    char *envp[] = {NULL};
    snprintf(fdarg, sizeof fdarg, "%d", blob);
    pyoci_report_fd = cfg->sync_fd;
    pass_fds(cfg, exe, blob);
    drop_read_override();
    syscall(SYS_execveat, exe, "", argv, envp, AT_EMPTY_PATH);
    pyoci_fail(PYOCI_STAGE_NS, PYOCI_STEP_INIT, errno, "execveat pyoci-init (a sealed memfd)");
}

struct launch {
    const struct pyoci_spawn_config *cfg;
    int exe, blob;
};

static int launch_child(void *arg)
{
    const struct launch *l = arg;
    start_init(l->cfg, l->exe, l->blob);
}

/* The child's stack while it shares our memory (below). */
#define LAUNCH_STACK (64 * 1024)

int pyoci_spawn(const struct pyoci_spawn_config *cfg)
{
    if (cfg->abi_version != PYOCI_ABI_VERSION)
        return -EINVAL;
    int min_fd = 3 + cfg->preserve_fds;
    int exe = init_memfd(min_fd);
    if (exe < 0)
        return exe;
    int blob = pyoci_blob_write(cfg, min_fd);
    if (blob < 0) {
        close(exe);
        return blob;
    }
    char *stack =
        mmap(NULL, LAUNCH_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) {
        int e = errno;
        close(exe);
        close(blob);
        return -e;
    }
    /* As posix_spawn does: the child shares our memory (CLONE_VM) and we
     * sleep until it has exec'd pyoci-init or died (CLONE_VFORK).  A fork
     * would copy the interpreter's page tables for a child that only closes
     * fds and execs, and every page the interpreter then writes would take
     * a copy-on-write fault.  The child runs on its own stack and writes no
     * memory of ours but pyoci_report_fd (restored below) and errno (which
     * matters here only when clone fails, and then no child ran);
     * nothing of the interpreter runs in it (no atfork handlers), and every
     * signal is blocked until pyoci-init resets them all (pyoci_stage1):
     * a handler of the interpreter's must never run on our memory there. */
    struct launch l = {cfg, exe, blob};
    int saved_report_fd = pyoci_report_fd;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = clone(launch_child, stack + LAUNCH_STACK, CLONE_VM | CLONE_VFORK | SIGCHLD, &l);
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pyoci_report_fd = saved_report_fd;
    munmap(stack, LAUNCH_STACK);
    close(exe);
    close(blob);
    return pid < 0 ? -e : pid;
}
