/* blob.c -- carry a struct pyoci_spawn_config across the execveat into
 * pyoci-init.
 *
 * The parent copies the config and everything it points to into one buffer,
 * each pointer replaced by (offset in the buffer + 1), 0 for NULL, and hands
 * it over in a memfd.  pyoci-init maps the memfd privately and turns the
 * offsets back into pointers.  Both programs are compiled from the same
 * header by the same compiler in the same build, so the struct layouts agree;
 * the header's size and ABI version are checked anyway.
 *
 * Every pointer field of the config (helper.h) must appear in both
 * pyoci_blob_write() and pyoci_blob_map(). */
#include "internal.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLOB_MAGIC 0x50594f49u   /* "PYOI" */

struct blob_header {
    uint32_t magic;
    uint32_t abi;
    uint32_t cfg_size;
    uint32_t cfg_off;            /* offset of the config (not +1) */
    uint64_t total;
};

struct flat {
    char *buf;
    size_t len;
    size_t cap;
    int err;
};

/* Append n bytes (16-aligned); returns offset + 1, or 0 for NULL / failure. */
static uintptr_t put(struct flat *f, const void *p, size_t n)
{
    if (!p || f->err)
        return 0;
    size_t off = (f->len + 15) & ~(size_t)15;
    if (off + n > f->cap) {
        size_t cap = f->cap ? f->cap : 8192;
        while (cap < off + n)
            cap *= 2;
        char *nb = realloc(f->buf, cap);
        if (!nb) {
            f->err = ENOMEM;
            return 0;
        }
        f->buf = nb;
        f->cap = cap;
    }
    memset(f->buf + f->len, 0, off - f->len);
    memcpy(f->buf + off, p, n);
    f->len = off + n;
    return off + 1;
}

static uintptr_t put_str(struct flat *f, const char *s)
{
    return s ? put(f, s, strlen(s) + 1) : 0;
}

