//! What each subcommand does (the daemon itself is `app::run`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::time::{Duration, Instant};

use crate::cli::Format;
use crate::config::Config;
use crate::queue::{Keys, RedisQueue};
use crate::stats::socket;

/// `run`: the daemon in the foreground until SIGTERM/SIGINT.
pub fn run(config: Config) -> Result<u8, String> {
    // A storage setting that cannot work stops the start, rather than failing every job.
    crate::storage::Store::from_config(&config).map_err(|e| e.to_string())?;
    let device =
        crate::inference::device::select_device(&config.device).map_err(|e| e.to_string())?;
    let description = crate::inference::device::describe(device);
    let reloading = crate::app::Reloading {
        // A new value from the flags, the environment and `.env` as they are now; the process
        // environment itself is never changed.
        config: Arc::new(|| {
            crate::cli::Cli::load()
                .map(|cli| cli.config)
                .map_err(|e| e.to_string())
        }),
        pipeline: Arc::new(move |config: &Config| crate::speech::factory(config.clone(), device)),
    };
    let code = crate::app::run(config, reloading, description).map_err(|e| e.to_string())?;
    // The Processor's thread may still be inside libtorch or FFmpeg (loading models when a
    // SIGTERM came, or mid-job after the drain timeout; its job is back in the queue). Exiting
    // through libc's exit() would run the C++ static destructors under it, which can crash or
    // hang the exit; everything worth keeping is already in Redis and the database.
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: _exit ends the process at once; no Rust state is used after it.
    unsafe { libc::_exit(code) }
}

/// `migrate`: apply the database migrations and say which.
pub fn migrate(config: &Config) -> Result<u8, String> {
    let pool = crate::db::connect(&config.database_url).map_err(|e| e.to_string())?;
    let applied = crate::db::run_migrations(&pool).map_err(|e| e.to_string())?;
    if applied.is_empty() {
        println!(
            "Database schema is up to date ({})",
            crate::config::mask_url(&config.database_url)
        );
    } else {
        println!(
            "Applied {} migration(s): {}",
            applied.len(),
            applied.join(", ")
        );
    }
    Ok(0)
}

/// `stats`: ask the running daemon over its socket.
pub fn stats(config: &Config, json: bool, prometheus: bool) -> Result<u8, String> {
    if json {
        let answer = socket::request(&config.socket, "stats").map_err(|e| e.to_string())?;
        println!(
            "{}",
            serde_json::to_string_pretty(&answer["stats"]).unwrap_or_default()
        );
        return Ok(0);
    }
    let snapshot = socket::fetch_stats(&config.socket).map_err(|e| e.to_string())?;
    if prometheus {
        print!("{}", socket::prometheus(&snapshot));
    } else {
        print!("{}", snapshot.table());
    }
    Ok(0)
}

/// `check`: what the daemon needs before it can work — the model files, Redis, the database —
/// one line each; exit 1, naming what is wrong, when any is not right.
pub fn check(config: &Config) -> Result<u8, String> {
    let mut ok = true;
    let mut line = |name: &str, result: Result<String, String>| match result {
        Ok(detail) => println!("✔ {name}: {detail}"),
        Err(problem) => {
            ok = false;
            println!("✘ {name}: {problem}");
        }
    };
    line("models", check_models(config));
    line("redis", check_redis(config));
    line("database", check_database(config));
    Ok(if ok { 0 } else { 1 })
}

/// Every file of the manifest present with its sha256, and the device available.
fn check_models(config: &Config) -> Result<String, String> {
    let dir = config.models_dir.display();
    let entries = crate::inference::manifest::read(&config.models_dir)
        .map_err(|err| format!("{err} (run scripts/prepare-models)"))?;
    if entries.is_empty() {
        return Err(format!(
            "{dir}/manifest.json lists no models (run scripts/prepare-models)"
        ));
    }
    let mut problems = Vec::new();
    for entry in &entries {
        let path = config.models_dir.join(&entry.file);
        match crate::inference::manifest::sha256_of(&path) {
            Ok(sum) if sum == entry.sha256 => {}
            Ok(_) => problems.push(format!(
                "{} does not match its sha256 in manifest.json (corrupt or replaced)",
                path.display()
            )),
            Err(err) => problems.push(format!("{} is missing ({err})", path.display())),
        }
    }
    if !problems.is_empty() {
        return Err(format!(
            "{}; run scripts/prepare-models",
            problems.join("; ")
        ));
    }
    let device =
        crate::inference::device::select_device(&config.device).map_err(|e| e.to_string())?;
    Ok(format!(
        "{} file(s) in {dir} match manifest.json; device {}",
        entries.len(),
        crate::inference::device::describe(device)
    ))
}

