/* process.c -- the last part of stage2 (in pyoci-init): the process's
 * credentials and limits, SYNC 4 (READY), waiting for `start` (SYNC 5),
 * startContainer hooks and execve. */
#include "internal.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <grp.h>
#include <time.h>
#include <stdint.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define PFAIL(step, ...) pyoci_fail(PYOCI_STAGE_PROCESS, (step), errno, __VA_ARGS__)

#ifndef SYS_sched_setattr
#define SYS_sched_setattr 314
#endif
#ifndef IOPRIO_WHO_PROCESS
#define IOPRIO_WHO_PROCESS 1
#endif

/* struct sched_attr, SCHED_ATTR_SIZE_VER0 (no utilization clamps) */
struct pyoci_sched_attr {
    uint32_t size;
    uint32_t sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime;
    uint64_t sched_deadline;
    uint64_t sched_period;
};

/* The program found by lookup_exec(): cfg->exec_path or argv[0] itself, or
 * a PATH entry joined with it (malloc'd to size). */
static const char *exec_path;

static const char *env_get(const char *const *envp, const char *name)
{
    size_t n = strlen(name);
    for (; envp && *envp; envp++)
        if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
            return *envp + n + 1;
    return NULL;
}

static int is_executable(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return -errno;
    if (S_ISDIR(st.st_mode))
        return -EISDIR;
    if (!(st.st_mode & 0111))
        return -EACCES;
    return 0;
}

/* Find the program as execvp would, in the container, with the process's PATH. */
static void lookup_exec(const struct pyoci_spawn_config *cfg)
{
    const char *prog = cfg->exec_path ? cfg->exec_path : cfg->argv[0];
    if (!prog || !*prog) {
        errno = ENOENT;
        PFAIL(PYOCI_STEP_LOOKUP_EXEC, "no program to run");
    }
    if (strchr(prog, '/')) {
        int r = is_executable(prog);
        if (r < 0) {
            errno = -r;
            PFAIL(PYOCI_STEP_LOOKUP_EXEC, "%s", prog);
        }
        exec_path = prog;
        return;
    }
    const char *path = env_get(cfg->envp, "PATH");
    if (!path)
        path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    int last = ENOENT;
    while (*path) {
        const char *end = strchr(path, ':');
        size_t len = end ? (size_t)(end - path) : strlen(path);
        char *candidate;
        if (asprintf(&candidate, "%.*s%s%s", (int)len, path, len ? "/" : "", prog) < 0)
            PFAIL(PYOCI_STEP_LOOKUP_EXEC, "look for `%s` in $PATH: out of memory", prog);
        int r = is_executable(candidate);
        if (r == 0) {
            exec_path = candidate;
            return;
        }
        free(candidate);
        if (r != -ENOENT && r != -ENOTDIR)
            last = -r;
        path += len + (end ? 1 : 0);
    }
    errno = last;
    PFAIL(PYOCI_STEP_LOOKUP_EXEC, "executable file `%s` not found in $PATH", prog);
}

static void set_caps(const struct pyoci_spawn_config *cfg)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    data[0].effective = (unsigned)(cfg->cap_effective & 0xffffffffu);
    data[1].effective = (unsigned)(cfg->cap_effective >> 32);
    data[0].permitted = (unsigned)(cfg->cap_permitted & 0xffffffffu);
    data[1].permitted = (unsigned)(cfg->cap_permitted >> 32);
    data[0].inheritable = (unsigned)(cfg->cap_inheritable & 0xffffffffu);
    data[1].inheritable = (unsigned)(cfg->cap_inheritable >> 32);
    if (syscall(SYS_capset, &hdr, data) < 0)
        PFAIL(PYOCI_STEP_CAPSET, "capset");
    for (int cap = 0; cap < 64; cap++) {
        if (!(cfg->cap_ambient & (1ULL << cap)))
            continue;
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0) {
            /* A capability this kernel does not have (newer than it):
             * warn and go on, as runc does ("unavailable"). */
            if (errno == EINVAL) {
                pyoci_warn(PYOCI_STAGE_PROCESS, PYOCI_STEP_AMBIENT, errno,
                           "capability %d is not known to this kernel: not raised", cap);
                continue;
            }
            PFAIL(PYOCI_STEP_AMBIENT, "raise ambient capability %d", cap);
        }
    }
}

