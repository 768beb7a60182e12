/*
 * helper.h -- the whole interface between pyoci's Python code and its C helper.
 *
 * csrc/build_helper.py feeds this file (between the CDEF markers) to cffi's
 * cdef(), so Python and C read the same declarations and cannot drift.  Keep it
 * free of preprocessor logic inside the CDEF block: only plain declarations and
 * "#define NAME ..." constants that cffi fills in from the compiler.
 *
 * Process stages (see csrc/launch.c and csrc/spawn.c):
 *   parent  the pyoci process (Python).  Calls pyoci_spawn() and drives the sync
 *           protocol from pyoci/native/spawn.py.
 *   init    pyoci_spawn() forks and, before anything else, execveat()s
 *           pyoci-init: a static binary built from this directory at install
 *           time (csrc/init.c) and copied into a sealed memfd, given this
 *           config as a flat blob (csrc/blob.c).  So no process of the
 *           container ever has the host's interpreter (or any host file) as
 *           its executable.  stage1 and stage2 below run in pyoci-init.
 *   stage1  pyoci-init.  Clones and idmaps the sources of idmapped
 *           mounts (still with the caller's credentials), joins namespaces by
 *           path, unshares the new ones (asking the parent to write the id
 *           maps), forks stage2 with CLONE_PARENT and exits.  Title "pyoci:[1:NS]".
 *   stage2  the container's init.  Mounts, pivot_root, devices, masked paths;
 *           waits for `start`; execve()s the user's program.  Never returns into
 *           Python.  Title "pyoci:[2:INIT]".
 */
#ifndef PYOCI_HELPER_H
#define PYOCI_HELPER_H

/* The system headers of the kernel constants exported at the end of the
 * CDEF block. */
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <sys/mount.h>

/* CDEF-BEGIN */

#define PYOCI_ABI_VERSION 11

/* ---- sync protocol: records (struct pyoci_msg + detail text) on a SOCK_SEQPACKET socketpair ----
 * Sync points are numbered; the same numbers are written beside the code on
 * both sides (csrc/spawn.c and pyoci/native/spawn.py).
 *   SYNC 1  stage1 -> parent  USERMAP_REQUEST   (pid = stage1's pid)
 *           parent -> stage1  USERMAP_DONE
 *   SYNC 2  stage1 -> parent  CHILD_PID         (pid = stage2's pid in the parent's pid ns;
 *                                                index = 1: stage2 was cloned into cgroup2_dir)
 *           parent -> stage2  CHILD_GO          (cgroups made and limited, oom_score_adj set;
 *                                                pid = stage2's pid as the parent sees it);
 *                                                stage2 mounts meanwhile and reads it before SYNC 3,
 *                                                then joins the cgroup_tasks cgroups itself
 *   SYNC 3  stage2 -> parent  HOOKS_REQUEST     (mounts done, before pivot_root)
 *           parent -> stage2  HOOKS_DONE        (cgroups joined, createRuntime/createContainer hooks ran)
 *   SYNC 4  stage2 -> parent  READY             (waiting for start on the start socket)
 *   any     child  -> parent  ERROR             (stage, index of the failed op, errno, text)
 * Start protocol, on the start socket (a listening unix socket bound in the state dir):
 *   SYNC 5  start  -> stage2  START
 *           stage2 -> start   WARNING/ERROR (ERROR only on failure: a startContainer hook or the
 *                             execve; success = EOF because the fd is O_CLOEXEC)
 */
#define PYOCI_MSG_USERMAP_REQUEST 1
#define PYOCI_MSG_USERMAP_DONE 2
#define PYOCI_MSG_CHILD_PID 3
#define PYOCI_MSG_HOOKS_REQUEST 4
#define PYOCI_MSG_HOOKS_DONE 5
#define PYOCI_MSG_READY 6
#define PYOCI_MSG_ERROR 7
#define PYOCI_MSG_START 8
/* (9: once EXEC_FAILED, never sent; a failure after START is an ERROR) */
#define PYOCI_MSG_WARNING 10
#define PYOCI_MSG_CHILD_GO 11
/* On the start socket, before START: `exec` into a created container asks
 * the waiting init for its namespaces (a rootless caller may not open
 * the files in /proc/<init>/ns: the init is not dumpable); it answers with one
 * SCM_RIGHTS fd per namespace, named by the message's bytes ("user", ...),
 * then closes the connection and goes on waiting. */
