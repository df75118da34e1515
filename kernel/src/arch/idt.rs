//! The IDT (Intel SDM Vol. 3A §6.10-6.15): every architectural exception is
//! reported (vector, name, error code, RIP, CR2 for #PF) and then handed to
//! the panic path; device interrupts are dispatched to handlers registered by
//! the layers above, then acknowledged at the local APIC.
//!
//! Vector map: 0-31 exceptions; 0x20-0x2f the (masked) legacy PIC, whose
//! spurious IRQ 7/15 are ignored; 0x30-0x3f ISA IRQs 0-15 through the
//! IOAPIC; 0x40 the local APIC timer; 0xff the local APIC spurious vector.

use core::sync::atomic::{AtomicU64, Ordering};

use spin::{Mutex, Once};
use x86_64::registers::control::Cr2;
use x86_64::structures::idt::{InterruptDescriptorTable, InterruptStackFrame, PageFaultErrorCode};

use super::{apic, gdt, pic};

pub const PIC_BASE: u8 = 0x20;
pub const IRQ_BASE: u8 = 0x30;
pub const TIMER_VECTOR: u8 = 0x40;
/// Message-signalled interrupts (MSI-X) use vectors from here.
pub const MSI_BASE: u8 = 0x50;
/// MSI vectors available.
pub const MSI_VECTORS: u8 = 4;
pub const SPURIOUS_VECTOR: u8 = 0xff;

/// A device interrupt source with a registrable handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Irq {
    /// ISA IRQ line 0-15, routed through the IOAPIC.
    Isa(u8),
    /// The local APIC timer.
    Timer,
    /// A message-signalled interrupt, 0 .. [`MSI_VECTORS`].
    Msi(u8),
}

impl Irq {
    fn slot(self) -> usize {
        match self {
            Irq::Isa(n) => n as usize & 15,
            Irq::Timer => 16,
            Irq::Msi(n) => 17 + (n % MSI_VECTORS) as usize,
        }
    }

    pub fn vector(self) -> u8 {
        match self {
            Irq::Isa(n) => IRQ_BASE + (n & 15),
            Irq::Timer => TIMER_VECTOR,
            Irq::Msi(n) => MSI_BASE + n % MSI_VECTORS,
        }
    }
}

/// Registered handlers: ISA IRQs 0-15, the timer, the MSI vectors.
type HandlerTable = [Option<fn()>; 17 + MSI_VECTORS as usize];

static HANDLERS: Mutex<HandlerTable> = Mutex::new([None; 17 + MSI_VECTORS as usize]);
static BREAKPOINTS: AtomicU64 = AtomicU64::new(0);
static IDT: Once<InterruptDescriptorTable> = Once::new();
static USER_FAULT: Once<fn(UserFault) -> !> = Once::new();
static PREEMPT: Once<fn(bool)> = Once::new();

/// A CPU exception raised by ring-3 code.
#[derive(Clone, Copy, Debug)]
pub struct UserFault {
    pub vector: u8,
    pub error_code: u64,
    pub rip: u64,
    /// CR2 for a page fault, 0 otherwise.
    pub addr: u64,
}

/// Installs the handler of exceptions from ring 3 (once): it ends the
/// faulting process and never returns to it.
pub fn set_user_fault_handler(handler: fn(UserFault) -> !) {
    USER_FAULT.call_once(|| handler);
}

/// Installs the hook run after every device interrupt (once), with whether
/// the interrupted code was ring 3: the scheduler preempts from there.
pub fn set_preempt_hook(hook: fn(bool)) {
    PREEMPT.call_once(|| hook);
}

/// Installs `handler` for `irq`, replacing any earlier one. Handlers run with
/// interrupts disabled and must not allocate or block.
pub fn set_irq_handler(irq: Irq, handler: fn()) {
    // Interrupts off: an interrupt taken while the lock is held would spin
    // on it forever.
    super::cpu::without_interrupts(|| HANDLERS.lock()[irq.slot()] = Some(handler));
}

/// Breakpoint exceptions seen (they are reported and resumed).
pub fn breakpoint_count() -> u64 {
    BREAKPOINTS.load(Ordering::Relaxed)
}

fn dispatch(irq: Irq, frame: &InterruptStackFrame) {
    // Interrupts are off in a handler, and every writer disables them, so the
    // lock is never held here by the interrupted code.
    let handler = HANDLERS.lock()[irq.slot()];
    // Acknowledge first: the preempt hook may switch to another task, which
    // must not run with this vector still in service. (Interrupts stay off
    // until the handler returns, so it cannot nest meanwhile.)
    apic::eoi();
    if let Some(h) = handler {
        h();
    }
    if let Some(p) = PREEMPT.get() {
        p(from_user(frame));
    }
}

