//! PCI configuration space through configuration mechanism #1 (ports
//! 0xCF8 address, 0xCFC data; PCI Local Bus Specification 3.0 §3.2.2.3.2),
//! which q35 supports under both SeaBIOS and OVMF (TOOLCHAIN.md). Decoding
//! is `kcore::pci`. One CPU, and every access pair runs with interrupts
//! off, so the address/data sequence cannot be interleaved.

use alloc::vec::Vec;

use kcore::pci::{Address, Header};
use x86_64::instructions::port::Port;

use super::cpu::without_interrupts;

const CONFIG_ADDRESS: u16 = 0xcf8;
const CONFIG_DATA: u16 = 0xcfc;

/// Reads the dword at `offset` of `addr`'s configuration space (all ones
/// for an invalid address, as an absent function reads).
pub fn read(addr: Address, offset: u16) -> u32 {
    let Some(select) = addr.config_address(offset) else {
        return u32::MAX;
    };
    without_interrupts(|| {
        // SAFETY: 0xCF8/0xCFC are the PCI configuration mechanism #1 ports
        // on the PC platform; selecting a register and reading it has no
        // side effect on the devices whose headers we read.
        unsafe {
            Port::<u32>::new(CONFIG_ADDRESS).write(select);
            Port::<u32>::new(CONFIG_DATA).read()
        }
    })
}

/// Writes the dword at `offset` of `addr`'s configuration space.
///
/// # Safety
/// The write must be one the device expects (a command register bit, a
/// BAR being sized or placed): configuration writes change what a device
/// decodes and may make it master the bus.
pub unsafe fn write(addr: Address, offset: u16, value: u32) {
    let Some(select) = addr.config_address(offset) else {
        return;
    };
    without_interrupts(|| {
        // SAFETY: the mechanism #1 ports, as in `read`; what the write does
        // to the device is the caller's contract.
        unsafe {
            Port::<u32>::new(CONFIG_ADDRESS).write(select);
            Port::<u32>::new(CONFIG_DATA).write(value);
        }
    })
}

/// One function found on a bus.
#[derive(Clone, Copy, Debug)]
pub struct Function {
    pub addr: Address,
    pub header: Header,
}

/// Every function on bus 0 (q35's root complex; bridges and the buses
/// behind them come with the block-device work).
pub fn scan_bus0() -> Vec<Function> {
    let mut found = Vec::new();
    for device in 0..32 {
        for function in 0..8 {
            let addr = Address {
                bus: 0,
                device,
                function,
            };
            let Some(header) = Header::parse(read(addr, 0), read(addr, 8), read(addr, 12)) else {
                if function == 0 {
                    break;
                }
                continue;
            };
            found.push(Function { addr, header });
            if function == 0 && !header.multifunction {
                break;
            }
        }
    }
    found
}
