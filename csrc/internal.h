/* internal.h -- declarations shared by the C files of the helper; not part of
 * the Python ABI (that is helper.h alone).
 *
 * Two programs are built from this directory (csrc/build_helper.py):
 *   the extension pyoci.native._helper (the parent's side):
 *       launch.c blob.c msg.c sys.c seccomp_bpf.c, linked with libseccomp;
 *   pyoci-init, a static executable the extension carries and runs from a
 *   sealed memfd (the container's side: stage1, stage2):
 *       init.c blob.c msg.c spawn.c ops.c process.c tty.c seccomp.c. */
#ifndef PYOCI_INTERNAL_H
#define PYOCI_INTERNAL_H

#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdnoreturn.h>
#include <sys/types.h>
#include "helper.h"

/* argv[0] of pyoci-init; anything else (e.g. the kernel running it as the
 * interpreter of a `#!/proc/self/exe` script) makes it exit at once. */
#define PYOCI_INIT_ARGV0 "pyoci-init"

/* The fd errors and warnings go to: the sync socket until READY, then the
 * connection from `start`. */
extern int pyoci_report_fd;
/* stage2's pid in the runtime's pid namespace (from CHILD_GO). */
extern int pyoci_host_pid;

/* msg.c */
/* Send one message on fd; returns 0 or -errno. */
int pyoci_send(int fd, int type, int stage, int index, int err, int pid, const char *text);
/* Receive one message; returns 0, -errno, or -EPIPE on EOF. */
int pyoci_recv(int fd, struct pyoci_msg *msg);
/* Report a failed step on pyoci_report_fd and exit the child. */
noreturn void pyoci_fail(int stage, int index, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void pyoci_warn(int stage, int index, int err, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* blob.c: pyoci_blob_write, pyoci_blob_map (declared in helper.h). */

/* spawn.c (pyoci-init) */
noreturn void pyoci_stage1(const struct pyoci_spawn_config *cfg);
void pyoci_wait_placed(const struct pyoci_spawn_config *cfg);

/* ops.c (pyoci-init) */
void pyoci_run_ops(const struct pyoci_spawn_config *cfg);
int pyoci_mkfile_in_root(const char *path);
/* stage1, before any namespace changes: clone and idmap the source of every
 * PYOCI_F_IDMAP op, then close the ops' userns fds. */
void pyoci_prepare_idmapped_mounts(const struct pyoci_spawn_config *cfg);
/* The most idmapped mounts one container may have. */
#define PYOCI_MAX_IDMAPPED 64

/* seccomp.c (pyoci-init) */
void pyoci_load_seccomp(const struct pyoci_spawn_config *cfg);

/* tty.c (pyoci-init) */
void pyoci_setup_terminal(const struct pyoci_spawn_config *cfg);
/* sendmsg: data as the only iovec, fd as the only SCM_RIGHTS; the number of
 * bytes sent (a stream socket may take fewer than len) or -errno. */
ssize_t pyoci_send_fd(int sock, int fd, const char *data, size_t len);

/* process.c (pyoci-init) */
noreturn void pyoci_finish(const struct pyoci_spawn_config *cfg);
/* A malloc'd copy of the JSON tmpl with every "pid":0 replaced by the init's
 * pid as the runtime sees it (pyoci_host_pid); NULL when out of memory. */
char *pyoci_fill_pid(const char *tmpl);

/* clone3 (Linux >= 5.3) and the new mount API (Linux >= 5.2; mount_setattr and
 * idmapped mounts >= 5.12).
 * Numbers from 424 on are the same on every architecture. */
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_fsopen
#define SYS_fsopen 430
#endif
#ifndef SYS_fsconfig
#define SYS_fsconfig 431
#endif
#ifndef SYS_fsmount
#define SYS_fsmount 432
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef MOVE_MOUNT_T_EMPTY_PATH
#define MOVE_MOUNT_T_EMPTY_PATH 0x00000040
#endif
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#define MOUNT_ATTR_NOSUID 0x00000002
#define MOUNT_ATTR_NODEV 0x00000004
#define MOUNT_ATTR_NOEXEC 0x00000008
#endif
#ifndef MOUNT_ATTR_IDMAP
#define MOUNT_ATTR_IDMAP 0x00100000
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
/* enum fsconfig_command (an enum in glibc's <sys/mount.h>, so no #ifndef) */
#define PYOCI_FSCONFIG_SET_STRING 1
#define PYOCI_FSCONFIG_CMD_CREATE 6
#ifndef FSOPEN_CLOEXEC
#define FSOPEN_CLOEXEC 0x00000001
#endif
#ifndef FSMOUNT_CLOEXEC
#define FSMOUNT_CLOEXEC 0x00000001
#endif

struct pyoci_mount_attr { /* struct mount_attr (MOUNT_ATTR_SIZE_VER0) */
    uint64_t attr_set;
    uint64_t attr_clr;
    uint64_t propagation;
    uint64_t userns_fd;
};

#endif
