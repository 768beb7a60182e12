"""Linux names and numbers that config.json and the CLI refer to by name.

Plain dicts, no imports: this module is on the start-up path of every verb.
Numbers are the x86_64 Linux ones (capabilities and rlimits are the same on
every architecture Linux supports; signals are not, see ``SIGNALS``).
"""

from __future__ import annotations

# capabilities(7), <linux/capability.h>.  CAP_LAST_CAP is 40 since Linux 5.9.
CAPABILITIES: dict[str, int] = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_FOWNER": 3,
    "CAP_FSETID": 4,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12,
    "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14,
    "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16,
    "CAP_SYS_RAWIO": 17,
    "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_BOOT": 22,
    "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24,
    "CAP_SYS_TIME": 25,
    "CAP_SYS_TTY_CONFIG": 26,
    "CAP_MKNOD": 27,
    "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29,
    "CAP_AUDIT_CONTROL": 30,
    "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33,
    "CAP_SYSLOG": 34,
    "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36,
    "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}

# signal(7), x86_64 numbering.  One name per number; aliases are in
# SIGNAL_ALIASES.  Real-time signals follow the kernel's view (SIGRTMIN = 32
# is reserved by glibc/NPTL for itself, so like runc and `kill -l` we start the
# usable range at 34).
SIGNALS: dict[str, int] = {
    "SIGHUP": 1,
    "SIGINT": 2,
    "SIGQUIT": 3,
    "SIGILL": 4,
    "SIGTRAP": 5,
    "SIGABRT": 6,
    "SIGBUS": 7,
    "SIGFPE": 8,
    "SIGKILL": 9,
    "SIGUSR1": 10,
    "SIGSEGV": 11,
    "SIGUSR2": 12,
    "SIGPIPE": 13,
    "SIGALRM": 14,
    "SIGTERM": 15,
    "SIGSTKFLT": 16,
    "SIGCHLD": 17,
    "SIGCONT": 18,
    "SIGSTOP": 19,
    "SIGTSTP": 20,
    "SIGTTIN": 21,
    "SIGTTOU": 22,
    "SIGURG": 23,
    "SIGXCPU": 24,
    "SIGXFSZ": 25,
    "SIGVTALRM": 26,
    "SIGPROF": 27,
    "SIGWINCH": 28,
    "SIGIO": 29,
    "SIGPWR": 30,
    "SIGSYS": 31,
    "SIGRTMIN": 34,
    "SIGRTMIN+1": 35,
    "SIGRTMIN+2": 36,
    "SIGRTMIN+3": 37,
    "SIGRTMIN+4": 38,
    "SIGRTMIN+5": 39,
    "SIGRTMIN+6": 40,
    "SIGRTMIN+7": 41,
    "SIGRTMIN+8": 42,
    "SIGRTMIN+9": 43,
    "SIGRTMIN+10": 44,
    "SIGRTMIN+11": 45,
    "SIGRTMIN+12": 46,
    "SIGRTMIN+13": 47,
    "SIGRTMIN+14": 48,
    "SIGRTMIN+15": 49,
    "SIGRTMIN+16": 50,
    "SIGRTMIN+17": 51,
    "SIGRTMIN+18": 52,
    "SIGRTMIN+19": 53,
    "SIGRTMIN+20": 54,
    "SIGRTMIN+21": 55,
    "SIGRTMIN+22": 56,
    "SIGRTMIN+23": 57,
    "SIGRTMIN+24": 58,
    "SIGRTMIN+25": 59,
    "SIGRTMIN+26": 60,
    "SIGRTMIN+27": 61,
    "SIGRTMIN+28": 62,
    "SIGRTMIN+29": 63,
    "SIGRTMAX": 64,
}

# Other names for signals in SIGNALS (signal(7) "Synonym"), plus the
# SIGRTMAX-n spelling that `kill -l` uses for the upper real-time half.
SIGNAL_ALIASES: dict[str, int] = {
    "SIGIOT": 6,
    "SIGCLD": 17,
    "SIGPOLL": 29,
    "SIGRTMIN+30": 64,
    **{f"SIGRTMAX-{n}": 64 - n for n in range(1, 31)},
}

SIGNAL_MAX = 64

