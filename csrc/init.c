/* init.c -- main() of pyoci-init, the static executable that runs the
 * container's side of pyoci_spawn() from a sealed memfd (see launch.c).
 *
 *   pyoci-init CONFIG-FD [the runtime's command line...]
 *
 * CONFIG-FD is a memfd holding the spawn config (blob.c).  Run any other way
 * (e.g. by the kernel, as the interpreter of a `#!/proc/self/exe` script the
 * container's program names) it exits with status 127 and does nothing. */
#include "internal.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static void put(const char *s)
{
    for (size_t n = strlen(s); n > 0;) {
        ssize_t w = write(2, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static int refuse(const char *why)
{
    put("pyoci-init: ");
    put(why);
    put("\n");
    return 127;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[0], PYOCI_INIT_ARGV0) != 0)
        return refuse("not started by pyoci");
    int fd = 0;
    for (const char *p = argv[1]; *p; p++) {
        if (*p < '0' || *p > '9' || fd > 1000000)
            return refuse("not started by pyoci");
        fd = fd * 10 + (*p - '0');
    }
    struct pyoci_spawn_config *cfg = pyoci_blob_map(fd);
    if (!cfg)
        return refuse("not started by pyoci (no config)");
    /* The protocol's fds crossed the exec; none may cross the next one (or
     * reach a startContainer hook). */
    int fds[4] = {cfg->sync_fd, cfg->start_fd, cfg->console_fd, cfg->seccomp_listener_fd};
    for (int k = 0; k < 4; k++)
        if (fds[k] >= 0)
            fcntl(fds[k], F_SETFD, FD_CLOEXEC);
    pyoci_stage1(cfg);
}
