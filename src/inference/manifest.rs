//! `models/manifest.json`, written by scripts/prepare-models: what each model file is, where it
//! came from, and its sha256, so a worker can verify its models before trusting them.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::InferenceError;

/// One model file as the manifest records it.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelEntry {
    pub name: String,
    /// Path relative to the models directory.
    pub file: String,
    pub source_package: String,
    pub source_version: String,
    pub licence: String,
    pub sha256: String,
    #[serde(default)]
    pub input_contract: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    models: Vec<ModelEntry>,
}

/// The outcome of `models check`: a line per file and whether all were fine.
pub struct CheckReport {
    pub lines: Vec<String>,
    pub ok: bool,
}

/// Reads the manifest of a models directory.
pub fn read(models_dir: &Path) -> Result<Vec<ModelEntry>, InferenceError> {
    let path = models_dir.join("manifest.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|_| InferenceError::ModelMissing { path: path.clone() })?;
    let manifest: Manifest =
        serde_json::from_str(&text).map_err(|err| InferenceError::ModelInvalid {
            path: path.clone(),
            reason: err.to_string(),
        })?;
    Ok(manifest.models)
}

/// Verifies every file of the manifest: present, and with the recorded sha256.
pub fn check(models_dir: &Path) -> Result<CheckReport, InferenceError> {
    let entries = read(models_dir)?;
    let mut report = CheckReport {
        lines: Vec::new(),
        ok: !entries.is_empty(),
    };
    for entry in &entries {
        let path = models_dir.join(&entry.file);
        let verdict = match sha256_of(&path) {
            Ok(sum) if sum == entry.sha256 => "ok".to_string(),
            Ok(sum) => format!("CHANGED (sha256 {sum}, manifest says {})", entry.sha256),
            Err(err) => format!("MISSING ({err})"),
        };
        report.ok &= verdict == "ok";
        report.lines.push(format!(
            "{:<22} {:<40} {} {} ({}): {verdict}",
            entry.name, entry.file, entry.source_package, entry.source_version, entry.licence
        ));
    }
    if entries.is_empty() {
        report
            .lines
            .push("the manifest lists no models: run scripts/prepare-models".into());
    }
    Ok(report)
}

/// Hex sha256 of a file, read in blocks.
pub fn sha256_of(path: &PathBuf) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut block = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut block)?;
        if read == 0 {
            break;
        }
        hasher.update(&block[..read]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}
