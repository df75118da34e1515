//! The `syscall`/`sysretq` entry (Intel SDM Vol. 2B SYSCALL, SYSRET;
//! Vol. 3A §5.8.8). The stub switches to the running task's kernel stack,
//! saves the user's registers as a [`SyscallFrame`], calls the dispatcher
//! registered by the layer above, and returns with `sysretq`.
//!
//! One CPU: the user rsp is parked in a static for the two instructions
//! before it is pushed (interrupts are off: SFMASK clears IF).

use core::arch::naked_asm;
use core::sync::atomic::{AtomicU64, Ordering};

use spin::Once;
use x86_64::VirtAddr;
use x86_64::registers::model_specific::{Efer, EferFlags, LStar, SFMask, Star};
use x86_64::registers::rflags::RFlags;

use super::gdt;

/// The user registers at entry. `rax` holds the number on entry and the
/// result on return; `rdx` is a second result. The kernel preserves all
/// other registers but rcx and r11, which `syscall` itself uses.
#[repr(C)]
#[derive(Debug)]
pub struct SyscallFrame {
    pub rax: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub r10: u64,
    pub r8: u64,
    pub r9: u64,
    /// User rflags.
    pub r11: u64,
    /// User rip (after the `syscall`).
    pub rcx: u64,
    pub user_rsp: u64,
}

/// Top of the running task's kernel stack (the scheduler keeps it current).
static KERNEL_STACK_TOP: AtomicU64 = AtomicU64::new(0);
/// The user rsp between entry and the first push.
static USER_RSP: AtomicU64 = AtomicU64::new(0);
static DISPATCH: Once<fn(&mut SyscallFrame)> = Once::new();

/// Sets the stack the next syscall runs on (with interrupts off).
pub fn set_kernel_stack(top: u64) {
    KERNEL_STACK_TOP.store(top, Ordering::Relaxed);
}

#[unsafe(naked)]
unsafe extern "C" fn entry() {
    naked_asm!(
        "mov [rip + {user_rsp}], rsp",
        "mov rsp, [rip + {kstack}]",
        "push qword ptr [rip + {user_rsp}]",
        "push rcx",
        "push r11",
        "push r9",
        "push r8",
        "push r10",
        "push rdx",
        "push rsi",
        "push rdi",
        "push rax",
        // 10 pushes from a 16-aligned top: aligned again for the call.
        "mov rdi, rsp",
        "call {dispatch}",
        "pop rax",
        "pop rdi",
        "pop rsi",
        "pop rdx",
        "pop r10",
        "pop r8",
        "pop r9",
        "pop r11",
        "pop rcx",
        "pop rsp",
        "sysretq",
        user_rsp = sym USER_RSP,
        kstack = sym KERNEL_STACK_TOP,
        dispatch = sym dispatch,
    )
}

extern "C" fn dispatch(frame: &mut SyscallFrame) {
    match DISPATCH.get() {
        Some(d) => d(frame),
        None => frame.rax = u64::MAX,
    }
}

/// Enables `syscall` with `handler` as the dispatcher.
pub fn init(handler: fn(&mut SyscallFrame)) {
    DISPATCH.call_once(|| handler);
    let sel = gdt::selectors();
    if let Err(e) = Star::write(sel.user_code, sel.user_data, sel.kernel_code, sel.kernel_data) {
        panic!("GDT order does not suit syscall/sysret: {e}");
    }
    LStar::write(VirtAddr::new(entry as *const () as u64));
    // Entry runs with interrupts off, the direction flag clear, no single
    // stepping and (with SMAP) user accesses forbidden until allowed.
    SFMask::write(RFlags::INTERRUPT_FLAG | RFlags::DIRECTION_FLAG | RFlags::TRAP_FLAG | RFlags::ALIGNMENT_CHECK);
    // SAFETY: enabling SCE only makes `syscall` valid; LSTAR/STAR/SFMASK
    // above already point it at `entry` with the right segments.
    unsafe { Efer::update(|f| f.insert(EferFlags::SYSTEM_CALL_EXTENSIONS)) };
}
