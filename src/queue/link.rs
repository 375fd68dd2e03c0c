//! The QueueListener's view of its Redis connection: whether it is up, when to try again
//! (backoff, doubling up to a cap), and that an outage is logged once, not once per attempt.

use std::time::{Duration, Instant};

use super::QueueError;

/// First pause after a lost connection.
const FIRST_DELAY: Duration = Duration::from_millis(250);

pub struct Link {
    pub connected: bool,
    /// Whether the current outage has been logged.
    announced_down: bool,
    delay: Duration,
    next_try: Instant,
}

impl Default for Link {
    fn default() -> Link {
        Link {
            connected: false,
            announced_down: false,
            delay: FIRST_DELAY,
            next_try: Instant::now(),
        }
    }
}

impl Link {
    /// Whether the backoff allows another attempt now.
    pub fn may_try(&self) -> bool {
        Instant::now() >= self.next_try
    }

    /// How long until the backoff allows another attempt.
    pub fn wait(&self) -> Duration {
        self.next_try.saturating_duration_since(Instant::now())
    }

    /// Redis answered; true when the connection was down before (it is logged then).
    pub fn up(&mut self, url: &str) -> bool {
        let was_down = !self.connected;
        if was_down {
            self.announced_down = false;
            log::info!(
                "✅ Redis connection established ({})",
                crate::config::mask_url(url)
            );
        }
        self.connected = true;
        self.delay = FIRST_DELAY;
        was_down
    }

    /// The connection is gone: back off (doubling, at most `max_delay`); true when this begins an
    /// outage (logged then, at ERROR).
    pub fn down(&mut self, err: &QueueError, max_delay: Duration) -> bool {
        let begins = !self.announced_down;
        if begins {
            log::error!("🔌 Lost the Redis connection: {err}; reconnecting with backoff");
            self.announced_down = true;
        } else {
            log::debug!("Redis still unreachable: {err}");
        }
        self.connected = false;
        self.next_try = Instant::now() + self.delay;
        self.delay = (self.delay * 2).min(max_delay);
        begins
    }
}
