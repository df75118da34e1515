//! ACPI table decoding (ACPI 6.5 §5.2): RSDP, RSDT/XSDT, FADT, MADT, and the
//! `\_S5` sleep type in the DSDT, enough to route interrupts and power off.
//!
//! Every length and checksum is verified; a table that fails is reported,
//! never trusted. The kernel provides [`PhysMemory`] over its physical-memory
//! map; tests use a byte vector.

use core::fmt;

/// Read-only access to physical memory.
pub trait PhysMemory {
    /// The `len` bytes at physical address `phys`, or `None` if the range is
    /// not readable.
    fn slice(&self, phys: u64, len: usize) -> Option<&[u8]>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcpiError {
    Unreadable(u64),
    BadSignature { at: u64, expected: [u8; 4] },
    BadRsdp,
    BadChecksum([u8; 4]),
    BadLength([u8; 4]),
    Missing([u8; 4]),
    MalformedMadt,
}

/// A table signature, shown as text.
struct Sig<'a>(&'a [u8; 4]);

impl fmt::Display for Sig<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|&b| {
            let c = if b.is_ascii_graphic() { b as char } else { '?' };
            write!(f, "{c}")
        })
    }
}

impl fmt::Display for AcpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcpiError::Unreadable(a) => write!(f, "physical address {a:#x} is not readable"),
            AcpiError::BadSignature { at, expected } => {
                write!(f, "table at {at:#x} is not {}", Sig(expected))
            }
            AcpiError::BadRsdp => f.write_str("RSDP signature or checksum is wrong"),
            AcpiError::BadChecksum(s) => write!(f, "{} checksum is wrong", Sig(s)),
            AcpiError::BadLength(s) => write!(f, "{} length is implausible", Sig(s)),
            AcpiError::Missing(s) => write!(f, "no {} table", Sig(s)),
            AcpiError::MalformedMadt => f.write_str("MADT entry with a bad length"),
        }
    }
}

pub type Result<T> = core::result::Result<T, AcpiError>;

const HEADER_LEN: usize = 36;
/// Tables larger than this are treated as corrupt.
const MAX_TABLE_LEN: u32 = 1 << 20;
const MAX_ROOT_ENTRIES: usize = 64;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    (u32_at(b, at) as u64) | ((u32_at(b, at + 4) as u64) << 32)
}

fn checksum_ok(b: &[u8]) -> bool {
    b.iter().fold(0u8, |a, &x| a.wrapping_add(x)) == 0
}

/// A whole system description table (header included), validated.
fn table(mem: &impl PhysMemory, at: u64, sig: [u8; 4]) -> Result<&[u8]> {
    let header = mem.slice(at, HEADER_LEN).ok_or(AcpiError::Unreadable(at))?;
    if header[..4] != sig {
        return Err(AcpiError::BadSignature { at, expected: sig });
    }
    let len = u32_at(header, 4);
    if (len as usize) < HEADER_LEN || len > MAX_TABLE_LEN {
        return Err(AcpiError::BadLength(sig));
    }
    let bytes = mem.slice(at, len as usize).ok_or(AcpiError::Unreadable(at))?;
    if !checksum_ok(bytes) {
        return Err(AcpiError::BadChecksum(sig));
    }
    Ok(bytes)
}

/// Physical addresses of the tables the kernel uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tables {
    pub fadt: Option<u64>,
    pub madt: Option<u64>,
}

