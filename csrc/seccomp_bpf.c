/* seccomp_bpf.c -- linux.seccomp, the parent's side: compile the profile
 * with libseccomp into a classic BPF program (so pyoci-init runs no library
 * code for it and is not linked with libseccomp). */
#include "internal.h"

#include <linux/filter.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <unistd.h>

int pyoci_seccomp_compile(const struct pyoci_seccomp *s, unsigned char *out, int outlen, int *bad_index)
{
    int r = 0;
    *bad_index = -1;
    scmp_filter_ctx ctx = seccomp_init(s->default_action);
    if (!ctx)
        return -EINVAL;
    /* Rules that only repeat the default action are rejected by libseccomp;
     * filters from engines contain them, so skip them quietly. */
    seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
    for (int i = 0; i < s->n_archs; i++) {
        uint32_t arch = seccomp_arch_resolve_name(s->archs[i]);
        if (arch == 0) {
            *bad_index = -2 - i;
            r = -EINVAL;
            goto out;
        }
        r = seccomp_arch_add(ctx, arch);
        if (r < 0 && r != -EEXIST)
            goto out;
        r = 0;
    }
    for (int i = 0; i < s->n_rules; i++) {
        const struct pyoci_seccomp_rule *rule = &s->rules[i];
        if (rule->action == s->default_action)
            continue;
        int nr = seccomp_syscall_resolve_name(rule->name);
        if (nr == __NR_SCMP_ERROR)
            continue; /* unknown on this kernel/libseccomp: skipped, as other runtimes do */
        /* a syscall has six arguments: more conditions than that are refused,
         * never dropped */
        struct scmp_arg_cmp cmp[6];
        int n = rule->n_args;
        if (n < 0 || n > 6) {
            *bad_index = i;
            r = -E2BIG;
            goto out;
        }
        for (int a = 0; a < n; a++) {
            cmp[a].arg = rule->args[a].index;
            cmp[a].op = (enum scmp_compare)rule->args[a].op;
            cmp[a].datum_a = rule->args[a].value;
            cmp[a].datum_b = rule->args[a].value_two;
        }
        r = seccomp_rule_add_array(ctx, rule->action, nr, (unsigned)n, cmp);
        if (r == -EACCES || r == -EEXIST) {
            r = 0;
            continue;
        }
        if (r < 0) {
            *bad_index = i;
            goto out;
        }
    }
    /* Export the program through a memfd and copy it out. */
    int fd = memfd_create("pyoci-seccomp", MFD_CLOEXEC);
    if (fd < 0) {
        r = -errno;
        goto out;
    }
    r = seccomp_export_bpf(ctx, fd);
    if (r == 0) {
        off_t len = lseek(fd, 0, SEEK_END);
        if (len > outlen) {
            r = -E2BIG;
        } else if (pread(fd, out, (size_t)len, 0) != len) {
            r = -EIO;
        } else {
            r = (int)(len / (off_t)sizeof(struct sock_filter));
        }
    }
    close(fd);
out:
    seccomp_release(ctx);
    return r;
}
