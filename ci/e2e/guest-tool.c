/*
 * The guest's helper for the end-to-end test (built static, runs inside the
 * initramfs): xattr calls busybox lacks, bulk file creation without a fork
 * per file (forks are slow under TCG), the timed metadata phases, and an
 * mmap write for the cache=mmap mount.
 *
 *   guest-tool xattr set|get|list|remove PATH [NAME [VALUE]]
 *   guest-tool many DIR N          create DIR/f0 .. DIR/f(N-1)
 *   guest-tool phases DIR N        time create, stat, read, remove of N files
 *   guest-tool mmap PATH TEXT      write TEXT through a shared mapping
 *   guest-tool asuser UID GID CMD...  run CMD as UID:GID, no supplementary groups
 */
#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

static int fail(const char *what) {
    fprintf(stderr, "guest-tool: %s: %s\n", what, strerror(errno));
    return 1;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static int xattr(int argc, char **argv) {
    char buf[4096];
    if (argc >= 5 && !strcmp(argv[2], "set"))
        return lsetxattr(argv[3], argv[4], argv[5], strlen(argv[5]), 0) ? fail("lsetxattr") : 0;
    if (argc >= 5 && !strcmp(argv[2], "get")) {
        ssize_t n = lgetxattr(argv[3], argv[4], buf, sizeof buf);
        if (n < 0) return fail("lgetxattr");
        printf("%.*s\n", (int)n, buf);
        return 0;
    }
    if (argc >= 4 && !strcmp(argv[2], "list")) {
        ssize_t n = llistxattr(argv[3], buf, sizeof buf);
        if (n < 0) return fail("llistxattr");
        for (ssize_t i = 0; i < n; i += strlen(buf + i) + 1) printf("%s\n", buf + i);
        return 0;
    }
    if (argc >= 5 && !strcmp(argv[2], "remove"))
        return lremovexattr(argv[3], argv[4]) ? fail("lremovexattr") : 0;
    fprintf(stderr, "usage: guest-tool xattr set|get|list|remove PATH [NAME [VALUE]]\n");
    return 2;
}

/* acl set FILE UID: system.posix_acl_access with user::rw-, user:UID:r--,
 * group::r--, mask::r--, other::---.  acl get FILE: the named users, one
 * "user:ID" line each (version-2 xattr values, little-endian). */
static int acl(int argc, char **argv) {
    unsigned char buf[256];
    const char *name = "system.posix_acl_access";
    if (argc >= 5 && !strcmp(argv[2], "set")) {
        unsigned id = (unsigned)strtoul(argv[4], NULL, 10);
        unsigned short e[][2] = {{0x01, 6}, {0x02, 4}, {0x04, 4}, {0x10, 4}, {0x20, 0}};
        unsigned n = 4;
        unsigned v = 2;
        memcpy(buf, &v, 4);
        for (unsigned i = 0; i < 5; i++) {
            unsigned eid = e[i][0] == 0x02 ? id : 0xffffffffu;
            memcpy(buf + n, &e[i][0], 2);
            memcpy(buf + n + 2, &e[i][1], 2);
            memcpy(buf + n + 4, &eid, 4);
            n += 8;
        }
        return lsetxattr(argv[3], name, buf, n, 0) ? fail("lsetxattr acl") : 0;
    }
    if (argc >= 4 && !strcmp(argv[2], "get")) {
        ssize_t n = lgetxattr(argv[3], name, buf, sizeof buf);
        if (n < 4) return fail("lgetxattr acl");
        for (ssize_t at = 4; at + 8 <= n; at += 8) {
            unsigned short tag;
            unsigned id;
            memcpy(&tag, buf + at, 2);
            memcpy(&id, buf + at + 4, 4);
            if (tag == 0x02) printf("user:%u\n", id);
        }
        return 0;
    }
    return fail("usage: acl set FILE UID | acl get FILE");
}

static int many(const char *dir, int n) {
    char path[4096];
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/f%d", dir, i);
        int fd = open(path, O_CREAT | O_WRONLY | O_EXCL, 0644);
        if (fd < 0) return fail(path);
        close(fd);
    }
    return 0;
}

static int phases(const char *dir, int n) {
    char path[4096], data[64];
    struct stat st;
    if (mkdir(dir, 0755) && errno != EEXIST) return fail(dir);
    double t = now_ms();
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/small%d", dir, i);
        int fd = open(path, O_CREAT | O_WRONLY | O_EXCL, 0644);
        if (fd < 0 || write(fd, "small file\n", 11) != 11) return fail(path);
        close(fd);
    }
    printf("PHASE create %.0f\n", now_ms() - t);
    t = now_ms();
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/small%d", dir, i);
        if (lstat(path, &st) || st.st_size != 11) return fail(path);
    }
    printf("PHASE stat %.0f\n", now_ms() - t);
    t = now_ms();
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/small%d", dir, i);
        int fd = open(path, O_RDONLY);
        if (fd < 0 || read(fd, data, sizeof data) != 11) return fail(path);
        close(fd);
    }
    printf("PHASE read %.0f\n", now_ms() - t);
    t = now_ms();
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/small%d", dir, i);
        if (unlink(path)) return fail(path);
    }
    printf("PHASE remove %.0f\n", now_ms() - t);
    return rmdir(dir) ? fail(dir) : 0;
}

static int mmap_write(const char *path, const char *text) {
    size_t len = strlen(text);
    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0644);
    if (fd < 0) return fail(path);
    if (ftruncate(fd, len)) return fail("ftruncate");
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) return fail("mmap");
    memcpy(p, text, len);
    if (msync(p, len, MS_SYNC)) return fail("msync");
    munmap(p, len);
    return close(fd) ? fail("close") : 0;
}

static int asuser(int argc, char **argv) {
    if (setgroups(0, NULL) || setgid(atoi(argv[3])) || setuid(atoi(argv[2]))) return fail("setuid");
    execv(argv[4], argv + 4);
    (void)argc;
    return fail(argv[4]);
}

int main(int argc, char **argv) {
    if (argc >= 5 && !strcmp(argv[1], "asuser")) return asuser(argc, argv);
    if (argc >= 3 && !strcmp(argv[1], "xattr")) return xattr(argc, argv);
    if (argc >= 3 && !strcmp(argv[1], "acl")) return acl(argc, argv);
    if (argc == 4 && !strcmp(argv[1], "many")) return many(argv[2], atoi(argv[3]));
    if (argc == 4 && !strcmp(argv[1], "phases")) return phases(argv[2], atoi(argv[3]));
    if (argc == 4 && !strcmp(argv[1], "mmap")) return mmap_write(argv[2], argv[3]);
    fprintf(stderr, "usage: see the comment at the top of guest-tool.c\n");
    return 2;
}