#define PYOCI_MSG_NAMESPACES 12

/* Stages, for ERROR messages: which list `index` refers to. */
#define PYOCI_STAGE_NS 1      /* index: position in join[] or a PYOCI_STEP_* */
#define PYOCI_STAGE_OPS 2     /* index: position in ops[] */
#define PYOCI_STAGE_PROCESS 3 /* index: a PYOCI_STEP_* */

/* Steps outside the ops list (stage PYOCI_STAGE_NS and PYOCI_STAGE_PROCESS). */
#define PYOCI_STEP_FORK 1
#define PYOCI_STEP_OPEN_NS 2
#define PYOCI_STEP_SETNS 3
#define PYOCI_STEP_UNSHARE_USER 4
#define PYOCI_STEP_UNSHARE 5
#define PYOCI_STEP_SETID_ROOT 6
#define PYOCI_STEP_SYNC 7
#define PYOCI_STEP_HOSTNAME 8
#define PYOCI_STEP_DOMAINNAME 9
#define PYOCI_STEP_RLIMIT 10
#define PYOCI_STEP_CHDIR 11
#define PYOCI_STEP_SETGROUPS 12
#define PYOCI_STEP_SETGID 13
#define PYOCI_STEP_SETUID 14
#define PYOCI_STEP_CAPBSET 15
#define PYOCI_STEP_CAPSET 16
#define PYOCI_STEP_AMBIENT 17
#define PYOCI_STEP_NO_NEW_PRIVS 18
#define PYOCI_STEP_EXEC 19
#define PYOCI_STEP_LOOKUP_EXEC 20
#define PYOCI_STEP_UNSHARE_CGROUP 21
#define PYOCI_STEP_TIMENS 22
#define PYOCI_STEP_HOOK 23
#define PYOCI_STEP_START_WAIT 24
#define PYOCI_STEP_FDS 25
#define PYOCI_STEP_UMASK 26
#define PYOCI_STEP_SETSID 27
#define PYOCI_STEP_KEYRING 28
#define PYOCI_STEP_TERMINAL 29
#define PYOCI_STEP_SECCOMP 30
#define PYOCI_STEP_INIT 31 /* start pyoci-init (the sealed memfd copy of csrc/init.c) */
#define PYOCI_STEP_PERSONALITY 32
#define PYOCI_STEP_IOPRIO 33
#define PYOCI_STEP_SCHEDULER 34
#define PYOCI_STEP_MEMPOLICY 35
#define PYOCI_STEP_CWD_ESCAPE 36 /* the working directory is not below the container's root */
#define PYOCI_STEP_CGROUP 37     /* stage2 joins its cgroup v1 hierarchies (cgroup_tasks) */
/* (45, 46: numbered apart from the others being added at the same time) */
#define PYOCI_STEP_LOOPBACK 45 /* bring up lo in a new network namespace */
#define PYOCI_STEP_HOME 46     /* HOME from the container's /etc/passwd */

/* One record: this header, then (ERROR, WARNING) the detail --
 * path, hook name, ... -- as text filling the rest of the record (no NUL; the
 * record's length bounds it), PYOCI_MSG_MAX bytes at most in all.  A detail
 * longer than that (only a path of tens of KiB could make one) is shortened
 * in the middle with a note saying how much was left out, never silently. */
#define PYOCI_MSG_MAX 65536
struct pyoci_msg {
    int type;  /* PYOCI_MSG_* */
    int stage; /* PYOCI_STAGE_* for ERROR/WARNING */
    int index; /* op index or PYOCI_STEP_* */
    int err;   /* errno */
    int pid;   /* CHILD_PID, USERMAP_REQUEST */
};

/* ---- the filesystem program stage2 runs, in order ----
 * Paths marked "in root" are resolved inside the rootfs without following a
 * symlink out of it (openat2 RESOLVE_IN_ROOT, or a checked walk), then the
 * mount goes through the resulting fd (/proc/self/fd/N), so a symlink swapped
 * in after the check cannot redirect it. */
