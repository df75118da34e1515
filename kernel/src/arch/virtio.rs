//! virtio devices through `virtio-drivers` (docs/storage.md): the HAL it
//! needs (DMA memory, MMIO mappings, address translation), configuration
//! space access for its PCI transport, and the virtio-blk device wrapped in
//! a safe interface for `block`.
//!
//! DMA memory is physically contiguous frames reached through the
//! physical-memory window; buffers handed to the device (`share`) must be
//! physically contiguous too: `share` checks it and refuses (panics on) a
//! buffer that is not, which would be a kernel bug (the block layer only
//! passes [`DmaBuf`]s and the driver's own small headers).

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use kcore::pci::{Address, Bar, decode_bar};

use virtio_drivers::device::blk::{BlkReq, BlkResp, RespStatus, VirtIOBlk};
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction, PciRoot};
use virtio_drivers::transport::{DeviceType, Transport};
use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE, PhysAddr};

use super::{apic, idt, pci};
use crate::mm::{frames, paging, phys};

/// The kernel's side of `virtio-drivers`.
pub struct KernelHal;

// SAFETY: `dma_alloc` returns zeroed, page-aligned, physically contiguous
// frames owned by nobody else until `dma_dealloc`; `mmio_phys_to_virt`
// maps the device registers uncached in a window nothing else uses; `share`
// returns the physical address of a buffer that is physically contiguous
// (checked) and stays mapped while the device uses it (the caller's
// contract in `virtio-drivers`).
unsafe impl Hal for KernelHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        match frames::alloc_contiguous_zeroed(pages as u64) {
            Some(paddr) => match NonNull::new(phys::to_virt(paddr) as *mut u8) {
                Some(vaddr) => (paddr, vaddr),
                None => (0, NonNull::dangling()),
            },
            // `virtio-drivers` reads a 0 address as an allocation failure.
            None => (0, NonNull::dangling()),
        }
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, _vaddr: NonNull<u8>, pages: usize) -> i32 {
        frames::free_contiguous(paddr, pages as u64);
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        // SAFETY: `virtio-drivers` passes a range inside a BAR the firmware
        // assigned to the device: registers, not RAM.
        match unsafe { paging::map_mmio(paddr, size as u64) } {
            Ok(v) => NonNull::new(v as *mut u8).unwrap_or(NonNull::dangling()),
            Err(e) => panic!("virtio: mapping BAR range {paddr:#x}+{size:#x}: {e:?}"),
        }
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        let start = buffer.as_ptr() as *mut u8 as u64;
        let len = buffer.len() as u64;
        physically_contiguous(start, len)
            .unwrap_or_else(|| panic!("virtio: buffer {start:#x}+{len:#x} is not physically contiguous"))
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

/// The physical address of `start..start + len` if it is mapped and
/// physically contiguous.
fn physically_contiguous(start: u64, len: u64) -> Option<u64> {
    // DMA buffers live in the offset mapping: no page walk per page (a
    // 1 MiB folio would take 256 of them, each a software walk under TCG).
    if let Some(phys) = phys::window_to_phys(start, len) {
        return Some(phys);
    }
    let first = paging::translate(start)?;
    let page = PAGE_SIZE as u64;
    let mut at = (start / page + 1) * page;
    while at < start + len {
        if paging::translate(at)? != first + (at - start) {
            return None;
        }
        at += page;
    }
    Some(first)
}

/// PCI configuration mechanism #1 (`arch::pci`) for the transport.
pub struct PortCam;

impl PortCam {
    fn address(df: DeviceFunction) -> Address {
        Address {
            bus: df.bus,
            device: df.device,
            function: df.function,
        }
    }
}

impl ConfigurationAccess for PortCam {
    fn read_word(&self, df: DeviceFunction, offset: u8) -> u32 {
        pci::read(Self::address(df), u16::from(offset))
    }

    fn write_word(&mut self, df: DeviceFunction, offset: u8, data: u32) {
        // SAFETY: the transport writes the command register and BARs of the
        // virtio function it was given, as the virtio spec (4.1) describes.
        unsafe { pci::write(Self::address(df), u16::from(offset), data) }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        PortCam
    }
}

/// Physically contiguous, zeroed memory for a device to read or write
/// (whole 4 KiB frames), freed on drop.
pub struct DmaBuf {
    paddr: u64,
    pages: usize,
    /// A view's length in bytes (0 for a buffer of whole pages).
    view_len: usize,
    /// Freed on drop (a view into another buffer is not).
    owned: bool,
    /// What a view keeps alive.
    _parent: Option<Arc<DmaBuf>>,
}

impl DmaBuf {
    pub fn new(bytes: usize) -> Option<DmaBuf> {
        DmaBuf::alloc(bytes, true)
    }

    fn alloc(bytes: usize, zeroed: bool) -> Option<DmaBuf> {
        let pages = bytes.div_ceil(PAGE_SIZE).max(1);
        let paddr = if zeroed {
            frames::alloc_contiguous_zeroed(pages as u64)?
        } else {
            frames::alloc_contiguous(pages as u64)?
        };
        Some(DmaBuf {
            paddr,
            pages,
            view_len: 0,
            owned: true,
            _parent: None,
        })
    }

    /// A view of `len` bytes of `parent` from byte `offset` (a direct read
    /// into a process's registered buffer): it keeps `parent` alive, so the
    /// frames outlive any request using the view, whatever happens to the
    /// mapping. `None` when out of range.
    pub fn view_of(parent: &Arc<DmaBuf>, offset: usize, len: usize) -> Option<DmaBuf> {
        if len == 0 || offset.checked_add(len)? > parent.len() {
            return None;
        }
        Some(DmaBuf {
            paddr: parent.paddr + offset as u64,
            // `len` from `paddr`: the slices of the view stay inside the
            // parent (whole pages from an unaligned start would not).
            pages: 0,
            view_len: len,
            owned: false,
            _parent: Some(parent.clone()),
        })
    }

    /// A buffer the device fills before the kernel reads it: not cleared
    /// (what it held is kernel memory, and only the kernel sees it before
    /// the device overwrites it).
    pub fn for_device_writes(bytes: usize) -> Option<DmaBuf> {
        DmaBuf::alloc(bytes, false)
    }

    pub fn len(&self) -> usize {
        if self.owned {
            self.pages * PAGE_SIZE
        } else {
            self.view_len
        }
    }

    /// The physical address of its first byte (pages follow contiguously).
    pub fn phys(&self) -> u64 {
        self.paddr
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the frames are ours (allocated in `new`, freed on drop),
        // or a view's part of its parent's, which it keeps alive; mapped
        // through the physical window for their whole length. (A parent
        // with views is memory for a device and a process: the kernel
        // takes no slices of it while they exist.)
        unsafe { core::slice::from_raw_parts(phys::to_virt(self.paddr) as *const u8, self.len()) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` makes the access unique.
        unsafe { core::slice::from_raw_parts_mut(phys::to_virt(self.paddr) as *mut u8, self.len()) }
    }
}

impl Drop for DmaBuf {
    fn drop(&mut self) {
        if self.owned {
            frames::free_contiguous(self.paddr, self.pages as u64);
        }
    }
}

/// Why a virtio-blk device could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlkError {
    NoDevice,
    Transport,
    Device,
    /// An I/O request failed (the device said so, or it was malformed).
    Io,
    /// A write to a read-only device.
    ReadOnly,
    /// Out of the device's sectors, or a buffer that is not whole sectors.
    BadRange,
    /// No room in the device's queue now (wait for completions).
    QueueFull,
}

/// A request header the device reads: 16-byte aligned, so that it never
/// straddles a page (`share` needs it physically contiguous).
#[repr(C, align(16))]
#[derive(Default)]
struct Header(BlkReq);

/// One request of a stream: its buffer and status, owned by the stream
/// while the device has them.
struct Slot {
    header: Box<Header>,
    status: Box<BlkResp>,
    buf: DmaBuf,
    /// The device's token while in flight.
    token: Option<u16>,
    done: bool,
    offset: u64,
    len: usize,
}

/// A virtio-blk device: blocking calls (polled), and streams of many
/// requests in flight whose waits sleep until the device's MSI-X
/// interrupt when it has one.
pub struct VirtioBlk {
    dev: VirtIOBlk<KernelHal, PciTransport>,
    /// Completions are signalled by MSI-X vector [`BLK_MSI`].
    msix: bool,
    /// Queued reads (`submit_read`) the device has, by its token.
    inflight: BTreeMap<u16, Queued>,
    /// Queued reads that finished and were not taken yet, by request id.
    finished: BTreeMap<u64, Result<DmaBuf, BlkError>>,
    next_id: u64,
}

/// A queued read while the device has it.
struct Queued {
    id: u64,
    header: Box<Header>,
    status: Box<BlkResp>,
    buf: DmaBuf,
    len: usize,
}

/// The MSI vector (of `idt::Irq::Msi`) of the disk's request queue.
pub const BLK_MSI: u8 = 0;
/// Interrupts taken on [`BLK_MSI`].
static BLK_IRQS: AtomicU64 = AtomicU64::new(0);

fn on_blk_irq() {
    BLK_IRQS.fetch_add(1, Ordering::Release);
}

/// Interrupts of the disk's queue so far (a waiter reads it before
/// checking for completions and sleeps only while it has not moved).
pub fn blk_irqs() -> u64 {
    BLK_IRQS.load(Ordering::Acquire)
}

/// Byte and word reads of configuration space (mechanism #1 reads dwords).
fn cfg8(addr: Address, off: u16) -> u8 {
    (pci::read(addr, off & !3) >> ((off & 3) * 8)) as u8
}

/// Points the device's queue 0 at MSI-X table entry 0, which delivers
/// vector `MSI_BASE + BLK_MSI` to this CPU (PCI 3.0 §6.8.2; virtio 1.1
/// §4.1.4.3 and §4.1.5.1.2). Without MSI-X the device would raise INTx,
/// whose IOAPIC input on q35 depends on the chipset's PIRQ routing (ACPI
/// `_PRT`), which we do not read. `virtio-drivers` leaves the vectors
/// unset, so this runs after its set-up.
fn enable_msix(addr: Address) -> Result<(), &'static str> {
    if pci::read(addr, 4) >> 16 & 0x10 == 0 {
        return Err("no capability list");
    }
    let (mut msix, mut common) = (None, None);
    let mut ptr = u16::from(cfg8(addr, 0x34) & !3);
    // At most 48 capabilities fit in the 192 bytes after the header.
    for _ in 0..48 {
        if ptr < 0x40 {
            break;
        }
        match cfg8(addr, ptr) {
            0x11 => msix = Some(ptr),
            // A virtio vendor capability of type 1: the common config.
            0x09 if cfg8(addr, ptr + 3) == 1 && common.is_none() => common = Some(ptr),
            _ => {}
        }
        ptr = u16::from(cfg8(addr, ptr + 1) & !3);
    }
    let (cap, common) = (msix.ok_or("no MSI-X capability")?, common.ok_or("no common config")?);
    let bars: [u32; 6] = core::array::from_fn(|i| pci::read(addr, 0x10 + 4 * i as u16));
    let bar_addr = |index: u32| match decode_bar(&bars, index as usize) {
        Some(Ok(Bar::Memory { addr, .. })) => Ok(addr),
        _ => Err("a capability's BAR is not memory"),
    };
    let table = pci::read(addr, cap + 4);
    let table_phys = bar_addr(table & 7)? + u64::from(table & !7);
    // SAFETY: the MSI-X table: device registers in the BAR the capability
    // names, 16 bytes per entry (entry 0 here).
    let entry = unsafe { paging::map_mmio(table_phys, 16) }.map_err(|_| "mapping the MSI-X table")?;
    let message = [
        0xFEE0_0000 | u32::from(apic::id()) << 12,
        0,
        u32::from(idt::MSI_BASE + BLK_MSI),
        0,
    ];
    for (i, word) in message.iter().enumerate() {
        // SAFETY: inside the 16 bytes just mapped; MSI-X table entries are
        // written as dwords.
        unsafe { ((entry + 4 * i as u64) as *mut u32).write_volatile(*word) };
    }
    // Enable MSI-X (message control bit 15), unmask the function (bit 14).
    let dword = pci::read(addr, cap);
    let control = ((dword >> 16) as u16 | 0x8000) & !0x4000;
    // SAFETY: the message control register of this device's MSI-X
    // capability; the table entry it uses is programmed above.
    unsafe { pci::write(addr, cap, (dword & 0xffff) | u32::from(control) << 16) };
    let cfg_bar = u32::from(cfg8(addr, common + 4));
    let cfg_phys = bar_addr(cfg_bar)? + u64::from(pci::read(addr, common + 8));
    // SAFETY: the virtio common configuration structure (device registers,
    // at least 0x38 bytes).
    let cfg = unsafe { paging::map_mmio(cfg_phys, 0x38) }.map_err(|_| "mapping the common config")?;
    // SAFETY: 16-bit registers of the common config, as virtio requires:
    // config_msix_vector (0x10: none), queue_select (0x16), then
    // queue_msix_vector (0x1a) of queue 0.
    let vector = unsafe {
        ((cfg + 0x10) as *mut u16).write_volatile(0xffff);
        ((cfg + 0x16) as *mut u16).write_volatile(0);
        ((cfg + 0x1a) as *mut u16).write_volatile(0);
        ((cfg + 0x1a) as *const u16).read_volatile()
    };
    if vector != 0 {
        return Err("the device refused the vector");
    }
    Ok(())
}

/// Sector size of the virtio-blk protocol.
pub const SECTOR: usize = 512;

impl VirtioBlk {
    /// The first virtio-blk function on bus 0 (modern transport).
    pub fn probe() -> Result<VirtioBlk, BlkError> {
        let mut root = PciRoot::new(PortCam);
        let function = pci::scan_bus0()
            .into_iter()
            .find(|f| {
                f.header.vendor == 0x1af4
                    && (f.header.device == 0x1042 || f.header.device == 0x1001)
                    && f.header.kind == 0
            })
            .ok_or(BlkError::NoDevice)?;
        let df = DeviceFunction {
            bus: function.addr.bus,
            device: function.addr.device,
            function: function.addr.function,
        };
        // Memory decoding and bus mastering: SeaBIOS turns them on for the
        // boot disk only (TOOLCHAIN.md).
        let (_, command) = root.get_status_command(df);
        root.set_command(
            df,
            command
                | virtio_drivers::transport::pci::bus::Command::MEMORY_SPACE
                | virtio_drivers::transport::pci::bus::Command::BUS_MASTER,
        );
        let transport = PciTransport::new::<KernelHal, PortCam>(&mut root, df).map_err(|_| BlkError::Transport)?;
        if transport.device_type() != DeviceType::Block {
            return Err(BlkError::NoDevice);
        }
        let dev = VirtIOBlk::<KernelHal, _>::new(transport).map_err(|e| {
            log::warn!("virtio-blk: {e}");
            BlkError::Device
        })?;
        idt::set_irq_handler(idt::Irq::Msi(BLK_MSI), on_blk_irq);
        let msix = match enable_msix(function.addr) {
            Ok(()) => true,
            Err(why) => {
                log::warn!("virtio-blk: {why}; completions are polled");
                false
            }
        };
        Ok(VirtioBlk {
            dev,
            msix,
            inflight: BTreeMap::new(),
            finished: BTreeMap::new(),
            next_id: 1,
        })
    }

    /// Capacity in sectors.
    pub fn sectors(&self) -> u64 {
        self.dev.capacity()
    }

    pub fn read_only(&self) -> bool {
        self.dev.readonly()
    }

    /// Completions are signalled by MSI-X (else polled).
    pub fn has_msix(&self) -> bool {
        self.msix
    }

    fn check(&self, sector: u64, len: usize) -> Result<(), BlkError> {
        let count = (len / SECTOR) as u64;
        if len == 0 || !len.is_multiple_of(SECTOR) || sector.checked_add(count).is_none_or(|end| end > self.sectors()) {
            return Err(BlkError::BadRange);
        }
        Ok(())
    }

    /// Reads `len` bytes (whole sectors) from `sector` into `buf` from byte
    /// `at` on.
    pub fn read(&mut self, sector: u64, buf: &mut DmaBuf, at: usize, len: usize) -> Result<(), BlkError> {
        if at.checked_add(len).is_none_or(|end| end > buf.len()) {
            return Err(BlkError::BadRange);
        }
        self.check(sector, len)?;
        self.dev
            .read_blocks(sector as usize, &mut buf.as_mut_slice()[at..at + len])
            .map_err(|_| BlkError::Io)
    }

    /// Writes `len` bytes (whole sectors) of `buf`, from byte `at`, at
    /// `sector`.
    pub fn write(&mut self, sector: u64, buf: &DmaBuf, at: usize, len: usize) -> Result<(), BlkError> {
        if self.read_only() {
            return Err(BlkError::ReadOnly);
        }
        if at.checked_add(len).is_none_or(|end| end > buf.len()) {
            return Err(BlkError::BadRange);
        }
        self.check(sector, len)?;
        self.dev
            .write_blocks(sector as usize, &buf.as_slice()[at..at + len])
            .map_err(|_| BlkError::Io)
    }

    /// Everything written so far is on stable storage when this returns.
    pub fn flush(&mut self) -> Result<(), BlkError> {
        self.dev.flush().map_err(|_| BlkError::Io)
    }

    /// Queues a read of `len` bytes (whole sectors) from `sector` into
    /// `buf` and returns its id at once; [`VirtioBlk::take`] gives the
    /// buffer back once [`VirtioBlk::reap`] has seen it finish. `Err` with
    /// the buffer back when the device's queue is full (reap and try again)
    /// or the request is bad.
    pub fn submit_read(&mut self, sector: u64, mut buf: DmaBuf, len: usize) -> Result<u64, (BlkError, DmaBuf)> {
        if len > buf.len() {
            return Err((BlkError::BadRange, buf));
        }
        if let Err(e) = self.check(sector, len) {
            return Err((e, buf));
        }
        let mut header: Box<Header> = Box::default();
        let mut status: Box<BlkResp> = Box::default();
        // SAFETY: the header, buffer and status move into `inflight` below
        // (boxes and DMA frames: their addresses do not change) and are not
        // touched until `reap` completes the request.
        let token = match unsafe {
            self.dev.read_blocks_nb(
                sector as usize,
                &mut header.0,
                &mut buf.as_mut_slice()[..len],
                &mut status,
            )
        } {
            Ok(token) => token,
            Err(virtio_drivers::Error::QueueFull) => return Err((BlkError::QueueFull, buf)),
            Err(_) => return Err((BlkError::Io, buf)),
        };
        let id = self.next_id;
        self.next_id += 1;
        self.inflight.insert(
            token,
            Queued {
                id,
                header,
                status,
                buf,
                len,
            },
        );
        Ok(id)
    }

    /// Completes every queued read the device has finished.
    pub fn reap(&mut self) {
        while let Some(token) = self.dev.peek_used() {
            let Some(mut q) = self.inflight.remove(&token) else {
                // Not a queued read (a stream's, which reaps its own).
                return;
            };
            let len = q.len;
            // SAFETY: the same header, buffer and status as were submitted
            // with this token.
            let r = unsafe {
                self.dev
                    .complete_read_blocks(token, &q.header.0, &mut q.buf.as_mut_slice()[..len], &mut q.status)
            };
            let ok = r.is_ok() && q.status.status() == RespStatus::OK;
            self.finished
                .insert(q.id, if ok { Ok(q.buf) } else { Err(BlkError::Io) });
        }
    }

    /// The result of queued read `id`, once reaped (then forgotten).
    pub fn take(&mut self, id: u64) -> Option<Result<DmaBuf, BlkError>> {
        self.finished.remove(&id)
    }

    /// Reads `bytes` from sector `start` with requests of `req_bytes`
    /// (whole sectors), up to `depth` in flight, DMA into buffers of the
    /// stream; `sink` gets each request's bytes (with their byte offset
    /// from `start`) in order. Polls for completions.
    /// `wait(seen)` is called when nothing is done: it may sleep until
    /// [`blk_irqs`] moves past `seen` (the caller knows whether it can
    /// sleep; it must return at once if the count moved already).
    pub fn read_stream(
        &mut self,
        start: u64,
        bytes: u64,
        req_bytes: usize,
        depth: usize,
        mut sink: impl FnMut(u64, &[u8]),
        wait: &mut dyn FnMut(u64),
    ) -> Result<(), BlkError> {
        if req_bytes == 0 || !req_bytes.is_multiple_of(SECTOR) || depth == 0 || !bytes.is_multiple_of(SECTOR as u64) {
            return Err(BlkError::BadRange);
        }
        self.check(start, SECTOR)?;
        if start + bytes / SECTOR as u64 > self.sectors() {
            return Err(BlkError::BadRange);
        }
        // A stream reaps its own completions: not while queued reads are
        // in flight (their tokens would be taken for the stream's).
        if !self.inflight.is_empty() {
            return Err(BlkError::QueueFull);
        }
        let mut slots: Vec<Slot> = Vec::new();
        for _ in 0..depth {
            slots.push(Slot {
                header: Box::default(),
                status: Box::default(),
                buf: DmaBuf::for_device_writes(req_bytes).ok_or(BlkError::Device)?,
                token: None,
                done: false,
                offset: 0,
                len: 0,
            });
        }
        let (mut next, mut delivered, mut head) = (0u64, 0u64, 0usize);
        let result = loop {
            // Read before looking for completions: an interrupt after the
            // look moves it, and the wait below returns at once.
            let seen = blk_irqs();
            // Submit into free slots, in order from the head.
            let mut failed = false;
            for k in 0..depth {
                let i = (head + k) % depth;
                let slot = &mut slots[i];
                if slot.token.is_some() || slot.done || next >= bytes {
                    continue;
                }
                let len = (bytes - next).min(req_bytes as u64) as usize;
                let sector = start + next / SECTOR as u64;
                // SAFETY: the header, buffer and status are the slot's own,
                // heap- or DMA-allocated (they do not move), and not touched
                // again until `complete_read_blocks` below returns them.
                match unsafe {
                    self.dev.read_blocks_nb(
                        sector as usize,
                        &mut slot.header.0,
                        &mut slot.buf.as_mut_slice()[..len],
                        &mut slot.status,
                    )
                } {
                    Ok(token) => {
                        slot.token = Some(token);
                        slot.offset = next;
                        slot.len = len;
                        next += len as u64;
                    }
                    // No descriptors free: wait for completions.
                    Err(virtio_drivers::Error::QueueFull) => break,
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            if failed {
                break Err(BlkError::Io);
            }
            // Completions.
            let used = self.dev.peek_used();
            if used.is_none() {
                if self.msix {
                    wait(seen);
                } else {
                    core::hint::spin_loop();
                }
                continue;
            }
            if let Some(token) = used {
                let Some(slot) = slots.iter_mut().find(|s| s.token == Some(token)) else {
                    break Err(BlkError::Device);
                };
                if !complete(&mut self.dev, slot, token) {
                    break Err(BlkError::Io);
                }
                slot.done = true;
            }
            // Hand over, in order.
            while slots[head].done {
                let slot = &mut slots[head];
                sink(slot.offset, &slot.buf.as_slice()[..slot.len]);
                delivered += slot.len as u64;
                slot.done = false;
                head = (head + 1) % depth;
            }
            if delivered >= bytes {
                break Ok(());
            }
        };
        // On an error, wait for what is in flight before the buffers go;
        // a device that answers with a token not ours keeps them (leaked,
        // never reused while it may still write them).
        while slots.iter().any(|s| s.token.is_some()) {
            if let Some(token) = self.dev.peek_used() {
                let Some(slot) = slots.iter_mut().find(|s| s.token == Some(token)) else {
                    core::mem::forget(slots);
                    return Err(BlkError::Device);
                };
                complete(&mut self.dev, slot, token);
            }
        }
        result
    }
}

/// Takes a finished read back from the device; whether it succeeded.
fn complete(dev: &mut VirtIOBlk<KernelHal, PciTransport>, slot: &mut Slot, token: u16) -> bool {
    let len = slot.len;
    // SAFETY: the same header, buffer and status as were submitted with
    // this token (the slot keeps them until now).
    let r = unsafe {
        dev.complete_read_blocks(
            token,
            &slot.header.0,
            &mut slot.buf.as_mut_slice()[..len],
            &mut slot.status,
        )
    };
    slot.token = None;
    r.is_ok() && slot.status.status() == RespStatus::OK
}
