//! Where chunks come from and processed files go: the app's Supabase Storage bucket, any
//! S3-compatible bucket, or a local directory (the embedded default), chosen by configuration.
//!
//! Keys are the app's storage paths (`sessions/<id>/chunks/chunk_NNNN_<timestamp><ext>`,
//! `sessions/<id>/processed/<file>`). Downloads stream ([`ObjectReader`]); uploads replace what
//! is there, so a re-run of a session is harmless; [`Store::public_url`] is what the app's
//! screens load. Every failure is a [`StorageError`] that names the store, the bucket, the key
//! and the setting to check, classified for the retry policy.

mod error;
mod local;
mod s3;
mod stream;
mod supabase;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::StorageError;
pub use stream::ObjectReader;

use crate::config::Config;
use local::LocalStore;
use s3::S3Store;
use supabase::SupabaseStore;

/// How long connecting, or any single read, may stall before a request counts as timed out.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// The configured object store.
pub struct Store {
    backend: Backend,
    /// `LAHSTATS_PUBLIC_URL_BASE`: public URLs are `<base>/<key>` when set.
    public_base: Option<String>,
}

enum Backend {
    Local(LocalStore),
    Supabase(SupabaseStore),
    S3(S3Store),
}

impl Store {
    /// The store the configuration names: `LAHSTATS_STORAGE_URL=s3://…` → S3; else
    /// `SUPABASE_URL` (or `SUPABASE_STORAGE_URL`) → Supabase Storage; else the local directory
    /// `LAHSTATS_STORAGE_DIR`. Only checks the settings: nothing is contacted yet.
    pub fn from_config(config: &Config) -> Result<Store, StorageError> {
        let storage_url = config.storage_url.as_deref().map(str::trim);
        let supabase_api = match (&config.supabase_storage_url, &config.supabase_url) {
            (Some(api), _) if !api.trim().is_empty() => Some(api.trim().to_string()),
            (_, Some(project)) if !project.trim().is_empty() => Some(format!(
                "{}/storage/v1",
                project.trim().trim_end_matches('/')
            )),
            _ => None,
        };
        let store = match (storage_url, supabase_api) {
            (Some(url), _) if !url.is_empty() => {
                if !url.starts_with("s3://") {
                    return Err(StorageError::Config {
                        setting: "LAHSTATS_STORAGE_URL",
                        reason: format!(
                            "{} is not s3://<bucket>[/<prefix>]; leave it unset for Supabase \
                             Storage (SUPABASE_URL) or the local directory (LAHSTATS_STORAGE_DIR)",
                            crate::config::mask_url(url)
                        ),
                    });
                }
                Store::s3(url)?
            }
            (_, Some(api)) => {
                let key = config
                    .supabase_service_role_key
                    .as_ref()
                    .map(|key| key.expose())
                    .unwrap_or("");
                if key.trim().is_empty() {
                    return Err(StorageError::Config {
                        setting: "SUPABASE_SERVICE_ROLE_KEY",
                        reason: "Supabase Storage needs the project's service-role key".into(),
                    });
                }
                Store::supabase(&api, &config.storage_bucket, key)?
            }
            _ => Store::local(&config.storage_dir),
        };
        Ok(store.with_public_url_base(config.public_url_base.as_deref()))
    }

    /// A local directory as the store.
    pub fn local(root: impl Into<PathBuf>) -> Store {
        Store {
            backend: Backend::Local(LocalStore::new(root.into())),
            public_base: None,
        }
    }

    /// A Supabase Storage bucket; `api` is the storage API base (`…/storage/v1`).
    pub fn supabase(api: &str, bucket: &str, service_key: &str) -> Result<Store, StorageError> {
        Ok(Store {
            backend: Backend::Supabase(SupabaseStore::new(api, bucket, service_key, IO_TIMEOUT)?),
            public_base: None,
        })
    }

