//! Inference through tch (libtorch): the device, speech activity (Silero VAD), diarization
//! (pyannote segmentation-3.0, CAM++ embeddings, clustering, reconstruction), and Whisper speech
//! recognition. Everything here runs on the Processor's thread.

pub mod device;
pub mod diarize;
pub mod manifest;
pub mod vad;
pub mod whisper;

/// Errors of model loading and inference.
#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    #[error("Model file {path} is missing: run scripts/prepare-models")]
    ModelMissing { path: std::path::PathBuf },
    #[error("Loading model {path} failed: {source}")]
    ModelLoad {
        path: std::path::PathBuf,
        source: tch::TchError,
    },
    #[error("Model file {path} is not usable: {reason}")]
    ModelInvalid {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("The device ran out of memory: {0}")]
    OutOfMemory(String),
    #[error("Audio window {index} is {seconds:.1} s long; Whisper takes at most 30 s at a time")]
    WindowTooLong { index: usize, seconds: f64 },
    #[error("Inference failed: {0}")]
    Torch(#[from] tch::TchError),
    #[error("Device setting {setting:?} is not usable: {reason}")]
    Device { setting: String, reason: String },
    #[error("Inference input is not usable: {0}")]
    InvalidInput(String),
    #[error("Clustering the speaker embeddings failed: {0}")]
    Clustering(String),
}

impl crate::error::Classify for InferenceError {
    fn kind(&self) -> crate::error::ErrorKind {
        match self {
            // Another attempt may find memory free (or run on the CPU).
            InferenceError::OutOfMemory(_) => crate::error::ErrorKind::Transient,
            // A missing or broken model is the operator's to fix; retrying the job can't help,
            // but the job is not the job's fault either: treat it as transient so it waits.
            // A device setting that names no usable device is the operator's to fix, like a model.
            InferenceError::ModelMissing { .. }
            | InferenceError::ModelLoad { .. }
            | InferenceError::Device { .. } => crate::error::ErrorKind::Transient,
            InferenceError::ModelInvalid { .. }
            | InferenceError::WindowTooLong { .. }
            | InferenceError::Torch(_)
            | InferenceError::InvalidInput(_)
            | InferenceError::Clustering(_) => crate::error::ErrorKind::Permanent,
        }
    }
}

/// oneDNN (libtorch's CPU convolutions) keeps a compiled primitive, with its scratch memory,
/// for every input shape it has seen, up to `ONEDNN_PRIMITIVE_CACHE_CAPACITY` (default 1024).
/// CAM++ gets a new length on nearly every call, so over a long recording that cache grows
/// (40 min of AMI speech, one thread: peak RSS 880 MB with 256 shapes kept, 792 MB with 16).
/// How much a smaller cache costs depends on the threads: re-creating a primitive is cheap on one
/// thread and dear on several (`scripts/bench`'s conversation, diarization seconds on 1 thread:
/// 7.2 with 1024 shapes, 7.5 with 16; on 2 threads: 6.8 with 1024, 7.2 with 256, 11.1 with 64,
/// 14.1 with 16). So: 16 shapes for one libtorch thread (`torch_threads`, the default), 256 for
/// more (0, libtorch's one per core, counts as more), unless the environment already sets it.
/// oneDNN reads it once, at its first use: call this at start-up, before any inference and
/// before other threads run.
pub fn limit_onednn_primitive_cache(torch_threads: usize) {
    const VAR: &str = "ONEDNN_PRIMITIVE_CACHE_CAPACITY";
    if std::env::var_os(VAR).is_none() {
        std::env::set_var(VAR, if torch_threads == 1 { "16" } else { "256" });
    }
}

/// Loads a TorchScript model file from the models directory onto a device, in eval mode.
pub fn load_torchscript(
    models_dir: &std::path::Path,
    file: &str,
    device: tch::Device,
) -> Result<tch::CModule, InferenceError> {
    let path = models_dir.join(file);
    if !path.exists() {
        return Err(InferenceError::ModelMissing { path });
    }
    let mut module = tch::CModule::load_on_device(&path, device).map_err(|source| {
        InferenceError::ModelLoad {
            path: path.clone(),
            source,
        }
    })?;
    module.set_eval();
    Ok(module)
}
