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

#define BLOB_MAGIC 0x50594f49u /* "PYOI" */

struct blob_header {
    uint32_t magic;
    uint32_t abi;
    uint32_t cfg_size;
    uint32_t cfg_off; /* offset of the config (not +1) */
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
    if (cfg->n_join < 0 || cfg->n_ops < 0 || cfg->n_groups < 0 || cfg->n_rlimits < 0 ||
        cfg->n_start_hooks < 0 || (cfg->seccomp_bpf && cfg->seccomp_len <= 0) ||
        (cfg->mempolicy && cfg->mempolicy->n_words < 0))
        return -EINVAL;
    memset(&hdr, 0, sizeof hdr);
    put(&f, &hdr, sizeof hdr);                /* filled in below */
    uintptr_t cfg_at = put(&f, &c, sizeof c); /* rewritten below */

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
    c.groups =
        cfg->n_groups > 0 ? AS_PTR(put(&f, cfg->groups, (size_t)cfg->n_groups * sizeof *cfg->groups)) : NULL;
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

    if (!f.err && f.len > PYOCI_BLOB_MAX)
        f.err = E2BIG;
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

/* ---- pyoci-init's side ----
 * The blob is untrusted input as far as this code is concerned: every offset
 * must point inside it, suitably aligned, every count must be >= 0 and its
 * array must fit, every string must end with a NUL inside it, and a
 * non-zero count needs a non-NULL array.  Anything else is EINVAL, never a
 * wild pointer. */

static char *base;
static size_t total;

/* The offset+1 in *p becomes a pointer to n bytes (aligned to align, a power
 * of two) inside the blob; 0 stays NULL. */
static int fix_span(const void **p, size_t n, size_t align)
{
    uintptr_t off = (uintptr_t)*p;
    if (off == 0)
        return 0;
    off--;
    if (off >= total || n > total - off || (off & (align - 1)) != 0)
        return -1;
    *p = base + off;
    return 0;
}

/* ... a pointer to a NUL-terminated string inside the blob. */
static int fix_str(const void **p)
{
    if (fix_span(p, 1, 1) < 0)
        return -1;
    if (*p && !memchr(*p, 0, total - (size_t)((const char *)*p - base)))
        return -1;
    return 0;
}

/* ... a pointer to count elements of size bytes; count < 0, or > 0 with a
 * NULL array, is an error. */
static int fix_array(const void **p, long long count, size_t size, size_t align)
{
    if (count < 0 || (unsigned long long)count > total / size)
        return -1;
    if (fix_span(p, (size_t)count * size, align) < 0)
        return -1;
    return count > 0 && !*p ? -1 : 0;
}

/* Pointer fields are read and written through memcpy: they are `const T *`
 * of many types, handled here as `const void *`. */
#define FIXWITH(field, call)                      \
    do {                                          \
        const void *p_;                           \
        memcpy(&p_, &(field), sizeof p_);         \
        if ((call) < 0)                           \
            goto bad;                             \
        memcpy((void *)&(field), &p_, sizeof p_); \
    } while (0)
#define FIX_STR(field) FIXWITH(field, fix_str(&p_))
#define FIX_ARRAY(field, count) \
    FIXWITH(field, fix_array(&p_, (count), sizeof *(field), _Alignof(__typeof__(*(field)))))
#define FIX_ONE(field) FIX_ARRAY(field, (field) ? 1 : 0)

/* A NULL-terminated array of strings: the array must end inside the blob. */
static int fix_strv(const void **p)
{
    if (fix_span(p, sizeof(char *), _Alignof(char *)) < 0)
        return -1;
    if (!*p)
        return 0;
    const char **w = (const char **)*p;
    for (; (const char *)(w + 1) <= base + total; w++) {
        if (*w == NULL)
            return 0;
        const void *s = *w;
        if (fix_str(&s) < 0)
            return -1;
        *w = s;
    }
    return -1;
}
#define FIX_STRV(field) FIXWITH(field, fix_strv(&p_))

/* Undo the last successful pyoci_blob_map (for tests; pyoci-init keeps its
 * config until it execs). */
void pyoci_blob_unmap(void)
{
    if (base)
        munmap(base, total);
    base = NULL;
    total = 0;
}

struct pyoci_spawn_config *pyoci_blob_map(int fd)
{
    struct stat st;
    int e = EINVAL;
    if (fstat(fd, &st) < 0) {
        e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    if ((size_t)st.st_size < sizeof(struct blob_header) || (unsigned long long)st.st_size > PYOCI_BLOB_MAX) {
        close(fd);
        errno = (size_t)st.st_size < sizeof(struct blob_header) ? EINVAL : E2BIG;
        return NULL;
    }
    total = (size_t)st.st_size;
    void *m = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    e = errno;
    close(fd);
    if (m == MAP_FAILED) {
        total = 0;
        errno = e;
        return NULL;
    }
    base = m;
    struct blob_header hdr;
    memcpy(&hdr, base, sizeof hdr);
    if (hdr.magic != BLOB_MAGIC || hdr.abi != PYOCI_ABI_VERSION ||
        hdr.cfg_size != sizeof(struct pyoci_spawn_config) || hdr.total != total)
        goto bad;
    struct pyoci_spawn_config *c = NULL;
    {
        const void *p_ = (const void *)((uintptr_t)hdr.cfg_off + 1);
        if (fix_span(&p_, sizeof *c, _Alignof(struct pyoci_spawn_config)) < 0 || !p_)
            goto bad;
        c = (struct pyoci_spawn_config *)p_;
    }
    if (c->abi_version != PYOCI_ABI_VERSION)
        goto bad;

    FIX_ARRAY(c->join, c->n_join);
    for (int i = 0; i < c->n_join; i++)
        FIX_STR(((struct pyoci_ns *)c->join)[i].path);
    FIX_STR(c->timens_offsets);
    FIX_STR(c->hostname);
    FIX_STR(c->domainname);
    FIX_STR(c->rootfs);
    FIX_ARRAY(c->ops, c->n_ops);
    for (int i = 0; i < c->n_ops; i++) {
        struct pyoci_op *op = (struct pyoci_op *)&c->ops[i];
        FIX_STR(op->source);
        FIX_STR(op->target);
        FIX_STR(op->fstype);
        FIX_STR(op->data);
    }
    FIX_STRV(c->argv);
    FIX_STRV(c->envp);
    FIX_STR(c->cwd);
    FIX_STR(c->exec_path);
    FIX_ARRAY(c->groups, c->n_groups);
    FIX_ARRAY(c->rlimits, c->n_rlimits);
    FIXWITH(c->seccomp_bpf, fix_array(&p_, c->seccomp_bpf ? c->seccomp_len : 0, 8, 8));
    if (c->seccomp_bpf && c->seccomp_len <= 0)
        goto bad;
    FIX_STR(c->seccomp_listener_msg);
    FIX_STR(c->keyring_name);
    FIX_ARRAY(c->start_hooks, c->n_start_hooks);
    for (int i = 0; i < c->n_start_hooks; i++) {
        struct pyoci_hook *h = (struct pyoci_hook *)&c->start_hooks[i];
        FIX_STR(h->path);
        FIX_STRV(h->argv);
        FIX_STRV(h->envp);
    }
    FIX_STR(c->hook_state);
    FIX_ONE(c->sched);
    FIX_ONE(c->mempolicy);
    if (c->mempolicy) {
        struct pyoci_mempolicy *mp = (struct pyoci_mempolicy *)c->mempolicy;
        FIX_ARRAY(mp->nodes, mp->n_words);
    }
    FIX_STR(c->cgroup2_dir);
    FIX_STRV(c->cgroup_tasks);
    return c;
bad:
    pyoci_blob_unmap();
    errno = EINVAL;
    return NULL;
}
