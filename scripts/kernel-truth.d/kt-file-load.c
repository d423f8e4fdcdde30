/* kt-file-load: kexec_file_load(2) with KEXEC_FILE_DEBUG (0x8), for kernels (v6.8+) that print their
 * kexec_file placement lines only when user space asks for them, which kexec-tools 2.0.25 does not.
 *   kt-file-load [-p] KERNEL INITRD CMDLINE    load (-p: crash kernel)
 *   kt-file-load [-p] -u                       unload
 * Built static by scripts/kernel-truth and run inside the QEMU guest's initramfs. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define KEXEC_FILE_UNLOAD 0x1UL
#define KEXEC_FILE_ON_CRASH 0x2UL
#define KEXEC_FILE_DEBUG 0x8UL

int main(int argc, char **argv) {
    unsigned long flags = KEXEC_FILE_DEBUG;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "-p")) flags |= KEXEC_FILE_ON_CRASH;
        else if (!strcmp(argv[i], "-u")) flags |= KEXEC_FILE_UNLOAD;
        else { fprintf(stderr, "kt-file-load: unknown option %s\n", argv[i]); return 2; }
    }
    long rc;
    if (flags & KEXEC_FILE_UNLOAD) {
        rc = syscall(SYS_kexec_file_load, -1, -1, 0UL, "", flags);
    } else {
        if (argc - i != 3) { fprintf(stderr, "usage: kt-file-load [-p] KERNEL INITRD CMDLINE | [-p] -u\n"); return 2; }
        int kfd = open(argv[i], O_RDONLY), ifd = open(argv[i + 1], O_RDONLY);
        if (kfd < 0 || ifd < 0) { perror("kt-file-load: open"); return 1; }
        const char *cmdline = argv[i + 2];
        rc = syscall(SYS_kexec_file_load, kfd, ifd, strlen(cmdline) + 1, cmdline, flags);
    }
    if (rc != 0) {
        fprintf(stderr, "kt-file-load: kexec_file_load(flags=0x%lx): %s (errno %d)\n", flags, strerror(errno), errno);
        return 1;
    }
    printf("kt-file-load: kexec_file_load(flags=0x%lx) ok\n", flags);
    return 0;
}
