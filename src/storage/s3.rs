//! S3-compatible object storage (AWS S3, MinIO, Cloudflare R2, Supabase's S3 endpoint) through
//! `object_store`: `s3://<bucket>[/<prefix>]`, credentials, region and endpoint from the standard
//! `AWS_*` variables.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, Attributes, BackoffConfig, ClientConfigKey, GetOptions, ObjectStore, PutOptions,
    PutPayload, RetryConfig, WriteMultipart,
};
use tokio::io::AsyncReadExt;

use super::error::short_reason;
use super::stream::{block_on, ObjectReader};
use super::StorageError;
use crate::error::error_chain;

const STORE: &str = "S3";
const URL_SETTING: &str = "LAHSTATS_STORAGE_URL";
const KEY_SETTING: &str = "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY";
/// Files up to this size are sent in one request; larger ones as a multipart upload in parts of
/// this size (S3 wants parts of at least 5 MiB), so at most a few parts are in memory.
const PART_BYTES: usize = 8 * 1024 * 1024;
/// Parts uploaded at once.
const PARTS_IN_FLIGHT: usize = 2;
/// Longest a single request may take in all (a part, a chunk's download).
const REQUEST_TIMEOUT: &str = "600s";

/// A bucket (and optional key prefix) on an S3-compatible service.
pub(crate) struct S3Store {
    store: Arc<AmazonS3>,
    bucket: String,
    /// Key prefix inside the bucket, without leading or trailing slashes ("" for none).
    prefix: String,
    /// Where requests go, for messages: the endpoint, or AWS S3 in the region.
    endpoint: String,
    /// Public URL of the prefix's root when the bucket is public, without a trailing slash.
    default_public_base: String,
}

impl S3Store {
    /// A client for `url` (`s3://<bucket>[/<prefix>]`) configured from the `AWS_*` variables of
    /// the environment. Checks the settings only; nothing is sent until the first request.
    pub(crate) fn from_env(url: &str, timeout: Duration) -> Result<S3Store, StorageError> {
        S3Store::with_builder(url, AmazonS3Builder::from_env(), timeout)
    }

    /// The same, with the `AWS_*` variables given rather than read from the environment.
    pub(crate) fn from_vars<'a>(
        url: &str,
        vars: impl IntoIterator<Item = (&'a str, &'a str)>,
        timeout: Duration,
    ) -> Result<S3Store, StorageError> {
        let mut builder = AmazonS3Builder::new();
        for (name, value) in vars {
            if let Ok(key) = name.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                builder = builder.with_config(key, value);
            }
        }
        S3Store::with_builder(url, builder, timeout)
    }

    fn with_builder(
        url: &str,
        builder: AmazonS3Builder,
        timeout: Duration,
    ) -> Result<S3Store, StorageError> {
        let config = |reason: String| StorageError::Config {
            setting: URL_SETTING,
            reason,
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| config(format!("{url} is not an s3://<bucket>[/<prefix>] URL")))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_matches('/').to_string();
        if bucket.is_empty() {
            return Err(config(format!("{url} names no bucket")));
        }
        let seconds = format!("{}s", timeout.as_secs().max(1));
        let builder = builder
            .with_bucket_name(bucket)
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                &seconds,
            )
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::ReadTimeout),
                &seconds,
            )
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
                REQUEST_TIMEOUT,
            )
            // A few quick retries inside one attempt; the job's own retries (5 s, 10 s, 20 s)
            // take over after that.
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(200),
                    max_backoff: Duration::from_secs(2),
                    base: 2.0,
                },
                max_retries: 2,
                retry_timeout: Duration::from_secs(15),
            });
        let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint);
        let region = builder
            .get_config_value(&AmazonS3ConfigKey::Region)
            .unwrap_or_else(|| "us-east-1".to_string());
        let store = builder.build().map_err(|err| StorageError::Config {
            setting: "LAHSTATS_STORAGE_URL and the AWS_* variables",
            reason: short_reason(&err.to_string()),
        })?;
        let (endpoint, root) = match endpoint {
            // Path-style, as MinIO and most S3-compatible services serve public buckets.
            Some(endpoint) => {
                let endpoint = endpoint.trim_end_matches('/').to_string();
                let root = format!("{endpoint}/{bucket}");
                (endpoint, root)
            }
            None => (
                format!("AWS S3 ({region})"),
                format!("https://{bucket}.s3.{region}.amazonaws.com"),
            ),
        };
        let default_public_base = if prefix.is_empty() {
            root
        } else {
            format!("{root}/{prefix}")
        };
        Ok(S3Store {
            store: Arc::new(store),
            bucket: bucket.to_string(),
            prefix,
            endpoint: crate::config::mask_url(&endpoint),
            default_public_base,
        })
    }

    pub(crate) fn bucket(&self) -> &str {
        &self.bucket
    }

    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Where the app reads `key` when the bucket is public and no public URL base is set.
    pub(crate) fn public_url(&self, key: &str) -> String {
        format!("{}/{key}", self.default_public_base)
    }

    fn path(&self, key: &str) -> Result<ObjectPath, StorageError> {
        let full = if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        };
        ObjectPath::parse(&full).map_err(|err| StorageError::Rejected {
            store: STORE,
            bucket: self.bucket.clone(),
            key: key.to_string(),
            reason: format!("not a valid object key: {err}"),
            setting: "the chunk's storage_path",
        })
    }

    /// Starts downloading `key`; the bytes arrive through the reader as they come.
    pub(crate) fn open(&self, key: &str) -> Result<ObjectReader, StorageError> {
        let path = self.path(key)?;
        let store = self.store.clone();
        let failure = self.failure_for(key);
        let result = block_on(async move { store.get_opts(&path, GetOptions::default()).await })
            .map_err(|err| failure.classify(err))?;
        let size = result.meta.size;
        let failure = self.failure_for(key);
        let body = result
            .into_stream()
            .map_err(move |err| failure.classify(err));
        Ok(ObjectReader::spawn(body, Some(size)))
    }

    /// Uploads the file at `file` as `key`, replacing what is there.
    pub(crate) fn upload(
        &self,
        key: &str,
        file: &Path,
        content_type: &str,
    ) -> Result<(), StorageError> {
        let path = self.path(key)?;
        let store = self.store.clone();
        let failure = self.failure_for(key);
        let local = {
            let (file, key) = (file.to_path_buf(), key.to_string());
            move |err: std::io::Error| StorageError::LocalIo {
                root: file.display().to_string(),
                key: key.clone(),
                reason: err.to_string(),
            }
        };
        let attributes =
            Attributes::from_iter([(Attribute::ContentType, content_type.to_string())]);
        let file = file.to_path_buf();
        block_on(async move {
            let mut opened = tokio::fs::File::open(&file).await.map_err(&local)?;
            let size = opened.metadata().await.map_err(&local)?.len();
            if size <= PART_BYTES as u64 {
                let mut bytes = Vec::with_capacity(size as usize);
                opened.read_to_end(&mut bytes).await.map_err(&local)?;
                let options = PutOptions {
                    attributes,
                    ..PutOptions::default()
                };
                store
                    .put_opts(&path, PutPayload::from(bytes), options)
                    .await
                    .map_err(|err| failure.classify(err))?;
                return Ok(());
            }
            let options = object_store::PutMultipartOptions {
                attributes,
                ..Default::default()
            };
            let upload = store
                .put_multipart_opts(&path, options)
                .await
                .map_err(|err| failure.classify(err))?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
            let mut block = vec![0u8; 1024 * 1024];
            loop {
                let read = match opened.read(&mut block).await {
                    Ok(read) => read,
                    Err(err) => {
                        let _ = writer.abort().await;
                        return Err(local(err));
                    }
                };
                if read == 0 {
                    break;
                }
                if let Err(err) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                    return Err(failure.classify(err));
                }
                writer.write(&block[..read]);
            }
            writer.finish().await.map_err(|err| failure.classify(err))?;
            Ok(())
        })
    }

    fn failure_for(&self, key: &str) -> Failure {
        Failure {
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
            key: key.to_string(),
        }
    }
}

