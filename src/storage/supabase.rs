//! Supabase Storage, the app's own object store, through its REST API as the app uses it:
//! downloads with the service-role key (`Authorization: Bearer` and `apikey`), uploads with
//! `POST /object/<bucket>/<path>` and `x-upsert: true`, public URLs
//! `<api>/object/public/<bucket>/<path>`. API reference: github.com/supabase/storage
//! (`src/http/routes/object/`).

use std::path::Path;
use std::time::Duration;

use futures::TryStreamExt;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::StatusCode;

use super::error::short_reason;
use super::stream::{block_on, ObjectReader};
use super::StorageError;

const STORE: &str = "Supabase Storage";
const BUCKET_SETTING: &str = "STORAGE_BUCKET";
const KEY_SETTING: &str = "SUPABASE_SERVICE_ROLE_KEY";
const URL_SETTING: &str = "SUPABASE_URL (or SUPABASE_STORAGE_URL)";

/// A bucket on a Supabase Storage server.
pub(crate) struct SupabaseStore {
    /// The storage API base, e.g. `https://<project>.supabase.co/storage/v1`, no trailing slash.
    api: url::Url,
    bucket: String,
    client: reqwest::Client,
    /// `Authorization` and `apikey`, marked sensitive so no Debug output shows them.
    auth: HeaderMap,
}

impl SupabaseStore {
    /// A client for `bucket` at the storage API `api` with the service-role key. Checks the
    /// settings only; nothing is sent until the first request.
    pub(crate) fn new(
        api: &str,
        bucket: &str,
        service_key: &str,
        timeout: Duration,
    ) -> Result<SupabaseStore, StorageError> {
        let config = |reason: String| StorageError::Config {
            setting: URL_SETTING,
            reason,
        };
        let mut api = url::Url::parse(api.trim_end_matches('/')).map_err(|err| {
            config(format!(
                "{} is not a URL: {err}",
                crate::config::mask_url(api)
            ))
        })?;
        if !matches!(api.scheme(), "http" | "https") || api.cannot_be_a_base() {
            return Err(config(format!(
                "{} is not an http(s) URL",
                crate::config::mask_url(api.as_str())
            )));
        }
        // A password in the URL would be sent to the server and shown in messages: refuse it.
        if !api.username().is_empty() || api.password().is_some() {
            return Err(config(
                "the URL must not carry a user name or password".into(),
            ));
        }
        api.set_query(None);
        if bucket.is_empty() || bucket.contains('/') {
            return Err(StorageError::Config {
                setting: BUCKET_SETTING,
                reason: format!("{bucket:?} is not a bucket name"),
            });
        }
        let auth = auth_headers(service_key)?;
        let client = reqwest::Client::builder()
            .connect_timeout(timeout)
            .read_timeout(timeout)
            .build()
            .map_err(|err| config(format!("the HTTP client could not start: {err}")))?;
        Ok(SupabaseStore {
            api,
            bucket: bucket.to_string(),
            client,
            auth,
        })
    }

    pub(crate) fn bucket(&self) -> &str {
        &self.bucket
    }

    pub(crate) fn api(&self) -> &str {
        self.api.as_str().trim_end_matches('/')
    }