/// Walks RSDP -> XSDT (or RSDT for ACPI 1.0) and records where the FADT and
/// MADT are. Entries that fail validation are skipped.
pub fn find_tables(mem: &impl PhysMemory, rsdp: u64) -> Result<Tables> {
    let r = mem.slice(rsdp, 20).ok_or(AcpiError::Unreadable(rsdp))?;
    if &r[..8] != b"RSD PTR " || !checksum_ok(r) {
        return Err(AcpiError::BadRsdp);
    }
    let revision = r[15];
    let xsdt = if revision >= 2 {
        let ext = mem.slice(rsdp, 36).ok_or(AcpiError::Unreadable(rsdp))?;
        if !checksum_ok(ext) {
            return Err(AcpiError::BadRsdp);
        }
        u64_at(ext, 24)
    } else {
        0
    };
    // ACPI 2.0+ prefers the XSDT; firmware that leaves it zero still has
    // the RSDT.
    let (root, sig, entry_len) = if xsdt != 0 {
        (xsdt, *b"XSDT", 8)
    } else {
        (u32_at(r, 16) as u64, *b"RSDT", 4)
    };
    let root = table(mem, root, sig)?;
    let mut tables = Tables::default();
    for entry in root[HEADER_LEN..].chunks_exact(entry_len).take(MAX_ROOT_ENTRIES) {
        let at = if entry_len == 8 {
            u64_at(entry, 0)
        } else {
            u32_at(entry, 0) as u64
        };
        let Some(h) = mem.slice(at, 4) else { continue };
        match h {
            b"FACP" if table(mem, at, *b"FACP").is_ok() => tables.fadt = Some(at),
            b"APIC" if table(mem, at, *b"APIC").is_ok() => tables.madt = Some(at),
            _ => {}
        }
    }
    Ok(tables)
}

/// What the kernel needs from the FADT (ACPI 6.5 §5.2.9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fadt {
    pub dsdt: u64,
    /// PM1a control block I/O port (`None` if absent or not in I/O space).
    pub pm1a_cnt_blk: Option<u16>,
    pub pm1b_cnt_blk: Option<u16>,
    /// ACPI PM timer I/O port (3.579545 MHz, ACPI 6.5 §4.8.3.3).
    pub pm_timer_blk: Option<u16>,
}

/// ACPI PM timer rate, Hz.
pub const PM_TIMER_HZ: u64 = 3_579_545;

/// An I/O port from a 32-bit FADT field, or else from its 64-bit Generic
/// Address Structure at `gas` (ACPI 6.5 §5.2.3.2: space id 1 = system I/O,
/// address at +4). Zero, memory-space and >16-bit values are `None`.
fn io_port(t: &[u8], legacy: usize, gas: usize) -> Option<u16> {
    let legacy = u32_at(t, legacy);
    if legacy != 0 {
        return u16::try_from(legacy).ok();
    }
    if t.len() < gas + 12 || t[gas] != 1 {
        return None;
    }
    u16::try_from(u64_at(t, gas + 4)).ok().filter(|&p| p != 0)
}

impl Fadt {
    pub fn read(mem: &impl PhysMemory, at: u64) -> Result<Self> {
        let t = table(mem, at, *b"FACP")?;
        if t.len() < 76 {
            return Err(AcpiError::BadLength(*b"FACP"));
        }
        let x_dsdt = if t.len() >= 148 { u64_at(t, 140) } else { 0 };
        Ok(Fadt {
            dsdt: if x_dsdt != 0 { x_dsdt } else { u32_at(t, 40) as u64 },
            pm1a_cnt_blk: io_port(t, 64, 172),
            pm1b_cnt_blk: io_port(t, 68, 184),
            pm_timer_blk: io_port(t, 76, 208),
        })
    }

    /// The SLP_TYPa value for S5 (soft off) from the DSDT's `\_S5` package.
    pub fn s5_sleep_type(&self, mem: &impl PhysMemory) -> Result<u8> {
        let dsdt = table(mem, self.dsdt, *b"DSDT")?;
        s5_sleep_type(&dsdt[HEADER_LEN..]).ok_or(AcpiError::Missing(*b"_S5_"))
    }
}

/// PM1 control value that enters sleep state `slp_typ` (ACPI 6.5 §4.8.3.2.1:
/// SLP_TYP bits 10-12, SLP_EN bit 13).
pub const fn pm1_sleep_value(slp_typ: u8) -> u16 {
    (((slp_typ & 7) as u16) << 10) | (1 << 13)
}

