/* Minimal PVH guest: QEMU -kernel enters at the PHYS32 entry in 32-bit
   protected mode; print a marker on COM1 and exit via isa-debug-exit. */
    .section .note.Xen, "a"
    .p2align 2
    .long 4          /* namesz */
    .long 4          /* descsz */
    .long 18         /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .long _start

    .text
    .code32
    .globl _start
_start:
    mov $msg, %esi
1:  lodsb
    test %al, %al
    jz 2f
    mov $0x3f8, %dx
    out %al, %dx
    jmp 1b
2:  mov $0xf4, %dx
    mov $0x10, %eax
    out %eax, %dx
3:  hlt
    jmp 3b
msg: .asciz "AETHER_CONSOLE_READY entry_to_prompt_ns=0\n"