/* Credentials in the order the spec and the kernel need: bounding set while
 * we still hold CAP_SETPCAP, keep caps across the uid change, groups, gid,
 * uid, then the final sets and no_new_privs. */
static void set_credentials(const struct pyoci_spawn_config *cfg)
{
    if (cfg->set_caps) {
        for (int cap = 0; cap < 64; cap++) {
            if (cfg->cap_bounding & (1ULL << cap))
                continue;
            if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
                PFAIL(PYOCI_STEP_CAPBSET, "drop capability %d from the bounding set", cap);
        }
        if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
            PFAIL(PYOCI_STEP_CAPSET, "prctl(PR_SET_KEEPCAPS)");
    }
    if (cfg->set_groups && setgroups((size_t)cfg->n_groups, (const gid_t *)cfg->groups) < 0)
        PFAIL(PYOCI_STEP_SETGROUPS, "setgroups");
    if (setresgid(cfg->gid, cfg->gid, cfg->gid) < 0)
        PFAIL(PYOCI_STEP_SETGID, "setgid %u", cfg->gid);
    if (setresuid(cfg->uid, cfg->uid, cfg->uid) < 0)
        PFAIL(PYOCI_STEP_SETUID, "setuid %u", cfg->uid);
    if (cfg->set_caps) {
        prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
        set_caps(cfg);
    }
    if (cfg->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        PFAIL(PYOCI_STEP_NO_NEW_PRIVS, "prctl(PR_SET_NO_NEW_PRIVS)");
    /* A uid change resets dumpable; keep the host's interpreter out of reach
     * until execve. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/* The working directory must lie below the container's root: a cwd such
 * as /proc/self/fd/N (an fd to a directory outside, CVE-2024-21626) would
 * otherwise hand the program the host's filesystem.  So process.cwd is
 * resolved like every other path in the container (openat2 from its root,
 * RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS: symlinks of the image stay
 * inside, a /proc magic link is refused) and entered with fchdir; and once
 * entered, getcwd(2), which prefixes a directory the root cannot reach with
 * "(unreachable)", must show an absolute path. */
static int openat2_cwd(int root, const char *path, unsigned long long resolve)
{
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
    how.resolve = resolve;
    long r;
    do
        r = syscall(SYS_openat2, root, path, &how, sizeof how);
    while (r < 0 && (errno == EINTR || errno == EAGAIN));
    return (int)r;
}

/* An O_PATH fd of process.cwd, or -1 with errno (EACCES: try again as the
 * process's user). */
static int open_cwd(const struct pyoci_spawn_config *cfg)
{
    int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        PFAIL(PYOCI_STEP_CHDIR, "open the container's root");
    int fd = openat2_cwd(root, cfg->cwd, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
    int e = errno;
    if (fd < 0 && e == ELOOP && openat2_cwd(root, cfg->cwd, RESOLVE_IN_ROOT) < 0 && errno == EXDEV) {
        /* not a loop: a magic link (RESOLVE_IN_ROOT alone says EXDEV for those) */
        errno = EPERM;
        PFAIL(PYOCI_STEP_CWD_ESCAPE,
              "%s goes through a /proc magic link (like /proc/self/fd/N), which can "
              "lead outside the container's root",
              cfg->cwd);
    }
    close(root);
    errno = e;
    return fd;
}

/* For a working directory getcwd(2) cannot show (its path is longer than a
 * page): walk up with "..", which stops at the process's root.  1 when the
 * walk meets the container's root, 0 when it ends at a root of its own (a
 * directory that is its own parent: the cwd lies outside), -1 with errno. */
static int cwd_reaches_root(void)
{
    struct stat root, cur, up;
    if (stat("/", &root) < 0)
        return -1;
    int fd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    for (;;) {
        if (fstat(fd, &cur) < 0)
            break;
        if (cur.st_dev == root.st_dev && cur.st_ino == root.st_ino) {
            close(fd);
            return 1;
        }
        int parent = openat(fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (parent < 0)
            break;
        close(fd);
        fd = parent;
        if (fstat(fd, &up) < 0)
            break;
        if (up.st_dev == cur.st_dev && up.st_ino == cur.st_ino) {
            close(fd);
            return 0;
        }
    }
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}

static void check_cwd(const struct pyoci_spawn_config *cfg)
{
    char buf[PATH_MAX + 32];
    if (syscall(SYS_getcwd, buf, sizeof buf) < 0) {
        if (errno != ENAMETOOLONG && errno != ERANGE)
            PFAIL(PYOCI_STEP_CWD_ESCAPE, "getcwd after chdir %s", cfg->cwd);
        /* too long for getcwd (or for buf): check it by walking up instead */
        int r = cwd_reaches_root();
        if (r < 0)
            PFAIL(PYOCI_STEP_CWD_ESCAPE, "walk up from %s to the container's root", cfg->cwd);
        if (r == 0) {
            errno = EPERM;
            PFAIL(PYOCI_STEP_CWD_ESCAPE, "%s resolves to a directory outside the container's root", cfg->cwd);
        }
        return;
    }
    if (buf[0] != '/') {
        errno = EPERM;
        PFAIL(PYOCI_STEP_CWD_ESCAPE, "%s resolves to %s, outside the container's root", cfg->cwd, buf);
    }
}

/* process.ioPriority, process.scheduler, linux.personality and
 * linux.memoryPolicy: properties of the process that execve keeps (and that
 * startContainer hooks, run by the init, inherit).  Set before READY, so
 * that a value the kernel refuses fails `create`, while the init still has
 * every capability (a real-time policy or the RT I/O class need
 * CAP_SYS_NICE/CAP_SYS_ADMIN) and before any seccomp filter. */
static void set_process_attributes(const struct pyoci_spawn_config *cfg)
{
    if (cfg->personality >= 0 && syscall(SYS_personality, (unsigned long)cfg->personality) < 0)
        PFAIL(PYOCI_STEP_PERSONALITY, "personality(0x%llx)", (unsigned long long)cfg->personality);
    if (cfg->ioprio >= 0 && syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, cfg->ioprio) < 0)
        PFAIL(PYOCI_STEP_IOPRIO, "ioprio_set(class %d, level %d)", cfg->ioprio >> 13, cfg->ioprio & 0x1fff);
    if (cfg->mempolicy) {
        const struct pyoci_mempolicy *mp = cfg->mempolicy;
        unsigned long maxnode = mp->n_words > 0 ? (unsigned long)mp->n_words * 64 + 1 : 0;
        if (syscall(SYS_set_mempolicy, mp->mode, mp->n_words > 0 ? mp->nodes : NULL, maxnode) < 0)
            PFAIL(PYOCI_STEP_MEMPOLICY, "set_mempolicy(mode 0x%x)", (unsigned)mp->mode);
    }
    if (cfg->sched) {
        struct pyoci_sched_attr attr;
        memset(&attr, 0, sizeof attr);
        attr.size = sizeof attr;
        attr.sched_policy = cfg->sched->policy;
        attr.sched_flags = cfg->sched->flags;
        attr.sched_nice = cfg->sched->nice;
        attr.sched_priority = cfg->sched->priority;
        attr.sched_runtime = cfg->sched->runtime;
        attr.sched_deadline = cfg->sched->deadline;
        attr.sched_period = cfg->sched->period;
        if (syscall(SYS_sched_setattr, 0, &attr, 0) < 0)
            PFAIL(PYOCI_STEP_SCHEDULER, "sched_setattr(policy %u)", cfg->sched->policy);
    }
}

char *pyoci_fill_pid(const char *tmpl)
{
    static const char hole[] = "\"pid\":0";
    const size_t hl = sizeof hole - 1;
    char pid[32];
    int pl = snprintf(pid, sizeof pid, "\"pid\":%d", pyoci_host_pid);
    size_t holes = 0;
    for (const char *p = strstr(tmpl, hole); p; p = strstr(p + hl, hole))
        holes++;
    char *out = malloc(strlen(tmpl) + holes * (size_t)pl + 1);
    if (!out)
        return NULL;
    char *o = out;
    for (;;) {
        const char *p = strstr(tmpl, hole);
        size_t n = p ? (size_t)(p - tmpl) : strlen(tmpl);
        memcpy(o, tmpl, n);
        o += n;
        if (!p)
            break;
        memcpy(o, pid, (size_t)pl);
        o += pl;
        tmpl = p + hl;
    }
    *o = '\0';
    return out;
}

static long elapsed_ms(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long)(now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

/* PYOCI_MSG_NAMESPACES: our namespaces, one fd each, to a peer of our own
 * uid (the start socket lies in the caller's state directory, which only
 * that user and root reach; the check is one more fence).  Best effort: a
 * namespace we cannot open is left out, and the caller joins what it got. */
static void send_namespaces(int conn)
{
    static const char *const names[] = {"user", "ipc", "uts", "net", "pid", "cgroup", "time", "mnt"};
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != geteuid())
        return;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[32];
        snprintf(path, sizeof path, "/proc/self/ns/%s", names[i]);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = pyoci_send_fd(conn, fd, names[i], strlen(names[i]));
        close(fd);
        if (n < 0)
            return;
    }
}

/* What a failing startContainer hook wrote goes into its error, in the form
 * pyoci/linux/hooks.py gives the other hooks' (as runc does: "..., stdout:
 * ..., stderr: ..."), on one line: the first HOOK_OUTPUT_LIMIT bytes of each
 * stream are kept, the rest is read and dropped. */
#define HOOK_OUTPUT_LIMIT 2048

struct hook_stream {
    int fd;                               /* read end, non-blocking; -1 at end of file */
    size_t len;                           /* bytes kept (HOOK_OUTPUT_LIMIT + 1 at most) */
    char buf[HOOK_OUTPUT_LIMIT + 1];      /* one more than shown: "..." when it is full */
    char text[HOOK_OUTPUT_LIMIT * 4 + 4]; /* escaped: \xNN at most 4 bytes per byte, "..." */
};

/* Read one chunk: 1 when one was read, 0 when there is nothing now or at
 * end of file (the pipe is closed then, fd -1). */
static int hook_read(struct hook_stream *s)
{
    char chunk[4096];
    if (s->fd < 0)
        return 0;
    ssize_t n = read(s->fd, chunk, sizeof chunk);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n <= 0) {
        close(s->fd);
        s->fd = -1;
        return 0;
    }
    size_t room = sizeof s->buf - s->len;
    size_t take = (size_t)n < room ? (size_t)n : room;
    memcpy(s->buf + s->len, chunk, take);
    s->len += take;
    return 1;
}

static int hook_space(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* s->text: the kept bytes without surrounding white space, each control
 * byte written as \n, \t, \r or \xNN (UTF-8 passes through). */
static const char *hook_text(struct hook_stream *s)
{
    size_t start = 0;
    size_t end = s->len < HOOK_OUTPUT_LIMIT ? s->len : HOOK_OUTPUT_LIMIT;
    while (start < end && hook_space(s->buf[start]))
        start++;
    while (end > start && hook_space(s->buf[end - 1]))
        end--;
    size_t o = 0;
    for (size_t i = start; i < end; i++) {
        unsigned char c = (unsigned char)s->buf[i];
        if (c == '\n' || c == '\t' || c == '\r') {
            s->text[o++] = '\\';
            s->text[o++] = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(s->text + o, 5, "\\x%02x", c);
            o += 4;
        } else {
            s->text[o++] = (char)c;
        }
    }
    if (o > 0 && s->len > HOOK_OUTPUT_LIMIT) {
        memcpy(s->text + o, "...", 3);
        o += 3;
    }
    s->text[o] = '\0';
    return s->text;
}

/* Fail with what the hook wrote appended: "<what>, stdout: ..., stderr: ...". */
#define HOOK_FAIL(what, ...)                                                              \
    do {                                                                                  \
        const char *o_ = hook_text(&streams[0]), *e_ = hook_text(&streams[1]);            \
        PFAIL(PYOCI_STEP_HOOK, what "%s%s%s%s", __VA_ARGS__, *o_ ? ", stdout: " : "", o_, \
              *e_ ? ", stderr: " : "", e_);                                               \
    } while (0)

/* Run one startContainer hook inside the container; returns when it exited
 * with status 0, else fails the child with what the hook wrote to its
 * stdout and stderr (pipes; they no longer go to the container's stdio, as
 * with runc).  The state goes to its stdin whole, however long (the pipe is
 * written as the hook reads it, so the timeout also covers a hook that never
 * reads); a hook that exits or closes its stdin before reading it all is not
 * an error.  The hook's exit ends the wait, not the end of its output: what
 * a child it left behind with the pipes open writes later is not waited
 * for. */
static void run_hook(const struct pyoci_spawn_config *cfg, int n, const char *state, size_t len)
{
    const struct pyoci_hook *h = &cfg->start_hooks[n];
    static struct hook_stream streams[2];
    int pipefd[2], outfd[2], errfd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0 || pipe2(outfd, O_CLOEXEC) < 0 || pipe2(errfd, O_CLOEXEC) < 0)
        PFAIL(PYOCI_STEP_HOOK, "startContainer hook %d (%s): pipe", n, h->path);
    struct timespec started;
    clock_gettime(CLOCK_MONOTONIC, &started);
    pid_t pid = fork();
    if (pid < 0)
        PFAIL(PYOCI_STEP_HOOK, "startContainer hook %d (%s): fork", n, h->path);
    if (pid == 0) {
        if (dup2(pipefd[0], 0) < 0 || dup2(outfd[1], 1) < 0 || dup2(errfd[1], 2) < 0)
            _exit(127);
        execve(h->path, (char *const *)h->argv, (char *const *)h->envp);
        _exit(127);
    }
    close(pipefd[0]);
    close(outfd[1]);
    close(errfd[1]);
    streams[0].fd = outfd[0];
    streams[1].fd = errfd[0];
    streams[0].len = streams[1].len = 0;
    int out = pipefd[1];
    if (fcntl(out, F_SETFL, O_NONBLOCK) < 0 || fcntl(outfd[0], F_SETFL, O_NONBLOCK) < 0 ||
        fcntl(errfd[0], F_SETFL, O_NONBLOCK) < 0)
        PFAIL(PYOCI_STEP_HOOK, "startContainer hook %d (%s): make its pipes non-blocking", n, h->path);
    signal(SIGPIPE, SIG_IGN);
    size_t off = 0;
    int status = 0;
    int reaped = 0;
    long limit = h->timeout > 0 ? (long)h->timeout * 1000 : -1;
    while (!reaped) {
        while (out >= 0 && off < len) {
            ssize_t w = write(out, state + off, len - off);
            if (w > 0)
                off += (size_t)w;
            else if (w < 0 && errno == EINTR)
                continue;
            else
                break;
        }
        if (out >= 0 && (off == len || errno != EAGAIN)) {
            if (off < len && errno != EPIPE)
                PFAIL(PYOCI_STEP_HOOK,
                      "startContainer hook %d (%s): write the state to its stdin (%zu of %zu bytes)", n,
                      h->path, off, len);
            close(out); /* all written, or the hook closed its stdin */
            out = -1;
        }
        for (int i = 0; i < 2; i++)
            for (int k = 0; k < 16 && hook_read(&streams[i]); k++)
                ;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            reaped = 1;
            break;
        }
        if (r < 0 && errno != EINTR)
            PFAIL(PYOCI_STEP_HOOK, "startContainer hook %d (%s): wait", n, h->path);
        if (limit >= 0 && elapsed_ms(&started) >= limit) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            errno = ETIMEDOUT;
            HOOK_FAIL("startContainer hook %d (%s) timed out after %ds", n, h->path, h->timeout);
        }
        /* until the stdin pipe has room (or its reader is gone) or there is
         * output to read, 10 ms at most (the hook's exit is not polled) */
        struct pollfd pfd[3] = {{out, POLLOUT, 0}, {streams[0].fd, POLLIN, 0}, {streams[1].fd, POLLIN, 0}};
        poll(pfd, 3, 10); /* negative fds are ignored */
    }
    if (out >= 0)
        close(out);
    signal(SIGPIPE, SIG_DFL);
    /* Gone: take what it left in the pipes (bounded: a child it left behind
     * may go on writing). */
    for (int i = 0; i < 2; i++) {
        for (int k = 0; k < 16 && streams[i].len <= HOOK_OUTPUT_LIMIT && hook_read(&streams[i]); k++)
            ;
        if (streams[i].fd >= 0)
            close(streams[i].fd);
        streams[i].fd = -1;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return;
    errno = 0;
    if (WIFEXITED(status))
        HOOK_FAIL("startContainer hook %d (%s) exited with status %d", n, h->path, WEXITSTATUS(status));
    HOOK_FAIL("startContainer hook %d (%s) killed by signal %d", n, h->path, WTERMSIG(status));
}