/// Finds `Name(_S5, Package() { a, .. })` in AML and returns `a`; other
/// mentions of `_S5_` (references to it) are skipped.
fn s5_sleep_type(aml: &[u8]) -> Option<u8> {
    aml.windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"_S5_")
        .find_map(|(at, _)| s5_package_first(&aml[at + 4..]))
}

/// The first element of the package that follows a `_S5_` name.
fn s5_package_first(rest: &[u8]) -> Option<u8> {
    if *rest.first()? != 0x12 {
        return None; // not a PackageOp
    }
    // PkgLength: bits 6-7 of the lead byte count the bytes that follow.
    let pkg_len_bytes = 1 + (*rest.get(1)? >> 6) as usize;
    // Skip the PackageOp, PkgLength and NumElements.
    let mut p = 1 + pkg_len_bytes + 1;
    match *rest.get(p)? {
        0x0A => {
            p += 1;
            rest.get(p).copied()
        }
        0x00 => Some(0), // ZeroOp
        0x01 => Some(1), // OneOp
        v if v < 8 => Some(v),
        _ => None,
    }
}

pub const MAX_IOAPICS: usize = 8;
pub const MAX_OVERRIDES: usize = 16;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoApicEntry {
    pub id: u8,
    pub address: u32,
    pub gsi_base: u32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceOverride {
    pub irq: u8,
    pub gsi: u32,
    pub flags: u16,
}

/// How an ISA IRQ reaches the IOAPIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IsaRoute {
    pub gsi: u32,
    pub active_low: bool,
    pub level_triggered: bool,
}

/// Interrupt controllers from the MADT (ACPI 6.5 §5.2.12).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Madt {
    pub local_apic: u64,
    ioapics: [IoApicEntry; MAX_IOAPICS],
    n_ioapics: usize,
    overrides: [SourceOverride; MAX_OVERRIDES],
    n_overrides: usize,
}

impl Madt {
    pub fn read(mem: &impl PhysMemory, at: u64) -> Result<Self> {
        let t = table(mem, at, *b"APIC")?;
        Self::parse(t)
    }

    fn parse(t: &[u8]) -> Result<Self> {
        if t.len() < HEADER_LEN + 8 {
            return Err(AcpiError::BadLength(*b"APIC"));
        }
        let mut m = Madt {
            local_apic: u32_at(t, HEADER_LEN) as u64,
            ..Default::default()
        };
        let mut p = HEADER_LEN + 8;
        while p + 2 <= t.len() {
            let (kind, len) = (t[p], t[p + 1] as usize);
            if len < 2 || p + len > t.len() {
                return Err(AcpiError::MalformedMadt);
            }
            let e = &t[p..p + len];
            match kind {
                1 if len >= 12 && m.n_ioapics < MAX_IOAPICS => {
                    m.ioapics[m.n_ioapics] = IoApicEntry {
                        id: e[2],
                        address: u32_at(e, 4),
                        gsi_base: u32_at(e, 8),
                    };
                    m.n_ioapics += 1;
                }
                2 if len >= 10 && m.n_overrides < MAX_OVERRIDES => {
                    m.overrides[m.n_overrides] = SourceOverride {
                        irq: e[3],
                        gsi: u32_at(e, 4),
                        flags: u16_at(e, 8),
                    };
                    m.n_overrides += 1;
                }
                5 if len >= 12 => m.local_apic = u64_at(e, 4),
                _ => {}
            }
            p += len;
        }
        Ok(m)
    }

    pub fn ioapics(&self) -> &[IoApicEntry] {
        &self.ioapics[..self.n_ioapics]
    }

