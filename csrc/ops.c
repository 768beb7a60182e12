/* ops.c -- the filesystem program of stage2: mounts, devices, pivot_root,
 * masked and readonly paths.
 *
 * Every path inside the container is resolved relative to an fd of its root
 * with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS), so a symlink in the
 * image can never lead out of the rootfs, and mounts go through the resolved
 * fd (/proc/self/fd/N) so that a symlink swapped in after the check changes
 * nothing. */
#include "internal.h"

#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <linux/magic.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static int rootfd = -1; /* the container's root: rootfs before pivot, "/" after */

/* Clones made by stage1 (pyoci_prepare_idmapped_mounts) for IDMAP and
 * PREOPEN mounts, inherited by stage2 through fork: op index -> detached
 * mount tree fd (arrays of n_ops entries). */
static int *idmap_ops;
static int *idmap_trees;
static int n_idmapped = 0;

static int openat2_in_root(int dirfd, const char *path, int flags)
{
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (unsigned long long)(flags | O_CLOEXEC);
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    long r;
    do
        r = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    while (r < 0 && (errno == EINTR || errno == EAGAIN));
    return (int)r;
}

/* Open `path` (absolute, inside the container) relative to the root. */
static int open_in_root(const char *path, int flags)
{
    while (*path == '/')
        path++;
    if (*path == '\0')
        path = ".";
    return openat2_in_root(rootfd, path, flags);
}

static int mkdir_in_root(const char *path, mode_t mode);

/* The target of the symlink `name` in `parent`, malloc'd to its length;
 * NULL with errno. */
static char *read_link(int parent, const char *name)
{
    struct stat st;
    size_t size = 256;
    if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_size > 0)
        size = (size_t)st.st_size + 1;
    for (;;) {
        char *buf = malloc(size);
        if (!buf)
            return NULL;
        ssize_t n = readlinkat(parent, name, buf, size);
        if (n >= 0 && (size_t)n < size) {
            buf[n] = '\0';
            return buf;
        }
        int e = errno;
        free(buf);
        if (n < 0) {
            errno = e;
            return NULL;
        }
        size *= 2; /* it grew since the fstatat */
    }
}

/* `name` in `parent` (at `path`) exists but does not resolve: a symlink
 * whose target is missing.  Return its target as a path inside the root
 * (never outside it: an absolute target is taken relative to the root, and
 * RESOLVE_IN_ROOT clamps ".."), malloc'd; or NULL. */
static char *dangling_target(int parent, const char *path, const char *name)
{
    char *link = read_link(parent, name);
    if (!link || link[0] == '/')
        return link;
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path) : 0;
    size_t linklen = strlen(link);
    char *out = malloc(dirlen + 1 + linklen + 1);
    if (out) {
        memcpy(out, path, dirlen);
        out[dirlen] = '/';
        memcpy(out + dirlen + 1, link, linklen + 1);
    }
    free(link);
    return out;
}

static int symlink_depth = 0;

/* Create the last component of `prefix` (starting at prefix + at) in its
 * parent, a directory; returns an O_PATH fd of it. */
static int mkdir_component(const char *prefix, size_t at, mode_t mode)
{
    char *up = strndup(prefix, at);
    if (!up)
        return -1;
    int parent = open_in_root(up[0] ? up : "/", O_PATH | O_DIRECTORY);
    free(up);
    if (parent < 0)
        return -1;
    const char *name = prefix + at;
    if (mkdirat(parent, name, mode) == 0) {
        close(parent);
        return open_in_root(prefix, O_PATH | O_DIRECTORY);
    }
    if (errno != EEXIST) {
        int e = errno;
        close(parent);
        errno = e;
        return -1;
    }
    /* It exists and does not resolve: a symlink to a missing directory?
     * Create what it points to, inside the root. */
    char *target = symlink_depth < 40 ? dangling_target(parent, prefix, name) : NULL;
    close(parent);
    if (target) {
        symlink_depth++;
        int t = mkdir_in_root(target, mode);
        symlink_depth--;
        free(target);
        if (t < 0)
            return -1;
        close(t);
    }
    return open_in_root(prefix, O_PATH | O_DIRECTORY);
}

/* mkdir -p inside the root; returns an O_PATH fd of the directory.  It walks
 * down from the root one component at a time, creating what is missing, so
 * the depth of the path costs no stack (only a dangling symlink on the way
 * recurses, to create its target, 40 deep at most). */