/* ---- HOME ----
 * Without HOME (or with an empty one) in process.env, the process gets the
 * home directory of its uid's entry in the container's /etc/passwd, or "/"
 * when there is none, as runc sets it.  The file is the container's: opened
 * after pivot_root (or the exec's setns/chroot) from the container's root
 * with RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS, only when it is a regular
 * file (never a fifo or a device someone put there), and at most
 * PASSWD_MAX bytes of it are read.  Any problem reading it means "/". */
#define PASSWD_MAX (4 << 20)

static char **final_envp; /* NULL: cfg->envp as it is */

static char *passwd_home(unsigned uid)
{
    int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        return NULL;
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    long fd;
    do
        fd = syscall(SYS_openat2, root, "/etc/passwd", &how, sizeof how);
    while (fd < 0 && (errno == EINTR || errno == EAGAIN));
    close(root);
    if (fd < 0)
        return NULL;
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    if (fstat((int)fd, &st) == 0 && S_ISREG(st.st_mode) && (buf = malloc(PASSWD_MAX)) != NULL) {
        while (len < PASSWD_MAX) {
            ssize_t n = read((int)fd, buf + len, PASSWD_MAX - len);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            len += (size_t)n;
        }
    }
    close((int)fd);
    if (!buf)
        return NULL;
    char *home = NULL;
    /* name:password:uid:gid:gecos:home:shell, one per line; the first line
     * with this uid wins.  Lines with a NUL byte are skipped. */
    for (size_t pos = 0; pos < len && !home;) {
        char *line = buf + pos;
        char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + 1;
        if (n == 0 || line[0] == '#' || memchr(line, '\0', n))
            continue;
        char *field[7];
        size_t flen[7];
        int nf = 0;
        size_t start = 0;
        for (size_t i = 0; i <= n && nf < 7; i++) {
            if (i == n || line[i] == ':') {
                field[nf] = line + start;
                flen[nf++] = i - start;
                start = i + 1;
            }
        }
        if (nf < 6 || flen[2] == 0 || flen[2] > 10)
            continue;
        unsigned long long v = 0;
        size_t i = 0;
        for (; i < flen[2] && field[2][i] >= '0' && field[2][i] <= '9'; i++)
            v = v * 10 + (unsigned)(field[2][i] - '0');
        if (i != flen[2] || v != uid)
            continue;
        if (flen[5] > 0 && (home = malloc(flen[5] + 1)) != NULL) {
            memcpy(home, field[5], flen[5]);
            home[flen[5]] = '\0';
        }
        break;
    }
    free(buf);
    return home;
}