    /// An S3-compatible bucket, `s3://<bucket>[/<prefix>]`, configured by the `AWS_*` variables.
    pub fn s3(url: &str) -> Result<Store, StorageError> {
        Ok(Store {
            backend: Backend::S3(S3Store::from_env(url, IO_TIMEOUT)?),
            public_base: None,
        })
    }

    /// An S3-compatible bucket configured by the given `AWS_*` variables (name, value) instead
    /// of the environment's.
    pub fn s3_with<'a>(
        url: &str,
        vars: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Store, StorageError> {
        Ok(Store {
            backend: Backend::S3(S3Store::from_vars(url, vars, IO_TIMEOUT)?),
            public_base: None,
        })
    }

    /// Public URLs become `<base>/<key>` (an empty base: the backend's own).
    pub fn with_public_url_base(mut self, base: Option<&str>) -> Store {
        self.public_base = base
            .map(|base| base.trim().trim_end_matches('/').to_string())
            .filter(|base| !base.is_empty());
        self
    }

    /// One line for the banner; never a credential.
    pub fn describe(&self) -> String {
        let backend = match &self.backend {
            Backend::Local(local) => format!("local directory {}", local.root().display()),
            Backend::Supabase(supabase) => format!(
                "Supabase Storage {} bucket {}",
                supabase.api(),
                supabase.bucket()
            ),
            Backend::S3(s3) if s3.prefix().is_empty() => {
                format!("S3 bucket {} at {}", s3.bucket(), s3.endpoint())
            }
            Backend::S3(s3) => format!(
                "S3 bucket {} prefix {} at {}",
                s3.bucket(),
                s3.prefix(),
                s3.endpoint()
            ),
        };
        match &self.public_base {
            Some(base) => format!("{backend}, public URLs {base}/…"),
            None => backend,
        }
    }

    /// Whether keys are files under a local directory.
    pub fn is_local(&self) -> bool {
        matches!(self.backend, Backend::Local(_))
    }

    /// The file `key` is, for the local store; None for remote stores.
    pub fn local_path(&self, key: &str) -> Option<PathBuf> {
        match &self.backend {
            Backend::Local(local) => Some(local.path(key)),
            _ => None,
        }
    }

    /// Starts reading the object `key`. A missing object, bucket or permission fails here;
    /// trouble later on comes out of the reader.
    pub fn open(&self, key: &str) -> Result<ObjectReader, StorageError> {
        log::debug!("Downloading {key} from {}", self.describe());
        match &self.backend {
            Backend::Local(local) => local.open(key),
            Backend::Supabase(supabase) => supabase.open(key),
            Backend::S3(s3) => s3.open(key),
        }
    }

    /// Stores the file at `file` as `key`, replacing any object there. The file is streamed
    /// (or sent in parts), never read into memory whole.
    pub fn upload_file(
        &self,
        key: &str,
        file: &Path,
        content_type: &str,
    ) -> Result<(), StorageError> {
        log::debug!("Uploading {key} to {}", self.describe());
        match &self.backend {
            Backend::Local(local) => local.upload(key, file),
            Backend::Supabase(supabase) => supabase.upload(key, file, content_type),
            Backend::S3(s3) => s3.upload(key, file, content_type),
        }
    }

