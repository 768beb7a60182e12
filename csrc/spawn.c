/* spawn.c -- stage1 (namespaces) and the start of stage2 (the container
 * init), in pyoci-init (init.c; started by launch.c).
 *
 * The sync points are numbered as in helper.h and pyoci/native/spawn.py. */
#include "internal.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

/* clone3(2)'s argument up to the cgroup field (Linux 5.7), spelled out here
 * so that <linux/sched.h> and glibc's <sched.h> need not meet. */
struct clone3_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
    uint64_t set_tid, set_tid_size, cgroup;
};

int pyoci_host_pid = 0;

static void set_title(const char *title)
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
     * handlers and keeps the child's libc state trivial. */
    return (pid_t)syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
}

/* The cgroups stage2 joins by itself (cfg->cgroup2_dir, cfg->cgroup_tasks),
 * opened by stage1 before it enters any namespace where they exist already:
 * `exec` joins the container's mount namespace, which does not show the
 * host's cgroup files.  (For `create` the v1 directories are made while
 * stage1 starts: stage2 opens those itself, still seeing the host's tree.) */
#define MAX_CGROUP_TASKS 32
static int cgroup2_fd = -1;
static int tasks_fd[MAX_CGROUP_TASKS];
static int n_tasks = 0;

static void open_cgroups(const struct pyoci_spawn_config *cfg)
{
    if (cfg->cgroup2_dir) /* failing: fork plainly, the parent moves stage2 */
        cgroup2_fd = open(cfg->cgroup2_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    for (const char *const *t = cfg->cgroup_tasks; t && *t; t++) {
        if (n_tasks == MAX_CGROUP_TASKS)
            pyoci_fail(PYOCI_STAGE_NS, PYOCI_STEP_CGROUP, E2BIG, "more than %d cgroup hierarchies",
                       MAX_CGROUP_TASKS);
        tasks_fd[n_tasks++] = open(*t, O_WRONLY | O_CLOEXEC); /* -1: join_cgroups() opens it */
    }
}

/* raw_fork(CLONE_PARENT), the child born in the cgroup v2 directory opened
 * by open_cgroups() (CLONE_INTO_CGROUP, Linux 5.7): no migration, so no wait
 * for the cgroup attach lock's RCU grace period.  -1 with errno when that
 * cannot be done; the caller forks plainly and the parent moves the child. */
static pid_t fork_into_cgroup(void)
{
    if (cgroup2_fd < 0)
        return -1;
    struct clone3_args args;
    memset(&args, 0, sizeof args);
    /* exit_signal stays 0: with CLONE_PARENT the child gets ours (SIGCHLD) */
    args.flags = CLONE_PARENT | CLONE_INTO_CGROUP;
    args.cgroup = (unsigned long long)cgroup2_fd;
    return (pid_t)syscall(SYS_clone3, &args, sizeof args);
}

/* Join the cgroup v1 hierarchies: "0" written to `tasks` moves the calling
 * thread -- all of stage2 -- without the attach lock's writer side.  The
 * files were opened by stage1 (open_cgroups); none stays open after this. */
static void join_cgroups(const struct pyoci_spawn_config *cfg)
{
    if (cgroup2_fd >= 0) {
        close(cgroup2_fd);
        cgroup2_fd = -1;
    }
    for (int i = 0; i < n_tasks; i++) {
        int fd = tasks_fd[i] >= 0 ? tasks_fd[i] : open(cfg->cgroup_tasks[i], O_WRONLY | O_CLOEXEC);
        int ok = fd >= 0 && write(fd, "0", 1) == 1;
        int e = errno;
        if (fd >= 0)
            close(fd);
        if (!ok && cfg->cgroup_required)
            pyoci_fail(PYOCI_STAGE_NS, PYOCI_STEP_CGROUP, e, "write 0 to %s", cfg->cgroup_tasks[i]);
    }
    n_tasks = 0;
}

/* The kernel's struct sigaction (x86_64 and the generic layout agree on the
 * fields used here: a handler, flags, a restorer and the mask). */
struct kernel_sigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)(void);
    unsigned long mask;
};

/* Every disposition to its default, through the kernel's call: glibc's
 * sigaction refuses 32 and 33 (its thread signals), and a caller that
 * ignores them (ignored signals cross execve) must not hand that on to the
 * container. */
static void reset_signals(void)
{
    sigset_t all;
    struct kernel_sigaction dfl = {SIG_DFL, 0, NULL, 0};
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            syscall(SYS_rt_sigaction, sig, &dfl, NULL, sizeof dfl.mask);
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
}