fn from_user(frame: &InterruptStackFrame) -> bool {
    frame.code_segment.rpl() == x86_64::PrivilegeLevel::Ring3
}

macro_rules! irq_handlers {
    ($($name:ident = $irq:expr),* $(,)?) => {
        $(extern "x86-interrupt" fn $name(frame: InterruptStackFrame) {
            dispatch($irq, &frame);
        })*
    };
}

irq_handlers!(
    isa0 = Irq::Isa(0),
    isa1 = Irq::Isa(1),
    isa2 = Irq::Isa(2),
    isa3 = Irq::Isa(3),
    isa4 = Irq::Isa(4),
    isa5 = Irq::Isa(5),
    isa6 = Irq::Isa(6),
    isa7 = Irq::Isa(7),
    isa8 = Irq::Isa(8),
    isa9 = Irq::Isa(9),
    isa10 = Irq::Isa(10),
    isa11 = Irq::Isa(11),
    isa12 = Irq::Isa(12),
    isa13 = Irq::Isa(13),
    isa14 = Irq::Isa(14),
    isa15 = Irq::Isa(15),
    timer = Irq::Timer,
    msi0 = Irq::Msi(0),
    msi1 = Irq::Msi(1),
    msi2 = Irq::Msi(2),
    msi3 = Irq::Msi(3),
);

extern "x86-interrupt" fn pic_spurious(_frame: InterruptStackFrame) {
    // A spurious PIC IRQ 7/15 is not acknowledged (8259A datasheet); the
    // PIC is fully masked, so there is nothing else to do.
    pic::acknowledge_spurious_slave_if_needed();
}

extern "x86-interrupt" fn apic_spurious(_frame: InterruptStackFrame) {
    // SDM Vol. 3A §11.9: no EOI for the spurious vector, nothing to do.
}

extern "x86-interrupt" fn breakpoint(_frame: InterruptStackFrame) {
    // Counted only: #BP is not masked by IF, so logging here could spin on a
    // serial lock the interrupted code holds.
    BREAKPOINTS.fetch_add(1, Ordering::Relaxed);
}

/// An exception from ring 3 goes to the user fault handler (the process
/// ends, the kernel goes on); from ring 0 it is reported and panics.
fn fatal(vector: u8, name: &str, error_code: Option<u64>, frame: &InterruptStackFrame, cr2: Option<u64>) -> ! {
    if from_user(frame)
        && let Some(handler) = USER_FAULT.get()
    {
        handler(UserFault {
            vector,
            error_code: error_code.unwrap_or(0),
            rip: frame.instruction_pointer.as_u64(),
            addr: cr2.unwrap_or(0),
        });
    }
    let mut w = super::serial::EmergencyWriter;
    use core::fmt::Write;
    let _ = write!(w, "\r\nEXCEPTION: {name} (vector {vector})");
    if let Some(code) = error_code {
        let _ = write!(w, " error_code={code:#x}");
    }
    if let Some(addr) = cr2 {
        let _ = write!(w, " cr2={addr:#x}");
    }
    let _ = write!(
        w,
        "\r\n  rip={:#x} cs={:#x} rflags={:#x} rsp={:#x} ss={:#x}\r\n",
        frame.instruction_pointer.as_u64(),
        frame.code_segment.0,
        frame.cpu_flags.bits(),
        frame.stack_pointer.as_u64(),
        frame.stack_segment.0,
    );
    panic!(
        "unhandled CPU exception: {name} at rip={:#x}",
        frame.instruction_pointer.as_u64()
    );
}

macro_rules! exception {
    ($fn:ident, $vector:expr, $name:expr) => {
        extern "x86-interrupt" fn $fn(frame: InterruptStackFrame) {
            fatal($vector, $name, None, &frame, None)
        }
    };
    ($fn:ident, $vector:expr, $name:expr, error_code) => {
        extern "x86-interrupt" fn $fn(frame: InterruptStackFrame, code: u64) {
            fatal($vector, $name, Some(code), &frame, None)
        }
    };
}

exception!(divide_error, 0, "#DE divide error");
exception!(debug, 1, "#DB debug");
exception!(nmi, 2, "NMI");
exception!(overflow, 4, "#OF overflow");
exception!(bound_range, 5, "#BR bound range exceeded");
exception!(invalid_opcode, 6, "#UD invalid opcode");
exception!(device_not_available, 7, "#NM device not available");
exception!(invalid_tss, 10, "#TS invalid TSS", error_code);
exception!(segment_not_present, 11, "#NP segment not present", error_code);
exception!(stack_segment, 12, "#SS stack-segment fault", error_code);
exception!(general_protection, 13, "#GP general protection", error_code);
exception!(x87_floating_point, 16, "#MF x87 floating point");
exception!(alignment_check, 17, "#AC alignment check", error_code);
exception!(simd_floating_point, 19, "#XM SIMD floating point");
exception!(virtualization, 20, "#VE virtualization");
exception!(control_protection, 21, "#CP control protection", error_code);
exception!(hv_injection, 28, "#HV hypervisor injection");
exception!(vmm_communication, 29, "#VC VMM communication", error_code);
exception!(security, 30, "#SX security", error_code);

