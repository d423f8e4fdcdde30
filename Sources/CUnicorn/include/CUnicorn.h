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