static int mkdir_in_root(const char *path, mode_t mode)
{
    int fd = open_in_root(path, O_PATH | O_DIRECTORY);
    if (fd >= 0 || errno != ENOENT)
        return fd;
    char *buf = strdup(path);
    if (!buf)
        return -1;
    size_t i = 0;
    for (;;) {
        while (buf[i] == '/')
            i++;
        size_t end = i;
        while (buf[end] && buf[end] != '/')
            end++;
        size_t next = end;
        while (buf[next] == '/')
            next++;
        int last = buf[next] == '\0';
        char saved = buf[end];
        buf[end] = '\0'; /* buf is now the path down to this component */
        int d = open_in_root(buf, O_PATH | O_DIRECTORY);
        if (d < 0 && errno == ENOENT && end > i)
            d = mkdir_component(buf, i, last ? mode : 0755);
        buf[end] = saved;
        if (d < 0 || last) {
            int e = errno;
            free(buf);
            errno = e;
            return d;
        }
        close(d);
        i = end;
    }
}

/* Split path into parent (created as directories) and last component;
 * returns an O_PATH fd of the parent, *buf a malloc'd copy of path (the
 * caller frees it) and *name its last component. */
static int parent_in_root(const char *path, char **buf, const char **name)
{
    *buf = strdup(path);
    if (!*buf)
        return -1;
    char *slash = strrchr(*buf, '/');
    if (!slash || slash[1] == '\0') {
        errno = EINVAL;
        return -1;
    }
    *slash = '\0';
    *name = slash + 1;
    return mkdir_in_root((*buf)[0] ? *buf : "/", 0755);
}

/* Create an empty file at path (parents as directories) unless something exists. */
static int mkfile_in_root(const char *path)
{
    int fd = open_in_root(path, O_PATH);
    if (fd >= 0 || errno != ENOENT)
        return fd;
    char *buf;
    const char *name;
    int parent = parent_in_root(path, &buf, &name);
    if (parent < 0) {
        int e = errno;
        free(buf);
        errno = e;
        return -1;
    }
    int f = openat(parent, name, O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
    int e = errno;
    if (f < 0 && e == ELOOP && symlink_depth < 40) {
        /* A symlink whose target is missing: create the target inside the root. */
        char *target = dangling_target(parent, path, name);
        if (target) {
            close(parent);
            free(buf);
            symlink_depth++;
            int t = mkfile_in_root(target);
            symlink_depth--;
            free(target);
            if (t < 0)
                return -1;
            close(t);
            return open_in_root(path, O_PATH);
        }
    }
    close(parent);
    free(buf);
    if (f < 0 && e != EEXIST) {
        errno = e;
        return -1;
    }
    if (f >= 0)
        close(f);
    return open_in_root(path, O_PATH);
}

/* buf: 64 bytes hold "/proc/self/fd/" and any int. */
static void fdpath(char *buf, size_t len, int fd)
{
    snprintf(buf, len, "/proc/self/fd/%d", fd);
}

/* Flags a remount in a user namespace may not clear: the kernel locks them. */
static unsigned long locked_flags(const char *target)
{
    struct statvfs sv;
    unsigned long f = 0;
    if (statvfs(target, &sv) < 0)
        return 0;
    if (sv.f_flag & ST_RDONLY)
        f |= MS_RDONLY;
    if (sv.f_flag & ST_NOSUID)
        f |= MS_NOSUID;
    if (sv.f_flag & ST_NODEV)
        f |= MS_NODEV;
    if (sv.f_flag & ST_NOEXEC)
        f |= MS_NOEXEC;
    if (sv.f_flag & ST_NOATIME)
        f |= MS_NOATIME;
    if (sv.f_flag & ST_NODIRATIME)
        f |= MS_NODIRATIME;
    if (sv.f_flag & ST_RELATIME)
        f |= MS_RELATIME;
    return f;
}

/* MS_REMOUNT|MS_BIND with flags; on EPERM retry keeping the locked flags. */
static int bind_remount(const char *target, unsigned long flags)
{
    if (mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | flags, NULL) == 0)
        return 0;
    if (errno != EPERM)
        return -1;
    unsigned long keep = locked_flags(target);
    if (!(flags & MS_RDONLY))
        keep &= ~(unsigned long)MS_RDONLY;
    return mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | flags | keep, NULL);
}

#define FAIL(i, ...) pyoci_fail(PYOCI_STAGE_OPS, (i), errno, __VA_ARGS__)

