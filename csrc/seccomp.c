/* seccomp.c -- linux.seccomp, pyoci-init's side: load the program the
 * parent compiled (seccomp_bpf.c) as the last step before execve, and hand a
 * SCMP_ACT_NOTIFY listener to the agent. */
#include "internal.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* SCMP_ACT_NOTIFY: hand the listener fd to the agent at listenerPath with
 * the container's process state (runtime-spec "seccomp" / listenerPath),
 * whole: the fd rides on the first bytes, the rest follows on the stream. */
static void send_listener(const struct pyoci_spawn_config *cfg, int listener)
{
    char *msg = pyoci_fill_pid(cfg->seccomp_listener_msg ? cfg->seccomp_listener_msg : "{}");
    if (!msg) {
        errno = ENOMEM;
        pyoci_fail(PYOCI_STAGE_PROCESS, PYOCI_STEP_SECCOMP, errno,
                   "the container's state for linux.seccomp.listenerPath");
    }
    size_t len = strlen(msg);
    ssize_t r = pyoci_send_fd(cfg->seccomp_listener_fd, listener, msg, len);
    if (r < 0) {
        errno = (int)-r;
        pyoci_fail(PYOCI_STAGE_PROCESS, PYOCI_STEP_SECCOMP, errno,
                   "send the seccomp listener fd to linux.seccomp.listenerPath");
    }
    for (size_t off = (size_t)r; off < len;) {
        ssize_t w = send(cfg->seccomp_listener_fd, msg + off, len - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            pyoci_fail(PYOCI_STAGE_PROCESS, PYOCI_STEP_SECCOMP, w < 0 ? errno : EIO,
                       "send the container's state to linux.seccomp.listenerPath (%zu of %zu bytes sent)",
                       off, len);
        off += (size_t)w;
    }
    free(msg);
    close(listener);
    close(cfg->seccomp_listener_fd);
}

void pyoci_load_seccomp(const struct pyoci_spawn_config *cfg)
{
    if (!cfg->seccomp_bpf)
        return;
    struct sock_fprog prog = {(unsigned short)cfg->seccomp_len, (struct sock_filter *)cfg->seccomp_bpf};
    unsigned int flags = cfg->seccomp_flags;
    if (cfg->seccomp_listener_fd >= 0)
        flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
    long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
    if (r < 0)
        pyoci_fail(PYOCI_STAGE_PROCESS, PYOCI_STEP_SECCOMP, errno, "load the seccomp filter");
    if (cfg->seccomp_listener_fd >= 0)
        send_listener(cfg, (int)r);
}
