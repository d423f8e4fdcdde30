#include <string.h>
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

uc_err ks_hook_add_x86_syscall(uc_engine *uc, uc_hook *hh, uc_cb_insn_syscall_t cb, void *ud) {
    return uc_hook_add(uc, hh, UC_HOOK_INSN, (void *)cb, ud, 1, 0, UC_X86_INS_SYSCALL);
}

// QEMU 5.0 target/i386/cpu.h SegmentCache.
typedef struct ks_qemu_segment_cache {
    uint32_t selector;
    uint64_t base;
    uint32_t limit;
    uint32_t flags;
} ks_qemu_segment_cache;

enum { KS_ENV_EIP = 128, KS_ENV_HFLAGS = 176, KS_ENV_SEG_CS = 184 + 24, KS_ENV_SEG_SS = 184 + 48 };

// Where CPUX86State starts inside a saved context: found once by planting two values in RAX and RCX.
static long ks_env_offset = -1;

static long ks_find_env_offset(uc_engine *uc, uc_context *ctx, size_t size) {
    uint64_t rax = 0, rcx = 0;
    uc_reg_read(uc, UC_X86_REG_RAX, &rax);
    uc_reg_read(uc, UC_X86_REG_RCX, &rcx);
    uint64_t m1 = 0x6b73696d4b455845ULL, m2 = 0x73696d2d63657865ULL;
    uc_reg_write(uc, UC_X86_REG_RAX, &m1);
    uc_reg_write(uc, UC_X86_REG_RCX, &m2);
    long found = -1;
    if (uc_context_save(uc, ctx) == UC_ERR_OK) {
        const unsigned char *p = (const unsigned char *)ctx;
        for (size_t o = 0; o + 16 <= size && o < 512; o += 8) {
            uint64_t a, b;
            memcpy(&a, p + o, 8);
            memcpy(&b, p + o + 8, 8);
            if (a == m1 && b == m2) {
                found = (long)o;
                break;
            }
        }
    }
    uc_reg_write(uc, UC_X86_REG_RAX, &rax);
    uc_reg_write(uc, UC_X86_REG_RCX, &rcx);
    return found;
}

int ks_x86_enter_cpl0(uc_engine *uc, const ks_x86_segment *cs, const ks_x86_segment *ss) {
    uc_context *ctx = NULL;
    if (uc_context_alloc(uc, &ctx) != UC_ERR_OK) return -1;
    size_t size = uc_context_size(uc);
    if (ks_env_offset < 0) ks_env_offset = ks_find_env_offset(uc, ctx, size);
    int result = -1;
    if (ks_env_offset >= 0 && (size_t)ks_env_offset + KS_ENV_SEG_SS + sizeof(ks_qemu_segment_cache) <= size &&
        uc_context_save(uc, ctx) == UC_ERR_OK) {
        unsigned char *env = (unsigned char *)ctx + ks_env_offset;
        uint64_t rip = 0, csel = 0, ssel = 0, eip;
        uint32_t hflags;
        ks_qemu_segment_cache c, s;
        uc_reg_read(uc, UC_X86_REG_RIP, &rip);
        uc_reg_read(uc, UC_X86_REG_CS, &csel);
        uc_reg_read(uc, UC_X86_REG_SS, &ssel);
        memcpy(&eip, env + KS_ENV_EIP, 8);
        memcpy(&hflags, env + KS_ENV_HFLAGS, 4);
        memcpy(&c, env + KS_ENV_SEG_CS, sizeof c);
        memcpy(&s, env + KS_ENV_SEG_SS, sizeof s);
        if (eip == rip && c.selector == (uint32_t)(csel & 0xffff) && s.selector == (uint32_t)(ssel & 0xffff) &&
            (hflags & 3) == 3) {
            c.selector = cs->selector;
            c.base = cs->base;
            c.limit = cs->limit;
            c.flags = cs->flags;
            s.selector = ss->selector;
            s.base = ss->base;
            s.limit = ss->limit;
            s.flags = ss->flags;
            hflags &= ~3u;
            memcpy(env + KS_ENV_SEG_CS, &c, sizeof c);
            memcpy(env + KS_ENV_SEG_SS, &s, sizeof s);
            memcpy(env + KS_ENV_HFLAGS, &hflags, 4);
            if (uc_context_restore(uc, ctx) == UC_ERR_OK) result = 0;
        }
    }
    uc_context_free(ctx);
    return result;
}