#define PYOCI_OP_MOUNT 1 /* mount(source, target in root, fstype, mflags, data); then remount/propagation */
#define PYOCI_OP_MOUNT_HOST 2 /* same, target is a host path (not resolved in root) */
#define PYOCI_OP_MKNOD 3      /* mknod(target in root, mode, dev); chown(uid, gid) */
#define PYOCI_OP_BIND_DEV 4   /* create an empty file at target in root, bind source (host) over it */
#define PYOCI_OP_SYMLINK 5    /* symlink(source, target in root) */
#define PYOCI_OP_PIVOT 6      /* pivot_root into the rootfs (or MS_MOVE + chroot with PYOCI_F_NO_PIVOT) */
/* MASK: after pivot, hide target (a verified null device over a file, an
 * empty read-only tmpfs over a dir); checked after mounting.
 * READONLY: after pivot, bind target over itself read-only (recursively);
 * checked after mounting.
 * WRITE_FILE: after pivot, write data to target (a sysctl under /proc/sys),
 * which must be a file on procfs. */
#define PYOCI_OP_MASK 7
#define PYOCI_OP_READONLY 8
#define PYOCI_OP_WRITE_FILE 9
#define PYOCI_OP_REMOUNT 10     /* remount target (host or root-relative per flags) with mflags */
#define PYOCI_OP_PROPAGATION 11 /* mount(NULL, target, NULL, mflags, NULL): change propagation */
#define PYOCI_OP_MKDIR 12       /* mkdir -p target in root, mode */
#define PYOCI_OP_HOOKS_SYNC 13  /* SYNC 3: ask the parent to run createRuntime/createContainer hooks */
#define PYOCI_OP_CHMOD 14       /* chmod target in root to mode; chown to uid/gid when uid >= 0 */
#define PYOCI_OP_WAIT_PLACED 15 /* SYNC 2 now: the ops after it need the container's cgroups */

/* op flags */
#define PYOCI_F_MKDIR 1        /* create target as a directory (and its parents) */
#define PYOCI_F_MKFILE 2       /* create target as an empty file (parents as dirs) */
#define PYOCI_F_OPTIONAL 4     /* a missing target is not an error (masked/readonly paths) */
#define PYOCI_F_HOST_TARGET 16 /* REMOUNT/PROPAGATION/CHMOD: target is an absolute path in the current root */
#define PYOCI_F_MKLIKE 3       /* MKDIR|MKFILE: a directory if the (host) source is one, else a file */
#define PYOCI_F_NO_PIVOT 8     /* PIVOT: use MS_MOVE + chroot */
#define PYOCI_F_CHROOT 256     /* PIVOT: plain chroot (no mount namespace: never move host mounts) */
#define PYOCI_F_WARN_ONLY 128  /* failure is reported as a WARNING and skipped */
/* SYSFS_FALLBACK (MOUNT of sysfs): on EPERM (no network namespace of our own,
 * as in most user namespaces) rbind the host's /sys instead, then apply the
 * mount's flags by remount (read-only recursively).
 * IDMAP (MOUNT): an idmapped bind mount.  stage1, before it joins or creates
 * any namespace, clones the source (open_tree; recursive when mflags has
 * MS_REC) and idmaps the clone with the user namespace userns_fd
 * (mount_setattr MOUNT_ATTR_IDMAP); stage2 moves the clone onto the target
 * (move_mount) in place of mount(). */
#define PYOCI_F_SYSFS_FALLBACK 512
#define PYOCI_F_IDMAP 1024
/* RECURSIVE_RO (MOUNT): after the remount, make every submount read-only too
 * (mount_setattr AT_RECURSIVE MOUNT_ATTR_RDONLY): the `rro` option, and the
 * host's cgroup tree bound read-only. */
#define PYOCI_F_RECURSIVE_RO 4096
#define PYOCI_F_IDMAP_REC 2048 /* IDMAP: idmap every mount of the cloned tree (ridmap) */
/* PREOPEN (MOUNT of a bind): stage1 clones the source (open_tree, as for
 * IDMAP, without the idmap) with the caller's credentials before it creates
 * the container's user namespace, and stage2 moves the clone onto the target:
 * a source only the host's root can reach (below a mode 000 directory) still
 * mounts, as runc opens bind sources before entering the namespace. */
