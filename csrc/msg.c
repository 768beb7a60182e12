/* msg.c -- the sync protocol's records (struct pyoci_msg, then the detail
 * text), and the error and warning reports of the child.  Linked into both
 * the extension (for the fork before pyoci-init starts) and pyoci-init.
 *
 * Nothing here calls malloc: in the extension the reporting child is a raw
 * clone of a possibly multi-threaded interpreter, where malloc's locks may be
 * held by a thread that does not exist in the child.  A report's text is
 * formatted into an anonymous mapping sized from the text itself. */
#include "internal.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

int pyoci_report_fd = -1;

/* sendmsg of the whole record, or -errno (-EMSGSIZE: the socket's buffer is
 * too small for it). */
static int send_record(int fd, struct iovec *iov, int n_iov)
{
    size_t want = 0;
    for (int i = 0; i < n_iov; i++)
        want += iov[i].iov_len;
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = iov;
    mh.msg_iovlen = (size_t)n_iov;
    for (;;) {
        ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (n >= 0 && (size_t)n == want)
            return 0;
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 ? -errno : -EIO; /* SOCK_SEQPACKET sends a record whole or not at all */
    }
}

int pyoci_send(int fd, int type, int stage, int index, int err, int pid, const char *text)
{
    struct pyoci_msg msg;
    memset(&msg, 0, sizeof msg);
    msg.type = type;
    msg.stage = stage;
    msg.index = index;
    msg.err = err;
    msg.pid = pid;
    size_t len = text ? strlen(text) : 0;
    size_t room = PYOCI_MSG_MAX - sizeof msg;
    for (;;) {
        /* header, then the text whole, or its head, a note and its tail */
        char note[96];
        struct iovec iov[4] = {{&msg, sizeof msg}, {(void *)text, len}, {note, 0}, {NULL, 0}};
        if (len > room) {
            size_t keep = (room - sizeof note) / 2;
            int n =
                snprintf(note, sizeof note, " [... %zu bytes of this message left out ...] ", len - 2 * keep);
            iov[1].iov_len = keep;
            iov[2].iov_len = n > 0 ? (size_t)n : 0;
            iov[3].iov_base = (void *)(text + len - keep);
            iov[3].iov_len = keep;
        }
        int r = send_record(fd, iov, len ? 4 : 1);
        /* a socket buffer smaller than the record: try a shorter one */
        if (r == -EMSGSIZE && len > 0 && room > 1024) {
            room /= 2;
            continue;
        }
        return r;
    }
}

int pyoci_recv(int fd, struct pyoci_msg *msg)
{
    /* The parent sends headers only; a longer record's tail is dropped. */
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
    if (pyoci_report_fd < 0)
        return;
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    char *text = MAP_FAILED;
    size_t size = n >= 0 ? (size_t)n + 1 : 0;
    if (size > 0)
        text = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (text != MAP_FAILED) {
        vsnprintf(text, size, fmt, again);
        pyoci_send(pyoci_report_fd, type, stage, index, err, 0, text);
        munmap(text, size);
    } else {
        /* cannot format it: at least the step, errno and the format */
        pyoci_send(pyoci_report_fd, type, stage, index, err, 0, fmt);
    }
    va_end(again);
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
