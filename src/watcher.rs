//! ChunkWatcher: every `interval`, asks the Processor to take in the new chunks of sessions that
//! are still recording (`processor::Prepare`, one chunk per ask, asked again at once while there
//! are more), so a job finds most of its work done. It holds no state worth keeping: the
//! prepared steps are in the database, and a restart only asks again. It stops asking at the
//! start of a shutdown.

use std::time::Duration;

use actix::prelude::*;

use crate::processor::Prepare;

// ---- state ----

pub struct ChunkWatcher {
    processor: Recipient<Prepare>,
    interval: Duration,
    /// An ask is under way (the Processor answers when it has taken in a chunk, or found none).
    asking: bool,
    stopped: bool,
}

impl ChunkWatcher {
    /// Asks every `interval` (at least 1 s).
    pub fn new(processor: Recipient<Prepare>, interval: Duration) -> ChunkWatcher {
        ChunkWatcher {
            processor,
            interval: interval.max(Duration::from_secs(1)),
            asking: false,
            stopped: false,
        }
    }
}

impl Actor for ChunkWatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.interval, |watcher, ctx| watcher.ask(ctx));
    }
}

impl Supervised for ChunkWatcher {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.asking = false;
    }
}

// ---- messages ----

/// Stop asking (a shutdown has begun).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopWatching;

// ---- handlers ----

impl Handler<StopWatching> for ChunkWatcher {
    type Result = ();

    fn handle(&mut self, _: StopWatching, _: &mut Context<Self>) {
        self.stopped = true;
    }
}

impl ChunkWatcher {
    fn ask(&mut self, ctx: &mut Context<Self>) {
        if self.asking || self.stopped {
            return;
        }
        self.asking = true;
        self.processor
            .send(Prepare)
            .into_actor(self)
            .map(|answer, watcher, ctx| {
                watcher.asking = false;
                if answer.unwrap_or(false) {
                    watcher.ask(ctx);
                }
            })
            .spawn(ctx);
    }
}
