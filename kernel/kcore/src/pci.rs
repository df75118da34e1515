//! PCI configuration space decoding (PCI Local Bus Specification 3.0 §6.1,
//! PCI-to-PCI Bridge Architecture 1.2 §3.2): addresses for configuration
//! mechanism #1 (ports 0xCF8/0xCFC), device headers and base address
//! registers. The kernel's `arch::pci` does the port I/O and feeds the
//! 32-bit words read here; everything here runs on the host.

/// A function's location.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Address {
    pub bus: u8,
    /// 0..32
    pub device: u8,
    /// 0..8
    pub function: u8,
}

impl Address {
    /// The value for CONFIG_ADDRESS (0xCF8) selecting the dword at `offset`
    /// (rounded down to 4): enable bit 31, bus 23:16, device 15:11,
    /// function 10:8, register 7:2. None for an out-of-range device,
    /// function or offset.
    pub fn config_address(self, offset: u16) -> Option<u32> {
        if self.device >= 32 || self.function >= 8 || offset >= 256 {
            return None;
        }
        Some(
            0x8000_0000
                | (self.bus as u32) << 16
                | (self.device as u32) << 11
                | (self.function as u32) << 8
                | (offset as u32 & 0xfc),
        )
    }
}

impl core::fmt::Display for Address {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.device, self.function)
    }
}

/// What the first 16 bytes of a function's header say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub vendor: u16,
    pub device: u16,
    pub class: u8,
    pub subclass: u8,
    pub prog_if: u8,
    pub revision: u8,
    /// Header type without the multi-function bit: 0 device, 1 bridge.
    pub kind: u8,
    pub multifunction: bool,
}

impl Header {
    /// Decodes dwords 0, 2 and 3 of the header; None when no function
    /// answers (vendor 0xffff).
    pub fn parse(dword0: u32, dword2: u32, dword3: u32) -> Option<Self> {
        let vendor = dword0 as u16;
        if vendor == 0xffff || vendor == 0 {
            return None;
        }
        let header_type = (dword3 >> 16) as u8;
        Some(Header {
            vendor,
            device: (dword0 >> 16) as u16,
            revision: dword2 as u8,
            prog_if: (dword2 >> 8) as u8,
            subclass: (dword2 >> 16) as u8,
            class: (dword2 >> 24) as u8,
            kind: header_type & 0x7f,
            multifunction: header_type & 0x80 != 0,
        })
    }
}

