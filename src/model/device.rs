//! `--device` and `--dtype`: parsed into closed enums, resolved to candle types at run time.
//!
//! `Device::cuda_if_available` only asks whether candle was *compiled* with CUDA, so a CUDA
//! build on a machine without a GPU errors instead of falling back (DESIGN.md §6.3). `auto`
//! here tries to open the GPU and falls back to the CPU with a note for the caller to show;
//! library code does not print.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Context};
use candle_core::{DType, Device};

/// What the user asked for with `--device`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The first CUDA or Metal device this build can open, else the CPU.
    #[default]
    Auto,
    Cpu,
    /// CUDA device ordinal (`cuda` is `cuda:0`).
    Cuda(usize),
    /// Metal device ordinal (`metal` is `metal:0`).
    Metal(usize),
}

impl FromStr for DeviceChoice {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<Self> {
        let (kind, ordinal) = match text.split_once(':') {
            Some((kind, n)) => {
                let n = n
                    .parse()
                    .ok()
                    .filter(|_| n.bytes().all(|b| b.is_ascii_digit()));
                let Some(n) = n else {
                    bail!("invalid device `{text}`: the ordinal after `:` must be a number");
                };
                (kind, Some(n))
            }
            None => (text, None),
        };
        match (kind, ordinal) {
            ("auto", None) => Ok(Self::Auto),
            ("cpu", None) => Ok(Self::Cpu),
            ("cuda", n) => Ok(Self::Cuda(n.unwrap_or(0))),
            ("metal", n) => Ok(Self::Metal(n.unwrap_or(0))),
            _ => {
                bail!("invalid device `{text}`; expected auto, cpu, cuda, cuda:N, metal or metal:N")
            }
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
            Self::Metal(n) => write!(f, "metal:{n}"),
        }
    }
}

/// The device to run on, and why it is not the one asked for (when `auto` fell back).
#[derive(Debug, Clone)]
pub struct ResolvedDevice {
    pub device: Device,
    pub note: Option<String>,
}

/// Opens the chosen device. An explicit GPU that cannot be opened is an error; `auto` falls
/// back to the CPU with a note.
pub fn resolve_device(choice: DeviceChoice) -> anyhow::Result<ResolvedDevice> {
    let plain = |device| ResolvedDevice { device, note: None };
    match choice {
        DeviceChoice::Cpu => Ok(plain(Device::Cpu)),
        DeviceChoice::Cuda(n) => open_cuda(n).map(plain),
        DeviceChoice::Metal(n) => open_metal(n).map(plain),
        DeviceChoice::Auto => Ok(auto_device()),
    }
}

fn auto_device() -> ResolvedDevice {
    let mut reasons = Vec::new();
    if cfg!(feature = "cuda") {
        match open_cuda(0) {
            Ok(device) => return ResolvedDevice { device, note: None },
            Err(e) => reasons.push(format!("{e:#}")),
        }
    }
    if cfg!(feature = "metal") {
        match open_metal(0) {
            Ok(device) => return ResolvedDevice { device, note: None },
            Err(e) => reasons.push(format!("{e:#}")),
        }
    }
    let note = if reasons.is_empty() {
        "this build has no GPU support (build with --features cuda or metal); running on the CPU"
            .to_string()
    } else {
        format!("no usable GPU ({}); running on the CPU", reasons.join("; "))
    };
    ResolvedDevice {
        device: Device::Cpu,
        note: Some(note),
    }
}

fn open_cuda(ordinal: usize) -> anyhow::Result<Device> {
    if !cfg!(feature = "cuda") {
        bail!("this saectl was built without CUDA support; rebuild with `--features cuda` or use --device cpu");
    }
    Device::new_cuda(ordinal).with_context(|| format!("failed to open CUDA device {ordinal}"))
}

fn open_metal(ordinal: usize) -> anyhow::Result<Device> {
    if !cfg!(feature = "metal") {
        bail!("this saectl was built without Metal support; rebuild with `--features metal` or use --device cpu");
    }
    Device::new_metal(ordinal).with_context(|| format!("failed to open Metal device {ordinal}"))
}

/// What the user asked for with `--dtype`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DTypeChoice {
    F32,
    Bf16,
    F16,
}

impl FromStr for DTypeChoice {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<Self> {
        match text {
            "f32" | "float32" => Ok(Self::F32),
            "bf16" | "bfloat16" => Ok(Self::Bf16),
            "f16" | "float16" => Ok(Self::F16),
            _ => bail!("invalid dtype `{text}`; expected f32, bf16 or f16"),
        }
    }
}

impl fmt::Display for DTypeChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
            Self::F16 => "f16",
        })
    }
}

impl From<DTypeChoice> for DType {
    fn from(choice: DTypeChoice) -> Self {
        match choice {
            DTypeChoice::F32 => DType::F32,
            DTypeChoice::Bf16 => DType::BF16,
            DTypeChoice::F16 => DType::F16,
        }
    }
}

/// The model dtype: the one asked for, else bf16 on a GPU and f32 on the CPU.
pub fn resolve_dtype(choice: Option<DTypeChoice>, device: &Device) -> DType {
    match choice {
        Some(choice) => choice.into(),
        None if device.is_cpu() => DType::F32,
        None => DType::BF16,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_devices() {
        for (text, choice) in [
            ("auto", DeviceChoice::Auto),
            ("cpu", DeviceChoice::Cpu),
            ("cuda", DeviceChoice::Cuda(0)),
            ("cuda:3", DeviceChoice::Cuda(3)),
            ("metal", DeviceChoice::Metal(0)),
        ] {
            assert_eq!(text.parse::<DeviceChoice>().unwrap(), choice);
        }
        assert_eq!(DeviceChoice::Cuda(1).to_string(), "cuda:1");
        for bad in ["gpu", "cuda:", "cuda:x", "cuda:-1", "cpu:0", "CUDA"] {
            let err = bad.parse::<DeviceChoice>().unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn auto_decides_at_run_time() {
        let resolved = resolve_device(DeviceChoice::Auto).unwrap();
        if !cfg!(any(feature = "cuda", feature = "metal")) {
            assert!(resolved.device.is_cpu());
            assert!(resolved.note.unwrap().contains("no GPU support"));
        }
    }

    #[test]
    fn an_explicit_gpu_without_support_is_an_error() {
        if !cfg!(feature = "cuda") {
            let err = resolve_device(DeviceChoice::Cuda(0))
                .unwrap_err()
                .to_string();
            assert!(err.contains("without CUDA support"), "{err}");
        }
    }

    #[test]
    fn dtype_defaults_follow_the_device() {
        assert_eq!(resolve_dtype(None, &Device::Cpu), DType::F32);
        assert_eq!(
            resolve_dtype(Some(DTypeChoice::Bf16), &Device::Cpu),
            DType::BF16
        );
        assert!("f64".parse::<DTypeChoice>().is_err());
    }
}