static int target_fd(int i, const struct pyoci_op *op, const char *source, int tree)
{
    int fd;
    int kind = op->flags & PYOCI_F_MKLIKE;
    if (kind == PYOCI_F_MKLIKE) {
        struct stat st;
        kind = PYOCI_F_MKDIR;
        /* A clone made earlier tells what the source is without its path,
         * which the container's user may not be able to reach. */
        int r = tree >= 0 ? fstat(tree, &st) : (source ? stat(source, &st) : -1);
        if (r == 0 && !S_ISDIR(st.st_mode))
            kind = PYOCI_F_MKFILE;
    }
    if (kind == PYOCI_F_MKDIR)
        fd = mkdir_in_root(op->target, 0755);
    else if (kind == PYOCI_F_MKFILE)
        fd = mkfile_in_root(op->target);
    else
        fd = open_in_root(op->target, O_PATH);
    if (fd < 0)
        FAIL(i, "resolve %s in the rootfs", op->target);
    return fd;
}

/* Flags a sysfs mount asked for that a bind remount can apply. */
#define REMOUNT_FLAGS \
    (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME)

/* A fresh sysfs was refused (EPERM: sysfs belongs to the network namespace,
 * and ours is not owned by our user namespace): rbind the host's /sys, as
 * runc does for rootless containers.  The flags follow in sysfs_flags(). */
static void sysfs_fallback(int i, const struct pyoci_op *op, const char *target)
{
    if (mount("/sys", target, NULL, MS_BIND | MS_REC, NULL) < 0)
        FAIL(i, "mount sysfs on %s was refused (EPERM), and so was binding the host's /sys there",
             op->target);
}

static void sysfs_flags(int i, const struct pyoci_op *op, const char *target)
{
    unsigned long flags = op->mflags & REMOUNT_FLAGS;
    if (flags && bind_remount(target, flags) < 0)
        FAIL(i, "remount the host's /sys bound on %s with the mount's flags", op->target);
    if (flags & MS_RDONLY) {
        /* Read-only all the way down (/sys/kernel/security, /sys/fs/cgroup, ...). */
        struct pyoci_mount_attr attr;
        memset(&attr, 0, sizeof attr);
        attr.attr_set = MOUNT_ATTR_RDONLY;
        if (syscall(SYS_mount_setattr, AT_FDCWD, target, AT_RECURSIVE, &attr, sizeof attr) < 0)
            FAIL(i, "make the host's /sys bound on %s read-only recursively", op->target);
    }
}

static void verify_readonly(int i, int fd, const char *path);

static int take_idmapped_tree(int i)
{
    for (int k = 0; k < n_idmapped; k++)
        if (idmap_ops[k] == i) {
            int fd = idmap_trees[k];
            idmap_trees[k] = -1;
            return fd;
        }
    return -1;
}

/* ORDINARY_DIR: what the image has at the target (the last component not
 * followed) must be a directory, or nothing (it is then created). */
static void check_ordinary_dir(int i, const struct pyoci_op *op)
{
    int fd = open_in_root(op->target, O_PATH | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT)
            return;
        FAIL(i, "resolve %s in the rootfs", op->target);
    }
    struct stat st;
    if (fstat(fd, &st) < 0)
        FAIL(i, "stat %s in the rootfs", op->target);
    close(fd);
    if (!S_ISDIR(st.st_mode)) {
        errno = S_ISLNK(st.st_mode) ? ELOOP : ENOTDIR;
        FAIL(i, "filesystem \"%s\" must be mounted on ordinary directory: %s in the rootfs is %s",
             op->fstype ? op->fstype : "bind", op->target,
             S_ISLNK(st.st_mode) ? "a symlink" : "not a directory");
    }
}

/* KEEP_MODE: the mount data with mode=<the existing directory's mode> added,
 * or NULL (nothing there yet: tmpfs's own default, 1777).  malloc'd. */
static char *data_with_dir_mode(int i, const struct pyoci_op *op)
{
    int fd = open_in_root(op->target, O_PATH);
    if (fd < 0)
        return NULL;
    struct stat st;
    int ok = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
    close(fd);
    if (!ok)
        return NULL;
    const char *old = op->data ? op->data : "";
    size_t len = strlen(old) + 32;
    char *data = malloc(len);
    if (!data)
        FAIL(i, "allocate the mount data of %s", op->target);
    snprintf(data, len, "%s%smode=%o", old, old[0] ? "," : "", (unsigned)(st.st_mode & 07777));
    return data;
}

