//! `lahstats-worker failed list | retry | purge`: inspect and requeue jobs that failed for good.

use std::time::Duration;

use crate::queue::{FailureRecord, QueueError, RedisQueue};

/// One entry of the failed list with its parsed record (None for an entry in another format,
/// such as the original Python worker's raw job strings).
pub struct FailedEntry {
    pub stored: String,
    pub record: Option<FailureRecord>,
}

pub fn entries(queue: &mut RedisQueue) -> Result<Vec<FailedEntry>, QueueError> {
    Ok(queue
        .failed_entries()?
        .into_iter()
        .map(|stored| {
            let record = serde_json::from_str(&stored).ok();
            FailedEntry { stored, record }
        })
        .collect())
}

/// The session id of an entry, from its record or (for the original worker's raw jobs) its payload.
fn session_of(entry: &FailedEntry) -> Option<String> {
    match &entry.record {
        Some(record) => record.session_id.clone(),
        None => crate::job::loose_session_id(&entry.stored),
    }
}

/// Prints the failed list as a table, or as JSON lines.
pub fn list(queue: &mut RedisQueue, json: bool) -> Result<(), QueueError> {
    let entries = entries(queue)?;
    if json {
        for entry in &entries {
            println!("{}", entry.stored);
        }
        return Ok(());
    }
    println!("{} failed job(s) in {}", entries.len(), queue.keys.failed);
    for entry in &entries {
        match &entry.record {
            Some(r) => println!(
                "- session {}  attempts {}  {}  last {}  worker {}\n    {}",
                r.session_id.as_deref().unwrap_or("(none)"),
                r.attempts,
                r.error_kind,
                r.last_failed_at,
                r.worker_id,
                r.error
            ),
            None => println!("- (raw) {}", entry.stored),
        }
    }
    Ok(())
}

/// Requeues the failed jobs of one session (or all), attempts reset; with `force` the job asks to
/// be processed even if its session is finished or claimed. Returns how many moved.
pub fn retry(
    queue: &mut RedisQueue,
    session: Option<&str>,
    force: bool,
) -> Result<usize, QueueError> {
    let mut moved = 0;
    for entry in entries(queue)? {
        if session.is_some() && session_of(&entry).as_deref() != session {
            continue;
        }
        let job = match &entry.record {
            Some(record) => record.job_to_retry(),
            None => crate::job::parse(&entry.stored, usize::MAX)
                .ok()
                .map(|p| p.reset_attempts()),
        };
        match job.map(|job| crate::job::JobPayload { force, ..job }) {
            Some(job) => {
                if queue.requeue_failed(&entry.stored, &job.to_json())? {
                    println!("🔁 Requeued session {}", job.session_id);
                    moved += 1;
                }
            }
            None => println!(
                "Skipping an entry with no valid job in it: {}",
                entry.stored
            ),
        }
    }
    Ok(moved)
}

/// Deletes failed entries (all, or those whose last failure is older than `older_than`).
pub fn purge(queue: &mut RedisQueue, older_than: Option<Duration>) -> Result<usize, QueueError> {
    let cutoff = older_than.map(|age| older_than_cutoff(chrono::Utc::now().naive_utc(), age));
    let mut removed = 0;
    for entry in entries(queue)? {
        let failed_at = entry.record.as_ref().and_then(|r| {
            chrono::NaiveDateTime::parse_from_str(&r.last_failed_at, "%Y-%m-%dT%H:%M:%S%.f").ok()
        });
        let old_enough = match (cutoff, failed_at) {
            (None, _) => true,
            (Some(Some(cutoff)), Some(at)) => at < cutoff,
            // An age reaching back before the calendar begins: nothing is that old.
            (Some(None), _) => false,
            // An entry without a date can't be shown to be old: keep it.
            (Some(_), None) => false,
        };
        if old_enough && queue.remove_failed(&entry.stored)? {
            removed += 1;
        }
    }
    Ok(removed)
}

/// The moment `age` before `now`; `None` when that is before any representable date (then no
/// entry is old enough).
fn older_than_cutoff(now: chrono::NaiveDateTime, age: Duration) -> Option<chrono::NaiveDateTime> {
    chrono::Duration::from_std(age)
        .ok()
        .and_then(|age| now.checked_sub_signed(age))
}

/// Parses an age as a human duration ("30s", "15m", "12h", "7d", "2weeks", or plain seconds).
/// Unlike the daemon's settings it has no upper limit: an age older than any entry simply
/// deletes nothing.
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds)
            .map_err(|_| format!("{text:?} is not a finite, non-negative number of seconds"));
    }
    humantime::parse_duration(text)
        .map_err(|err| format!("{text:?} is not a duration like 30s, 15m, 12h or 7d ({err})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse() {
        assert_eq!(parse_age("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_age("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_age("7d").unwrap(), Duration::from_secs(7 * 86400));
        assert_eq!(
            parse_age("2weeks").unwrap(),
            Duration::from_secs(14 * 86400)
        );
        assert!(parse_age("soon").is_err());
        assert!(parse_age("inf").is_err());
        assert!(parse_age("-1").is_err());
    }

    #[test]
    fn a_huge_age_reaches_before_every_entry() {
        let now = chrono::Utc::now().naive_utc();
        let day = older_than_cutoff(now, Duration::from_secs(86400)).unwrap();
        assert_eq!(now - day, chrono::Duration::days(1));
        // 10^12 years: past chrono's calendar (it made every entry "old" before).
        let huge = parse_age("1000000000000years").unwrap_or(Duration::MAX);
        assert_eq!(older_than_cutoff(now, huge), None);
        assert_eq!(older_than_cutoff(now, Duration::MAX), None);
    }
}