static void set_home(const struct pyoci_spawn_config *cfg)
{
    size_t n = 0;
    long empty = -1;
    for (; cfg->envp && cfg->envp[n]; n++) {
        if (strncmp(cfg->envp[n], "HOME=", 5) == 0) {
            if (cfg->envp[n][5] != '\0')
                return; /* HOME given: keep it */
            empty = (long)n;
        }
    }
    char *home = passwd_home(cfg->uid);
    const char *dir = home ? home : "/";
    size_t dlen = strlen(dir);
    char *entry = malloc(dlen + 6);
    char **envp = calloc(n + 2, sizeof *envp);
    if (!entry || !envp) {
        errno = ENOMEM;
        PFAIL(PYOCI_STEP_HOME, "set HOME");
    }
    memcpy(entry, "HOME=", 5);
    memcpy(entry + 5, dir, dlen + 1);
    free(home);
    for (size_t i = 0; i < n; i++)
        envp[i] = (char *)cfg->envp[i];
    if (empty >= 0)
        envp[empty] = entry; /* in place of the empty one, as Go's Setenv */
    else
        envp[n] = entry;
    final_envp = envp;
}

noreturn void pyoci_finish(const struct pyoci_spawn_config *cfg)
{
    pyoci_wait_placed(cfg);
    pyoci_setup_terminal(cfg);
    for (int i = 0; i < cfg->n_rlimits; i++) {
        struct rlimit rl = {(rlim_t)cfg->rlimits[i].soft, (rlim_t)cfg->rlimits[i].hard};
        if (setrlimit(cfg->rlimits[i].resource, &rl) < 0)
            pyoci_fail(PYOCI_STAGE_PROCESS, PYOCI_STEP_RLIMIT, errno, "setrlimit %d",
                       i); /* Python names it */
    }
    int cwd_done = 0;
    int cwd_fd = -1;
    if (cfg->cwd) {
        cwd_fd = open_cwd(cfg);
        if (cwd_fd >= 0 && fchdir(cwd_fd) == 0) {
            cwd_done = 1;
            check_cwd(cfg);
        } else if (errno != EACCES) {
            PFAIL(PYOCI_STEP_CHDIR, "chdir %s", cfg->cwd);
        }
    }

    /* process is optional until start (runtime-spec): without one, `start` fails. */
    int has_process = cfg->argv && cfg->argv[0];
    if (has_process) {
        lookup_exec(cfg);
        set_home(cfg);
    }

    /* Before READY, so that a value the kernel refuses fails `create`. */
    set_process_attributes(cfg);

    int conn = -1;
    if (cfg->start_fd >= 0) {
        /* The init stays alive after `create` exits. */
        prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
        /* SYNC 4: ready; the parent records the container and exits. */
        if (pyoci_send(cfg->sync_fd, PYOCI_MSG_READY, 0, 0, 0, 0, NULL) < 0)
            _exit(126);
        close(cfg->sync_fd);
        pyoci_report_fd = -1;
        /* SYNC 5: wait for `start`. */
        for (;;) {
            conn = accept4(cfg->start_fd, NULL, NULL, SOCK_CLOEXEC);
            if (conn < 0) {
                if (errno == EINTR)
                    continue;
                _exit(126);
            }
            struct pyoci_msg msg;
            int r = pyoci_recv(conn, &msg);
            if (r == 0 && msg.type == PYOCI_MSG_START)
                break;
            if (r == 0 && msg.type == PYOCI_MSG_NAMESPACES)
                send_namespaces(conn);
            close(conn); /* not a start request (e.g. a probe): keep waiting */
        }
        close(cfg->start_fd);
        pyoci_report_fd = conn;
    } else {
        pyoci_report_fd = cfg->sync_fd;
    }

    if (cfg->n_start_hooks > 0) {
        /* the state with the init's real pid, as long as it is */
        char *state = pyoci_fill_pid(cfg->hook_state ? cfg->hook_state : "{}");
        if (!state) {
            errno = ENOMEM;
            PFAIL(PYOCI_STEP_HOOK, "startContainer hooks: the state for their stdin");
        }
        size_t len = strlen(state);
        for (int i = 0; i < cfg->n_start_hooks; i++)
            run_hook(cfg, i, state, len);
        free(state);
    }

    /* Before the filter: a profile need not allow what the runtime does. */
    /* Everything the runtime itself does comes before the seccomp filter:
     * a profile need not allow it. */
    if (cfg->umask >= 0)
        umask((mode_t)cfg->umask);
    if (cfg->start_fd < 0)
        prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0); /* exec mode: never READY */

    /* Only 0-2 and the preserved fds reach the program. */
    for (int fd = 3; fd < 3 + cfg->preserve_fds; fd++) {
        int fl = fcntl(fd, F_GETFD);
        if (fl >= 0)
            fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC);
    }
    if (syscall(SYS_close_range, 3 + cfg->preserve_fds, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
        PFAIL(PYOCI_STEP_FDS, "close_range");

    /* Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it
     * before the credentials drop it.  Only credential syscalls and execve
     * follow, which any working profile allows. */
    if (!cfg->no_new_privs)
        pyoci_load_seccomp(cfg);
    set_credentials(cfg);
    /* Retry as the process's user: a directory only it may enter. */
    if (cfg->cwd && !cwd_done) {
        if (cwd_fd < 0)
            cwd_fd = open_cwd(cfg);
        if (cwd_fd < 0 || fchdir(cwd_fd) < 0)
            PFAIL(PYOCI_STEP_CHDIR, "chdir %s", cfg->cwd);
        check_cwd(cfg);
    }
    if (cfg->no_new_privs)
        pyoci_load_seccomp(cfg); /* the last step: the runtime's own syscalls stay unfiltered */
    if (!has_process) {
        errno = EINVAL;
        PFAIL(PYOCI_STEP_EXEC, "config.json has no process to start");
    }
    execve(exec_path, (char *const *)cfg->argv, final_envp ? final_envp : (char *const *)cfg->envp);
    PFAIL(PYOCI_STEP_EXEC, "exec %s", exec_path);
}
