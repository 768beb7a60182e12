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

/* Copy tmpl to out with every "pid":0 replaced by the real pid. */
static void fill_pid(const char *tmpl, char *out, size_t len)
{
    const char *hole = "\"pid\":0";
    size_t n = 0;
    while (*tmpl && n + 32 < len) {
        if (strncmp(tmpl, hole, strlen(hole)) == 0) {
            n += (size_t)snprintf(out + n, len - n, "\"pid\":%d", pyoci_host_pid);
            tmpl += strlen(hole);
        } else {
            out[n++] = *tmpl++;
        }
    }
    out[n] = '\0';
}

/* SCMP_ACT_NOTIFY: hand the listener fd to the agent at listenerPath with
 * the container's process state (runtime-spec "seccomp" / listenerPath). */
static void send_listener(const struct pyoci_spawn_config *cfg, int listener)
{
    static char msgbuf[32768];
    fill_pid(cfg->seccomp_listener_msg ? cfg->seccomp_listener_msg : "{}", msgbuf, sizeof msgbuf);
    int r = pyoci_send_fd(cfg->seccomp_listener_fd, listener, msgbuf, strlen(msgbuf));
    if (r < 0) {
        errno = -r;
        pyoci_fail(PYOCI_STAGE_PROCESS, PYOCI_STEP_SECCOMP, errno,
                   "send the seccomp listener fd to linux.seccomp.listenerPath");
    }
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
