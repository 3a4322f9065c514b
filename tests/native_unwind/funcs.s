# Hand-written x64 functions whose unwind data the assembler (clang) encodes from
# .seh directives.  tests/test_unwind_native_x64.py emulates each one from its
# entry and unwinds at every instruction boundary.
        .intel_syntax noprefix
        .text

        .globl f_push
        .def f_push; .scl 2; .type 32; .endef
        .seh_proc f_push
f_push:
        push rbx
        .seh_pushreg rbx
        push rsi
        .seh_pushreg rsi
        push r12
        .seh_pushreg r12
        sub rsp, 0x28
        .seh_stackalloc 0x28
        .seh_endprologue
        mov rbx, 0x1111
        mov rsi, 0x2222
        mov r12, 0x3333
        nop
        add rsp, 0x28
        pop r12
        pop rsi
        pop rbx
        ret
        .seh_endproc

        .globl f_frame
        .def f_frame; .scl 2; .type 32; .endef
        .seh_proc f_frame
f_frame:
        push rbp
        .seh_pushreg rbp
        push rdi
        .seh_pushreg rdi
        sub rsp, 0x40
        .seh_stackalloc 0x40
        lea rbp, [rsp + 0x20]
        .seh_setframe rbp, 0x20
        .seh_endprologue
        sub rsp, 0x130
        mov rdi, 0x4444
        nop
        lea rsp, [rbp + 0x20]
        pop rdi
        pop rbp
        ret
        .seh_endproc

        .globl f_large
        .def f_large; .scl 2; .type 32; .endef
        .seh_proc f_large
f_large:
        push r13
        .seh_pushreg r13
        sub rsp, 0x2010
        .seh_stackalloc 0x2010
        mov [rsp + 0x1000], rbx
        .seh_savereg rbx, 0x1000
        .seh_endprologue
        mov rbx, 0x5555
        mov r13, 0x6666
        nop
        mov rbx, [rsp + 0x1000]
        add rsp, 0x2010
        pop r13
        ret
        .seh_endproc

        .globl f_huge
        .def f_huge; .scl 2; .type 32; .endef
        .seh_proc f_huge
f_huge:
        push r14
        .seh_pushreg r14
        sub rsp, 0x100008
        .seh_stackalloc 0x100008
        mov [rsp + 0x80008], r15
        .seh_savereg r15, 0x80008
        movaps [rsp + 0x90000], xmm7
        .seh_savexmm xmm7, 0x90000
        movaps [rsp + 0x20], xmm6
        .seh_savexmm xmm6, 0x20
        .seh_endprologue
        mov r15, 0x7777
        mov r14, 0x8888
        xorps xmm6, xmm6
        xorps xmm7, xmm7
        nop
        movaps xmm6, [rsp + 0x20]
        movaps xmm7, [rsp + 0x90000]
        mov r15, [rsp + 0x80008]
        add rsp, 0x100008
        pop r14
        ret
        .seh_endproc

        .globl f_tail
        .def f_tail; .scl 2; .type 32; .endef
        .seh_proc f_tail
f_tail:
        push rbx
        .seh_pushreg rbx
        sub rsp, 0x20
        .seh_stackalloc 0x20
        .seh_endprologue
        mov rbx, 0x9999
        add rsp, 0x20
        pop rbx
        jmp f_push
        .seh_endproc

        .globl f_chain
        .def f_chain; .scl 2; .type 32; .endef
        .seh_proc f_chain
f_chain:
        push rbx
        .seh_pushreg rbx
        push rbp
        .seh_pushreg rbp
        sub rsp, 0x18
        .seh_stackalloc 0x18
        .seh_endprologue
        mov rbx, 0xaaaa
        .seh_startchained
        push r12
        .seh_pushreg r12
        sub rsp, 0x30
        .seh_stackalloc 0x30
        .seh_endprologue
        mov r12, 0xbbbb
        mov rbp, 0xcccc
        nop
        add rsp, 0x30
        pop r12
        .seh_endchained
        add rsp, 0x18
        pop rbp
        pop rbx
        ret
        .seh_endproc

        .globl f_machframe
        .def f_machframe; .scl 2; .type 32; .endef
        .seh_proc f_machframe
f_machframe:
        .seh_pushframe
        push rax
        .seh_pushreg rax
        sub rsp, 0x28
        .seh_stackalloc 0x28
        .seh_endprologue
        nop
        int3
        .seh_endproc

        .globl f_machframe_code
        .def f_machframe_code; .scl 2; .type 32; .endef
        .seh_proc f_machframe_code
f_machframe_code:
        .seh_pushframe @code
        push rax
        .seh_pushreg rax
        .seh_endprologue
        nop
        int3
        .seh_endproc
