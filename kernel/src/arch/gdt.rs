//! GDT and TSS (Intel SDM Vol. 3A §3.4.5, §8.7): kernel and user code/data
//! segments, in the order `syscall`/`sysret` need (kernel code, kernel data,
//! user data, user code: SDM Vol. 2B SYSRET), and a TSS whose `rsp0` is the
//! running task's kernel stack and whose interrupt stack table gives the
//! double-fault handler a stack of its own.

use core::cell::UnsafeCell;

use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::registers::segmentation::SegmentSelector;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable};
use x86_64::structures::tss::TaskStateSegment;

/// IST slot (index into `interrupt_stack_table`) used by #DF.
pub const DOUBLE_FAULT_IST: u16 = 0;
const IST_STACK_SIZE: usize = 16 * 1024;

/// A stack the CPU switches to; `UnsafeCell` puts it in writable memory
/// (`.bss`), where a plain `static` array would land in read-only `.rodata`
/// and the CPU's first push would fault (a triple fault).
#[repr(align(16))]
struct Stack(UnsafeCell<[u8; IST_STACK_SIZE]>);

// SAFETY: Rust code never reads or writes the stack's bytes; only the CPU
// does, when it delivers a #DF, and the handler never returns (so two uses
// never overlap).
unsafe impl Sync for Stack {}

static DOUBLE_FAULT_STACK: Stack = Stack(UnsafeCell::new([0; IST_STACK_SIZE]));

/// The TSS, in a cell: `rsp0` changes at every switch to a user task.
struct Tss(UnsafeCell<TaskStateSegment>);

// SAFETY: one CPU; `rsp0` is written only with interrupts disabled (the
// scheduler switches with them off), and the CPU reads it only when an
// interrupt arrives from ring 3, which cannot happen during that write.
unsafe impl Sync for Tss {}

static TSS: Once<Tss> = Once::new();
static GDT: Once<(GlobalDescriptorTable, Selectors)> = Once::new();

/// The segment selectors, for `syscall` setup and ring-3 entry.
#[derive(Clone, Copy, Debug)]
pub struct Selectors {
    pub kernel_code: SegmentSelector,
    pub kernel_data: SegmentSelector,
    pub user_data: SegmentSelector,
    pub user_code: SegmentSelector,
    tss: SegmentSelector,
}

/// The selectors (after [`init`]).
pub fn selectors() -> Selectors {
    match GDT.get() {
        Some((_, s)) => *s,
        None => panic!("gdt::selectors before gdt::init"),
    }
}

/// Sets the stack the CPU switches to on an interrupt from ring 3.
pub fn set_kernel_stack(top: u64) {
    if let Some(tss) = TSS.get() {
        // SAFETY: see `Tss`: called with interrupts disabled, one CPU.
        unsafe { (*tss.0.get()).privilege_stack_table[0] = VirtAddr::new(top) };
    }
}

/// The double-fault stack's address range, for the backtrace walker.
pub fn double_fault_stack() -> (u64, u64) {
    let start = DOUBLE_FAULT_STACK.0.get() as u64;
    (start, start + IST_STACK_SIZE as u64)
}

pub fn init() {
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        let (_, top) = double_fault_stack();
        tss.interrupt_stack_table[DOUBLE_FAULT_IST as usize] = VirtAddr::new(top);
        Tss(UnsafeCell::new(tss))
    });
    let (gdt, sel) = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let kernel_code = gdt.append(Descriptor::kernel_code_segment());
        let kernel_data = gdt.append(Descriptor::kernel_data_segment());
        let user_data = gdt.append(Descriptor::user_data_segment());
        let user_code = gdt.append(Descriptor::user_code_segment());
        // SAFETY: the TSS is 'static (it lives in a `static`), and no Rust
        // reference to it is kept: later writes go through the cell.
        let tss = gdt.append(unsafe { Descriptor::tss_segment_unchecked(tss.0.get()) });
        (
            gdt,
            Selectors {
                kernel_code,
                kernel_data,
                user_data,
                user_code,
                tss,
            },
        )
    });
    gdt.load();
    // SAFETY: the selectors index the GDT just loaded, whose code and data
    // descriptors are valid 64-bit ring-0 segments and whose TSS descriptor
    // points at a 'static TSS.
    unsafe {
        CS::set_reg(sel.kernel_code);
        SS::set_reg(sel.kernel_data);
        DS::set_reg(sel.kernel_data);
        ES::set_reg(sel.kernel_data);
        load_tss(sel.tss);
    }
}