fn check_redis(config: &Config) -> Result<String, String> {
    let mut queue = RedisQueue::new(&config.redis_url, Keys::from_config(config));
    queue.ping().map_err(|e| e.to_string())?;
    let depths = queue.depths().map_err(|e| e.to_string())?;
    Ok(format!(
        "{} answers; {} waiting in {}, {} retrying, {} failed",
        crate::config::mask_url(&config.redis_url),
        depths.processing,
        config.processing_queue(),
        depths.retry,
        depths.failed
    ))
}

/// Connects and reads the migrations' state; applies nothing.
fn check_database(config: &Config) -> Result<String, String> {
    let pool = crate::db::connect(&config.database_url).map_err(|e| e.to_string())?;
    let mut conn = pool
        .get()
        .map_err(|e| crate::db::DbError::from(e).to_string())?;
    let pending = pending_migrations(&mut conn)?;
    let target = crate::config::mask_url(&config.database_url);
    Ok(match pending.len() {
        0 => format!("{target} answers; schema up to date"),
        n => format!(
            "{target} answers; {n} migration(s) to apply at start ({})",
            pending.join(", ")
        ),
    })
}

/// The embedded migrations the database has not had yet.
fn pending_migrations(conn: &mut crate::db::DbConnection) -> Result<Vec<String>, String> {
    use crate::db::connection::{POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};
    use crate::db::DbConnection;
    use diesel_migrations::MigrationHarness;
    let names = match conn {
        DbConnection::Pg(pg) => pg
            .pending_migrations(POSTGRES_MIGRATIONS)
            .map(|pending| pending.iter().map(|m| m.name().to_string()).collect()),
        DbConnection::Sqlite(sqlite) => sqlite
            .pending_migrations(SQLITE_MIGRATIONS)
            .map(|pending| pending.iter().map(|m| m.name().to_string()).collect()),
    };
    names.map_err(|err| format!("cannot read the migrations' state: {err}"))
}

/// `models check`: every model file present with the manifest's sha256; prints the device.
pub fn models_check(config: &Config) -> Result<u8, String> {
    let report =
        crate::inference::manifest::check(&config.models_dir).map_err(|e| e.to_string())?;
    for line in &report.lines {
        println!("{line}");
    }
    let device =
        crate::inference::device::select_device(&config.device).map_err(|e| e.to_string())?;
    println!("device: {}", crate::inference::device::describe(device));
    Ok(if report.ok { 0 } else { 1 })
}

