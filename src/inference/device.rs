//! Which device inference runs on: the operator's setting ("auto", "cpu", "cuda", "cuda:N"),
//! how many CPU threads libtorch uses, and how a libtorch error is told apart as out-of-memory.

use super::InferenceError;
use tch::Device;

/// The device a setting names: "auto" is CUDA device 0 when CUDA is available, else the CPU.
pub fn select_device(setting: &str) -> Result<Device, InferenceError> {
    let setting_error = |reason: String| InferenceError::Device {
        setting: setting.to_string(),
        reason,
    };
    match setting.trim().to_ascii_lowercase().as_str() {
        "auto" => Ok(if tch::Cuda::is_available() {
            Device::Cuda(0)
        } else {
            Device::Cpu
        }),
        "cpu" => Ok(Device::Cpu),
        "cuda" => cuda_device(0).map_err(setting_error),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(index)) => cuda_device(index).map_err(setting_error),
            _ => Err(setting_error("use auto, cpu, cuda or cuda:N".to_string())),
        },
    }
}

fn cuda_device(index: usize) -> Result<Device, String> {
    if !tch::Cuda::is_available() {
        return Err(
            "CUDA is not available on this machine (or libtorch was built without it)".into(),
        );
    }
    let count = usize::try_from(tch::Cuda::device_count()).unwrap_or(0);
    if index >= count {
        return Err(format!("there are {count} CUDA device(s), numbered from 0"));
    }
    Ok(Device::Cuda(index))
}

/// Sets libtorch's intra-op thread count; `None` leaves libtorch's default (one per core).
pub fn set_threads(threads: Option<usize>) {
    if let Some(threads) = threads.filter(|&n| n > 0) {
        tch::set_num_threads(i32::try_from(threads).unwrap_or(i32::MAX));
    }
}

/// A line for the start-up banner: "cpu (2 threads)" or "cuda:0 (1 of 2 CUDA devices)".
pub fn describe(device: Device) -> String {
    match device {
        Device::Cpu => format!("cpu ({} threads)", tch::get_num_threads()),
        Device::Cuda(index) => {
            format!(
                "cuda:{index} ({} of {} CUDA devices)",
                index + 1,
                tch::Cuda::device_count()
            )
        }
        other => format!("{other:?}"),
    }
}

/// Whether a device supports fast half precision for our models: CUDA does, the CPU does not.
pub fn use_half(device: Device) -> bool {
    device.is_cuda()
}

/// Turns a libtorch error into ours, telling out-of-memory apart so the job can be retried.
pub fn torch_error(err: tch::TchError) -> InferenceError {
    let message = err.to_string();
    if message.contains("out of memory") || message.contains("CUDA error: out of memory") {
        InferenceError::OutOfMemory(message)
    } else {
        InferenceError::Torch(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_name_devices() {
        assert_eq!(select_device("cpu").unwrap(), Device::Cpu);
        assert_eq!(select_device(" CPU ").unwrap(), Device::Cpu);
        let auto = select_device("auto").unwrap();
        assert_eq!(auto.is_cuda(), tch::Cuda::is_available());
        assert!(matches!(
            select_device("tpu"),
            Err(InferenceError::Device { .. })
        ));
        assert!(matches!(
            select_device("cuda:x"),
            Err(InferenceError::Device { .. })
        ));
        if !tch::Cuda::is_available() {
            let err = select_device("cuda").unwrap_err().to_string();
            assert!(err.contains("CUDA is not available"), "{err}");
        }
        assert!(select_device("cuda:99").is_err());
        assert!(describe(Device::Cpu).starts_with("cpu ("));
    }
}
