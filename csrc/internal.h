/* internal.h -- declarations shared by the C files of the helper; not part of
 * the Python ABI (that is helper.h alone). */
#ifndef PYOCI_INTERNAL_H
#define PYOCI_INTERNAL_H

#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdnoreturn.h>
#include "helper.h"

/* The fd errors and warnings go to: the sync socket until READY, then the
 * connection from `start`. */
extern int pyoci_report_fd;
/* stage2's pid in the runtime's pid namespace (from CHILD_GO). */
extern int pyoci_host_pid;

/* Send one message on fd; returns 0 or -errno. */
int pyoci_send(int fd, int type, int stage, int index, int err, int pid, const char *text);
/* Receive one message; returns 0, -errno, or -EPIPE on EOF. */
int pyoci_recv(int fd, struct pyoci_msg *msg);
/* Report a failed step on pyoci_report_fd and exit the child. */
noreturn void pyoci_fail(int stage, int index, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void pyoci_warn(int stage, int index, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* spawn.c */
void pyoci_wait_placed(const struct pyoci_spawn_config *cfg);

/* ops.c */
void pyoci_run_ops(const struct pyoci_spawn_config *cfg);
int pyoci_open_in_root(const char *path, int flags);
int pyoci_mkfile_in_root(const char *path);
/* stage1, before any namespace changes: clone and idmap the source of every
 * PYOCI_F_IDMAP op, then close the ops' userns fds. */
void pyoci_prepare_idmapped_mounts(const struct pyoci_spawn_config *cfg);
/* The most idmapped mounts one container may have. */
#define PYOCI_MAX_IDMAPPED 64

/* seccomp.c */
void pyoci_load_seccomp(const struct pyoci_spawn_config *cfg);

/* tty.c */
void pyoci_setup_terminal(const struct pyoci_spawn_config *cfg);
/* sendmsg: data as the only iovec, fd as the only SCM_RIGHTS; 0 or -errno. */
int pyoci_send_fd(int sock, int fd, const char *data, size_t len);

/* process.c */
noreturn void pyoci_finish(const struct pyoci_spawn_config *cfg);

#endif