/// `submit`: store the files as the API stores chunks (in the configured store, at the app's
/// paths), register the session, enqueue it.
pub fn submit(
    config: &Config,
    files: &[PathBuf],
    session_id: Option<uuid::Uuid>,
    wait: bool,
    record: Option<Duration>,
) -> Result<u8, String> {
    let session_id = session_id.unwrap_or_else(uuid::Uuid::new_v4);
    let store = crate::storage::Store::from_config(config).map_err(|e| e.to_string())?;
    let pool = crate::db::connect(&config.database_url).map_err(|e| e.to_string())?;
    crate::db::run_migrations(&pool).map_err(|e| e.to_string())?;
    let mut conn = pool
        .get()
        .map_err(|e| format!("database unavailable: {e}"))?;
    let upload = |number: usize, file: &PathBuf| -> Result<(i32, String, Option<f64>), String> {
        // Absolute, so a relative name is not taken for a key in the store.
        let local = std::path::absolute(file).unwrap_or_else(|_| file.clone());
        let duration =
            crate::audio::probe_duration(&local.to_string_lossy(), &audio_options(config)).ok();
        let stored = store_chunk(&store, session_id, number, file)?;
        Ok((number as i32, stored, duration))
    };
    if let Some(interval) = record {
        use crate::db::queries;
        queries::start_recording(&mut conn, session_id, uuid::Uuid::nil())
            .map_err(|e| e.to_string())?;
        println!("{session_id}");
        for (number, file) in files.iter().enumerate() {
            if number > 0 {
                std::thread::sleep(interval);
            }
            let (number, stored, duration) = upload(number, file)?;
            queries::add_chunk(&mut conn, session_id, number, &stored, duration)
                .map_err(|e| e.to_string())?;
            eprintln!("chunk {number} uploaded while recording");
        }
        queries::end_recording(&mut conn, session_id).map_err(|e| e.to_string())?;
    } else {
        let chunks = files
            .iter()
            .enumerate()
            .map(|(number, file)| upload(number, file))
            .collect::<Result<Vec<_>, String>>()?;
        crate::db::queries::register_session(&mut conn, session_id, uuid::Uuid::nil(), &chunks)
            .map_err(|e| e.to_string())?;
        println!("{session_id}");
    }
    let mut queue = RedisQueue::new(&config.redis_url, Keys::from_config(config));
    queue
        .enqueue(&crate::job::JobPayload::new(session_id).to_json())
        .map_err(|e| e.to_string())?;
    if wait {
        return follow(&mut conn, session_id);
    }
    Ok(0)
}

/// Uploads one file where the API puts chunks (`sessions/<id>/chunks/chunk_NNNN_<timestamp><ext>`)
/// with the MIME type of its extension; returns its storage path.
fn store_chunk(
    store: &crate::storage::Store,
    session_id: uuid::Uuid,
    number: usize,
    file: &Path,
) -> Result<String, String> {
    let ext = file
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let stamp = chrono::Utc::now().format("%Y%m%d%H%M%S").to_string();
    let storage_path = crate::storage::chunk_key(session_id, number, &stamp, &ext);
    store
        .upload_file(&storage_path, file, crate::storage::content_type_for(&ext))
        .map_err(|e| format!("cannot store {}: {e}", file.display()))?;
    Ok(storage_path)
}

/// Prints progress until the session is ready or failed, then its results.
fn follow(conn: &mut crate::db::DbConnection, session_id: uuid::Uuid) -> Result<u8, String> {
    let started = Instant::now();
    let mut last = None;
    loop {
        let (status, progress, error) =
            crate::db::queries::session_status(conn, session_id).map_err(|e| e.to_string())?;
        if last.as_ref() != Some(&(status.clone(), progress)) {
            eprintln!(
                "[{:>6.1}s] {status:<20} {progress:>3}%",
                started.elapsed().as_secs_f64()
            );
            last = Some((status.clone(), progress));
        }
        match status.as_str() {
            crate::session::status::READY_FOR_CLAIMING => break,
            crate::session::status::FAILED => {
                eprintln!("failed: {}", error.unwrap_or_default());
                return Ok(1);
            }
            _ => std::thread::sleep(Duration::from_millis(250)),
        }
    }
    let speakers =
        crate::db::queries::session_results(conn, session_id).map_err(|e| e.to_string())?;
    println!("{:<12} {:>8} {:>10}  words", "speaker", "turns", "talk (s)");
    for (label, turns, talk, counts) in speakers {
        let words: Vec<String> = counts.iter().map(|(w, n)| format!("{w}×{n}")).collect();
        println!(
            "{label:<12} {turns:>8} {talk:>10.1}  {}",
            if words.is_empty() {
                "-".into()
            } else {
                words.join(" ")
            }
        );
    }
    Ok(0)
}

pub fn audio_options(config: &Config) -> crate::audio::AudioOptions {
    crate::audio::AudioOptions {
        storage_root: config.storage_dir.clone(),
        max_duration_seconds: config.max_audio_seconds.as_secs_f64(),
        ..crate::audio::AudioOptions::default()
    }
}

/// `analyze`: the pipeline on local files, no Redis or database.
pub fn analyze(
    config: &Config,
    files: &[PathBuf],
    format: Format,
    num_speakers: Option<usize>,
) -> Result<u8, String> {
    crate::speech::analyze_files(config, files, format, num_speakers)
}
