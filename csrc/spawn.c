/* spawn.c -- stage1 (namespaces) and the start of stage2 (the container init).
 *
 * The sync points are numbered as in helper.h and pyoci/native/spawn.py. */
#include "internal.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

int pyoci_report_fd = -1;
int pyoci_host_pid = 0;

int pyoci_send(int fd, int type, int stage, int index, int err, int pid, const char *text)
{
    struct pyoci_msg msg;
    memset(&msg, 0, sizeof msg);
    msg.type = type;
    msg.stage = stage;
    msg.index = index;
    msg.err = err;
    msg.pid = pid;
    if (text)
        snprintf(msg.text, sizeof msg.text, "%s", text);
    for (;;) {
        ssize_t n = send(fd, &msg, sizeof msg, MSG_NOSIGNAL);
        if (n == (ssize_t)sizeof msg)
            return 0;
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 ? -errno : -EIO;
    }
}

int pyoci_recv(int fd, struct pyoci_msg *msg)
{
    for (;;) {
        ssize_t n = recv(fd, msg, sizeof *msg, 0);
        if (n == (ssize_t)sizeof *msg)
            return 0;
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            return -EPIPE;
        return n < 0 ? -errno : -EPROTO;
    }
}

static void vreport(int type, int stage, int index, int err, const char *fmt, va_list ap)
{
    char text[sizeof(((struct pyoci_msg *)0)->text)];
    vsnprintf(text, sizeof text, fmt, ap);
    if (pyoci_report_fd >= 0)
        pyoci_send(pyoci_report_fd, type, stage, index, err, 0, text);
}

noreturn void pyoci_fail(int stage, int index, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(PYOCI_MSG_ERROR, stage, index, err, fmt, ap);
    va_end(ap);
    _exit(127);
}

void pyoci_warn(int stage, int index, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(PYOCI_MSG_WARNING, stage, index, err, fmt, ap);
    va_end(ap);
}

void pyoci_set_title(const char *title)
{
    prctl(PR_SET_NAME, (unsigned long)title, 0, 0, 0);
}

/* Wait for one message of the expected type; anything else ends the child. */
static struct pyoci_msg last_msg;

static void expect(int fd, int type, int step)
{
    struct pyoci_msg msg;
    int r = pyoci_recv(fd, &msg);
    if (r < 0)
        pyoci_fail(PYOCI_STAGE_NS, step, -r, "sync: waiting for message %d", type);
    if (msg.type != type)
        _exit(126); /* the parent gave up (it sends nothing else); it reports its own error */
    last_msg = msg;
}

static pid_t raw_fork(unsigned long flags)
{
    /* clone() without a new stack behaves like fork() but runs no atfork
     * handlers: nothing of the interpreter runs in the child. */
    return (pid_t)syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
}

static void reset_signals(void)
{
    sigset_t all;
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        sigaction(sig, &dfl, NULL); /* EINVAL for KILL/STOP and glibc-reserved ones: fine */
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
}

static void write_file(const char *path, const char *data, int step)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        pyoci_fail(PYOCI_STAGE_NS, step, errno, "open %s", path);
    size_t len = strlen(data);
    if (write(fd, data, len) != (ssize_t)len)
        pyoci_fail(PYOCI_STAGE_NS, step, errno, "write %s", path);
    close(fd);
}

/* Close every fd above the preserved ones except those the protocol needs
 * (sync, start, console) and the user namespaces of idmapped mounts (closed
 * by pyoci_prepare_idmapped_mounts once used): the parent's fds (its
 * state-dir lock, log files, ...) must not live on in the container's init. */
static void close_inherited_fds(const struct pyoci_spawn_config *cfg)
{
    unsigned int keep[4 + PYOCI_MAX_IDMAPPED];
    int n = 0;
    int want[4] = {cfg->sync_fd, cfg->start_fd, cfg->console_fd, cfg->seccomp_listener_fd};
    for (int k = 0; k < 4; k++)
        if (want[k] >= 0)
            keep[n++] = (unsigned)want[k];
    for (int i = 0; i < cfg->n_ops; i++) {
        const struct pyoci_op *op = &cfg->ops[i];
        if ((op->flags & PYOCI_F_IDMAP) && op->userns_fd >= 0) {
            if (n == 4 + PYOCI_MAX_IDMAPPED)
                pyoci_fail(PYOCI_STAGE_OPS, i, E2BIG, "more than %d idmapped mounts", PYOCI_MAX_IDMAPPED);
            keep[n++] = (unsigned)op->userns_fd;
        }
    }
    for (int a = 0; a < n; a++) /* sort ascending */
        for (int b = a + 1; b < n; b++)
            if (keep[b] < keep[a]) {
                unsigned int t = keep[a];
                keep[a] = keep[b];
                keep[b] = t;
            }
    unsigned int from = 3U + (unsigned)cfg->preserve_fds;
    for (int k = 0; k < n; k++) {
        if (keep[k] >= from) {
            if (keep[k] > from)
                syscall(SYS_close_range, from, keep[k] - 1, 0);
            from = keep[k] + 1;
        }
    }
    syscall(SYS_close_range, from, ~0U, 0);
}

