//! Locating QEMU and OVMF, and the QEMU command lines.
//!
//! Every run uses TCG (`-accel tcg`: the KVM device on these machines is a
//! slow software module), q35, `-no-reboot`, and the `isa-debug-exit`
//! device; the kernel command line travels through fw_cfg.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use aether_abi::boot::FW_CFG_CMDLINE;
use aether_abi::ktest::QemuExitCode;

use crate::RunnerError;

/// The disk images and kernel ELF built by the root package.
#[derive(Clone, Debug)]
pub struct Images {
    pub bios: PathBuf,
    pub uefi: PathBuf,
    pub kernel_elf: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firmware {
    Bios,
    Uefi,
}

/// Where the serial port goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Serial {
    /// The terminal: raw mode, Ctrl-C goes to the guest, Ctrl-A X quits.
    Terminal,
    /// Pipes (stdin -> guest, guest -> stdout), for tests and benchmarks.
    Piped,
}

/// One QEMU run.
#[derive(Clone, Debug)]
pub struct Launch {
    pub firmware: Firmware,
    pub cpu: Cpu,
    /// More QEMU arguments (devices for experiments and benchmarks).
    pub extra: Vec<String>,
    pub serial: Serial,
    /// The kernel command line (`aether_abi::boot::BootArgs` as text).
    pub cmdline: String,
}

/// The CPU model. `qemu64` is the benchmark configuration (shared with the
/// Linux baseline); `max` adds SMEP, SMAP and more, to test that the kernel
/// uses them where present.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Cpu {
    #[default]
    Qemu64,
    Max,
}

impl Cpu {
    fn model(self) -> &'static str {
        match self {
            Cpu::Qemu64 => "qemu64",
            Cpu::Max => "max",
        }
    }
}

/// QEMU arguments for the link's transport (docs/jobs.md): an
/// `ivshmem-plain` device whose shared memory is the file `mem_path` (in
/// `/dev/shm`), `size_kib` KiB long (a power of two).
pub fn link_device_args(mem_path: &Path, size_kib: u64) -> Vec<String> {
    vec![
        "-object".into(),
        format!(
            "memory-backend-file,id=link,share=on,mem-path={},size={size_kib}K",
            mem_path.display()
        ),
        "-device".into(),
        "ivshmem-plain,memdev=link".into(),
    ]
}

/// QEMU arguments for a disk: the raw image at `path` as a modern
/// virtio-blk device (`disable-legacy=on`, docs/storage.md), written back
/// to the file (`cache=writeback`, as the Linux baseline), or read-only.
pub fn blk_device_args(path: &Path, read_only: bool) -> Vec<String> {
    let ro = if read_only { ",readonly=on" } else { "" };
    vec![
        "-drive".into(),
        format!("file={},format=raw,if=none,id=d0,cache=writeback{ro}", path.display()),
        "-device".into(),
        "virtio-blk-pci,drive=d0,disable-legacy=on".into(),
    ]
}

const OVMF_CANDIDATES: &[&str] = &["/usr/share/ovmf/OVMF.fd", "/usr/share/qemu/OVMF.fd"];

/// OVMF firmware (`$AETHER_OVMF`, or Debian's package location).
pub fn find_ovmf() -> Result<PathBuf, RunnerError> {
    let mut looked = Vec::new();
    let env = env::var_os("AETHER_OVMF").map(PathBuf::from);
    for p in env.into_iter().chain(OVMF_CANDIDATES.iter().map(PathBuf::from)) {
        if p.is_file() {
            return Ok(p);
        }
        looked.push(p);
    }
    Err(RunnerError::OvmfMissing(looked))
}

fn find_in_path(name: &str, path: Option<OsString>) -> Option<PathBuf> {
    env::split_paths(&path?).map(|dir| dir.join(name)).find(|p| p.is_file())
}

pub struct Qemu {
    program: PathBuf,
}

impl Qemu {
    /// `$AETHER_QEMU`, else `qemu-system-x86_64` on PATH.
    pub fn locate() -> Result<Self, RunnerError> {
        Self::locate_in(env::var_os("AETHER_QEMU"), env::var_os("PATH"))
    }