    /// The GSI and signalling of ISA IRQ `irq`, applying any interrupt source
    /// override (MPS INTI flags: polarity bits 0-1, trigger bits 2-3; 0 =
    /// bus default, which for ISA is active high, edge).
    pub fn isa_route(&self, irq: u8) -> IsaRoute {
        match self.overrides[..self.n_overrides].iter().find(|o| o.irq == irq) {
            Some(o) => IsaRoute {
                gsi: o.gsi,
                active_low: o.flags & 0b11 == 0b11,
                level_triggered: (o.flags >> 2) & 0b11 == 0b11,
            },
            None => IsaRoute {
                gsi: irq as u32,
                active_low: false,
                level_triggered: false,
            },
        }
    }

    /// The IOAPIC serving `gsi`: the one with the highest base at or below it.
    pub fn ioapic_for(&self, gsi: u32) -> Option<IoApicEntry> {
        self.ioapics()
            .iter()
            .filter(|a| a.gsi_base <= gsi)
            .max_by_key(|a| a.gsi_base)
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// Fake physical memory: one blob at a base address.
    struct Blob {
        base: u64,
        bytes: Vec<u8>,
    }

    impl PhysMemory for Blob {
        fn slice(&self, phys: u64, len: usize) -> Option<&[u8]> {
            let start = phys.checked_sub(self.base)? as usize;
            self.bytes.get(start..start.checked_add(len)?)
        }
    }

    fn fix_checksum(t: &mut [u8], at: usize) {
        t[at] = 0;
        let sum = t.iter().fold(0u8, |a, &x| a.wrapping_add(x));
        t[at] = 0u8.wrapping_sub(sum);
    }

    fn sdt(sig: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut t = Vec::from(&sig[..]);
        t.extend_from_slice(&((HEADER_LEN + body.len()) as u32).to_le_bytes());
        t.resize(HEADER_LEN, 0);
        t.extend_from_slice(body);
        fix_checksum(&mut t, 9);
        t
    }

    const BASE: u64 = 0xe0000;

    /// RSDP v2 at BASE, XSDT at +0x40, FADT at +0x100, MADT at +0x200,
    /// DSDT at +0x300.
    fn machine(s5: &[u8]) -> Blob {
        let mut mem = vec![0u8; 0x400];
        let mut rsdp = Vec::from(&b"RSD PTR "[..]);
        rsdp.extend_from_slice(&[0; 7]); // checksum, OEM id
        rsdp.push(2); // revision
        rsdp.extend_from_slice(&0u32.to_le_bytes());
        rsdp.extend_from_slice(&36u32.to_le_bytes());
        rsdp.extend_from_slice(&(BASE + 0x40).to_le_bytes());
        rsdp.extend_from_slice(&[0; 4]);
        fix_checksum(&mut rsdp[..20], 8);
        fix_checksum(&mut rsdp, 32);
        mem[..36].copy_from_slice(&rsdp);

        let mut entries = Vec::new();
        // The third entry points outside readable memory and is skipped.
        for off in [0x100u64, 0x200, 0x10_0000] {
            entries.extend_from_slice(&(BASE + off).to_le_bytes());
        }
        let xsdt = sdt(b"XSDT", &entries);
        mem[0x40..0x40 + xsdt.len()].copy_from_slice(&xsdt);

        let mut fadt_body = vec![0u8; 244 - HEADER_LEN];
        fadt_body[40 - HEADER_LEN..44 - HEADER_LEN].copy_from_slice(&((BASE + 0x300) as u32).to_le_bytes());
        fadt_body[64 - HEADER_LEN..68 - HEADER_LEN].copy_from_slice(&0x604u32.to_le_bytes());
        fadt_body[76 - HEADER_LEN..80 - HEADER_LEN].copy_from_slice(&0x608u32.to_le_bytes());
        let fadt = sdt(b"FACP", &fadt_body);
        mem[0x100..0x100 + fadt.len()].copy_from_slice(&fadt);

        let mut madt_body = Vec::new();
        madt_body.extend_from_slice(&0xfee0_0000u32.to_le_bytes());
        madt_body.extend_from_slice(&1u32.to_le_bytes());
        madt_body.extend_from_slice(&[0, 8, 0, 0, 1, 0, 0, 0]); // local APIC
        madt_body.extend_from_slice(&[1, 12, 0, 0]); // IOAPIC id 0
        madt_body.extend_from_slice(&0xfec0_0000u32.to_le_bytes());
        madt_body.extend_from_slice(&0u32.to_le_bytes());
        madt_body.extend_from_slice(&[2, 10, 0, 0]); // ISO: IRQ0 -> GSI2
        madt_body.extend_from_slice(&2u32.to_le_bytes());
        madt_body.extend_from_slice(&0u16.to_le_bytes());
        madt_body.extend_from_slice(&[2, 10, 0, 9]); // ISO: IRQ9 -> GSI9 level, low
        madt_body.extend_from_slice(&9u32.to_le_bytes());
        madt_body.extend_from_slice(&0x000fu16.to_le_bytes());
        let madt = sdt(b"APIC", &madt_body);
        mem[0x200..0x200 + madt.len()].copy_from_slice(&madt);

        let mut aml = vec![0x10, 0x42, 0x00]; // unrelated bytes
        aml.extend_from_slice(b"\x08_S5_");
        aml.extend_from_slice(s5);
        let dsdt = sdt(b"DSDT", &aml);
        mem[0x300..0x300 + dsdt.len()].copy_from_slice(&dsdt);
        Blob { base: BASE, bytes: mem }
    }

    #[test]
    fn finds_fadt_and_madt_and_skips_unreadable_entries() {
        let m = machine(&[0x12, 0x06, 0x04, 0x0a, 0x05, 0x00, 0x00, 0x00]);
        let t = find_tables(&m, BASE).unwrap();
        assert_eq!(
            t,
            Tables {
                fadt: Some(BASE + 0x100),
                madt: Some(BASE + 0x200)
            }
        );
        let fadt = Fadt::read(&m, BASE + 0x100).unwrap();
        assert_eq!(fadt.pm1a_cnt_blk, Some(0x604));
        assert_eq!(fadt.pm1b_cnt_blk, None);
        assert_eq!(fadt.pm_timer_blk, Some(0x608));
        assert_eq!(fadt.dsdt, BASE + 0x300);
        assert_eq!(fadt.s5_sleep_type(&m), Ok(5));
        assert_eq!(pm1_sleep_value(5), 0x3400);
    }

    #[test]
    fn pm_ports_come_from_the_extended_fields_when_the_legacy_ones_are_zero() {
        let mut t = vec![0u8; 244];
        t[172] = 1; // X_PM1a_CNT_BLK in system I/O
        t[176..184].copy_from_slice(&0x1004u64.to_le_bytes());
        t[208] = 0; // X_PM_TMR_BLK in memory space: not usable as a port
        t[212..220].copy_from_slice(&0xfee0_0000u64.to_le_bytes());
        assert_eq!(io_port(&t, 64, 172), Some(0x1004));
        assert_eq!(io_port(&t, 76, 208), None);
        t[64..68].copy_from_slice(&0x1_0000u32.to_le_bytes());
        assert_eq!(io_port(&t, 64, 172), None, "a legacy value beyond 16 bits is refused");
        assert_eq!(io_port(&t[..100], 68, 184), None, "short table");
    }

    #[test]
    fn s5_skips_references_before_the_definition() {
        assert_eq!(s5_sleep_type(b"\\_S5_\x70_S5_\x12\x06\x04\x0a\x05\x00"), Some(5));
    }

    #[test]
    fn rsdp_v2_with_a_zero_xsdt_falls_back_to_the_rsdt() {
        let mut m = machine(&[0x12, 0x06, 0x04, 0x00]);
        // RSDT at +0x380 listing only the FADT; XSDT address zeroed.
        let rsdt = sdt(b"RSDT", &((BASE + 0x100) as u32).to_le_bytes());
        m.bytes[0x380..0x380 + rsdt.len()].copy_from_slice(&rsdt);
        m.bytes[16..20].copy_from_slice(&((BASE + 0x380) as u32).to_le_bytes());
        m.bytes[24..32].fill(0);
        fix_checksum(&mut m.bytes[..20], 8);
        fix_checksum(&mut m.bytes[..36], 32);
        let t = find_tables(&m, BASE).unwrap();
        assert_eq!(
            t,
            Tables {
                fadt: Some(BASE + 0x100),
                madt: None
            }
        );
    }

    #[test]
    fn s5_with_zero_op_and_one_op() {
        let m = machine(&[0x12, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00]);
        let fadt = Fadt::read(&m, BASE + 0x100).unwrap();
        assert_eq!(fadt.s5_sleep_type(&m), Ok(0));
        assert_eq!(s5_sleep_type(b"_S5_\x12\x05\x02\x01\x01"), Some(1));
        assert_eq!(s5_sleep_type(b"_S5_\x13"), None);
        assert_eq!(s5_sleep_type(b"_S5_\x12"), None);
        assert_eq!(s5_sleep_type(b"nothing"), None);
    }

    #[test]
    fn madt_routes_isa_irqs_through_overrides() {
        let m = machine(&[0x12, 0x06, 0x04, 0x00]);
        let madt = Madt::read(&m, BASE + 0x200).unwrap();
        assert_eq!(madt.local_apic, 0xfee0_0000);
        assert_eq!(
            madt.ioapics(),
            &[IoApicEntry {
                id: 0,
                address: 0xfec0_0000,
                gsi_base: 0
            }]
        );
        assert_eq!(
            madt.isa_route(0),
            IsaRoute {
                gsi: 2,
                active_low: false,
                level_triggered: false
            }
        );
        assert_eq!(
            madt.isa_route(4),
            IsaRoute {
                gsi: 4,
                active_low: false,
                level_triggered: false
            }
        );
        assert_eq!(
            madt.isa_route(9),
            IsaRoute {
                gsi: 9,
                active_low: true,
                level_triggered: true
            }
        );
        assert_eq!(madt.ioapic_for(4).unwrap().address, 0xfec0_0000);
    }

    #[test]
    fn corrupt_tables_are_errors_not_panics() {
        let mut m = machine(&[0x12, 0x06, 0x04, 0x00]);
        m.bytes[0x210] ^= 0xff; // break the MADT checksum
        assert_eq!(Madt::read(&m, BASE + 0x200), Err(AcpiError::BadChecksum(*b"APIC")));
        assert_eq!(find_tables(&m, BASE).unwrap().madt, None, "bad entries are skipped");
        m.bytes[0] = b'X';
        assert_eq!(find_tables(&m, BASE), Err(AcpiError::BadRsdp));
        assert_eq!(find_tables(&m, 0x10), Err(AcpiError::Unreadable(0x10)));
        // A table whose length runs past readable memory.
        let mut m = machine(&[0x12, 0x06, 0x04, 0x00]);
        m.bytes[0x104..0x108].copy_from_slice(&0x1000u32.to_le_bytes());
        assert_eq!(Fadt::read(&m, BASE + 0x100), Err(AcpiError::Unreadable(BASE + 0x100)));
        // MADT entry with length 0 would loop forever if trusted.
        let mut body = vec![0u8; 8];
        body.extend_from_slice(&[1, 0]);
        let t = sdt(b"APIC", &body);
        assert_eq!(Madt::parse(&t), Err(AcpiError::MalformedMadt));
    }

    #[test]
    fn errors_display_the_signature() {
        assert_eq!(AcpiError::Missing(*b"_S5_").to_string(), "no _S5_ table");
        assert_eq!(AcpiError::BadChecksum(*b"APIC").to_string(), "APIC checksum is wrong");
    }
}
