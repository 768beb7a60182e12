/* msg.c -- the sync protocol's records (struct pyoci_msg), and the error and
 * warning reports of the child.  Linked into both the extension (for the
 * fork before pyoci-init starts) and pyoci-init. */
#include "internal.h"

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int pyoci_report_fd = -1;

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
