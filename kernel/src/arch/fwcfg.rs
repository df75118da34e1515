//! QEMU's fw_cfg device over its legacy I/O ports (QEMU
//! docs/specs/fw_cfg.rst): the host passes the kernel command line through it.

use kcore::fwcfg::{self, DIR_ENTRY_LEN};
use x86_64::instructions::port::Port;

const SELECTOR: u16 = 0x510;
const DATA: u16 = 0x511;

fn select(key: u16) {
    // SAFETY: 0x510 is fw_cfg's selector port under QEMU on x86; elsewhere
    // the port is unclaimed and the write is ignored.
    unsafe { Port::<u16>::new(SELECTOR).write(key) }
}

fn read_into(buf: &mut [u8]) {
    for b in buf {
        // SAFETY: 0x511 is fw_cfg's data port; a read returns the next byte
        // of the selected item (or 0xff/0 with no device), nothing else.
        *b = unsafe { Port::<u8>::new(DATA).read() };
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FwCfgError {
    /// No fw_cfg device (not QEMU, or an old one).
    NoDevice,
    NotFound,
    /// The file is larger than the buffer given.
    TooLarge(u32),
}

/// Reads the fw_cfg file `name` into `buf`; returns its length.
pub fn read_file(name: &str, buf: &mut [u8]) -> Result<usize, FwCfgError> {
    select(fwcfg::SELECT_SIGNATURE);
    let mut sig = [0u8; 4];
    read_into(&mut sig);
    if sig != fwcfg::SIGNATURE {
        return Err(FwCfgError::NoDevice);
    }
    select(fwcfg::SELECT_FILE_DIR);
    let mut count = [0u8; 4];
    read_into(&mut count);
    for _ in 0..u32::from_be_bytes(count).min(4096) {
        let mut entry = [0u8; DIR_ENTRY_LEN];
        read_into(&mut entry);
        if let Some(file) = fwcfg::match_entry(&entry, name) {
            let len = file.size as usize;
            if len > buf.len() {
                return Err(FwCfgError::TooLarge(file.size));
            }
            select(file.select);
            read_into(&mut buf[..len]);
            return Ok(len);
        }
    }
    Err(FwCfgError::NotFound)
}