    /// Where the app loads `key` from: `LAHSTATS_PUBLIC_URL_BASE/<key>` when set; else for
    /// Supabase `<api>/object/public/<bucket>/<key>` (what the original worker wrote), for S3
    /// the bucket's URL (path-style under `AWS_ENDPOINT_URL`, virtual-hosted on AWS), and for
    /// the local directory the key itself.
    pub fn public_url(&self, key: &str) -> String {
        if let Some(base) = &self.public_base {
            return format!("{base}/{key}");
        }
        match &self.backend {
            Backend::Local(_) => key.to_string(),
            Backend::Supabase(supabase) => supabase.public_url(key),
            Backend::S3(s3) => s3.public_url(key),
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Two handles on the same store (same backend, place and public URLs) are equal.
impl PartialEq for Store {
    fn eq(&self, other: &Store) -> bool {
        self.describe() == other.describe()
    }
}

/// The configured store in one line for the banner, or why it cannot be used.
pub fn describe_config(config: &Config) -> String {
    match Store::from_config(config) {
        Ok(store) => store.describe(),
        Err(err) => format!("not usable: {err}"),
    }
}

/// The app's key for an uploaded chunk: `sessions/<id>/chunks/chunk_NNNN_<timestamp><ext>`,
/// `ext` with its dot (".m4a") or empty.
pub fn chunk_key(session_id: uuid::Uuid, number: usize, timestamp: &str, ext: &str) -> String {
    format!("sessions/{session_id}/chunks/chunk_{number:04}_{timestamp}{ext}")
}

/// The app's key for a processed file: `sessions/<id>/processed/<file>`.
pub fn processed_key(session_id: uuid::Uuid, file: &str) -> String {
    format!("sessions/{session_id}/processed/{file}")
}

/// The MIME type a recording's file extension (with or without its dot) stands for.
pub fn content_type_for(ext: &str) -> &'static str {
    match ext.trim_start_matches('.').to_ascii_lowercase().as_str() {
        "m4a" | "mp4" | "aac" => "audio/mp4",
        "wav" => "audio/wav",
        "webm" => "audio/webm",
        "ogg" | "opus" | "oga" => "audio/ogg",
        "mp3" => "audio/mpeg",
        "flac" => "audio/flac",
        "amr" => "audio/amr",
        "3gp" => "audio/3gpp",
        "caf" => "audio/x-caf",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        config: Config,
    }

    fn store(args: &[&str]) -> Result<Store, StorageError> {
        let mut all = vec!["x"];
        all.extend_from_slice(args);
        Store::from_config(&Wrapper::parse_from(all).config)
    }

    #[test]
    fn the_configuration_picks_the_backend() {
        let local = store(&["--storage-dir", "/srv/chunks"]).expect("local");
        assert!(local.is_local());
        assert_eq!(
            local.public_url("sessions/a/processed/full_audio.wav"),
            "sessions/a/processed/full_audio.wav"
        );
        let supabase = store(&[
            "--supabase-url",
            "https://abc.supabase.co/",
            "--supabase-service-role-key",
            "secret-key",
        ])
        .expect("supabase");
        assert_eq!(
            supabase.public_url("sessions/a/processed/full_audio.wav"),
            "https://abc.supabase.co/storage/v1/object/public/audio-chunks/sessions/a/processed/full_audio.wav"
        );
        assert!(!supabase.describe().contains("secret-key"));
        let missing_key = store(&["--supabase-url", "https://abc.supabase.co"]).expect_err("key");
        assert!(missing_key
            .to_string()
            .contains("SUPABASE_SERVICE_ROLE_KEY"));
        let wrong = store(&["--storage-url", "ftp://x/y"]).expect_err("scheme");
        assert!(wrong.to_string().contains("LAHSTATS_STORAGE_URL"));
    }

    #[test]
    fn a_public_url_base_wins() {
        let local = store(&["--public-url-base", "https://cdn.example/audio/"]).expect("local");
        assert_eq!(
            local.public_url("sessions/a/processed/x.wav"),
            "https://cdn.example/audio/sessions/a/processed/x.wav"
        );
    }

    #[test]
    fn keys_follow_the_app() {
        let id = uuid::Uuid::nil();
        assert_eq!(
            chunk_key(id, 3, "20260117190000", ".m4a"),
            "sessions/00000000-0000-0000-0000-000000000000/chunks/chunk_0003_20260117190000.m4a"
        );
        assert_eq!(content_type_for(".M4A"), "audio/mp4");
        assert_eq!(content_type_for("xyz"), "application/octet-stream");
    }
}
