//! Platform bring-up, the last piece of the hardware base: reads the ACPI
//! tables, maps the interrupt controllers, routes device interrupts, and
//! powers the machine off. Sits above `arch` and `mm` and wires them.

use kcore::acpi::{self, Fadt, Madt};
use spin::Once;

use crate::arch::{apic, idt, ioapic, pic, power, serial};
use crate::mm::{paging, phys::FirmwareMemory};

/// Where the IOAPIC is on PC platforms when there is no MADT.
const DEFAULT_IOAPIC: u64 = 0xfec0_0000;

#[derive(Clone, Copy, Debug)]
struct PowerOff {
    pm1a: u16,
    pm1b: u16,
    slp_typ: u8,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Platform {
    madt: Option<Madt>,
    power: Option<PowerOff>,
}

static PLATFORM: Once<Platform> = Once::new();

/// Reads what the kernel needs from ACPI; anything missing or corrupt is
/// logged and replaced by PC defaults.
pub fn discover(rsdp: Option<u64>) -> &'static Platform {
    PLATFORM.call_once(|| {
        let mem = FirmwareMemory;
        let Some(rsdp) = rsdp else {
            log::warn!("no RSDP from the bootloader: using PC defaults");
            return Platform::default();
        };
        let tables = match acpi::find_tables(&mem, rsdp) {
            Ok(t) => t,
            Err(e) => {
                log::warn!("ACPI: {e}: using PC defaults");
                return Platform::default();
            }
        };
        let madt = tables
            .madt
            .map(|at| Madt::read(&mem, at))
            .transpose()
            .unwrap_or_else(|e| {
                log::warn!("ACPI: {e}");
                None
            });
        let power = tables.fadt.and_then(|at| {
            let fadt = Fadt::read(&mem, at).inspect_err(|e| log::warn!("ACPI: {e}")).ok()?;
            let slp_typ = fadt.s5_sleep_type(&mem).inspect_err(|e| log::warn!("ACPI: {e}")).ok()?;
            Some(PowerOff {
                pm1a: fadt.pm1a_cnt_blk,
                pm1b: fadt.pm1b_cnt_blk,
                slp_typ,
            })
        });
        log::debug!("madt={} power_off={:?}", madt.is_some(), power);
        Platform { madt, power }
    })
}

#[derive(Debug)]
pub enum InterruptError {
    Map(paging::MapError),
    Route(ioapic::RouteError),
}

impl core::fmt::Display for InterruptError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            InterruptError::Map(e) => write!(f, "mapping controller registers: {e:?}"),
            InterruptError::Route(e) => write!(f, "routing the COM1 interrupt: {e:?}"),
        }
    }
}

/// Masks the legacy PIC, enables the local APIC and the IOAPIC, and routes
/// COM1's receive interrupt to the serial driver. Interrupts stay disabled.
pub fn init_interrupts(p: &Platform) -> Result<(), InterruptError> {
    pic::disable();
    let lapic_phys = p.madt.map_or_else(apic::physical_base, |m| m.local_apic);
    // SAFETY: the local APIC's register page is device memory at the
    // address the MADT (or IA32_APIC_BASE) gives.
    let lapic = unsafe { paging::map_mmio(lapic_phys, 4096) }.map_err(InterruptError::Map)?;
    // SAFETY: `lapic` maps the local APIC registers uncached, for good.
    unsafe { apic::init(lapic) };

    let route = p.madt.map(|m| m.isa_route(serial::COM1_IRQ));
    let (gsi, active_low, level) = route.map_or((serial::COM1_IRQ as u32, false, false), |r| {
        (r.gsi, r.active_low, r.level_triggered)
    });
    let (io_phys, gsi_base) = p
        .madt
        .and_then(|m| m.ioapic_for(gsi))
        .map_or((DEFAULT_IOAPIC, 0), |a| (a.address as u64, a.gsi_base));
    // SAFETY: the IOAPIC's register window is device memory at the address
    // the MADT (or the PC default) gives.
    let io = unsafe { paging::map_mmio(io_phys, 0x20) }.map_err(InterruptError::Map)?;
    // SAFETY: `io` maps the IOAPIC registers uncached, for good.
    let entries = unsafe { ioapic::init(io, gsi_base) };
    log::debug!(
        "lapic {lapic_phys:#x} id {}, ioapic {io_phys:#x} with {entries} entries",
        apic::id()
    );

    let irq = idt::Irq::Isa(serial::COM1_IRQ);
    idt::set_irq_handler(irq, serial::on_interrupt);
    ioapic::route(gsi, irq.vector(), apic::id(), active_low, level).map_err(InterruptError::Route)?;
    serial::enable_receive_interrupt();
    Ok(())
}

/// Whether ACPI power-off is available.
pub fn can_power_off() -> bool {
    PLATFORM.get().and_then(|p| p.power).is_some()
}

/// Powers off through ACPI S5; if that does not take effect, exits QEMU
/// through `isa-debug-exit` (status 33), or halts.
pub fn power_off() -> ! {
    if let Some(p) = PLATFORM.get().and_then(|p| p.power) {
        let value = acpi::pm1_sleep_value(p.slp_typ);
        power::write_pm1_control(p.pm1a, value);
        if p.pm1b != 0 {
            power::write_pm1_control(p.pm1b, value);
        }
        for _ in 0..1_000_000 {
            core::hint::spin_loop();
        }
        log::error!("ACPI power-off did not take effect");
    }
    power::qemu_exit(aether_abi::ktest::QemuExitCode::Success)
}
