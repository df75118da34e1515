//! Platform bring-up, the last piece of the hardware base: reads the ACPI
//! tables, maps the interrupt controllers, routes device interrupts, and
//! powers the machine off. Sits above `arch` and `mm` and wires them.

use kcore::acpi::{self, Fadt, Madt};
use spin::Once;

use crate::arch::{apic, idt, ioapic, pic, power, serial};
use crate::mm::{frames, paging, phys::FirmwareMemory};
use x86_64::PhysAddr;
use x86_64::structures::paging::PhysFrame;

/// Where the IOAPIC is on PC platforms when there is no MADT.
const DEFAULT_IOAPIC: u64 = 0xfec0_0000;

#[derive(Clone, Copy, Debug)]
struct PowerOff {
    pm1a: u16,
    pm1b: Option<u16>,
    slp_typ: u8,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Platform {
    madt: Option<Madt>,
    power: Option<PowerOff>,
    pm_timer: Option<u16>,
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
        let fadt = tables
            .fadt
            .and_then(|at| Fadt::read(&mem, at).inspect_err(|e| log::warn!("ACPI: {e}")).ok());
        let power = fadt.and_then(|fadt| {
            let Some(pm1a) = fadt.pm1a_cnt_blk else {
                log::warn!("ACPI: no PM1a control port: no power-off");
                return None;
            };
            let slp_typ = fadt.s5_sleep_type(&mem).inspect_err(|e| log::warn!("ACPI: {e}")).ok()?;
            Some(PowerOff {
                pm1a,
                pm1b: fadt.pm1b_cnt_blk,
                slp_typ,
            })
        });
        log::debug!("madt={} power_off={:?}", madt.is_some(), power);
        Platform {
            madt,
            power,
            pm_timer: fadt.and_then(|f| f.pm_timer_blk),
        }
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

/// A device register address from firmware, or `default` if it lies in
/// usable RAM (mapping RAM as a device would corrupt it) or is not a
/// physical address at all.
fn device_address(what: &str, addr: u64, default: u64) -> u64 {
    let in_ram = PhysAddr::try_new(addr).map_or(true, |a| frames::is_used(PhysFrame::containing_address(a)).is_some());
    if in_ram {
        log::warn!("{what} at {addr:#x} is not device memory; using {default:#x}");
        default
    } else {
        addr
    }
}

/// Masks the legacy PIC, enables the local APIC and the IOAPIC, and routes
/// COM1's receive interrupt to the serial driver. Interrupts stay disabled.
/// A COM1 route that cannot be made is logged (the console then gets no
/// input), not fatal.
pub fn init_interrupts(p: &Platform) -> Result<(), InterruptError> {
    pic::disable();
    let lapic_default = apic::physical_base();
    let lapic_phys = device_address(
        "local APIC",
        p.madt.map_or(lapic_default, |m| m.local_apic),
        lapic_default,
    );
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
    let io_phys = device_address("IOAPIC", io_phys, DEFAULT_IOAPIC);
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
    match ioapic::route(gsi, irq.vector(), apic::id(), active_low, level) {
        Ok(()) => serial::enable_receive_interrupt(),
        Err(e) => log::error!("{}: console input will not work", InterruptError::Route(e)),
    }
    Ok(())
}

/// The ACPI PM timer's I/O port, if the FADT has one.
pub fn pm_timer_port() -> Option<u16> {
    PLATFORM.get().and_then(|p| p.pm_timer)
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
        if let Some(pm1b) = p.pm1b {
            power::write_pm1_control(pm1b, value);
        }
        for _ in 0..1_000_000 {
            core::hint::spin_loop();
        }
        log::error!("ACPI power-off did not take effect");
    }
    power::qemu_exit(aether_abi::ktest::QemuExitCode::Success)
}