/// A decoded base address register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bar {
    Io {
        port: u32,
    },
    /// `wide` BARs take this register and the next (64-bit address).
    Memory {
        addr: u64,
        prefetchable: bool,
        wide: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarError {
    /// Memory type 01 (below 1 MiB, legacy) or 11 (reserved).
    UnsupportedType(u8),
    /// A 64-bit BAR in the last register: its upper half would be past it.
    WideAtEnd,
}

/// Decodes BAR `index` of `bars` (the six BAR dwords of a type-0 header;
/// for a 64-bit BAR the next dword is its upper half).
pub fn decode_bar(bars: &[u32; 6], index: usize) -> Option<Result<Bar, BarError>> {
    let low = *bars.get(index)?;
    if low & 1 == 1 {
        return Some(Ok(Bar::Io { port: low & !0x3 }));
    }
    let prefetchable = low & 0x8 != 0;
    match (low >> 1) & 0x3 {
        0 => Some(Ok(Bar::Memory {
            addr: (low & !0xf) as u64,
            prefetchable,
            wide: false,
        })),
        2 => match bars.get(index + 1) {
            Some(&high) => Some(Ok(Bar::Memory {
                addr: (high as u64) << 32 | (low & !0xf) as u64,
                prefetchable,
                wide: true,
            })),
            None => Some(Err(BarError::WideAtEnd)),
        },
        t => Some(Err(BarError::UnsupportedType(t as u8))),
    }
}

/// The size a BAR decodes, from the value read back after writing all
/// ones to it (and, for a 64-bit BAR, to its upper half, `high`): the
/// lowest writable address bit (PCI 3.0 §6.2.5.1). None if the BAR is not
/// implemented (no address bit reads back set).
pub fn bar_size(low: u32, high: Option<u32>, io: bool) -> Option<u64> {
    let mask = if io {
        (low & !0x3) as u64
    } else {
        (high.unwrap_or(0) as u64) << 32 | (low & !0xf) as u64
    };
    if mask == 0 {
        return None;
    }
    Some(1u64 << mask.trailing_zeros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_addresses_follow_mechanism_one() {
        let a = Address {
            bus: 0,
            device: 31,
            function: 3,
        };
        assert_eq!(a.config_address(0x10), Some(0x8000_fb10));
        assert_eq!(a.config_address(0x13), Some(0x8000_fb10), "rounded down to a dword");
        let b = Address {
            bus: 0xff,
            device: 0,
            function: 0,
        };
        assert_eq!(b.config_address(0), Some(0x80ff_0000));
        assert_eq!(
            Address {
                bus: 0,
                device: 32,
                function: 0
            }
            .config_address(0),
            None
        );
        assert_eq!(
            Address {
                bus: 0,
                device: 0,
                function: 8
            }
            .config_address(0),
            None
        );
        assert_eq!(a.config_address(256), None);
        assert_eq!(a.to_string(), "00:1f.3");
    }

    #[test]
    fn headers_decode_and_empty_slots_are_none() {
        // q35's host bridge: 8086:29c0, class 06.00.00, header type 0.
        let h = Header::parse(0x29c0_8086, 0x0600_0000, 0x0000_0000).unwrap();
        assert_eq!(
            (h.vendor, h.device, h.class, h.subclass, h.kind),
            (0x8086, 0x29c0, 6, 0, 0)
        );
        assert!(!h.multifunction);
        // A multi-function bridge header.
        let b = Header::parse(0x1234_1b36, 0x0604_0001, 0x0081_0000).unwrap();
        assert_eq!((b.kind, b.multifunction, b.revision), (1, true, 1));
        assert_eq!(Header::parse(0xffff_ffff, 0, 0), None);
        assert_eq!(Header::parse(0, 0, 0), None);
    }

    #[test]
    fn bars_decode_io_memory_and_wide() {
        let bars = [0xc001, 0xfebf_1000, 0x0000_000c, 0x0000_00e0, 0x2, 0x4];
        assert_eq!(decode_bar(&bars, 0), Some(Ok(Bar::Io { port: 0xc000 })));
        assert_eq!(
            decode_bar(&bars, 1),
            Some(Ok(Bar::Memory {
                addr: 0xfebf_1000,
                prefetchable: false,
                wide: false
            }))
        );
        // 64-bit prefetchable at 0xe0_0000_0000 (where OVMF puts virtio BARs).
        assert_eq!(
            decode_bar(&bars, 2),
            Some(Ok(Bar::Memory {
                addr: 0xe0_0000_0000,
                prefetchable: true,
                wide: true
            }))
        );
        assert_eq!(decode_bar(&bars, 4), Some(Err(BarError::UnsupportedType(1))));
        let mut end = [0u32; 6];
        end[5] = 0x4;
        assert_eq!(decode_bar(&end, 5), Some(Err(BarError::WideAtEnd)));
        assert_eq!(decode_bar(&bars, 6), None);
    }

    #[test]
    fn bar_sizes_come_from_the_lowest_writable_bit() {
        // A 4 KiB 32-bit memory BAR reads back 0xfffff000.
        assert_eq!(bar_size(0xffff_f000, None, false), Some(4096));
        // A 16 MiB 64-bit BAR: low 0xff000000 | type bits, high all ones.
        assert_eq!(bar_size(0xff00_000c, Some(0xffff_ffff), false), Some(16 << 20));
        // An 8 GiB 64-bit BAR: the low half has no address bits.
        assert_eq!(bar_size(0x0000_000c, Some(0xffff_fffe), false), Some(1 << 33));
        // An I/O BAR of 32 ports.
        assert_eq!(bar_size(0xffff_ffe1, None, true), Some(32));
        // Not implemented.
        assert_eq!(bar_size(0, None, false), None);
        assert_eq!(bar_size(0x1, None, true), None);
    }
}