# getrlimit(2), <asm-generic/resource.h>.
RLIMITS: dict[str, int] = {
    "RLIMIT_CPU": 0,
    "RLIMIT_FSIZE": 1,
    "RLIMIT_DATA": 2,
    "RLIMIT_STACK": 3,
    "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5,
    "RLIMIT_NPROC": 6,
    "RLIMIT_NOFILE": 7,
    "RLIMIT_MEMLOCK": 8,
    "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10,
    "RLIMIT_SIGPENDING": 11,
    "RLIMIT_MSGQUEUE": 12,
    "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14,
    "RLIMIT_RTTIME": 15,
}


def parse_signal(text: str) -> int:
    """Turn a signal as a user or Podman writes it into its number.

    Accepts a number ("9", 1..64), a name with or without the SIG prefix in
    any case ("KILL", "SIGKILL", "sigkill", "RTMIN+3", "SIGRTMAX-2").
    Raises ValueError for anything else.
    """
    if text.isascii() and text.isdigit():
        num = int(text)
        if 1 <= num <= SIGNAL_MAX:
            return num
        raise ValueError(f"invalid signal number {text!r}: must be 1..{SIGNAL_MAX}")
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    num_or_none = SIGNALS.get(name)
    if num_or_none is None:
        num_or_none = SIGNAL_ALIASES.get(name)
    if num_or_none is None:
        raise ValueError(f"unknown signal {text!r}")
    return num_or_none

# linux.personality.domain: personality(2) domains, <linux/personality.h>.
PERSONALITY_DOMAINS: dict[str, int] = {
    "LINUX": 0x0000,
    "LINUX32": 0x0008,
}
# linux.personality.flags: the flag bits of <linux/personality.h>, by name.
PERSONALITY_FLAGS: dict[str, int] = {
    "UNAME26": 0x0020000,
    "ADDR_NO_RANDOMIZE": 0x0040000,
    "FDPIC_FUNCPTRS": 0x0080000,
    "MMAP_PAGE_ZERO": 0x0100000,
    "ADDR_COMPAT_LAYOUT": 0x0200000,
    "READ_IMPLIES_EXEC": 0x0400000,
    "ADDR_LIMIT_32BIT": 0x0800000,
    "SHORT_INODE": 0x1000000,
    "WHOLE_SECONDS": 0x2000000,
    "STICKY_TIMEOUTS": 0x4000000,
    "ADDR_LIMIT_3GB": 0x8000000,
}

# process.ioPriority.class: ioprio_set(2) classes, <linux/ioprio.h>; the
# value is class << 13 | level, levels 0 (highest) to 7.
IOPRIO_CLASSES: dict[str, int] = {
    "IOPRIO_CLASS_RT": 1,
    "IOPRIO_CLASS_BE": 2,
    "IOPRIO_CLASS_IDLE": 3,
}
IOPRIO_CLASS_SHIFT = 13

# process.scheduler: sched_setattr(2) policies and flags, <linux/sched.h>.
SCHED_POLICIES: dict[str, int] = {
    "SCHED_OTHER": 0,
    "SCHED_FIFO": 1,
    "SCHED_RR": 2,
    "SCHED_BATCH": 3,
    "SCHED_ISO": 4,         # reserved by Linux, never implemented
    "SCHED_IDLE": 5,
    "SCHED_DEADLINE": 6,
}
SCHED_FLAGS: dict[str, int] = {
    "SCHED_FLAG_RESET_ON_FORK": 0x01,
    "SCHED_FLAG_RECLAIM": 0x02,
    "SCHED_FLAG_DL_OVERRUN": 0x04,
    "SCHED_FLAG_KEEP_POLICY": 0x08,
    "SCHED_FLAG_KEEP_PARAMS": 0x10,
    "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
    "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40,
}

# linux.memoryPolicy: set_mempolicy(2) modes and mode flags, <linux/mempolicy.h>.
MPOL_MODES: dict[str, int] = {
    "MPOL_DEFAULT": 0,
    "MPOL_PREFERRED": 1,
    "MPOL_BIND": 2,
    "MPOL_INTERLEAVE": 3,
    "MPOL_LOCAL": 4,
    "MPOL_PREFERRED_MANY": 5,
    "MPOL_WEIGHTED_INTERLEAVE": 6,
}
MPOL_FLAGS: dict[str, int] = {
    "MPOL_F_NUMA_BALANCING": 1 << 13,
    "MPOL_F_RELATIVE_NODES": 1 << 14,
    "MPOL_F_STATIC_NODES": 1 << 15,
}