/* SYNC 2 (child side): wait until the parent has placed us (cgroups,
 * oom_score_adj) and told us our pid as it sees it; then the cgroup namespace
 * can be made, rooted at our cgroup.  Idempotent; called before the hooks
 * (PYOCI_OP_HOOKS_SYNC) and at the latest before the process is set up. */
void pyoci_wait_placed(const struct pyoci_spawn_config *cfg)
{
    static int placed = 0;
    if (placed)
        return;
    placed = 1;
    expect(cfg->sync_fd, PYOCI_MSG_CHILD_GO, PYOCI_STEP_SYNC);
    pyoci_host_pid = last_msg.pid;
    if (cfg->unshare_flags & CLONE_NEWCGROUP) {
        if (unshare(CLONE_NEWCGROUP) < 0)
            pyoci_fail(PYOCI_STAGE_NS, PYOCI_STEP_UNSHARE_CGROUP, errno, "unshare(CLONE_NEWCGROUP)");
    }
}

/* ---- stage2: the container's init ---- */
static noreturn void stage2(const struct pyoci_spawn_config *cfg)
{
    int fd = cfg->sync_fd;
    pyoci_set_title("pyoci:[2:INIT]");
    /* Our parent is the runtime (CLONE_PARENT): die with it while it sets
     * us up (cleared before READY).  The kernel clears pdeathsig on fork, so
     * set it again here, and check the parent did not die first. */
    pid_t runtime = getppid();
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (getppid() != runtime)
        _exit(126);

    /* SYNC 2 (child side) is deferred: the mounts run while the parent
     * places us in cgroups; pyoci_wait_placed() joins before the hooks. */
    (void)fd;
    if (cfg->new_keyring) {
        /* A session keyring of its own: the container must not reach the
         * keys of the session that started it. */
        if (syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, cfg->keyring_name) < 0 &&
            errno != ENOSYS && errno != EPERM)
            pyoci_fail(PYOCI_STAGE_PROCESS, PYOCI_STEP_KEYRING, errno, "join a new session keyring");
    }
    if (cfg->setsid && setsid() < 0)
        pyoci_fail(PYOCI_STAGE_PROCESS, PYOCI_STEP_SETSID, errno, "setsid");
    if (cfg->hostname && sethostname(cfg->hostname, strlen(cfg->hostname)) < 0)
        pyoci_fail(PYOCI_STAGE_PROCESS, PYOCI_STEP_HOSTNAME, errno, "sethostname %s", cfg->hostname);
    if (cfg->domainname && setdomainname(cfg->domainname, strlen(cfg->domainname)) < 0)
        pyoci_fail(PYOCI_STAGE_PROCESS, PYOCI_STEP_DOMAINNAME, errno, "setdomainname %s", cfg->domainname);

    /* Mounts, devices, SYNC 3 (hooks), pivot_root, masked/readonly paths. */
    pyoci_run_ops(cfg);

    /* Credentials, rlimits, cwd, capabilities; then SYNC 4, wait for start, exec. */
    pyoci_finish(cfg);
}