#define PYOCI_F_PREOPEN 8192
/* KEEP_MODE (MOUNT of tmpfs without mode=): a directory already at the target
 * gives the new tmpfs its mode (mode=<its mode> added to the data), as runc
 * does: an image's 0755 or 0444 directory does not become 1777.
 * ORDINARY_DIR (MOUNT of proc/sysfs): the target must be a directory of the
 * image, never a symlink (nor a file): runc's "must be mounted on ordinary
 * directory".  Mounting procfs where an image's symlink points is how LSM
 * label and masking defences were bypassed (CVE-2019-16884, CVE-2019-19921). */
#define PYOCI_F_KEEP_MODE 16384
#define PYOCI_F_ORDINARY_DIR 32768

struct pyoci_op {
    int kind;  /* PYOCI_OP_* */
    int flags; /* PYOCI_F_* */
    const char *source;
    const char *target;
    const char *fstype;
    const char *data;          /* mount data, or file contents for WRITE_FILE */
    unsigned long mflags;      /* mount flags */
    unsigned long remount;     /* if non-zero: a second MS_REMOUNT|MS_BIND call with these flags */
    unsigned long propagation; /* if non-zero: a propagation change (MS_SHARED, MS_SLAVE, ... | MS_REC) */
    unsigned int mode;         /* MKNOD/MKDIR/CHMOD mode, incl. file type bits for MKNOD */
    unsigned long long dev;    /* MKNOD: makedev(major, minor) */
    long long uid;             /* MKNOD/CHMOD: owner, -1 = leave */
    long long gid;
    int userns_fd; /* IDMAP: a user namespace holding the mount's id mappings (the
                                 parent's fd: kept open across stage1's fd cleanup, closed by
                                 stage1 once the idmapped clone exists; never reaches stage2) */
};

/* ---- namespaces ---- */
struct pyoci_ns {
    int type;         /* CLONE_NEW* */
    const char *path; /* join this one (setns) */
};

struct pyoci_rlimit {
    int resource;
    unsigned long long soft;
    unsigned long long hard;
};

struct pyoci_hook {
    const char *path;
    const char *const *argv; /* NULL-terminated */
    const char *const *envp; /* NULL-terminated */
    int timeout;             /* seconds, 0 = none */
};

/* ---- seccomp: compiled by the parent with libseccomp, loaded by stage2 ---- */
struct pyoci_seccomp_arg {
    unsigned int index;
    int op; /* SCMP_CMP_*: 1 NE, 2 LT, 3 LE, 4 EQ, 5 GE, 6 GT, 7 MASKED_EQ */
    unsigned long long value;
    unsigned long long value_two;
};

struct pyoci_seccomp_rule {
    const char *name;    /* syscall name; unknown names are skipped */
    unsigned int action; /* SCMP_ACT_* value */
    int n_args;
    const struct pyoci_seccomp_arg *args;
};

struct pyoci_seccomp {
    unsigned int default_action;
    int n_archs;
    const char *const *archs; /* libseccomp arch names: "x86_64", "x86", "x32", ... */
    int n_rules;
    const struct pyoci_seccomp_rule *rules;
    int log; /* SECCOMP_FILTER_FLAG_LOG wanted */
};

/* ---- process.scheduler: sched_setattr(2) ---- */
struct pyoci_sched {
    unsigned int policy; /* SCHED_* */
    int nice;
    unsigned int priority;
    unsigned long long flags; /* SCHED_FLAG_* */
    unsigned long long runtime;
    unsigned long long deadline;
    unsigned long long period;
};

/* ---- linux.memoryPolicy: set_mempolicy(2) ---- */
struct pyoci_mempolicy {
    int mode;                        /* MPOL_* ored with the MPOL_F_* mode flags */
    int n_words;                     /* words in nodes (0: no nodes) */
    const unsigned long long *nodes; /* bit n of word n/64 = node n */
};

/* Every pointer below (and in the structs it points to) must also be handled
 * by pyoci_blob_write()/pyoci_blob_map() in csrc/blob.c, which carry the
 * config into pyoci-init. */
struct pyoci_spawn_config {
    int abi_version; /* PYOCI_ABI_VERSION */
    int sync_fd;     /* child's end of the sync socketpair */
    int start_fd;    /* listening socket stage2 waits on for `start`; -1 = exec at once */