    /// `<api>/object/<route…>/<bucket>/<key>`, each segment percent-encoded.
    fn object_url(&self, route: &[&str], key: &str) -> url::Url {
        let mut url = self.api.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments
                .pop_if_empty()
                .push("object")
                .extend(route)
                .push(&self.bucket)
                .extend(key.split('/'));
        }
        url
    }

    /// The URL anyone may read the object at, once the bucket is public (as the app's is).
    pub(crate) fn public_url(&self, key: &str) -> String {
        self.object_url(&["public"], key).into()
    }

    /// Starts downloading `key`; the bytes arrive through the reader as they come.
    pub(crate) fn open(&self, key: &str) -> Result<ObjectReader, StorageError> {
        let request = self
            .client
            .get(self.object_url(&["authenticated"], key))
            .headers(self.auth.clone());
        let failure = self.failure_for(key);
        let response = block_on(async move {
            let response = request.send().await.map_err(|err| failure.network(err))?;
            if response.status().is_success() {
                return Ok(response);
            }
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            Err(failure.refusal(status, &body))
        })?;
        let size = response.content_length();
        let failure = self.failure_for(key);
        let body = response
            .bytes_stream()
            .map_err(move |err| failure.network(err));
        Ok(ObjectReader::spawn(body, size))
    }

    /// Uploads the file at `file` as `key`, replacing what is there (`x-upsert: true`), so a
    /// re-run of a session replaces its processed files.
    pub(crate) fn upload(
        &self,
        key: &str,
        file: &Path,
        content_type: &str,
    ) -> Result<(), StorageError> {
        let failure = self.failure_for(key);
        let local = |err: std::io::Error| StorageError::LocalIo {
            root: file.display().to_string(),
            key: key.to_string(),
            reason: err.to_string(),
        };
        let size = std::fs::metadata(file).map_err(local)?.len();
        let opened = std::fs::File::open(file).map_err(local)?;
        let mut headers = self.auth.clone();
        headers.insert("x-upsert", HeaderValue::from_static("true"));
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_str(content_type)
                .unwrap_or(HeaderValue::from_static("application/octet-stream")),
        );
        headers.insert(CONTENT_LENGTH, HeaderValue::from(size));
        let request = self
            .client
            .post(self.object_url(&[], key))
            .headers(headers)
            .body(reqwest::Body::from(tokio::fs::File::from_std(opened)));
        block_on(async move {
            let response = request.send().await.map_err(|err| failure.network(err))?;
            if response.status().is_success() {
                return Ok(());
            }
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            Err(failure.refusal(status, &body))
        })
    }

    fn failure_for(&self, key: &str) -> Failure {
        Failure {
            endpoint: self.api().to_string(),
            bucket: self.bucket.clone(),
            key: key.to_string(),
        }
    }
}

/// `Authorization: Bearer <key>` and `apikey: <key>`, as the app sends them.
fn auth_headers(service_key: &str) -> Result<HeaderMap, StorageError> {
    let invalid = || StorageError::Config {
        setting: KEY_SETTING,
        reason: "the key is empty or holds characters a header cannot carry".into(),
    };
    let key = service_key.trim();
    if key.is_empty() {
        return Err(invalid());
    }
    let mut bearer = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| invalid())?;
    let mut apikey = HeaderValue::from_str(key).map_err(|_| invalid())?;
    bearer.set_sensitive(true);
    apikey.set_sensitive(true);
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, bearer);
    headers.insert("apikey", apikey);
    Ok(headers)
}

/// What an error message needs to say where a request went, without the key.
struct Failure {
    endpoint: String,
    bucket: String,
    key: String,
}

impl Failure {
    /// A request that got no answer: connection refused, reset, timed out.
    fn network(&self, err: reqwest::Error) -> StorageError {
        if err.is_timeout() {
            return StorageError::Timeout {
                store: STORE,
                endpoint: self.endpoint.clone(),
                bucket: self.bucket.clone(),
                key: self.key.clone(),
            };
        }
        StorageError::Unavailable {
            store: STORE,
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            reason: short_reason(&crate::error::error_chain(&err.without_url())),
        }
    }