static uintptr_t put_strv(struct flat *f, const char *const *v)
{
    if (!v)
        return 0;
    size_t n = 0;
    while (v[n])
        n++;
    uintptr_t *offs = calloc(n + 1, sizeof *offs);
    if (!offs) {
        f->err = ENOMEM;
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        offs[i] = put_str(f, v[i]);
    uintptr_t r = put(f, offs, (n + 1) * sizeof *offs);
    free(offs);
    return r;
}

#define AS_PTR(off) ((void *)(uintptr_t)(off))

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int pyoci_blob_write(const struct pyoci_spawn_config *cfg, int min_fd)
{
    struct flat f = {NULL, 0, 0, 0};
    struct blob_header hdr;
    struct pyoci_spawn_config c = *cfg;
    memset(&hdr, 0, sizeof hdr);
    put(&f, &hdr, sizeof hdr);                      /* filled in below */
    uintptr_t cfg_at = put(&f, &c, sizeof c);      /* rewritten below */

    if (cfg->n_join > 0) {
        struct pyoci_ns *js = calloc((size_t)cfg->n_join, sizeof *js);
        if (!js)
            f.err = ENOMEM;
        for (int i = 0; js && i < cfg->n_join; i++) {
            js[i] = cfg->join[i];
            js[i].path = AS_PTR(put_str(&f, cfg->join[i].path));
        }
        c.join = AS_PTR(put(&f, js, (size_t)cfg->n_join * sizeof *js));
        free(js);
    } else {
        c.join = NULL;
    }
    c.timens_offsets = AS_PTR(put_str(&f, cfg->timens_offsets));
    c.hostname = AS_PTR(put_str(&f, cfg->hostname));
    c.domainname = AS_PTR(put_str(&f, cfg->domainname));
    c.rootfs = AS_PTR(put_str(&f, cfg->rootfs));
    if (cfg->n_ops > 0) {
        struct pyoci_op *ops = calloc((size_t)cfg->n_ops, sizeof *ops);
        if (!ops)
            f.err = ENOMEM;
        for (int i = 0; ops && i < cfg->n_ops; i++) {
            ops[i] = cfg->ops[i];
            ops[i].source = AS_PTR(put_str(&f, cfg->ops[i].source));
            ops[i].target = AS_PTR(put_str(&f, cfg->ops[i].target));
            ops[i].fstype = AS_PTR(put_str(&f, cfg->ops[i].fstype));
            ops[i].data = AS_PTR(put_str(&f, cfg->ops[i].data));
        }
        c.ops = AS_PTR(put(&f, ops, (size_t)cfg->n_ops * sizeof *ops));
        free(ops);
    } else {
        c.ops = NULL;
    }
    c.argv = AS_PTR(put_strv(&f, cfg->argv));
    c.envp = AS_PTR(put_strv(&f, cfg->envp));
    c.cwd = AS_PTR(put_str(&f, cfg->cwd));
    c.exec_path = AS_PTR(put_str(&f, cfg->exec_path));
    c.groups = cfg->n_groups > 0 ? AS_PTR(put(&f, cfg->groups, (size_t)cfg->n_groups * sizeof *cfg->groups))
                                 : NULL;
    c.rlimits = cfg->n_rlimits > 0
                    ? AS_PTR(put(&f, cfg->rlimits, (size_t)cfg->n_rlimits * sizeof *cfg->rlimits))
                    : NULL;
    c.seccomp_bpf = cfg->seccomp_bpf ? AS_PTR(put(&f, cfg->seccomp_bpf, (size_t)cfg->seccomp_len * 8)) : NULL;
    c.seccomp_listener_msg = AS_PTR(put_str(&f, cfg->seccomp_listener_msg));
    c.keyring_name = AS_PTR(put_str(&f, cfg->keyring_name));
    if (cfg->n_start_hooks > 0) {
        struct pyoci_hook *hs = calloc((size_t)cfg->n_start_hooks, sizeof *hs);
        if (!hs)
            f.err = ENOMEM;
        for (int i = 0; hs && i < cfg->n_start_hooks; i++) {
            hs[i] = cfg->start_hooks[i];
            hs[i].path = AS_PTR(put_str(&f, cfg->start_hooks[i].path));
            hs[i].argv = AS_PTR(put_strv(&f, cfg->start_hooks[i].argv));
            hs[i].envp = AS_PTR(put_strv(&f, cfg->start_hooks[i].envp));
        }
        c.start_hooks = AS_PTR(put(&f, hs, (size_t)cfg->n_start_hooks * sizeof *hs));
        free(hs);
    } else {
        c.start_hooks = NULL;
    }
    c.hook_state = AS_PTR(put_str(&f, cfg->hook_state));
    c.sched = cfg->sched ? AS_PTR(put(&f, cfg->sched, sizeof *cfg->sched)) : NULL;
    c.cgroup2_dir = AS_PTR(put_str(&f, cfg->cgroup2_dir));
    c.cgroup_tasks = AS_PTR(put_strv(&f, cfg->cgroup_tasks));
    if (cfg->mempolicy) {
        struct pyoci_mempolicy mp = *cfg->mempolicy;
        mp.nodes = mp.n_words > 0 ? AS_PTR(put(&f, cfg->mempolicy->nodes, (size_t)mp.n_words * 8)) : NULL;
        c.mempolicy = AS_PTR(put(&f, &mp, sizeof mp));
    } else {
        c.mempolicy = NULL;
    }

    if (f.err) {
        free(f.buf);
        return -f.err;
    }
    hdr.magic = BLOB_MAGIC;
    hdr.abi = PYOCI_ABI_VERSION;
    hdr.cfg_size = sizeof c;
    hdr.cfg_off = (uint32_t)(cfg_at - 1);
    hdr.total = f.len;
    memcpy(f.buf, &hdr, sizeof hdr);
    memcpy(f.buf + cfg_at - 1, &c, sizeof c);

    int fd = memfd_create("pyoci-config", MFD_CLOEXEC);
    if (fd >= 0 && fd < min_fd) {
        int high = fcntl(fd, F_DUPFD_CLOEXEC, min_fd);
        close(fd);
        fd = high;
    }
    if (fd < 0 || write_all(fd, f.buf, f.len) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        free(f.buf);
        return -e;
    }
    free(f.buf);
    return fd;
}

/* ---- pyoci-init's side ---- */

static char *base;
static size_t total;

static int fix(const void *p, void **out)
{
    uintptr_t off = (uintptr_t)p;
    if (off == 0) {
        *out = NULL;
        return 0;
    }
    if (off - 1 >= total)
        return -1;
    *out = base + off - 1;
    return 0;
}

#define FIX(field)                                                        \
    do {                                                                  \
        void *fixed_;                                                     \
        if (fix((const void *)(field), &fixed_) < 0)                      \
            goto bad;                                                     \
        memcpy((void *)&(field), &fixed_, sizeof fixed_);                 \
    } while (0)

static int fix_strv(const char *const *v)
{
    if (!v)
        return 0;
    const char **w = (const char **)v;
    for (; (char *)w + sizeof *w <= base + total; w++) {
        if (*w == NULL)
            return 0;
        void *s;
        if (fix(*w, &s) < 0)
            return -1;
        *w = s;
    }
    return -1;
}

struct pyoci_spawn_config *pyoci_blob_map(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return NULL;
    if ((size_t)st.st_size < sizeof(struct blob_header)) {
        errno = EINVAL;
        return NULL;
    }
    total = (size_t)st.st_size;
    void *m = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED)
        return NULL;
    close(fd);
    base = m;
    struct blob_header hdr;
    memcpy(&hdr, base, sizeof hdr);
    if (hdr.magic != BLOB_MAGIC || hdr.abi != PYOCI_ABI_VERSION ||
        hdr.cfg_size != sizeof(struct pyoci_spawn_config) || hdr.total != total ||
        (size_t)hdr.cfg_off + hdr.cfg_size > total) {
        errno = EINVAL;
        return NULL;
    }
    struct pyoci_spawn_config *c = (struct pyoci_spawn_config *)(base + hdr.cfg_off);

    FIX(c->join);
    for (int i = 0; c->join && i < c->n_join; i++)
        FIX(((struct pyoci_ns *)c->join)[i].path);
    FIX(c->timens_offsets);
    FIX(c->hostname);
    FIX(c->domainname);
    FIX(c->rootfs);
    FIX(c->ops);
    for (int i = 0; c->ops && i < c->n_ops; i++) {
        struct pyoci_op *op = (struct pyoci_op *)&c->ops[i];
        FIX(op->source);
        FIX(op->target);
        FIX(op->fstype);
        FIX(op->data);
    }
    FIX(c->argv);
    FIX(c->envp);
    if (fix_strv(c->argv) < 0 || fix_strv(c->envp) < 0)
        goto bad;
    FIX(c->cwd);
    FIX(c->exec_path);
    FIX(c->groups);
    FIX(c->rlimits);
    FIX(c->seccomp_bpf);
    FIX(c->seccomp_listener_msg);
    FIX(c->keyring_name);
    FIX(c->start_hooks);
    for (int i = 0; c->start_hooks && i < c->n_start_hooks; i++) {
        struct pyoci_hook *h = (struct pyoci_hook *)&c->start_hooks[i];
        FIX(h->path);
        FIX(h->argv);
        FIX(h->envp);
        if (fix_strv(h->argv) < 0 || fix_strv(h->envp) < 0)
            goto bad;
    }
    FIX(c->hook_state);
    FIX(c->sched);
    FIX(c->mempolicy);
    if (c->mempolicy)
        FIX(((struct pyoci_mempolicy *)c->mempolicy)->nodes);
    FIX(c->cgroup2_dir);
    FIX(c->cgroup_tasks);
    if (fix_strv(c->cgroup_tasks) < 0)
        goto bad;
    return c;
bad:
    errno = EINVAL;
    return NULL;
}
