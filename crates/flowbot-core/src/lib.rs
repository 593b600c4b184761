//! flowbot's core: the flow model, reading and validating flow files, templating over
//! obtained values, conditions, and the step runner.
//!
//! Core does no I/O of its own: apps are reached only through the [`Connector`] trait and
//! step records leave only through the [`Journal`] trait. It knows nothing of HTTP servers
//! or databases.

pub mod condition;
pub mod connector;
pub mod decode;
pub mod diag;
pub mod files;
pub mod form;
pub mod mail;
pub mod manifest;
pub mod model;
pub mod runner;
pub mod table;
pub mod template;
pub mod transform;
pub mod validate;
pub mod yaml_patch;

pub use connector::{
    ActionCall, ActionError, ApiUsage, Apps, BrokenFile, Connection, Connector, ErrorClass,
    OAuthRequest, PollCall, Polled, SampleCall, WebhookCall,
};
pub use diag::Diagnostic;
pub use model::Flow;
pub use runner::run_title;
pub use runner::{
    Clock, Journal, MemoryJournal, RunOutcome, Runner, StepRecord, StepStatus, SystemClock,
};
pub use validate::{check, Checked};
