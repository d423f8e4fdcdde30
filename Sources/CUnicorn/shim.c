#include "CUnicorn.h"

uc_err ks_hook_add_tlb_fill(uc_engine *uc, uc_hook *hh, uc_cb_tlbevent_t cb, void *ud) {
    // begin > end: the hook covers every address.
    return uc_hook_add(uc, hh, UC_HOOK_TLB_FILL, (void *)cb, ud, 1, 0);
}

uc_err ks_hook_add_mem(uc_engine *uc, uc_hook *hh, int type, uc_cb_eventmem_t cb, void *ud,
                       uint64_t begin, uint64_t end) {
    return uc_hook_add(uc, hh, type, (void *)cb, ud, begin, end);
}

uc_err ks_hook_add_code(uc_engine *uc, uc_hook *hh, uc_cb_hookcode_t cb, void *ud, uint64_t begin,
                        uint64_t end) {
    return uc_hook_add(uc, hh, UC_HOOK_CODE, (void *)cb, ud, begin, end);
}

uc_err ks_hook_add_intr(uc_engine *uc, uc_hook *hh, uc_cb_hookintr_t cb, void *ud) {
    return uc_hook_add(uc, hh, UC_HOOK_INTR, (void *)cb, ud, 1, 0);
}

uc_err ks_hook_add_insn_invalid(uc_engine *uc, uc_hook *hh, uc_cb_hookinsn_invalid_t cb, void *ud) {
    return uc_hook_add(uc, hh, UC_HOOK_INSN_INVALID, (void *)cb, ud, 1, 0);
}

uc_err ks_ctl_set_tlb_mode(uc_engine *uc, int mode) { return uc_ctl_tlb_mode(uc, mode); }

uc_err ks_ctl_set_cpu_model(uc_engine *uc, int model) { return uc_ctl_set_cpu_model(uc, model); }

uc_err ks_ctl_flush_tlb(uc_engine *uc) { return uc_ctl_flush_tlb(uc); }

uc_err ks_ctl_remove_cache(uc_engine *uc, uint64_t begin, uint64_t end) {
    return uc_ctl_remove_cache(uc, begin, end);
}

static void ks_count_instruction(uc_engine *uc, uint64_t address, uint32_t size, void *user_data) {
    (void)uc;
    (void)address;
    (void)size;
    *(uint64_t *)user_data += 1;
}

uc_err ks_hook_add_instruction_counter(uc_engine *uc, uc_hook *hh, uint64_t *counter) {
    return uc_hook_add(uc, hh, UC_HOOK_CODE, (void *)ks_count_instruction, counter, 1, 0);
}

uc_err ks_ctl_set_page_size(uc_engine *uc, uint32_t size) { return uc_ctl_set_page_size(uc, size); }

uc_err ks_ctl_flush_tb(uc_engine *uc) { return uc_ctl_flush_tb(uc); }

uc_err ks_hook_add_x86_in(uc_engine *uc, uc_hook *hh, uc_cb_insn_in_t cb, void *ud) {
    return uc_hook_add(uc, hh, UC_HOOK_INSN, (void *)cb, ud, 1, 0, UC_X86_INS_IN);
}

uc_err ks_hook_add_x86_out(uc_engine *uc, uc_hook *hh, uc_cb_insn_out_t cb, void *ud) {
    return uc_hook_add(uc, hh, UC_HOOK_INSN, (void *)cb, ud, 1, 0, UC_X86_INS_OUT);
}

uc_err ks_hook_add_x86_cpuid(uc_engine *uc, uc_hook *hh, uc_cb_insn_cpuid_t cb, void *ud) {
    return uc_hook_add(uc, hh, UC_HOOK_INSN, (void *)cb, ud, 1, 0, UC_X86_INS_CPUID);
}

static uint32_t ks_arm64_sysreg_trampoline(uc_engine *uc, uc_arm64_reg reg, const uc_arm64_cp_reg *cp,
                                           void *ud) {
    const ks_arm64_sysreg_filter *f = ud;
    int timer = cp->op0 == 3 && cp->op1 == 3 && cp->crn == 14;
    int daif = cp->op0 == 3 && cp->op1 == 3 && cp->crn == 4 && cp->crm == 2 && cp->op2 == 1;
    if (!timer && !(daif && f->isWrite)) return 0;
    return f->cb(uc, f->isWrite, reg, cp, f->ud);
}

uc_err ks_hook_add_arm64_sysreg(uc_engine *uc, uc_hook *hh, int isWrite, ks_arm64_sysreg_filter *filter) {
    return uc_hook_add(uc, hh, UC_HOOK_INSN, (void *)ks_arm64_sysreg_trampoline, filter, 1, 0,
                       isWrite ? UC_ARM64_INS_MSR : UC_ARM64_INS_MRS);
}

static void ks_arm64_unmask_trampoline(uc_engine *uc, uint64_t address, uint32_t size, void *ud) {
    (void)size;
    uint64_t pstate = 0;
    uc_reg_read(uc, UC_ARM64_REG_PSTATE, &pstate);
    if (pstate & (1u << 7)) return;
    const ks_arm64_unmask_watch *w = ud;
    w->cb(uc, address, w->ud);
}

uc_err ks_hook_add_arm64_unmask_watch(uc_engine *uc, uc_hook *hh, ks_arm64_unmask_watch *watch) {
    return uc_hook_add(uc, hh, UC_HOOK_CODE, (void *)ks_arm64_unmask_trampoline, watch, 1, 0);
}

uc_err ks_hook_add_x86_rdtsc(uc_engine *uc, uc_hook *hh, int rdtscp, uc_cb_insn_cpuid_t cb, void *ud) {
    return uc_hook_add(uc, hh, UC_HOOK_INSN, (void *)cb, ud, 1, 0, rdtscp ? UC_X86_INS_RDTSCP : UC_X86_INS_RDTSC);
}

static void ks_x86_clock_block(uc_engine *uc, uint64_t address, uint32_t size, void *ud) {
    (void)size;
    ks_x86_clock *c = ud;
    c->now += c->per_block;
    c->blocks += 1;
    if (c->now >= c->deadline) {
        c->cb(uc, address, c->ud);
        return;
    }
    if (c->watch_if) {
        uint64_t flags = 0;
        uc_reg_read(uc, UC_X86_REG_EFLAGS, &flags);
        if (flags & 0x200) c->cb(uc, address, c->ud);
    }
}

uc_err ks_hook_add_x86_clock(uc_engine *uc, uc_hook *hh, ks_x86_clock *clock) {
    return uc_hook_add(uc, hh, UC_HOOK_BLOCK, (void *)ks_x86_clock_block, clock, 1, 0);
}
