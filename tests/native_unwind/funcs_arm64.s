// Hand-written ARM64 functions; clang encodes their unwind data (packed when the
// prolog is canonical, full .xdata otherwise) from the .seh directives.
// tests/test_unwind_native_arm64.py emulates each and unwinds at every instruction.
        .text

        .globl g_chained
        .p2align 2
        .def g_chained; .scl 2; .type 32; .endef
        .seh_proc g_chained
g_chained:
        stp x19, x20, [sp, #-32]!
        .seh_save_regp_x x19, 32
        str x21, [sp, #16]
        .seh_save_reg x21, 16
        stp x29, x30, [sp, #-16]!
        .seh_save_fplr_x 16
        mov x29, sp
        .seh_set_fp
        .seh_endprologue
        mov x19, #1
        mov x21, #3
        nop
        .seh_startepilogue
        ldp x29, x30, [sp], #16
        .seh_save_fplr_x 16
        ldr x21, [sp, #16]
        .seh_save_reg x21, 16
        ldp x19, x20, [sp], #32
        .seh_save_regp_x x19, 32
        .seh_endepilogue
        ret
        .seh_endproc

        .globl g_lr
        .p2align 2
        .def g_lr; .scl 2; .type 32; .endef
        .seh_proc g_lr
g_lr:
        stp x19, x20, [sp, #-32]!
        .seh_save_regp_x x19, 32
        stp x21, x30, [sp, #16]
        .seh_save_lrpair x21, 16
        sub sp, sp, #64
        .seh_stackalloc 64
        .seh_endprologue
        mov x20, #2
        mov x30, #5
        nop
        .seh_startepilogue
        add sp, sp, #64
        .seh_stackalloc 64
        ldp x21, x30, [sp, #16]
        .seh_save_lrpair x21, 16
        ldp x19, x20, [sp], #32
        .seh_save_regp_x x19, 32
        .seh_endepilogue
        ret
        .seh_endproc

        .globl g_fp
        .p2align 2
        .def g_fp; .scl 2; .type 32; .endef
        .seh_proc g_fp
g_fp:
        stp x19, x20, [sp, #-48]!
        .seh_save_regp_x x19, 48
        stp d8, d9, [sp, #16]
        .seh_save_fregp d8, 16
        str d10, [sp, #32]
        .seh_save_freg d10, 32
        stp x29, x30, [sp, #-32]!
        .seh_save_fplr_x 32
        mov x29, sp
        .seh_set_fp
        .seh_endprologue
        mov x19, #7
        nop
        .seh_startepilogue
        ldp x29, x30, [sp], #32
        .seh_save_fplr_x 32
        ldr d10, [sp, #32]
        .seh_save_freg d10, 32
        ldp d8, d9, [sp, #16]
        .seh_save_fregp d8, 16
        ldp x19, x20, [sp], #48
        .seh_save_regp_x x19, 48
        .seh_endepilogue
        ret
        .seh_endproc

        .globl g_full
        .p2align 2
        .def g_full; .scl 2; .type 32; .endef
        .seh_proc g_full
g_full:
        stp x29, x30, [sp, #-64]!
        .seh_save_fplr_x 64
        stp x19, x20, [sp, #16]
        .seh_save_regp x19, 16
        stp x21, x22, [sp, #32]
        .seh_save_next
        stp d8, d9, [sp, #48]
        .seh_save_fregp d8, 48
        mov x29, sp
        .seh_set_fp
        sub sp, sp, #0x2000
        .seh_stackalloc 0x2000
        .seh_endprologue
        mov x22, #9
        sub sp, sp, #0x40
        nop
        .seh_startepilogue
        mov sp, x29
        .seh_set_fp
        ldp d8, d9, [sp, #48]
        .seh_save_fregp d8, 48
        ldp x21, x22, [sp, #32]
        .seh_save_next
        ldp x19, x20, [sp, #16]
        .seh_save_regp x19, 16
        ldp x29, x30, [sp], #64
        .seh_save_fplr_x 64
        .seh_endepilogue
        ret
        .seh_endproc

        .globl g_big
        .p2align 2
        .def g_big; .scl 2; .type 32; .endef
        .seh_proc g_big
g_big:
        str x19, [sp, #-16]!
        .seh_save_reg_x x19, 16
        sub sp, sp, #0x100, lsl #12
        .seh_stackalloc 0x100000
        str d8, [sp, #-16]!
        .seh_save_freg_x d8, 16
        .seh_endprologue
        mov x19, #4
        nop
        .seh_startepilogue
        ldr d8, [sp], #16
        .seh_save_freg_x d8, 16
        add sp, sp, #0x100, lsl #12
        .seh_stackalloc 0x100000
        ldr x19, [sp], #16
        .seh_save_reg_x x19, 16
        .seh_endepilogue
        ret
        .seh_endproc

        .globl g_machframe
        .p2align 2
        .def g_machframe; .scl 2; .type 32; .endef
        .seh_proc g_machframe
g_machframe:
        .seh_pushframe
        stp x29, x30, [sp, #-16]!
        .seh_save_fplr_x 16
        .seh_endprologue
        nop
        brk #0xf000
        .seh_endproc
