/* sys.c -- small syscall wrappers the parent (Python) calls through cffi;
 * each returns 0 / an fd / a pid, or -errno.  Only in the extension. */
#include "internal.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

int pyoci_seqpacket_pair(int fds[2])
{
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0)
        return -errno;
    return 0;
}

/* Wait up to timeout_ms for fd to have input (or a hangup/error, which the
 * read that follows reports); spares the parent importing `select`. */
int pyoci_wait_readable(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, timeout_ms);
    if (n < 0)
        return -errno;
    return n > 0;
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

/* A SOCK_SEQPACKET socket bound and listening (listening=1) or connected at
 * dirfd/name; the fd or -errno. */
static int seqpacket_at(int dirfd, const char *name, int listening)
{
    struct sockaddr_un addr;
    int r = unix_addr(dirfd, name, &addr);
    if (r < 0)
        return r;
    int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    int ok = listening ? bind(s, (struct sockaddr *)&addr, sizeof addr) == 0 && listen(s, 1) == 0
                       : connect(s, (struct sockaddr *)&addr, sizeof addr) == 0;
    if (!ok) {
        r = -errno;
        close(s);
        return r;
    }
    return s;
}

int pyoci_listen(int dirfd, const char *name)
{
    return seqpacket_at(dirfd, name, 1);
}

int pyoci_connect(int dirfd, const char *name)
{
    return seqpacket_at(dirfd, name, 0);
}

int pyoci_connect_path(const char *path)
{
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof addr.sun_path)
        return -ENAMETOOLONG;
    strcpy(addr.sun_path, path);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    if (connect(s, (struct sockaddr *)&addr, sizeof addr) < 0) {
        int r = -errno;
        close(s);
        return r;
    }
    return s;
}

int pyoci_recv_fd(int sock, char *name, int namelen)
{
    char control[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {name, (size_t)(namelen > 1 ? namelen - 1 : 0)};
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0)
        return -errno;
    if (namelen > 0)
        name[n > 0 ? n : 0] = '\0';
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    if (!cm || cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS ||
        cm->cmsg_len != CMSG_LEN(sizeof(int)))
        return -EBADMSG;
    int fd;
    memcpy(&fd, CMSG_DATA(cm), sizeof fd);
    if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
        /* more than one fd, or a name longer than the buffer: refused, not cut */
        close(fd);
        return -EMSGSIZE;
    }
    return fd;
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

static noreturn void holder(void)
{
    for (;;)
        pause();
}

int pyoci_userns_holder(void)
{
    pid_t parent = getpid();
    long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        /* Nothing but SIGKILL ends it: no handler of the interpreter runs here. */
        sigset_t all;
        sigfillset(&all);
        sigprocmask(SIG_BLOCK, &all, NULL);
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        if (getppid() != parent)
            _exit(0);
        holder();
    }
    return (int)pid;
}

int pyoci_mount_setattr_probe(void)
{
    struct pyoci_mount_attr attr;
    memset(&attr, 0, sizeof attr);
    if (syscall(SYS_mount_setattr, -1, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0 && errno == ENOSYS)
        return -ENOSYS;
    return 0;
}

/* For `pyoci doctor`'s probes (pyoci/linux/doctor.py). */
int pyoci_unshare(int flags)
{
    return unshare(flags) < 0 ? -errno : 0;
}

int pyoci_mount(const char *source, const char *target, const char *fstype, unsigned long flags,
                const char *data)
{
    return mount(source, target, fstype, flags, data) < 0 ? -errno : 0;
}

int pyoci_open_tree_clone(const char *path)
{
    long fd = syscall(SYS_open_tree, AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    return fd < 0 ? -errno : (int)fd;
}

int pyoci_mount_setattr_idmap(int fd, int userns_fd)
{
    struct pyoci_mount_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.attr_set = MOUNT_ATTR_IDMAP;
    attr.userns_fd = (uint64_t)userns_fd;
    return syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0 ? -errno : 0;
}

int pyoci_open_tree_probe(void)
{
    if (syscall(SYS_open_tree, -1, NULL, 0) < 0 && errno == ENOSYS)
        return -ENOSYS;
    return 0;
}

int pyoci_clone3_probe(void)
{
    /* size 0: EINVAL from a kernel that has clone3, before anything else */
    if (syscall(SYS_clone3, NULL, 0) < 0 && errno == ENOSYS)
        return -ENOSYS;
    return 0;
}
