// The only header of the project that includes unicorn.h (Unicorn 2.1.x, from .unicorn/include).
// Swift cannot call C variadic functions, so each variadic use of uc_hook_add / uc_ctl that the
// Emulator module needs has a fixed-signature wrapper here. Nothing else lives in C.
#ifndef KEXEC_SIM_CUNICORN_H
#define KEXEC_SIM_CUNICORN_H
#include "../../../.unicorn/include/unicorn/unicorn.h"
#include <stdbool.h>
#include <stdint.h>

uc_err ks_hook_add_tlb_fill(uc_engine *uc, uc_hook *hh, uc_cb_tlbevent_t cb, void *ud);
uc_err ks_hook_add_mem(uc_engine *uc, uc_hook *hh, int type, uc_cb_eventmem_t cb, void *ud,
                       uint64_t begin, uint64_t end);
uc_err ks_hook_add_code(uc_engine *uc, uc_hook *hh, uc_cb_hookcode_t cb, void *ud, uint64_t begin,
                        uint64_t end);
uc_err ks_hook_add_intr(uc_engine *uc, uc_hook *hh, uc_cb_hookintr_t cb, void *ud);
uc_err ks_hook_add_insn_invalid(uc_engine *uc, uc_hook *hh, uc_cb_hookinsn_invalid_t cb, void *ud);

// x86 port I/O: IN and OUT instructions call `cb` (a device model answers them).
uc_err ks_hook_add_x86_in(uc_engine *uc, uc_hook *hh, uc_cb_insn_in_t cb, void *ud);
uc_err ks_hook_add_x86_out(uc_engine *uc, uc_hook *hh, uc_cb_insn_out_t cb, void *ud);

// x86 CPUID: `cb` returns nonzero after writing EAX..EDX itself (the instruction is skipped), zero
// to let the engine's CPU model answer.
uc_err ks_hook_add_x86_cpuid(uc_engine *uc, uc_hook *hh, uc_cb_insn_cpuid_t cb, void *ud);
// x86 SYSCALL: Unicorn 2.1.4 calls `cb` instead of the system-call transition.
uc_err ks_hook_add_x86_syscall(uc_engine *uc, uc_hook *hh, uc_cb_insn_syscall_t cb, void *ud);
// x86: enters CPL 0 from CPL 3 by loading the CS and SS segment caches the way the CPU does for
// an interrupt gate or SYSCALL (Unicorn 2.1.4's register writes of CS / SS in 64-bit mode only
// set the selector, and nothing else lowers the CPL). The CPU state is saved as a context, the
// two caches and the CPL bits of QEMU's hflags are patched (CPUX86State layout of Unicorn 2.1's
// QEMU 5.0: regs[16], eip, eflags, cc_dst/src/src2, cc_op, df, hflags, hflags2, segs[6]), and the
// context is restored. The layout is checked against the live registers first (RAX/RCX found at
// the start of the state, EIP, the CS / SS selectors, hflags' CPL = 3); 0 on success, -1 when
// the check fails (nothing is changed then).
typedef struct ks_x86_segment {
    uint32_t selector;
    uint64_t base;
    uint32_t limit;
    uint32_t flags;
} ks_x86_segment;
int ks_x86_enter_cpl0(uc_engine *uc, const ks_x86_segment *cs, const ks_x86_segment *ss);
// x86 RDTSC / RDTSCP: `cb` (the CPUID callback's shape) returns nonzero after writing EDX:EAX
// (and ECX for RDTSCP) itself; zero lets the engine answer.
uc_err ks_hook_add_x86_rdtsc(uc_engine *uc, uc_hook *hh, int rdtscp, uc_cb_insn_cpuid_t cb, void *ud);
// x86: a block hook in C that moves a virtual clock on by `per_block` at every executed block
// and calls `cb` (a Swift device model) only when `now` reaches `deadline`, or, while
// `watch_if` is set, at the first block that starts with RFLAGS.IF = 1. The struct must outlive
// the hook.
typedef void (*ks_x86_clock_cb)(uc_engine *uc, uint64_t address, void *ud);
typedef struct ks_x86_clock {
    uint64_t now;
    uint64_t per_block;
    uint64_t deadline;
    uint64_t blocks;
    int watch_if;
    ks_x86_clock_cb cb;
    void *ud;
} ks_x86_clock;
uc_err ks_hook_add_x86_clock(uc_engine *uc, uc_hook *hh, ks_x86_clock *clock);
// AArch64 MRS / MSR of the generic timer's EL0 registers (op0 3, op1 3, CRn 14) and MSR DAIF
// (op0 3, op1 3, CRn 4, CRm 2, op2 1) call `cb` with `ud`; every other system register access is
// left to the CPU model in C (no call out: the kernel reads SP_EL0 for `current` constantly).
// `cb` returns nonzero when it answered (an MRS: it wrote the destination register itself) and the
// instruction is to be skipped. `filter` must outlive the hook.
typedef uint32_t (*ks_arm64_sysreg_cb)(uc_engine *uc, int isWrite, uc_arm64_reg reg,
                                        const uc_arm64_cp_reg *cp, void *ud);
typedef struct ks_arm64_sysreg_filter {
    ks_arm64_sysreg_cb cb;
    void *ud;
    int isWrite;
} ks_arm64_sysreg_filter;
uc_err ks_hook_add_arm64_sysreg(uc_engine *uc, uc_hook *hh, int isWrite, ks_arm64_sysreg_filter *filter);
// AArch64: a code hook on every instruction that calls `watch->cb` while PSTATE.I is clear (the
// guest has unmasked IRQs). For short stretches only: a hook on every instruction is slow.
typedef void (*ks_arm64_unmasked_cb)(uc_engine *uc, uint64_t address, void *ud);
typedef struct ks_arm64_unmask_watch {
    ks_arm64_unmasked_cb cb;
    void *ud;
} ks_arm64_unmask_watch;
uc_err ks_hook_add_arm64_unmask_watch(uc_engine *uc, uc_hook *hh, ks_arm64_unmask_watch *watch);
// Counts executed instructions into *counter with a C callback (no Swift call per instruction).
uc_err ks_hook_add_instruction_counter(uc_engine *uc, uc_hook *hh, uint64_t *counter);

uc_err ks_ctl_set_tlb_mode(uc_engine *uc, int mode);
uc_err ks_ctl_set_cpu_model(uc_engine *uc, int model);
uc_err ks_ctl_flush_tlb(uc_engine *uc);
uc_err ks_ctl_remove_cache(uc_engine *uc, uint64_t begin, uint64_t end);
// ARM / AArch64 only, right after uc_open: the engine's page size (2.1.4 defaults to 1 KiB there).
uc_err ks_ctl_set_page_size(uc_engine *uc, uint32_t size);
// Drops every translated block (so that a code hook added later sees code translated before).
uc_err ks_ctl_flush_tb(uc_engine *uc);

#endif
