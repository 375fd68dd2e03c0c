//! Supervision of the sync actors: a handler's work runs under `guard`, which turns a panic into
//! an error and stops the actor; its `SyncArbiter` then builds a fresh one from its factory
//! while the other actors keep their state.

use std::panic::{catch_unwind, AssertUnwindSafe};

use actix::{Actor, ActorContext, SyncContext};

/// Runs `work`; if it panics, logs it, stops the actor (so it is rebuilt) and returns `None`.
pub fn guard<A, T>(name: &str, ctx: &mut SyncContext<A>, work: impl FnOnce() -> T) -> Option<T>
where
    A: Actor<Context = SyncContext<A>>,
{
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(value) => Some(value),
        Err(panic) => {
            log::error!(
                "💥 {name} panicked: {}; restarting it",
                panic_message(&panic)
            );
            ctx.stop();
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
