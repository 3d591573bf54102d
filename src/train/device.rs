//! Where models train and run: the CPU (burn's ndarray backend, always built) or a
//! CUDA GPU (burn's cuda backend, cargo feature `cuda`, on by default).
//!
//! CUDA is found at run time. burn's cuda backend loads the driver
//! (`libcuda.so.1`) and NVRTC (which compiles its kernels) dynamically, so one
//! binary runs on machines with and without a GPU. Before handing work to it,
//! [`resolve`] probes both libraries itself, so a missing driver, a machine
//! without a device or a driver without the toolkit's NVRTC becomes a sentence,
//! not a panic deep inside the backend:
//! - `device = "cpu"`: the CPU;
//! - `device = "cuda"`: CUDA device 0 (honouring `CUDA_VISIBLE_DEVICES`), or an
//!   error with the probe's reason;
//! - `device = "auto"`: CUDA when the probe finds a usable device, else the CPU;
//!   the resolution says which and why.

use serde::{Deserialize, Serialize};

/// The `device` key of the `train` sink and the `infer` stage.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Deserialize,
    Serialize,
    clap::ValueEnum,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    #[default]
    Cpu,
    Cuda,
    Auto,
}

impl DeviceChoice {
    /// The name in pipeline files.
    pub fn name(self) -> &'static str {
        match self {
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Cuda => "cuda",
            DeviceChoice::Auto => "auto",
        }
    }
}

/// A resolved device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Cpu,
    /// CUDA device by ordinal.
    Cuda(usize),
}

/// The result of [`resolve`]: the device and a line for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub device: Device,
    /// E.g. `CUDA device 0 (NVIDIA H100 80GB HBM3)` or
    /// `CPU (auto: no CUDA driver: libcuda.so.1 not found)`.
    pub description: String,
}

/// What the CUDA probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CudaInfo {
    pub devices: usize,
    /// Name of device 0.
    pub name: String,
}

/// Resolve a [`DeviceChoice`] on this machine.
pub fn resolve(choice: DeviceChoice) -> Result<Resolved, String> {
    let cpu = |why: &str| Resolved {
        device: Device::Cpu,
        description: if why.is_empty() {
            "CPU".to_string()
        } else {
            format!("CPU ({why})")
        },
    };
    match choice {
        DeviceChoice::Cpu => Ok(cpu("")),
        DeviceChoice::Cuda => match probe_cuda() {
            Ok(info) => Ok(Resolved {
                device: Device::Cuda(0),
                description: format!("CUDA device 0 ({})", info.name),
            }),
            Err(e) => Err(format!("device = \"cuda\": {e}")),
        },
        DeviceChoice::Auto => Ok(match probe_cuda() {
            Ok(info) => Resolved {
                device: Device::Cuda(0),
                description: format!("CUDA device 0 ({}; auto)", info.name),
            },
            Err(e) => cpu(&format!("auto: {e}")),
        }),
    }
}

/// Whether this binary has the CUDA backend compiled in.
pub const CUDA_BUILT: bool = cfg!(feature = "cuda");

/// Probe for a usable CUDA device (cached: the answer does not change while the
/// process runs).
pub fn probe_cuda() -> Result<CudaInfo, String> {
    static PROBE: std::sync::OnceLock<Result<CudaInfo, String>> = std::sync::OnceLock::new();
    PROBE
        .get_or_init(|| {
            if !CUDA_BUILT {
                return Err(
                    "this build has no CUDA backend (built without the `cuda` cargo feature)"
                        .to_string(),
                );
            }
            probe_driver()
        })
        .clone()
}

/// Names NVRTC goes by (the ones burn's loader, cudarc, tries on Linux).
const NVRTC_NAMES: [&std::ffi::CStr; 6] = [
    c"libnvrtc.so",
    c"libnvrtc.so.13",
    c"libnvrtc.so.12",
    c"libnvrtc.so.11",
    c"libnvrtc.so.10",
    c"libnvrtc.so.1",
];

fn dlopen(name: &std::ffi::CStr) -> *mut libc::c_void {
    // SAFETY: dlopen with a NUL-terminated name; a null result is handled by the caller.
    unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) }
}