static void op_mount(int i, const struct pyoci_op *op, const char *rootfs)
{
    char tp[64];
    const char *target = op->target;
    int fd = -1;
    int fell_back = 0;
    int tree = -1;
    if (op->flags & (PYOCI_F_IDMAP | PYOCI_F_PREOPEN)) {
        tree = take_idmapped_tree(i);
        if (tree < 0) {
            errno = EBADF;
            FAIL(i, "no clone of %s was prepared", op->source);
        }
    }
    char *data = NULL;
    if (op->flags & PYOCI_F_ORDINARY_DIR)
        check_ordinary_dir(i, op);
    if (op->flags & PYOCI_F_KEEP_MODE)
        data = data_with_dir_mode(i, op);
    if (op->kind == PYOCI_OP_MOUNT) {
        fd = target_fd(i, op, op->source, tree);
        fdpath(tp, sizeof tp, fd);
        target = tp;
    }
    if (tree >= 0) {
        /* Onto the resolved target itself (the fd, not its /proc/self/fd
         * link: move_mount does not follow a final symlink). */
        long r = fd >= 0 ? syscall(SYS_move_mount, tree, "", fd, "",
                                   MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)
                         : syscall(SYS_move_mount, tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH);
        if (r < 0)
            FAIL(i, "move_mount the clone of %s onto %s", op->source, op->target);
        close(tree);
    } else if (mount(op->source, target, op->fstype, op->mflags, data ? data : op->data) < 0) {
        if (errno == EPERM && (op->flags & PYOCI_F_SYSFS_FALLBACK)) {
            sysfs_fallback(i, op, target);
            fell_back = 1;
        } else {
            FAIL(i, "mount %s", op->target);
        }
    }
    free(data);
    if (fd >= 0) {
        close(fd);
        /* Re-resolve: the new mount now covers the old target. */
        fd = open_in_root(op->target, O_PATH);
        if (fd < 0)
            FAIL(i, "reopen %s after mounting", op->target);
        fdpath(tp, sizeof tp, fd);
    }
    if (fell_back)
        sysfs_flags(i, op, target);
    if (op->remount && bind_remount(target, op->remount) < 0)
        FAIL(i, "remount %s", op->target);
    if (fd >= 0 && ((op->mflags | op->remount) & MS_RDONLY))
        verify_readonly(i, fd, op->target);
    if (op->flags & PYOCI_F_RECURSIVE_RO) {
        struct pyoci_mount_attr attr;
        memset(&attr, 0, sizeof attr);
        attr.attr_set = MOUNT_ATTR_RDONLY;
        if (syscall(SYS_mount_setattr, AT_FDCWD, target, AT_RECURSIVE, &attr, sizeof attr) < 0)
            FAIL(i, "make %s and every mount below it read-only", op->target);
    }
    if (op->propagation && mount(NULL, target, NULL, op->propagation, NULL) < 0)
        FAIL(i, "set propagation of %s", op->target);
    if (fd >= 0)
        close(fd);
    if (op->kind == PYOCI_OP_MOUNT_HOST && strcmp(op->target, rootfs) == 0) {
        /* The rootfs was bound on itself: later ops must see the new mount. */
        close(rootfd);
        rootfd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0)
            FAIL(i, "reopen the rootfs %s", rootfs);
    }
}

/* The directory that will hold op->target (created inside the root), opened
 * for *at() calls: O_PATH fds can't be used with mknodat/symlinkat, so go
 * through /proc/self/fd.  *name points at the last component in *buf, a
 * malloc'd copy of the target the caller frees. */