    fn locate_in(explicit: Option<OsString>, path: Option<OsString>) -> Result<Self, RunnerError> {
        match explicit.map(PathBuf::from) {
            Some(p) if p.is_file() => Ok(Qemu { program: p }),
            Some(p) => Err(RunnerError::QemuNotAt(p)),
            None => find_in_path("qemu-system-x86_64", path)
                .map(|program| Qemu { program })
                .ok_or(RunnerError::QemuMissing),
        }
    }

    pub fn program(&self) -> &Path {
        &self.program
    }

    /// The machine shared by every configuration: the same flags as the
    /// Linux baseline in shared/bench/linux-guest (TOOLCHAIN.md).
    fn machine(&self, cpu: Cpu) -> Command {
        let mut c = Command::new(&self.program);
        c.args([
            "-machine",
            "q35",
            "-accel",
            "tcg",
            "-cpu",
            cpu.model(),
            "-smp",
            "1",
            "-m",
            "512M",
        ]);
        c.args(["-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"]);
        // The BIOS bootloader sets a VESA mode and hangs without a VGA BIOS
        // (-nodefaults removes the VGA card); nothing is displayed.
        c.args(["-vga", "std"]);
        c
    }

    pub fn command(&self, images: &Images, launch: &Launch) -> Result<Command, RunnerError> {
        let mut c = self.machine(launch.cpu);
        match launch.serial {
            Serial::Terminal => {
                c.args(["-chardev", "stdio,id=con,mux=on,signal=off", "-serial", "chardev:con"]);
                c.args(["-mon", "chardev=con,mode=readline"]);
            }
            Serial::Piped => {
                c.args(["-serial", "stdio"]);
            }
        }
        c.args([
            "-device",
            &format!("isa-debug-exit,iobase={:#x},iosize=0x04", QemuExitCode::PORT),
        ]);
        c.arg("-fw_cfg").arg(format!(
            "name={FW_CFG_CMDLINE},string={}",
            fw_cfg_escape(&launch.cmdline)
        ));
        let image = match launch.firmware {
            Firmware::Bios => &images.bios,
            Firmware::Uefi => {
                c.arg("-bios").arg(find_ovmf()?);
                &images.uefi
            }
        };
        // snapshot=on: the image is never written, and parallel runs do not
        // fight over QEMU's image lock.
        let mut drive = OsString::from("format=raw,snapshot=on,file=");
        drive.push(image);
        c.arg("-drive").arg(drive);
        c.args(&launch.extra);
        Ok(c)
    }
}

/// QEMU option values separate on commas; a literal comma is doubled.
fn fw_cfg_escape(s: &str) -> String {
    s.replace(',', ",,")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_qemu_says_what_to_install() {
        let empty = std::env::temp_dir().join("aether-runner-empty-path");
        std::fs::create_dir_all(&empty).unwrap();
        let err = Qemu::locate_in(None, Some(empty.into_os_string()))
            .err()
            .expect("must fail");
        let msg = err.to_string();
        assert!(msg.contains("qemu-system-x86_64 was not found"), "{msg}");
        assert!(msg.contains("apt-get install -y qemu-system-x86"), "{msg}");
        let err = Qemu::locate_in(Some("/nonexistent/qemu".into()), None)
            .err()
            .expect("must fail");
        assert!(err.to_string().contains("AETHER_QEMU is /nonexistent/qemu"), "{err}");
    }

    #[test]
    fn command_line_has_tcg_no_reboot_exit_device_and_cmdline() {
        let q = Qemu {
            program: "/bin/true".into(),
        };
        let images = Images {
            bios: "/x/bios.img".into(),
            uefi: "/x/uefi.img".into(),
            kernel_elf: "/x/k".into(),
        };
        let launch = Launch {
            cpu: Cpu::Qemu64,
            extra: Vec::new(),
            firmware: Firmware::Bios,
            serial: Serial::Piped,
            cmdline: "mode=test tests=a,b".into(),
        };
        let c = q.command(&images, &launch).unwrap();
        let args: Vec<String> = c.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        let joined = args.join(" ");
        for needle in [
            "-accel tcg",
            "-machine q35",
            "-no-reboot",
            "-serial stdio",
            "isa-debug-exit,iobase=0xf4",
            "name=opt/aetheros/cmdline,string=mode=test tests=a,,b",
            "format=raw,snapshot=on,file=/x/bios.img",
        ] {
            assert!(joined.contains(needle), "missing {needle:?} in {joined}");
        }
        assert!(!joined.contains("kvm"), "{joined}");
    }
}