/// `cuInit`, `cuDeviceGetCount` and `cuDeviceGetName` through the driver library.
fn probe_driver() -> Result<CudaInfo, String> {
    type Init = unsafe extern "C" fn(u32) -> i32;
    type Count = unsafe extern "C" fn(*mut i32) -> i32;
    type Get = unsafe extern "C" fn(*mut i32, i32) -> i32;
    type Name = unsafe extern "C" fn(*mut libc::c_char, i32, i32) -> i32;
    let mut lib = dlopen(c"libcuda.so.1");
    if lib.is_null() {
        lib = dlopen(c"libcuda.so");
    }
    if lib.is_null() {
        return Err("no CUDA driver (libcuda.so.1 not found)".to_string());
    }
    let sym = |name: &std::ffi::CStr| {
        // SAFETY: `lib` is a live handle (never closed); the name is NUL-terminated.
        let p = unsafe { libc::dlsym(lib, name.as_ptr()) };
        if p.is_null() {
            Err(format!("the CUDA driver lacks {}", name.to_string_lossy()))
        } else {
            Ok(p)
        }
    };
    let (init, count, get, name) = (
        sym(c"cuInit")?,
        sym(c"cuDeviceGetCount")?,
        sym(c"cuDeviceGet")?,
        sym(c"cuDeviceGetName")?,
    );
    // SAFETY: the symbols are the CUDA driver API functions of these signatures
    // (CUresult = int, CUdevice = int), called with valid pointers.
    unsafe {
        let init: Init = std::mem::transmute::<*mut libc::c_void, Init>(init);
        let count: Count = std::mem::transmute::<*mut libc::c_void, Count>(count);
        let get: Get = std::mem::transmute::<*mut libc::c_void, Get>(get);
        let name: Name = std::mem::transmute::<*mut libc::c_void, Name>(name);
        match init(0) {
            0 => {}
            100 => return Err("no CUDA device (CUDA_ERROR_NO_DEVICE)".to_string()),
            35 => {
                return Err(
                    "the CUDA driver is older than the runtime (CUDA_ERROR_INSUFFICIENT_DRIVER)"
                        .to_string(),
                );
            }
            e => return Err(format!("cuInit failed (CUDA error {e})")),
        }
        let mut n = 0i32;
        let r = count(&mut n);
        if r != 0 || n <= 0 {
            return Err("the CUDA driver reports no device".to_string());
        }
        let mut dev = 0i32;
        let mut buf = [0 as libc::c_char; 256];
        let label = if get(&mut dev, 0) == 0 && name(buf.as_mut_ptr(), 255, dev) == 0 {
            std::ffi::CStr::from_ptr(buf.as_ptr())
                .to_string_lossy()
                .into_owned()
        } else {
            "unnamed".to_string()
        };
        if NVRTC_NAMES.iter().all(|n| dlopen(n).is_null()) {
            return Err(format!(
                "found {label} but not NVRTC (libnvrtc.so from the CUDA toolkit), which burn needs to compile its kernels"
            ));
        }
        Ok(CudaInfo {
            devices: n as usize,
            name: label,
        })
    }
}

/// Run `f`, turning a panic of the GPU backend into an error (cubecl reports
/// some device failures — out of memory, a kernel that does not compile — by
/// panicking).
pub fn guard<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".to_string());
        format!("{what} failed on the GPU: {msg}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_always_available() {
        let r = resolve(DeviceChoice::Cpu).unwrap();
        assert_eq!(r.device, Device::Cpu);
        assert_eq!(r.description, "CPU");
    }

    #[test]
    fn auto_and_cuda_agree_with_the_probe() {
        let auto = resolve(DeviceChoice::Auto).unwrap();
        match probe_cuda() {
            Ok(_) => {
                assert_eq!(auto.device, Device::Cuda(0));
                assert!(resolve(DeviceChoice::Cuda).is_ok());
            }
            Err(why) => {
                assert_eq!(auto.device, Device::Cpu);
                assert!(auto.description.contains(&why), "{}", auto.description);
                let e = resolve(DeviceChoice::Cuda).unwrap_err();
                assert!(e.contains(&why), "{e}");
            }
        }
    }

    #[test]
    fn guard_turns_a_panic_into_an_error() {
        let e = guard("training", || -> u32 { panic!("out of memory") }).unwrap_err();
        assert_eq!(e, "training failed on the GPU: out of memory");
        assert_eq!(guard("x", || 3).unwrap(), 3);
    }
}