static int open_parent_dir(int i, const struct pyoci_op *op, char **buf, const char **name)
{
    int parent = parent_in_root(op->target, buf, name);
    if (parent < 0)
        FAIL(i, "resolve %s in the rootfs", op->target);
    char pp[64];
    fdpath(pp, sizeof pp, parent);
    int dir = open(pp, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (dir < 0)
        FAIL(i, "open parent of %s", op->target);
    close(parent);
    return dir;
}

static void op_mknod(int i, const struct pyoci_op *op)
{
    char *buf;
    const char *name;
    int dir = open_parent_dir(i, op, &buf, &name);
    unlinkat(dir, name, 0);
    if (mknodat(dir, name, op->mode, (dev_t)op->dev) < 0)
        FAIL(i, "mknod %s", op->target);
    if (fchmodat(dir, name, op->mode & 07777, 0) < 0)
        FAIL(i, "chmod %s", op->target);
    if (op->uid >= 0 && fchownat(dir, name, (uid_t)op->uid, (gid_t)op->gid, AT_SYMLINK_NOFOLLOW) < 0)
        FAIL(i, "chown %s", op->target);
    close(dir);
    free(buf);
}

static void op_symlink(int i, const struct pyoci_op *op)
{
    char *buf;
    const char *name;
    int dir = open_parent_dir(i, op, &buf, &name);
    if (op->flags & PYOCI_F_OPTIONAL) {
        /* replace whatever is there (e.g. /dev/ptmx) */
        unlinkat(dir, name, 0);
    }
    if (symlinkat(op->source, dir, name) < 0 && errno != EEXIST)
        FAIL(i, "symlink %s -> %s", op->target, op->source);
    close(dir);
    free(buf);
}

static void op_pivot(int i, const struct pyoci_op *op, const char *rootfs)
{
    if (op->flags & PYOCI_F_CHROOT) {
        if (chdir(rootfs) < 0)
            FAIL(i, "chdir %s", rootfs);
        if (chroot(".") < 0)
            FAIL(i, "chroot %s", rootfs);
    } else if (op->flags & PYOCI_F_NO_PIVOT) {
        if (chdir(rootfs) < 0)
            FAIL(i, "chdir %s", rootfs);
        if (mount(rootfs, "/", NULL, MS_MOVE, NULL) < 0)
            FAIL(i, "move the rootfs to /");
        if (chroot(".") < 0)
            FAIL(i, "chroot %s", rootfs);
    } else {
        int oldroot = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        int newroot = open(rootfs, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        if (oldroot < 0 || newroot < 0)
            FAIL(i, "open / and %s", rootfs);
        if (fchdir(newroot) < 0)
            FAIL(i, "chdir %s", rootfs);
        if (syscall(SYS_pivot_root, ".", ".") < 0)
            FAIL(i, "pivot_root %s", rootfs);
        /* The old root is now stacked under the new one: detach it. */
        if (fchdir(oldroot) < 0)
            FAIL(i, "chdir to the old root");
        if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
            FAIL(i, "make the old root a slave");
        if (umount2(".", MNT_DETACH) < 0)
            FAIL(i, "unmount the old root");
        close(oldroot);
        close(newroot);
    }
    if (chdir("/") < 0)
        FAIL(i, "chdir /");
    close(rootfd);
    rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        FAIL(i, "open the new root");
}

/* ---- masked and read-only paths ----
 * Done after pivot_root with the new mount API on fds (open_tree, fsmount,
 * mount_setattr, move_mount onto the fd open_in_root resolved): no path under
 * the container's /proc is used, so a /proc that is not procfs (or none)
 * cannot redirect them.  Each is checked after mounting. */

/* The null device masked files are covered with: a detached clone of the
 * runtime's own /dev/null (checked to be the character device 1:3) made
 * before pivot_root, whatever the image or a bind-mounted /dev holds; after
 * the first mask, the mounted copy of it, cloned again for each further one. */
static int null_tree = -1; /* detached, not used yet */
static int null_src = -1;  /* a mask already covered with it */

static int is_null_device(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3);
}

static void prepare_null(int i)
{
    int t = (int)syscall(SYS_open_tree, AT_FDCWD, "/dev/null", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (t < 0)
        FAIL(i, "clone the runtime's /dev/null for masked paths");
    if (!is_null_device(t)) {
        errno = EPERM;
        FAIL(i, "the runtime's /dev/null is not the null device (1:3)");
    }
    null_tree = t;
}

static int optional_missing(const struct pyoci_op *op)
{
    return (op->flags & PYOCI_F_OPTIONAL) && (errno == ENOENT || errno == ENOTDIR);
}

static void move_onto(int i, int tree, int target, const char *what, const char *path)
{
    if (syscall(SYS_move_mount, tree, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        FAIL(i, "%s %s", what, path);
}

static void mask_file(int i, const struct pyoci_op *op, int fd)
{
    if (null_tree >= 0) {
        move_onto(i, null_tree, fd, "mask with the null device", op->target);
        close(null_tree);
        null_tree = -1;
        null_src = open_in_root(op->target, O_PATH);
        if (null_src < 0)
            FAIL(i, "reopen masked path %s", op->target);
        return;
    }
    int src = null_src;
    if (src < 0) {
        /* No clone of the runtime's (no pivot_root in this plan): the
         * container's own /dev/null, if it is the real one. */
        src = open_in_root("/dev/null", O_PATH);
        if (src < 0)
            FAIL(i, "open /dev/null to mask %s", op->target);
        if (!is_null_device(src)) {
            errno = EPERM;
            FAIL(i, "mask %s: /dev/null in the container is not the null device", op->target);
        }
    }
    int tree = (int)syscall(SYS_open_tree, src, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
    if (tree < 0)
        FAIL(i, "clone the null device to mask %s", op->target);
    move_onto(i, tree, fd, "mask with the null device", op->target);
    close(tree);
    if (src != null_src)
        close(src);
}

static void mask_dir(int i, const struct pyoci_op *op, int fd)
{
    int fs = (int)syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC);
    if (fs < 0)
        FAIL(i, "fsopen tmpfs to mask %s", op->target);
    if (syscall(SYS_fsconfig, fs, PYOCI_FSCONFIG_SET_STRING, "mode", "0755", 0) < 0 ||
        syscall(SYS_fsconfig, fs, PYOCI_FSCONFIG_SET_STRING, "nr_inodes", "1", 0) < 0 ||
        syscall(SYS_fsconfig, fs, PYOCI_FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
        FAIL(i, "create an empty tmpfs to mask %s", op->target);
    int mnt = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC,
                           MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
    if (mnt < 0)
        FAIL(i, "mount an empty read-only tmpfs to mask %s", op->target);
    close(fs);
    move_onto(i, mnt, fd, "mask with an empty read-only tmpfs", op->target);
    close(mnt);
}

static void op_mask(int i, const struct pyoci_op *op)
{
    int fd = open_in_root(op->target, O_PATH);
    if (fd < 0) {
        if (optional_missing(op))
            return;
        FAIL(i, "resolve masked path %s", op->target);
    }
    struct stat st;
    if (fstat(fd, &st) < 0)
        FAIL(i, "stat masked path %s", op->target);
    int dir = S_ISDIR(st.st_mode);
    if (dir)
        mask_dir(i, op, fd);
    else
        mask_file(i, op, fd);
    close(fd);

    /* Check what the path shows now. */
    fd = open_in_root(op->target, O_PATH);
    if (fd < 0)
        FAIL(i, "reopen masked path %s", op->target);
    struct statfs sf;
    int ok = dir ? (fstatfs(fd, &sf) == 0 && sf.f_type == TMPFS_MAGIC && (sf.f_flags & ST_RDONLY))
                 : is_null_device(fd);
    if (!ok) {
        errno = EPERM;
        FAIL(i, "masked path %s is not covered after mounting", op->target);
    }
    close(fd);
}

static void verify_readonly(int i, int fd, const char *path)
{
    struct statfs sf;
    if (fstatfs(fd, &sf) < 0)
        FAIL(i, "statfs %s", path);
    if (!(sf.f_flags & ST_RDONLY)) {
        errno = EPERM;
        FAIL(i, "%s is still writable after the read-only remount", path);
    }
}

static void op_readonly(int i, const struct pyoci_op *op)
{
    int fd = open_in_root(op->target, O_PATH);
    if (fd < 0) {
        if (optional_missing(op))
            return;
        FAIL(i, "resolve readonly path %s", op->target);
    }
    /* A recursive clone of the path, read-only (and nosuid, nodev, noexec)
     * all the way down before it is attached: there is no moment where the
     * new mount is visible and writable. */
    int tree = (int)syscall(SYS_open_tree, fd, "",
                            OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
    if (tree < 0)
        FAIL(i, "bind readonly path %s", op->target);
    struct pyoci_mount_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0)
        FAIL(i, "make the bind of %s read-only", op->target);
    move_onto(i, tree, fd, "bind read-only over", op->target);
    close(tree);
    close(fd);
    fd = open_in_root(op->target, O_PATH);
    if (fd < 0)
        FAIL(i, "reopen readonly path %s", op->target);
    verify_readonly(i, fd, op->target);
    close(fd);
}

/* A sysctl (or any file the plan writes after pivot_root) is written only
 * through an fd checked to be on procfs: not a file of the image, nor one on
 * whatever else a config mounted on /proc. */
static void op_write_file(int i, const struct pyoci_op *op)
{
    int fd = open_in_root(op->target, O_WRONLY);
    if (fd < 0)
        FAIL(i, "open %s", op->target);
    struct statfs sf;
    if (fstatfs(fd, &sf) < 0)
        FAIL(i, "statfs %s", op->target);
    if (sf.f_type != PROC_SUPER_MAGIC) {
        errno = EXDEV;
        FAIL(i, "%s is not on procfs (is /proc mounted in the container?)", op->target);
    }
    /* One write: a sysctl takes its value from a single write at offset 0. */
    size_t len = strlen(op->data);
    ssize_t w;
    do
        w = write(fd, op->data, len);
    while (w < 0 && errno == EINTR);
    if (w < 0)
        FAIL(i, "write %s", op->target);
    if ((size_t)w != len) {
        errno = EIO;
        FAIL(i, "write %s: the kernel took %zd of %zu bytes", op->target, w, len);
    }
    close(fd);
}

static const char *resolve_target(int i, const struct pyoci_op *op, int *fd, char *buf, size_t len)
{
    *fd = -1;
    if (op->flags & PYOCI_F_HOST_TARGET)
        return op->target;
    *fd = open_in_root(op->target, O_PATH);
    if (*fd < 0)
        FAIL(i, "resolve %s", op->target);
    fdpath(buf, len, *fd);
    return buf;
}

static void op_remount(int i, const struct pyoci_op *op)
{
    char tp[64];
    int fd;
    const char *target = resolve_target(i, op, &fd, tp, sizeof tp);
    if (bind_remount(target, op->mflags) < 0)
        FAIL(i, "remount %s", op->target);
    if (op->mflags & MS_RDONLY) {
        int check = open(target, O_PATH | O_CLOEXEC);
        if (check < 0)
            FAIL(i, "reopen %s", op->target);
        verify_readonly(i, check, op->target);
        close(check);
    }
    if (fd >= 0)
        close(fd);
}

static void op_propagation(int i, const struct pyoci_op *op)
{
    char tp[64];
    int fd;
    const char *target = resolve_target(i, op, &fd, tp, sizeof tp);
    if (mount(NULL, target, NULL, op->mflags, NULL) < 0)
        FAIL(i, "set propagation of %s", op->target);
    if (fd >= 0)
        close(fd);
}

static void op_chmod(int i, const struct pyoci_op *op)
{
    char tp[64];
    int fd;
    const char *target = resolve_target(i, op, &fd, tp, sizeof tp);
    if (chmod(target, op->mode & 07777) < 0)
        FAIL(i, "chmod %s", op->target);
    if (op->uid >= 0 && chown(target, (uid_t)op->uid, (gid_t)op->gid) < 0)
        FAIL(i, "chown %s", op->target);
    if (fd >= 0)
        close(fd);
}

static void op_bind_dev(int i, const struct pyoci_op *op)
{
    int fd = mkfile_in_root(op->target);
    if (fd < 0)
        FAIL(i, "create %s", op->target);
    char tp[64];
    fdpath(tp, sizeof tp, fd);
    if (mount(op->source, tp, NULL, MS_BIND, NULL) < 0)
        FAIL(i, "bind %s to %s", op->source, op->target);
    close(fd);
}

/* ---- idmapped mounts ----
 * Done by stage1 with the caller's credentials, before it joins or creates any
 * namespace: mount_setattr(MOUNT_ATTR_IDMAP) needs CAP_SYS_ADMIN in the user
 * namespace that owns the source's filesystem (the initial one for a host
 * directory), which the container's init, in its own user namespace, lacks.
 * The clone is a detached mount tree; stage2 moves it into place. */
void pyoci_prepare_idmapped_mounts(const struct pyoci_spawn_config *cfg)
{
    idmap_ops = calloc((size_t)cfg->n_ops + 1, sizeof *idmap_ops);
    idmap_trees = calloc((size_t)cfg->n_ops + 1, sizeof *idmap_trees);
    if (!idmap_ops || !idmap_trees)
        pyoci_fail(PYOCI_STAGE_OPS, -1, errno, "allocate the table of cloned mounts");
    for (int i = 0; i < cfg->n_ops; i++) {
        const struct pyoci_op *op = &cfg->ops[i];
        if (!(op->flags & (PYOCI_F_IDMAP | PYOCI_F_PREOPEN)))
            continue;
        unsigned int oflags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC;
        if (op->mflags & MS_REC)
            oflags |= AT_RECURSIVE;
        int tree = (int)syscall(SYS_open_tree, AT_FDCWD, op->source, oflags);
        if (tree < 0 && (op->flags & PYOCI_F_IDMAP))
            FAIL(i, "open_tree %s (clone it for an idmapped mount)", op->source);
        if (tree < 0)
            FAIL(i, "open_tree %s (clone the bind source before entering the user namespace)", op->source);
        if (!(op->flags & PYOCI_F_IDMAP)) {
            idmap_ops[n_idmapped] = i;
            idmap_trees[n_idmapped] = tree;
            n_idmapped++;
            continue;
        }
        struct pyoci_mount_attr attr;
        memset(&attr, 0, sizeof attr);
        attr.attr_set = MOUNT_ATTR_IDMAP;
        attr.userns_fd = (uint64_t)op->userns_fd;
        unsigned int sflags = AT_EMPTY_PATH;
        if (op->flags & PYOCI_F_IDMAP_REC)
            sflags |= AT_RECURSIVE;
        if (syscall(SYS_mount_setattr, tree, "", sflags, &attr, sizeof attr) < 0)
            FAIL(i, "mount_setattr(MOUNT_ATTR_IDMAP) on %s", op->source);
        idmap_ops[n_idmapped] = i;
        idmap_trees[n_idmapped] = tree;
        n_idmapped++;
    }
    /* The clones hold what they need: the user namespaces go before anything
     * of the container can see them (stage2 is forked later). */
    for (int i = 0; i < cfg->n_ops; i++)
        if ((cfg->ops[i].flags & PYOCI_F_IDMAP) && cfg->ops[i].userns_fd >= 0)
            close(cfg->ops[i].userns_fd);
}

int pyoci_mkfile_in_root(const char *path)
{
    return mkfile_in_root(path);
}

void pyoci_run_ops(const struct pyoci_spawn_config *cfg)
{
    if (cfg->n_ops == 0)
        return;
    rootfd = open(cfg->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        pyoci_fail(PYOCI_STAGE_OPS, -1, errno, "open rootfs %s", cfg->rootfs);

    for (int i = 0; i < cfg->n_ops; i++) {
        const struct pyoci_op *op = &cfg->ops[i];
        switch (op->kind) {
        case PYOCI_OP_MOUNT:
        case PYOCI_OP_MOUNT_HOST:
            op_mount(i, op, cfg->rootfs);
            break;
        case PYOCI_OP_MKNOD:
            op_mknod(i, op);
            break;
        case PYOCI_OP_BIND_DEV:
            op_bind_dev(i, op);
            break;
        case PYOCI_OP_SYMLINK:
            op_symlink(i, op);
            break;
        case PYOCI_OP_PIVOT:
            for (int k = i + 1; k < cfg->n_ops && null_tree < 0; k++)
                if (cfg->ops[k].kind == PYOCI_OP_MASK)
                    prepare_null(i); /* the host's /dev/null is gone after the pivot */
            op_pivot(i, op, cfg->rootfs);
            break;
        case PYOCI_OP_MASK:
            op_mask(i, op);
            break;
        case PYOCI_OP_READONLY:
            op_readonly(i, op);
            break;
        case PYOCI_OP_WRITE_FILE:
            op_write_file(i, op);
            break;
        case PYOCI_OP_REMOUNT:
            op_remount(i, op);
            break;
        case PYOCI_OP_PROPAGATION:
            op_propagation(i, op);
            break;
        case PYOCI_OP_CHMOD:
            op_chmod(i, op);
            break;
        case PYOCI_OP_MKDIR: {
            int fd = mkdir_in_root(op->target, op->mode ? op->mode : 0755);
            if (fd < 0 && (op->flags & PYOCI_F_OPTIONAL))
                break; /* a later step says what is wrong (process.cwd: the chdir and its checks) */
            if (fd < 0)
                FAIL(i, "mkdir %s", op->target);
            close(fd);
            break;
        }
        case PYOCI_OP_WAIT_PLACED:
            pyoci_wait_placed(cfg);
            break;
        case PYOCI_OP_HOOKS_SYNC: {
            /* SYNC 3: mounts are done; the parent runs createRuntime and
             * createContainer hooks, then lets us pivot. */
            struct pyoci_msg msg;
            pyoci_wait_placed(cfg);
            if (pyoci_send(cfg->sync_fd, PYOCI_MSG_HOOKS_REQUEST, 0, i, 0, 0, NULL) < 0)
                _exit(126);
            if (pyoci_recv(cfg->sync_fd, &msg) < 0 || msg.type != PYOCI_MSG_HOOKS_DONE)
                _exit(126);
            break;
        }
        default:
            errno = EINVAL;
            FAIL(i, "unknown op %d", op->kind);
        }
    }
    /* The null device's clone served the masks; the init keeps no fd of it. */
    if (null_tree >= 0)
        close(null_tree);
    if (null_src >= 0)
        close(null_src);
    null_tree = null_src = -1;
}