/* fd >= 0: an fd of path opened earlier (written and closed here). */
static void write_file_fd(int fd, const char *path, const char *data, int step)
{
    if (fd < 0)
        fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        pyoci_fail(PYOCI_STAGE_NS, step, errno, "open %s", path);
    /* One write: procfs files like timens_offsets parse a single write. */
    size_t len = strlen(data);
    ssize_t w;
    do
        w = write(fd, data, len);
    while (w < 0 && errno == EINTR);
    if (w < 0)
        pyoci_fail(PYOCI_STAGE_NS, step, errno, "write %s", path);
    if ((size_t)w != len)
        pyoci_fail(PYOCI_STAGE_NS, step, EIO, "write %s: the kernel took %zd of %zu bytes", path, w, len);
    close(fd);
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
    join_cgroups(cfg);
    if (cfg->unshare_flags & CLONE_NEWCGROUP) {
        if (unshare(CLONE_NEWCGROUP) < 0)
            pyoci_fail(PYOCI_STAGE_NS, PYOCI_STEP_UNSHARE_CGROUP, errno, "unshare(CLONE_NEWCGROUP)");
    }
}

/* ---- stage2: the container's init ---- */
static noreturn void stage2(const struct pyoci_spawn_config *cfg)
{
    int fd = cfg->sync_fd;
    set_title("pyoci:[2:INIT]");
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

/* A new network namespace starts with `lo` down; runc and crun bring it up
 * (127.0.0.1 and ::1 then answer), and programs that talk to localhost
 * rely on it.  Only for namespaces pyoci creates: a joined one is left as
 * its owner set it up.  Needs CAP_NET_ADMIN over the new namespace, which
 * stage1 holds (root in the namespace's owning user namespace). */
static void loopback_up(void)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        pyoci_fail(PYOCI_STAGE_NS, PYOCI_STEP_LOOPBACK, errno,
                   "socket(AF_INET) in the new network namespace");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, "lo", 3);
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
        pyoci_fail(PYOCI_STAGE_NS, PYOCI_STEP_LOOPBACK, errno, "read the flags of lo (SIOCGIFFLAGS)");
    if (!(ifr.ifr_flags & IFF_UP)) {
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
            pyoci_fail(PYOCI_STAGE_NS, PYOCI_STEP_LOOPBACK, errno, "set lo up (SIOCSIFFLAGS)");
    }
    close(s);
}

/* ---- stage1: namespaces ---- */
noreturn void pyoci_stage1(const struct pyoci_spawn_config *cfg)
{
    int fd = cfg->sync_fd;
    int nsfd[64];

    pyoci_report_fd = fd;
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    /* Non-dumpable until execve: nothing in the container may ptrace us or
     * open our /proc/<pid>/exe, mem, environ or fds.  (The exe is pyoci-init's
     * sealed memfd, never a host file; see launch.c.)  Our mm was made by the
     * execveat of pyoci-init in the runtime's user namespace, so mm->user_ns
     * is that namespace, and getting past non-dumpable takes CAP_SYS_PTRACE
     * there: the container's root, in a user namespace of its own, never has it. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    reset_signals();
    set_title("pyoci:[1:NS]");
    open_cgroups(cfg);
    /* With the caller's credentials, before any namespace changes. */
    pyoci_prepare_idmapped_mounts(cfg);
    /* timens_offsets: the write is allowed by the opener's CAP_SYS_TIME over
     * the new time namespace's user namespace, so the file may be opened
     * before that namespace exists.  In a user namespace of its own this
     * non-dumpable process could no longer open it (its /proc files belong
     * to the host's root): root opens it now; an unprivileged caller opens
     * it below, while it is dumpable anyway for its id maps (never at any
     * other moment: dumpable in the initial user namespace, it could be
     * ptraced by another container of the same user). */
    int timens_fd = -1;
    if (cfg->timens_offsets && geteuid() == 0) {
        timens_fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
        if (timens_fd < 0)
            pyoci_fail(PYOCI_STAGE_NS, PYOCI_STEP_TIMENS, errno, "open /proc/self/timens_offsets");
    }

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
        if (cfg->timens_offsets && timens_fd < 0) {
            timens_fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
            if (timens_fd < 0)
                pyoci_fail(PYOCI_STAGE_NS, PYOCI_STEP_TIMENS, errno, "open /proc/self/timens_offsets");
        }
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
    if (flags & CLONE_NEWNET)
        loopback_up();
    if (cfg->timens_offsets)
        write_file_fd(timens_fd, "/proc/self/timens_offsets", cfg->timens_offsets, PYOCI_STEP_TIMENS);

    /* stage2 becomes the parent's child (CLONE_PARENT), so `run` can wait
     * for it and a subreaper above us reaps it. */
    int in_cgroup2 = 0;
    pid_t child = -1;
    if (cgroup2_fd >= 0) {
        child = fork_into_cgroup();
        in_cgroup2 = child >= 0;
    }
    if (child < 0)
        child = raw_fork(CLONE_PARENT);
    if (child < 0)
        pyoci_fail(PYOCI_STAGE_NS, PYOCI_STEP_FORK, errno, "clone stage2");
    if (child == 0)
        stage2(cfg);

    /* SYNC 2: tell the parent stage2's pid (in the parent's pid namespace),
     * and whether it was born in its cgroup v2 directory. */
    pyoci_send(fd, PYOCI_MSG_CHILD_PID, 0, in_cgroup2, 0, child, NULL);
    _exit(0);
}
