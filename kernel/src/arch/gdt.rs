//! GDT and TSS (Intel SDM Vol. 3A §3.4.5, §8.7): kernel code/data segments
//! and a TSS whose interrupt stack table gives the double-fault handler a
//! stack of its own, so a kernel stack overflow still gets reported.

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

static TSS: Once<TaskStateSegment> = Once::new();
static GDT: Once<(GlobalDescriptorTable, Selectors)> = Once::new();

struct Selectors {
    code: SegmentSelector,
    data: SegmentSelector,
    tss: SegmentSelector,
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
        tss
    });
    let (gdt, sel) = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        let tss = gdt.append(Descriptor::tss_segment(tss));
        (gdt, Selectors { code, data, tss })
    });
    gdt.load();
    // SAFETY: the selectors index the GDT just loaded, whose code and data
    // descriptors are valid 64-bit ring-0 segments and whose TSS descriptor
    // points at a 'static TSS.
    unsafe {
        CS::set_reg(sel.code);
        SS::set_reg(sel.data);
        DS::set_reg(sel.data);
        ES::set_reg(sel.data);
        load_tss(sel.tss);
    }
}
