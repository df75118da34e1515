//! Task context switching (the mechanism; the policy is `kcore::sched`).
//!
//! A task's kernel context is its stack pointer: [`switch`] pushes the
//! callee-saved registers (System V AMD64 ABI §3.2.1: rbx, rbp, r12-r15),
//! stores rsp, loads the other task's rsp and pops its registers. Everything
//! else (caller-saved registers, a user context) is already on the stack:
//! saved by the compiler around the call, or by the CPU and the interrupt
//! or syscall entry below it.

use core::arch::{asm, naked_asm};

use super::gdt;

/// Saves the current context (its rsp into `*save`) and resumes the one
/// whose saved rsp is `load`.
///
/// # Safety
/// Interrupts must be disabled. `save` must be valid for a write and stay
/// the task's saved-rsp slot until it is resumed. `load` must be an rsp
/// saved by `switch` (or built by [`init_stack`]) on a stack that is still
/// mapped and not in use.
#[unsafe(naked)]
pub unsafe extern "C" fn switch(save: *mut u64, load: u64) {
    naked_asm!(
        "push rbp",
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "mov [rdi], rsp",
        "mov rsp, rsi",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "ret",
    )
}

/// First code of every new task: [`init_stack`] left the start function in
/// r12 and its argument in r13.
#[unsafe(naked)]
unsafe extern "C" fn task_start() -> ! {
    naked_asm!("mov rdi, r13", "call r12", "ud2")
}

/// Prepares a fresh kernel stack (16-byte aligned `top`) so that the first
/// [`switch`] to it calls `start(arg)` with interrupts disabled; returns the
/// rsp to pass to `switch`. `start` must never return.
///
/// # Safety
/// `top` must be the 16-byte aligned top of a mapped, writable stack of at
/// least 128 bytes that nothing else uses.
pub unsafe fn init_stack(top: u64, start: extern "C" fn(u64) -> !, arg: u64) -> u64 {
    let top = top as *mut u64;
    // From the lowest address up: the six registers `switch` pops (r15,
    // r14, r13 = arg, r12 = start, rbx, rbp), then `task_start` for its
    // `ret`. That leaves rsp = `top` (16-aligned) in `task_start`, so its
    // `call` enters `start` aligned as the ABI wants.
    let frame: [u64; 7] = [
        0,
        0,
        arg,
        start as *const () as u64,
        0,
        0,
        task_start as *const () as u64,
    ];
    // SAFETY: the caller guarantees at least 128 writable bytes below `top`,
    // unused by anyone else; we write 56.
    unsafe {
        let base = top.sub(frame.len());
        for (i, word) in frame.iter().enumerate() {
            base.add(i).write(*word);
        }
        base as u64
    }
}

/// Enters ring 3 at `rip` with stack `rsp` and `rdi, rsi, rdx` = `args`;
/// every other general register is zeroed, so no kernel value leaks.
///
/// # Safety
/// The active page table must map `rip` user-executable and `rsp` user-
/// writable (or the process faults at once, which is contained), and the
/// TSS's rsp0 must be this task's kernel stack.
pub unsafe fn enter_user(rip: u64, rsp: u64, args: [u64; 3]) -> ! {
    let sel = gdt::selectors();
    let cs = sel.user_code.0 as u64;
    let ss = sel.user_data.0 as u64;
    // IF set, reserved bit 1 set (SDM Vol. 1 §3.4.3).
    let rflags: u64 = 0x202;
    // SAFETY: builds an interrupt-return frame (SS, RSP, RFLAGS, CS, RIP;
    // SDM Vol. 3A §6.14.1) with ring-3 selectors and returns through it;
    // per the contract the target is mapped for ring 3.
    unsafe {
        asm!(
            "push r8",
            "push r9",
            "push r10",
            "push r11",
            "push r12",
            "xor eax, eax",
            "xor ebx, ebx",
            "xor ecx, ecx",
            "xor ebp, ebp",
            "xor r8d, r8d",
            "xor r9d, r9d",
            "xor r10d, r10d",
            "xor r11d, r11d",
            "xor r12d, r12d",
            "xor r13d, r13d",
            "xor r14d, r14d",
            "xor r15d, r15d",
            "iretq",
            in("r8") ss,
            in("r9") rsp,
            in("r10") rflags,
            in("r11") cs,
            in("r12") rip,
            in("rdi") args[0],
            in("rsi") args[1],
            in("rdx") args[2],
            options(noreturn),
        )
    }
}
