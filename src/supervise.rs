//! Supervision: every actor is restarted after a panic, and keeps what it must.
//!
//! A handler's work runs under [`guard`] (sync actors) or [`guard_async`] (the actors on the
//! System's thread), which turns a panic into a log line and stops the actor. A sync actor's
//! `SyncArbiter` then builds a fresh one from its factory: new connections, with the state that
//! must outlive it (jobs in hand, pending settlements) handed over through a [`Handover`]. An
//! async actor runs under `actix::Supervisor`, which restarts the same value, so its counters
//! are kept. The other actors keep running and keep their state throughout.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use actix::{Actor, ActorContext, Context, SyncContext};

/// Runs `work`; if it panics, logs it, stops the sync actor (so its SyncArbiter builds a new one)
/// and returns `None`.
pub fn guard<A, T>(name: &str, ctx: &mut SyncContext<A>, work: impl FnOnce() -> T) -> Option<T>
where
    A: Actor<Context = SyncContext<A>>,
{
    caught(name, work).or_else(|| {
        ctx.stop();
        None
    })
}

/// [`guard`] for an actor on the System's thread: a panic stops it, and its `actix::Supervisor`
/// restarts it (the same value, its state kept).
pub fn guard_async<A, T>(name: &str, ctx: &mut Context<A>, work: impl FnOnce() -> T) -> Option<T>
where
    A: Actor<Context = Context<A>>,
{
    caught(name, work).or_else(|| {
        ctx.stop();
        None
    })
}

fn caught<T>(name: &str, work: impl FnOnce() -> T) -> Option<T> {
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(value) => Some(value),
        Err(panic) => {
            log::error!(
                "💥 {name} panicked: {}; restarting it",
                panic_message(&panic)
            );
            None
        }
    }
}

/// The text of a panic payload.
pub fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        text.to_string()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// State a sync actor hands to the instance its SyncArbiter builds after it stopped: the old
/// one `put`s it in `stopped()`, the factory `take`s it for the new one (nothing on first start).
pub struct Handover<T>(Arc<Mutex<Option<T>>>);

impl<T> Clone for Handover<T> {
    fn clone(&self) -> Self {
        Handover(self.0.clone())
    }
}

impl<T> Default for Handover<T> {
    fn default() -> Self {
        Handover(Arc::new(Mutex::new(None)))
    }
}

impl<T> Handover<T> {
    pub fn put(&self, state: T) {
        // A poisoned lock still holds a usable slot.
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(state);
    }

    pub fn take(&self) -> Option<T> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Makes the receiving actor panic inside its handler, as a bug would: a fault injection for the
/// supervision tests (`tests/supervision.rs`) and for operators who want to see a restart. Every
/// actor handles it; nothing in the worker sends it.
#[derive(Debug, Clone, Copy, actix::Message)]
#[rtype(result = "()")]
pub struct InjectPanic;