/// Serves a ring-3 page fault (demand paging of mappings): whether the
/// access may be retried. Called with interrupts on (it may sleep).
pub type PageFaultHook = fn(addr: u64, write: bool, present: bool) -> bool;

static USER_PAGE_FAULT: spin::Once<PageFaultHook> = spin::Once::new();

pub fn set_user_page_fault_hook(hook: PageFaultHook) {
    USER_PAGE_FAULT.call_once(|| hook);
}

extern "x86-interrupt" fn page_fault(frame: InterruptStackFrame, code: PageFaultErrorCode) {
    let cr2 = Cr2::read_raw();
    if from_user(&frame)
        && let Some(hook) = USER_PAGE_FAULT.get()
    {
        // On the process's kernel stack, as a syscall is: it may wait for
        // the disk (kernel code is never preempted, so only its own sleep
        // switches away).
        x86_64::instructions::interrupts::enable();
        let served = hook(
            cr2,
            code.contains(PageFaultErrorCode::CAUSED_BY_WRITE),
            code.contains(PageFaultErrorCode::PROTECTION_VIOLATION),
        );
        x86_64::instructions::interrupts::disable();
        if served {
            return;
        }
    }
    fatal(14, "#PF page fault", Some(code.bits()), &frame, Some(cr2))
}

extern "x86-interrupt" fn double_fault(frame: InterruptStackFrame, code: u64) -> ! {
    fatal(8, "#DF double fault", Some(code), &frame, None)
}

extern "x86-interrupt" fn machine_check(frame: InterruptStackFrame) -> ! {
    fatal(18, "#MC machine check", None, &frame, None)
}

pub fn init() {
    let idt = IDT.call_once(|| {
        let mut idt = InterruptDescriptorTable::new();
        idt.divide_error.set_handler_fn(divide_error);
        idt.debug.set_handler_fn(debug);
        idt.non_maskable_interrupt.set_handler_fn(nmi);
        idt.breakpoint.set_handler_fn(breakpoint);
        idt.overflow.set_handler_fn(overflow);
        idt.bound_range_exceeded.set_handler_fn(bound_range);
        idt.invalid_opcode.set_handler_fn(invalid_opcode);
        idt.device_not_available.set_handler_fn(device_not_available);
        // SAFETY: the IST slot holds the top of a 'static stack used by
        // nothing else (gdt::init put it there before the IDT is loaded).
        unsafe {
            idt.double_fault
                .set_handler_fn(double_fault)
                .set_stack_index(gdt::DOUBLE_FAULT_IST);
        }
        idt.invalid_tss.set_handler_fn(invalid_tss);
        idt.segment_not_present.set_handler_fn(segment_not_present);
        idt.stack_segment_fault.set_handler_fn(stack_segment);
        idt.general_protection_fault.set_handler_fn(general_protection);
        idt.page_fault.set_handler_fn(page_fault);
        idt.x87_floating_point.set_handler_fn(x87_floating_point);
        idt.alignment_check.set_handler_fn(alignment_check);
        idt.machine_check.set_handler_fn(machine_check);
        idt.simd_floating_point.set_handler_fn(simd_floating_point);
        idt.virtualization.set_handler_fn(virtualization);
        idt.cp_protection_exception.set_handler_fn(control_protection);
        idt.hv_injection_exception.set_handler_fn(hv_injection);
        idt.vmm_communication_exception.set_handler_fn(vmm_communication);
        idt.security_exception.set_handler_fn(security);

        idt[PIC_BASE + 7].set_handler_fn(pic_spurious);
        idt[PIC_BASE + 15].set_handler_fn(pic_spurious);
        let isa: [extern "x86-interrupt" fn(InterruptStackFrame); 16] = [
            isa0, isa1, isa2, isa3, isa4, isa5, isa6, isa7, isa8, isa9, isa10, isa11, isa12, isa13, isa14, isa15,
        ];
        for (i, h) in isa.into_iter().enumerate() {
            idt[IRQ_BASE + i as u8].set_handler_fn(h);
        }
        idt[TIMER_VECTOR].set_handler_fn(timer);
        for (i, h) in [msi0, msi1, msi2, msi3].into_iter().enumerate() {
            idt[MSI_BASE + i as u8].set_handler_fn(h);
        }
        idt[SPURIOUS_VECTOR].set_handler_fn(apic_spurious);
        idt
    });
    idt.load();
}