    /// A request the server answered with an error. The server reports most failures as HTTP
    /// 400 with the real status in the JSON body (`{"statusCode":"404","error":"not_found",…}`),
    /// so the body's status wins over the HTTP one.
    fn refusal(&self, status: StatusCode, body: &str) -> StorageError {
        let reply: ErrorReply = serde_json::from_str(body).unwrap_or_default();
        let code = reply
            .status_code
            .as_ref()
            .and_then(|code| code.to_string().trim_matches('"').parse::<u16>().ok())
            .unwrap_or(status.as_u16());
        let message = reply.message.clone().unwrap_or_else(|| body.to_string());
        let reason = short_reason(&format!("HTTP {}: {message}", status.as_u16()));
        let bucket_missing = reply.code.as_deref() == Some("NoSuchBucket")
            || reply.error.as_deref() == Some("Bucket not found");
        let (bucket, key) = (self.bucket.clone(), self.key.clone());
        match code {
            404 if bucket_missing => StorageError::BucketNotFound {
                store: STORE,
                endpoint: self.endpoint.clone(),
                bucket,
                setting: "STORAGE_BUCKET and SUPABASE_SERVICE_ROLE_KEY",
            },
            404 => StorageError::NotFound {
                store: STORE,
                bucket,
                key,
                setting: BUCKET_SETTING,
            },
            401 | 403 => StorageError::AccessDenied {
                store: STORE,
                bucket,
                key,
                reason,
                setting: KEY_SETTING,
            },
            413 => StorageError::TooLarge {
                store: STORE,
                bucket,
                key,
                reason,
            },
            408 | 429 | 500..=599 => StorageError::Unavailable {
                store: STORE,
                endpoint: self.endpoint.clone(),
                bucket,
                key,
                reason,
            },
            _ => StorageError::Rejected {
                store: STORE,
                bucket,
                key,
                reason,
                setting: URL_SETTING,
            },
        }
    }
}

/// The JSON error body of the storage server.
#[derive(Debug, Default, serde::Deserialize)]
struct ErrorReply {
    /// A string ("404") on the servers seen so far; a number is accepted too.
    #[serde(rename = "statusCode")]
    status_code: Option<serde_json::Value>,
    error: Option<String>,
    message: Option<String>,
    code: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> SupabaseStore {
        SupabaseStore::new(
            "https://abc.supabase.co/storage/v1/",
            "audio-chunks",
            "service-key",
            Duration::from_secs(5),
        )
        .expect("store")
    }

    #[test]
    fn public_urls_are_the_apps() {
        assert_eq!(
            store().public_url("sessions/s1/processed/full_audio.wav"),
            "https://abc.supabase.co/storage/v1/object/public/audio-chunks/sessions/s1/processed/full_audio.wav"
        );
        assert_eq!(
            store().object_url(&[], "a b/ü.wav").as_str(),
            "https://abc.supabase.co/storage/v1/object/audio-chunks/a%20b/%C3%BC.wav"
        );
    }

    #[test]
    fn the_status_in_the_body_wins() {
        let failure = store().failure_for("sessions/s1/chunks/chunk_0000_1.m4a");
        let missing = failure.refusal(
            StatusCode::BAD_REQUEST,
            r#"{"statusCode":"404","error":"not_found","message":"Object not found","code":"NoSuchKey"}"#,
        );
        assert!(
            matches!(missing, StorageError::NotFound { .. }),
            "{missing:?}"
        );
        let bucket = failure.refusal(
            StatusCode::BAD_REQUEST,
            r#"{"statusCode":"404","error":"Bucket not found","message":"Bucket not found","code":"NoSuchBucket"}"#,
        );
        assert!(
            matches!(bucket, StorageError::BucketNotFound { .. }),
            "{bucket:?}"
        );
        let denied = failure.refusal(
            StatusCode::BAD_REQUEST,
            r#"{"statusCode":"403","error":"Unauthorized","message":"Invalid Compact JWS"}"#,
        );
        assert!(
            matches!(denied, StorageError::AccessDenied { .. }),
            "{denied:?}"
        );
        let busy = failure.refusal(StatusCode::BAD_GATEWAY, "<html>bad gateway</html>");
        assert!(matches!(busy, StorageError::Unavailable { .. }), "{busy:?}");
    }

    #[test]
    fn keys_never_show_in_debug_output() {
        let store = store();
        let shown = format!("{:?}", store.auth);
        assert!(!shown.contains("service-key"), "{shown}");
    }
}