    /* namespaces */
    unsigned long
        unshare_flags; /* CLONE_NEW* to create (CLONE_NEWCGROUP is unshared by stage2 after SYNC 3) */
    int n_join;
    const struct pyoci_ns *join; /* joined in this order (the user ns first) */
    int usermap;                 /* 1: stage1 unshares a user ns and asks the parent for maps (SYNC 1) */
    const char *timens_offsets;  /* written to /proc/self/timens_offsets after unsharing a time ns, or NULL */

    /* identity of the box */
    const char *hostname;   /* NULL = leave */
    const char *domainname; /* NULL = leave */

    /* the filesystem program */
    const char *rootfs; /* absolute host path */
    int n_ops;
    const struct pyoci_op *ops;

    /* the process */
    const char *const *argv;
    const char *const *envp;
    const char *cwd;
    const char *exec_path; /* path to execve (already resolved against PATH by stage2 if it has no '/') */
    unsigned int uid;
    unsigned int gid;
    int n_groups;
    const unsigned int *groups;
    int set_groups; /* 1: call setgroups(groups) (0 when setgroups is denied) */
    int umask;      /* -1: leave */
    int set_caps;   /* 1: apply the capability sets below */
    unsigned long long cap_bounding;
    unsigned long long cap_effective;
    unsigned long long cap_permitted;
    unsigned long long cap_inheritable;
    unsigned long long cap_ambient;
    int no_new_privs;
    int n_rlimits;
    const struct pyoci_rlimit *rlimits;
    int preserve_fds; /* fds 3 .. 3+preserve_fds-1 reach the program */
    int console_fd;   /* connected console socket: make a pty, send its master here; -1 = none */
    const unsigned char *seccomp_bpf; /* struct sock_filter[], NULL = no filter */
    int seccomp_len;                  /* number of sock_filter instructions */
    unsigned int seccomp_flags;       /* SECCOMP_FILTER_FLAG_* for seccomp(2) */
    int seccomp_listener_fd; /* SCMP_ACT_NOTIFY: connected socket to linux.seccomp.listenerPath; -1 = none */
    const char *seccomp_listener_msg; /* ContainerProcessState JSON sent with the listener fd; its
                                         "pid":0 fields get the real pid */
    unsigned short console_rows;      /* process.consoleSize, 0 = leave */
    unsigned short console_cols;
    int setsid;      /* 1: become a session leader */
    int new_keyring; /* 1: join a new session keyring named after the container */
    const char *keyring_name;
    int n_start_hooks; /* startContainer hooks, run in the container after START */
    const struct pyoci_hook *start_hooks;
    const char *hook_state;          /* state JSON for startContainer hooks; its "pid":0 gets the real pid */
    long long personality;           /* linux.personality: the personality(2) argument; -1 = leave */
    int ioprio;                      /* process.ioPriority: IOPRIO_PRIO_VALUE(class, level); -1 = leave */
    const struct pyoci_sched *sched; /* process.scheduler; NULL = leave */
    const struct pyoci_mempolicy *mempolicy; /* linux.memoryPolicy; NULL = leave */

    /* cgroups the container's init joins without the parent (set only when
     * it has no user namespace: a migration the parent writes to cgroup.procs
     * waits for an RCU grace period, these do not) */
    const char *cgroup2_dir;         /* stage1 clones stage2 into it (CLONE_INTO_CGROUP); NULL = none */
    const char *const *cgroup_tasks; /* v1 `tasks` files stage2 writes "0" (itself) to after SYNC 2 */
    int cgroup_required;             /* 1: failing to join one is an error, 0: it is skipped */
};

/* Fork stage1 (pyoci-init, from a sealed memfd), which runs the stages above;
 * returns stage1's pid or -errno.  The parent then reads pyoci_msg records
 * from its end of the sync socket. */
int pyoci_spawn(const struct pyoci_spawn_config *cfg);

/* Small syscall wrappers Python lacks; return 0 / fd or -errno. */
int pyoci_seqpacket_pair(int fds[2]);            /* O_CLOEXEC socketpair for the sync protocol */
int pyoci_wait_readable(int fd, int timeout_ms); /* poll() for input/hangup: 1 ready, 0 timed out,
                                                   -errno (-EINTR when a signal came) */
