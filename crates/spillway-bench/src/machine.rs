//! A description of the machine and of the file system under the bench directory, read from
//! `/proc` and `/sys`, so that every table says where its numbers come from.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: String,
    /// Logical CPUs this process may run on.
    pub cores: usize,
    pub ram_bytes: u64,
    pub kernel: String,
    /// File system type of the bench directory, such as `ext4`.
    pub fs_type: String,
    /// The block device under it and what the kernel knows about it, such as
    /// `vda (virtio_blk, non-rotational)`.
    pub disk: String,
}

impl Machine {
    /// Describes this machine and the file system holding `dir`.
    pub fn describe(dir: &Path) -> Machine {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".to_string());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let ram_bytes = fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
                line.split_whitespace().nth(1)?.parse::<u64>().ok()
            })
            .map_or(0, |kib| kib * 1024);
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| format!("Linux {}", s.trim()))
            .unwrap_or_else(|_| std::env::consts::OS.to_string());
        let (fs_type, device) = mount_of(dir).unwrap_or_default();
        Machine {
            cpu_model,
            cores,
            ram_bytes,
            kernel,
            fs_type: if fs_type.is_empty() {
                "unknown".to_string()
            } else {
                fs_type
            },
            disk: describe_device(&device),
        }
    }

    /// One line for a report.
    pub fn summary(&self) -> String {
        format!(
            "{} cores ({}), {:.1} GiB RAM, {}; bench directory on {} on {}",
            self.cores,
            self.cpu_model,
            self.ram_bytes as f64 / f64::from(1u32 << 30),
            self.kernel,
            self.fs_type,
            self.disk,
        )
    }
}

/// File system type and device of the mount holding `dir` (the longest matching mount point).
fn mount_of(dir: &Path) -> Option<(String, String)> {
    let dir = fs::canonicalize(dir).ok()?;
    let mounts = fs::read_to_string("/proc/self/mounts").ok()?;
    let mut best: Option<(usize, String, String)> = None;
    for line in mounts.lines() {
        let mut f = line.split_whitespace();
        let (Some(dev), Some(point), Some(ty)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let point = PathBuf::from(point.replace("\\040", " "));
        if dir.starts_with(&point) {
            let depth = point.components().count();
            if best.as_ref().is_none_or(|(d, _, _)| depth >= *d) {
                best = Some((depth, ty.to_string(), dev.to_string()));
            }
        }
    }
    best.map(|(_, ty, dev)| (ty, dev))
}

/// `vda (virtio_blk, non-rotational)` from a device such as the one in `/proc/self/mounts`;
/// only the device's short name is shown.
fn describe_device(device: &str) -> String {
    let Some(name) = device.strip_prefix("/dev/") else {
        return if device.is_empty() {
            "an unknown device".to_string()
        } else {
            format!("{device} (not a block device)")
        };
    };
    // A partition's queue and driver are its disk's.
    let sys = Path::new("/sys/class/block").join(name);
    let disk_dir = if sys.join("partition").exists() {
        sys.join("..")
    } else {
        sys.clone()
    };
    let mut facts = Vec::new();
    if let Some(driver) = fs::read_link(disk_dir.join("device/driver"))
        .ok()
        .or_else(|| fs::read_link(disk_dir.join("device/device/driver")).ok())
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
    {
        facts.push(driver);
    }
    if let Ok(model) = fs::read_to_string(disk_dir.join("device/model"))
        && !model.trim().is_empty()
    {
        facts.push(model.trim().to_string());
    }
    if let Ok(rot) = fs::read_to_string(disk_dir.join("queue/rotational")) {
        facts.push(
            if rot.trim() == "1" {
                "reported rotational"
            } else {
                "non-rotational"
            }
            .to_string(),
        );
    }
    if facts.is_empty() {
        name.to_string()
    } else {
        format!("{name} ({})", facts.join(", "))
    }
}
