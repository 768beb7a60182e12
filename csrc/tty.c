/* tty.c -- process.terminal: a pty whose slave becomes the container's
 * stdio and controlling terminal, and whose master goes to the engine over
 * the console socket (one sendmsg: the pty name as the only iovec, the master
 * as the only SCM_RIGHTS fd -- what conmon and the containerd shim expect). */
#include "internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#define TFAIL(...) pyoci_fail(PYOCI_STAGE_PROCESS, PYOCI_STEP_TERMINAL, errno, __VA_ARGS__)

ssize_t pyoci_send_fd(int sock, int fd, const char *data, size_t len)
{
    char control[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {(void *)data, len};
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    memset(control, 0, sizeof control);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    for (;;) {
        ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 ? -errno : n;
    }
}

void pyoci_setup_terminal(const struct pyoci_spawn_config *cfg)
{
    if (cfg->console_fd < 0)
        return;
    /* The container's own devpts instance (/dev/ptmx -> pts/ptmx). */
    int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0)
        TFAIL("open /dev/ptmx in the container (is devpts mounted on /dev/pts?)");
    if (unlockpt(master) < 0)
        TFAIL("unlockpt");
    char name[128]; /* "/dev/pts/N"; ptsname_r fails (ERANGE) rather than cut a longer one */
    int pr = ptsname_r(master, name, sizeof name);
    if (pr != 0) {
        errno = pr;
        TFAIL("ptsname");
    }
    int slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0)
        TFAIL("open %s", name);
    /* The process's user owns its terminal (as runc: the uid only; the gid
     * stays what devpts gave it, the tty group with the usual gid=5
     * option).  Where the kernel refuses (the uid is not mapped: EINVAL;
     * EPERM; a read-only /dev: EROFS) the pty stays as it is, as in runc. */
    struct stat st;
    if (fstat(slave, &st) == 0 && st.st_uid != cfg->uid && fchown(slave, cfg->uid, (gid_t)-1) < 0 &&
        errno != EINVAL && errno != EPERM && errno != EROFS)
        TFAIL("give %s to uid %u ($.process.user.uid)", name, cfg->uid);
    if (cfg->console_rows || cfg->console_cols) {
        struct winsize ws = {cfg->console_rows, cfg->console_cols, 0, 0};
        if (ioctl(slave, TIOCSWINSZ, &ws) < 0)
            TFAIL("set the terminal size (process.consoleSize)");
    }
    /* No "\n" -> "\r\n" on output (ONLCR), as runc: the terminal the
     * output finally reaches does that conversion itself, and a caller
     * reading the master (a pipe, a log) gets the program's bytes. */
    struct termios tio;
    if (tcgetattr(slave, &tio) < 0)
        TFAIL("read the terminal settings of %s", name);
    tio.c_oflag &= ~(tcflag_t)ONLCR;
    if (tcsetattr(slave, TCSANOW, &tio) < 0)
        TFAIL("clear ONLCR on %s", name);
    /* /dev/console is the pty too. */
    int cfd = pyoci_mkfile_in_root("/dev/console");
    if (cfd >= 0) {
        char tp[64];
        snprintf(tp, sizeof tp, "/proc/self/fd/%d", cfd);
        if (mount(name, tp, NULL, MS_BIND, NULL) < 0)
            TFAIL("bind %s on /dev/console", name);
        close(cfd);
    }
    ssize_t sent = pyoci_send_fd(cfg->console_fd, master, name, strlen(name));
    if (sent < 0)
        errno = (int)-sent;
    if (sent != (ssize_t)strlen(name)) {
        if (sent >= 0)
            errno = EIO;
        TFAIL("send the pty master to the console socket");
    }
    close(master);
    close(cfg->console_fd);
    if (ioctl(slave, TIOCSCTTY, 0) < 0)
        TFAIL("make %s the controlling terminal", name);
    for (int fd = 0; fd < 3; fd++)
        if (dup2(slave, fd) < 0)
            TFAIL("dup2 the pty to fd %d", fd);
    close(slave);
}