/* ---- stage1: namespaces ---- */
static noreturn void stage1(const struct pyoci_spawn_config *cfg)
{
    int fd = cfg->sync_fd;
    int nsfd[64];

    pyoci_report_fd = fd;
    close_inherited_fds(cfg);
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    /* Non-dumpable until execve: nothing in the container may open our
     * /proc/<pid>/exe (the host's interpreter) or ptrace us. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    reset_signals();
    pyoci_set_title("pyoci:[1:NS]");
    /* With the caller's credentials, before any namespace changes. */
    pyoci_prepare_idmapped_mounts(cfg);

    if (cfg->n_join > 64)
        pyoci_fail(PYOCI_STAGE_NS, PYOCI_STEP_OPEN_NS, E2BIG, "too many namespaces to join");
    /* Open every namespace first: joining a mount namespace changes what
     * the later paths mean. */
    for (int i = 0; i < cfg->n_join; i++) {
        nsfd[i] = open(cfg->join[i].path, O_RDONLY | O_CLOEXEC);
        if (nsfd[i] < 0)
            pyoci_fail(PYOCI_STAGE_NS, PYOCI_STEP_OPEN_NS, errno, "open namespace %s", cfg->join[i].path);
    }
    for (int i = 0; i < cfg->n_join; i++) {
        if (setns(nsfd[i], cfg->join[i].type) < 0)
            pyoci_fail(PYOCI_STAGE_NS, PYOCI_STEP_SETNS, errno, "setns %s", cfg->join[i].path);
        close(nsfd[i]);
    }

    int in_userns = 0;
    for (int i = 0; i < cfg->n_join; i++)
        if (cfg->join[i].type == CLONE_NEWUSER)
            in_userns = 1;

    if (cfg->usermap) {
        if (unshare(CLONE_NEWUSER) < 0)
            pyoci_fail(PYOCI_STAGE_NS, PYOCI_STEP_UNSHARE_USER, errno, "unshare(CLONE_NEWUSER)");
        /* Make the id map writable by the parent even though we are not dumpable. */
        prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
        /* SYNC 1: the parent writes setgroups, uid_map and gid_map for us. */
        if (pyoci_send(fd, PYOCI_MSG_USERMAP_REQUEST, 0, 0, 0, getpid(), NULL) < 0)
            _exit(126);
        expect(fd, PYOCI_MSG_USERMAP_DONE, PYOCI_STEP_SYNC);
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        in_userns = 1;
    }
    if (in_userns) {
        if (setresgid(0, 0, 0) < 0)
            pyoci_fail(PYOCI_STAGE_NS, PYOCI_STEP_SETID_ROOT, errno, "setresgid(0) in the user namespace");
        if (setresuid(0, 0, 0) < 0)
            pyoci_fail(PYOCI_STAGE_NS, PYOCI_STEP_SETID_ROOT, errno, "setresuid(0) in the user namespace");
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    }

    unsigned long flags = cfg->unshare_flags & ~(unsigned long)(CLONE_NEWUSER | CLONE_NEWCGROUP);
    if (flags && unshare((int)flags) < 0)
        pyoci_fail(PYOCI_STAGE_NS, PYOCI_STEP_UNSHARE, errno, "unshare(0x%lx)", flags);
    if (cfg->timens_offsets)
        write_file("/proc/self/timens_offsets", cfg->timens_offsets, PYOCI_STEP_TIMENS);

    /* stage2 becomes the parent's child (CLONE_PARENT), so `run` can wait
     * for it and a subreaper above us reaps it. */
    pid_t child = raw_fork(CLONE_PARENT);
    if (child < 0)
        pyoci_fail(PYOCI_STAGE_NS, PYOCI_STEP_FORK, errno, "clone stage2");
    if (child == 0)
        stage2(cfg);

    /* SYNC 2: tell the parent stage2's pid (in the parent's pid namespace). */
    pyoci_send(fd, PYOCI_MSG_CHILD_PID, 0, 0, 0, child, NULL);
    _exit(0);
}

int pyoci_spawn(const struct pyoci_spawn_config *cfg)
{
    if (cfg->abi_version != PYOCI_ABI_VERSION)
        return -EINVAL;
    pid_t pid = raw_fork(0);
    if (pid < 0)
        return -errno;
    if (pid == 0)
        stage1(cfg);
    return pid;
}

/* ---- small wrappers ---- */
int pyoci_seqpacket_pair(int fds[2])
{
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0)
        return -errno;
    return 0;
}

static int unix_addr(int dirfd, const char *name, struct sockaddr_un *addr)
{
    memset(addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    int n = snprintf(addr->sun_path, sizeof addr->sun_path, "/proc/self/fd/%d/%s", dirfd, name);
    if (n < 0 || (size_t)n >= sizeof addr->sun_path)
        return -ENAMETOOLONG;
    return 0;
}

int pyoci_listen(int dirfd, const char *name)
{
    struct sockaddr_un addr;
    int r = unix_addr(dirfd, name, &addr);
    if (r < 0)
        return r;
    int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    if (bind(s, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(s, 1) < 0) {
        r = -errno;
        close(s);
        return r;
    }
    return s;
}

int pyoci_connect(int dirfd, const char *name)
{
    struct sockaddr_un addr;
    int r = unix_addr(dirfd, name, &addr);
    if (r < 0)
        return r;
    int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    if (connect(s, (struct sockaddr *)&addr, sizeof addr) < 0) {
        r = -errno;
        close(s);
        return r;
    }
    return s;
}

int pyoci_setns_path(const char *path, int nstype)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = setns(fd, nstype);
    int e = errno;
    close(fd);
    return r < 0 ? -e : 0;
}

int pyoci_umount(const char *path, int flags)
{
    return umount2(path, flags) < 0 ? -errno : 0;
}

int pyoci_set_child_subreaper(void)
{
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0 ? -errno : 0;
}

int pyoci_pidfd_open(int pid)
{
    long r = syscall(SYS_pidfd_open, pid, 0);
    return r < 0 ? -errno : (int)r;
}

int pyoci_pidfd_send_signal(int pidfd, int sig)
{
    long r = syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
    return r < 0 ? -errno : 0;
}
