// The test initrd's /init for arm64 and x86_64: a static, freestanding Linux program with raw system calls
// (no libc). It reports what the kernel handed it through /dev/kmsg (printk, so the lines reach the
// console the follow run captures, even without a console tty), then powers the machine off.
//
// Lines, in order (each one kmsg record; FollowSession in KexecSim reads them):
//   kexec-sim: /init reached
//   kexec-sim: cmdline: <the contents of /proc/cmdline, or argv and envp when procfs won't mount>
//   kexec-sim: vmcore: <st_size> bytes   or   kexec-sim: vmcore: absent (errno N)
//   kexec-sim: /init done
// then reboot(LINUX_REBOOT_CMD_POWER_OFF), which the kernel turns into PSCI SYSTEM_OFF on arm64
// (kernel/reboot.c, drivers/firmware/psci/psci.c psci_sys_poweroff, v6.1) and, on an x86
// machine without ACPI, into machine_power_off → native_machine_power_off (arch/x86/kernel/
// reboot.c, v6.1): no pm_power_off, so it halts the CPU (tboot_shutdown, then stop_this_cpu).
//
// System call numbers: arm64 include/uapi/asm-generic/unistd.h (the generic table), x86_64
// arch/x86/entry/syscalls/syscall_64.tbl, v6.1; struct stat: include/uapi/asm-generic/stat.h and
// arch/x86/include/uapi/asm/stat.h (st_size at byte 48 in both).

typedef unsigned long u64;

#if defined(__x86_64__)
enum {
    SYS_mkdirat = 258, SYS_mount = 165, SYS_openat = 257, SYS_close = 3, SYS_read = 0,
    SYS_write = 1, SYS_newfstatat = 262, SYS_exit = 60, SYS_reboot = 169,
};
#else
enum {
    SYS_mkdirat = 34, SYS_mount = 40, SYS_openat = 56, SYS_close = 57, SYS_read = 63,
    SYS_write = 64, SYS_newfstatat = 79, SYS_exit = 93, SYS_reboot = 142,
};
#endif
#define AT_FDCWD (-100)
#define O_RDONLY 0
#define O_WRONLY 1
#define REBOOT_MAGIC1 0xfee1deadUL
#define REBOOT_MAGIC2 672274793UL
#define REBOOT_CMD_POWER_OFF 0x4321fedcUL

#if defined(__x86_64__)
static long sys6(long n, long a, long b, long c, long d, long e) {
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    long ret = n;
    __asm__ volatile("syscall"
                     : "+a"(ret)
                     : "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
                     : "rcx", "r11", "memory");
    return ret;
}
#else
static long sys6(long n, long a, long b, long c, long d, long e) {
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    __asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4) : "memory");
    return x0;
}
#endif

static u64 length(const char *s) {
    u64 n = 0;
    while (s[n]) n++;
    return n;
}

// A line being built: `len` bytes of `buf`, never more than its size.
struct line {
    char buf[1536];
    u64 len;
};

static void put(struct line *l, const char *s, u64 n) {
    for (u64 i = 0; i < n && l->len < sizeof l->buf; i++) l->buf[l->len++] = s[i];
}
static void puts_(struct line *l, const char *s) { put(l, s, length(s)); }
static void putu(struct line *l, u64 v) {
    char d[20];
    int n = 0;
    do {
        d[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) put(l, &d[--n], 1);
}

static int kmsg = -1;

// One kmsg record at KERN_NOTICE: "<5>kexec-sim: " + text.
static void emit(struct line *l) {
    struct line out;
    out.len = 0;
    puts_(&out, "<5>kexec-sim: ");
    put(&out, l->buf, l->len);
    if (kmsg >= 0) sys6(SYS_write, kmsg, (long)out.buf, (long)out.len, 0, 0);
    l->len = 0;
}

void init_main(long *sp) {
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    char **envp = argv + argc + 1;
    kmsg = (int)sys6(SYS_openat, AT_FDCWD, (long)"/dev/kmsg", O_WRONLY, 0, 0);

    struct line l;
    l.len = 0;
    puts_(&l, "/init reached");
    emit(&l);

    puts_(&l, "cmdline: ");
    sys6(SYS_mkdirat, AT_FDCWD, (long)"/proc", 0555, 0, 0);
    long m = sys6(SYS_mount, (long)"proc", (long)"/proc", (long)"proc", 0, 0);
    long fd = m == 0 ? sys6(SYS_openat, AT_FDCWD, (long)"/proc/cmdline", O_RDONLY, 0, 0) : -1;
    if (fd >= 0) {
        char buf[1024];
        long n = sys6(SYS_read, fd, (long)buf, sizeof buf, 0, 0);
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == 0)) n--;
        if (n > 0) put(&l, buf, (u64)n);
        sys6(SYS_close, fd, 0, 0, 0, 0);
    } else {
        puts_(&l, "(no procfs, errno ");
        putu(&l, (u64)(m < 0 ? -m : -fd));
        puts_(&l, ") argv:");
        for (long i = 0; i < argc; i++) {
            puts_(&l, " ");
            puts_(&l, argv[i]);
        }
        puts_(&l, " envp:");
        for (char **e = envp; *e; e++) {
            puts_(&l, " ");
            puts_(&l, *e);
        }
    }
    emit(&l);

    unsigned char st[128];
    long r = sys6(SYS_newfstatat, AT_FDCWD, (long)"/proc/vmcore", (long)st, 0, 0);
    puts_(&l, "vmcore: ");
    if (r == 0) {
        u64 size = 0;
        for (int i = 7; i >= 0; i--) size = size << 8 | st[48 + i];
        putu(&l, size);
        puts_(&l, " bytes");
    } else {
        puts_(&l, "absent (errno ");
        putu(&l, (u64)-r);
        puts_(&l, ")");
    }
    emit(&l);

    puts_(&l, "/init done");
    emit(&l);
    sys6(SYS_reboot, (long)REBOOT_MAGIC1, (long)REBOOT_MAGIC2, (long)REBOOT_CMD_POWER_OFF, 0, 0);
    sys6(SYS_exit, 0, 0, 0, 0, 0);
    for (;;) {
    }
}

// The ELF entry: the kernel starts /init with SP at argc, argv..., 0, envp..., 0.
#if defined(__x86_64__)
__asm__(".globl _start\n"
        "_start:\n"
        "  mov %rsp, %rdi\n"
        "  and $-16, %rsp\n"
        "  call init_main\n"
        "  jmp .\n");
#else
__asm__(".globl _start\n"
        "_start:\n"
        "  mov x0, sp\n"
        "  bl init_main\n"
        "  b .\n");
#endif