int pyoci_listen(int dirfd, const char *name);   /* bind+listen a unix socket at dirfd/name */
int pyoci_connect(int dirfd, const char *name);
int pyoci_connect_path(const char *path);             /* connect a unix socket by path */
int pyoci_recv_fd(int sock, char *name, int namelen); /* receive one SCM_RIGHTS fd (and its name);
                                                         -EMSGSIZE (fd closed) when the name or the fds
                                                         did not fit */
int pyoci_setns_path(const char *path, int nstype);
int pyoci_umount(const char *path, int flags);
int pyoci_set_child_subreaper(void);

/* Compile a filter to classic BPF: returns the number of instructions written
 * to out (8 bytes each), or -errno; *bad_index names a rule that failed. */
int pyoci_seccomp_compile(const struct pyoci_seccomp *s, unsigned char *out, int outlen, int *bad_index);
int pyoci_pidfd_open(int pid);
int pyoci_pidfd_send_signal(int pidfd, int sig);

/* Idmapped mounts (csrc/ops.c).
 * pyoci_userns_holder: fork a child in a new user namespace that only waits
 * (killed with SIGKILL by the caller, or when the caller dies); returns its
 * pid or -errno.  The caller writes its uid_map/gid_map, opens
 * /proc/<pid>/ns/user and kills it: the fd keeps the namespace alive.
 * pyoci_mount_setattr_probe: 0 when the kernel has mount_setattr (and so
 * idmapped mounts), else -errno (-ENOSYS). */
int pyoci_userns_holder(void);
int pyoci_mount_setattr_probe(void);

/* For `pyoci doctor` (csrc/sys.c); each returns 0 (or an fd) or -errno.
 * pyoci_open_tree_clone: open_tree(AT_FDCWD, path, OPEN_TREE_CLONE|OPEN_TREE_CLOEXEC).
 * pyoci_mount_setattr_idmap: mount_setattr(fd, "", AT_EMPTY_PATH) with MOUNT_ATTR_IDMAP.
 * pyoci_open_tree_probe, pyoci_clone3_probe: -ENOSYS when the kernel lacks the call. */
int pyoci_unshare(int flags);
int pyoci_mount(const char *source, const char *target, const char *fstype, unsigned long flags,
                const char *data);
int pyoci_open_tree_clone(const char *path);
int pyoci_mount_setattr_idmap(int fd, int userns_fd);
int pyoci_open_tree_probe(void);
int pyoci_clone3_probe(void);

/* cgroup v2 device rules (csrc/bpf.c): one bpf(2) command each, >= 0 or -errno.
 * The program (struct bpf_insn[], 8 bytes each) is assembled by
 * pyoci/linux/bpfdev.py.
 * pyoci_bpf_prog_load_devices: BPF_PROG_LOAD of a BPF_PROG_TYPE_CGROUP_DEVICE
 *   program; returns its fd (O_CLOEXEC).  On failure the verifier's log is
 *   written to log (NUL-terminated) when loglen > 0; a log that does not fit
 *   is replaced by a note saying so (its end, the reason, would be missing).
 * pyoci_bpf_prog_query_devices: BPF_PROG_QUERY: the ids of the device programs
 *   attached to the cgroup directory cgroup_fd itself; returns how many
 *   (-ENOSPC when more than max_ids).
 * pyoci_bpf_prog_attach_devices: BPF_PROG_ATTACH with BPF_F_ALLOW_MULTI.
 * pyoci_bpf_prog_get_fd_by_id: BPF_PROG_GET_FD_BY_ID (fd, O_CLOEXEC).
 * pyoci_bpf_prog_detach_devices: BPF_PROG_DETACH of that program. */
int pyoci_bpf_prog_load_devices(const unsigned char *insns, int n_insns, char *log, int loglen);
int pyoci_bpf_prog_query_devices(int cgroup_fd, unsigned int *ids, int max_ids);
int pyoci_bpf_prog_attach_devices(int cgroup_fd, int prog_fd);
int pyoci_bpf_prog_get_fd_by_id(unsigned int id);
int pyoci_bpf_prog_detach_devices(int cgroup_fd, int prog_fd);

