//! Fault injection shared by both simulators: latency, a chosen error on a deterministic
//! pattern ("every 3rd call") or at a seeded random rate, for tests and benchmarks.

use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

/// One error to answer with.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct InjectedError {
    pub status: u16,
    /// The body to send (the simulator's own error shape when absent).
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub fields: Vec<String>,
    /// Seconds for a `Retry-After` header.
    #[serde(default)]
    pub retry_after: Option<u64>,
}

/// What `POST /__control/faults` takes.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FaultConfig {
    /// Added to every matching call.
    #[serde(default)]
    pub latency_ms: u64,
    /// Fail every n-th matching call (n ≥ 1).
    #[serde(default)]
    pub every: Option<u64>,
    /// Fail this share of matching calls, drawn from a generator seeded with `seed`.
    #[serde(default)]
    pub rate: Option<f64>,
    #[serde(default)]
    pub seed: u64,
    /// The errors to answer with, used in turn.
    #[serde(default)]
    pub errors: Vec<InjectedError>,
    /// Only calls of these operations (e.g. `create`, `query`); all when empty.
    #[serde(default)]
    pub only: Vec<String>,
    /// Stop failing after this many injected errors.
    #[serde(default)]
    pub max_failures: Option<u64>,
    /// After a matching call took effect, wait this long before answering: a caller that
    /// dies meanwhile never learns the outcome (a write left in doubt).
    #[serde(default)]
    pub hang_after_ms: u64,
}

#[derive(Default)]
struct State {
    cfg: FaultConfig,
    seen: u64,
    failed: u64,
    rng: u64,
}

/// The current fault configuration and its counters.
#[derive(Default)]
pub struct Faults {
    state: Mutex<State>,
}

impl Faults {
    pub fn set(&self, cfg: FaultConfig) {
        let mut s = self.state.lock().expect("faults");
        *s = State {
            rng: cfg.seed ^ 0x9E37_79B9_7F4A_7C15,
            cfg,
            seen: 0,
            failed: 0,
        };
    }

    pub fn clear(&self) {
        self.set(FaultConfig::default());
    }

    /// Decide for one call: how long to delay, and which error (if any) to answer.
    pub fn decide(&self, operation: &str) -> (Duration, Option<InjectedError>) {
        let mut s = self.state.lock().expect("faults");
        if !s.cfg.only.is_empty() && !s.cfg.only.iter().any(|o| o == operation) {
            return (Duration::ZERO, None);
        }
        s.seen += 1;
        let latency = Duration::from_millis(s.cfg.latency_ms);
        if s.cfg.errors.is_empty() || s.cfg.max_failures.is_some_and(|m| s.failed >= m) {
            return (latency, None);
        }
        let fail = match (s.cfg.every, s.cfg.rate) {
            (Some(n), _) if n > 0 => s.seen.is_multiple_of(n),
            (_, Some(rate)) => next_unit(&mut s.rng) < rate,
            _ => false,
        };
        if !fail {
            return (latency, None);
        }
        let err = s.cfg.errors[(s.failed as usize) % s.cfg.errors.len()].clone();
        s.failed += 1;
        (latency, Some(err))
    }

    /// How long to hold the answer of a call that took effect.
    pub fn hang_after(&self, operation: &str) -> Duration {
        let s = self.state.lock().expect("faults");
        if !s.cfg.only.is_empty() && !s.cfg.only.iter().any(|o| o == operation) {
            return Duration::ZERO;
        }
        Duration::from_millis(s.cfg.hang_after_ms)
    }

    pub fn injected(&self) -> u64 {
        self.state.lock().expect("faults").failed
    }
}

/// xorshift64*: deterministic for a seed, good enough to spread failures.
fn next_unit(state: &mut u64) -> f64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
}

/// The longest delay a fault may ask for (10 minutes).
const MAX_DELAY_MS: u64 = 600_000;

/// Parse a control request body, accepting `{}` for "no faults".
pub fn parse(v: Value) -> Result<FaultConfig, String> {
    let cfg: FaultConfig =
        serde_json::from_value(v).map_err(|e| format!("bad fault configuration: {e}"))?;
    if cfg.latency_ms > MAX_DELAY_MS || cfg.hang_after_ms > MAX_DELAY_MS {
        return Err(format!(
            "bad fault configuration: latency_ms and hang_after_ms are at most {MAX_DELAY_MS}"
        ));
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(status: u16) -> InjectedError {
        InjectedError {
            status,
            code: None,
            message: None,
            fields: vec![],
            retry_after: None,
        }
    }

    #[test]
    fn every_nth_call_fails_in_turn() {
        let f = Faults::default();
        f.set(FaultConfig {
            every: Some(3),
            errors: vec![err(503), err(400)],
            ..FaultConfig::default()
        });
        let got: Vec<Option<u16>> = (0..7).map(|_| f.decide("x").1.map(|e| e.status)).collect();
        assert_eq!(got, [None, None, Some(503), None, None, Some(400), None]);
    }

    #[test]
    fn a_seeded_rate_is_repeatable_and_near_its_share() {
        let run = || {
            let f = Faults::default();
            f.set(FaultConfig {
                rate: Some(0.3),
                seed: 7,
                errors: vec![err(503)],
                ..FaultConfig::default()
            });
            (0..1000)
                .map(|_| f.decide("x").1.is_some())
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        let share = a.iter().filter(|x| **x).count();
        assert!((250..350).contains(&share), "{share}");
    }

    #[test]
    fn only_and_max_failures_limit_the_faults() {
        let f = Faults::default();
        f.set(FaultConfig {
            every: Some(1),
            errors: vec![err(503)],
            only: vec!["create".into()],
            max_failures: Some(1),
            ..FaultConfig::default()
        });
        assert!(f.decide("query").1.is_none());
        assert!(f.decide("create").1.is_some());
        assert!(f.decide("create").1.is_none());
    }
}