/// What an error message needs to say where a request went.
struct Failure {
    endpoint: String,
    bucket: String,
    key: String,
}

impl Failure {
    /// object_store's error as ours: missing object or bucket and refused access are
    /// permanent; connection trouble, timeouts, 5xx and throttling transient.
    fn classify(&self, err: object_store::Error) -> StorageError {
        let chain = error_chain(&err);
        let reason = short_reason(&chain);
        let (bucket, key) = (self.bucket.clone(), self.key.clone());
        let bucket_missing = || StorageError::BucketNotFound {
            store: STORE,
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
            setting: URL_SETTING,
        };
        match &err {
            object_store::Error::NotFound { .. } if chain.contains("NoSuchBucket") => {
                return bucket_missing();
            }
            object_store::Error::NotFound { .. } => {
                return StorageError::NotFound {
                    store: STORE,
                    bucket,
                    key,
                    setting: URL_SETTING,
                };
            }
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => {
                return StorageError::AccessDenied {
                    store: STORE,
                    bucket,
                    key,
                    reason,
                    setting: KEY_SETTING,
                };
            }
            _ => {}
        }
        if chain.contains("NoSuchBucket") {
            return bucket_missing();
        }
        if let Some(kind) = http_error_kind(&err) {
            if kind == object_store::client::HttpErrorKind::Timeout {
                return StorageError::Timeout {
                    store: STORE,
                    endpoint: self.endpoint.clone(),
                    bucket,
                    key,
                };
            }
        }
        match status_in(&chain) {
            Some(413) => StorageError::TooLarge {
                store: STORE,
                bucket,
                key,
                reason,
            },
            Some(status) if (400..500).contains(&status) && ![408, 429].contains(&status) => {
                StorageError::Rejected {
                    store: STORE,
                    bucket,
                    key,
                    reason,
                    setting: "LAHSTATS_STORAGE_URL and the AWS_* variables",
                }
            }
            // 5xx, throttling, or no answer at all (refused, reset, cut off).
            _ => StorageError::Unavailable {
                store: STORE,
                endpoint: self.endpoint.clone(),
                bucket,
                key,
                reason,
            },
        }
    }
}

/// The kind of the HTTP failure behind `err`, when one is behind it.
fn http_error_kind(err: &object_store::Error) -> Option<object_store::client::HttpErrorKind> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(cause) = source {
        if let Some(http) = cause.downcast_ref::<object_store::client::HttpError>() {
            return Some(http.kind());
        }
        source = cause.source();
    }
    None
}

/// The HTTP status object_store quotes in its message ("…status code: 503 Service …").
fn status_in(chain: &str) -> Option<u16> {
    let (_, after) = chain.split_once("status code: ")?;
    after.get(..3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_read_from_the_message() {
        assert_eq!(
            status_in("Generic S3 error: Error performing GET http://h/b/k in 2ms - Server returned non-2xx status code: 503 Service Unavailable: "),
            Some(503)
        );
        assert_eq!(status_in("connection refused"), None);
    }
}