/* ---- the config blob (csrc/blob.c) ----
 * The config and everything it points to, as one position-independent blob
 * (pointers become offset + 1, 0 for NULL) in a memfd: how it crosses the
 * execveat into pyoci-init.  Both functions are also exported for
 * tests/native/, which encode a plan in Python and decode it here.
 * pyoci_blob_write: returns the memfd (close-on-exec, numbered >= min_fd) or
 *   -errno (-EINVAL for a negative count, -E2BIG past PYOCI_BLOB_MAX).
 * pyoci_blob_map: maps fd privately (and closes it), checks the blob -- its
 *   size (at most PYOCI_BLOB_MAX), header, ABI version, every offset inside
 *   it and aligned, every count's array inside it, every string
 *   NUL-terminated inside it -- and turns the offsets back into pointers;
 *   returns the config, or NULL with errno set (EINVAL: malformed, E2BIG:
 *   oversize).
 * pyoci_blob_unmap: unmaps the blob the last successful pyoci_blob_map made. */
#define PYOCI_BLOB_MAX (256 << 20)
int pyoci_blob_write(const struct pyoci_spawn_config *cfg, int min_fd);
struct pyoci_spawn_config *pyoci_blob_map(int fd);
void pyoci_blob_unmap(void);

/* ---- kernel constants, from the system headers ----
 * pyoci/linux/consts.py writes the same values out for the modules that must
 * not load this extension; tests/native/test_constants.py checks that every
 * PYOCI_<NAME> here equals <NAME> there, and the other way round. */
#define PYOCI_CLONE_NEWTIME CLONE_NEWTIME
#define PYOCI_CLONE_NEWNS CLONE_NEWNS
#define PYOCI_CLONE_NEWCGROUP CLONE_NEWCGROUP
#define PYOCI_CLONE_NEWUTS CLONE_NEWUTS
#define PYOCI_CLONE_NEWIPC CLONE_NEWIPC
#define PYOCI_CLONE_NEWUSER CLONE_NEWUSER
#define PYOCI_CLONE_NEWPID CLONE_NEWPID
#define PYOCI_CLONE_NEWNET CLONE_NEWNET
#define PYOCI_MS_RDONLY MS_RDONLY
#define PYOCI_MS_NOSUID MS_NOSUID
#define PYOCI_MS_NODEV MS_NODEV
#define PYOCI_MS_NOEXEC MS_NOEXEC
#define PYOCI_MS_SYNCHRONOUS MS_SYNCHRONOUS
#define PYOCI_MS_REMOUNT MS_REMOUNT
#define PYOCI_MS_MANDLOCK MS_MANDLOCK
#define PYOCI_MS_DIRSYNC MS_DIRSYNC
#define PYOCI_MS_NOSYMFOLLOW MS_NOSYMFOLLOW
#define PYOCI_MS_NOATIME MS_NOATIME
#define PYOCI_MS_NODIRATIME MS_NODIRATIME
#define PYOCI_MS_BIND MS_BIND
#define PYOCI_MS_MOVE MS_MOVE
#define PYOCI_MS_REC MS_REC
#define PYOCI_MS_SILENT MS_SILENT
#define PYOCI_MS_UNBINDABLE MS_UNBINDABLE
#define PYOCI_MS_PRIVATE MS_PRIVATE
#define PYOCI_MS_SLAVE MS_SLAVE
#define PYOCI_MS_SHARED MS_SHARED
#define PYOCI_MS_RELATIME MS_RELATIME
#define PYOCI_MS_STRICTATIME MS_STRICTATIME
#define PYOCI_MS_LAZYTIME MS_LAZYTIME
#define PYOCI_SECCOMP_RET_KILL_PROCESS SECCOMP_RET_KILL_PROCESS
#define PYOCI_SECCOMP_RET_KILL_THREAD SECCOMP_RET_KILL_THREAD
#define PYOCI_SECCOMP_RET_TRAP SECCOMP_RET_TRAP
#define PYOCI_SECCOMP_RET_ERRNO SECCOMP_RET_ERRNO
#define PYOCI_SECCOMP_RET_USER_NOTIF SECCOMP_RET_USER_NOTIF
#define PYOCI_SECCOMP_RET_TRACE SECCOMP_RET_TRACE
#define PYOCI_SECCOMP_RET_LOG SECCOMP_RET_LOG
#define PYOCI_SECCOMP_RET_ALLOW SECCOMP_RET_ALLOW

/* CDEF-END */

#endif
