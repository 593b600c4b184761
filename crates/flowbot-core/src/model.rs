//! The flow model: what a flow file means once it has been decoded and checked.
//!
//! These are internal types. The YAML schema is read by [`crate::decode`], which collects
//! every problem with its position instead of stopping at the first, and turned back into
//! YAML by [`crate::encode`].

use std::time::Duration;

use serde_json::Value;

/// A whole flow: one trigger, then steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// Connection slots, in file order: slot name → app id.
    pub connections: Vec<ConnectionSlot>,
    pub trigger: Trigger,
    /// A template rendered against the trigger; runs with the same key never overlap.
    pub concurrency_key: Option<String>,
    /// A template over the trigger naming what a run is about (the run history shows it).
    pub run_title: Option<String>,
    /// Events whose rendered key was already seen within the window start no run.
    pub dedupe: Option<Dedupe>,
    /// Defaults for every step; a step may override each field.
    pub retry: RetryPolicy,
    /// Default per-step timeout.
    pub timeout: Option<Duration>,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dedupe {
    /// A template over `trigger`.
    pub key: String,
    pub window: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionSlot {
    pub name: String,
    pub app: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    pub app: String,
    /// Empty when the app has a single implicit event (e.g. the generic webhook).
    pub events: Vec<String>,
    pub connection: Option<String>,
    /// App-specific options, kept as given.
    pub options: serde_json::Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub id: String,
    /// Where the step stands in its file, as a field path (`steps[2].branch.then[0]`), for
    /// diagnostics; empty for steps built in code.
    pub source: String,
    pub name: Option<String>,
    pub kind: StepKind,
    /// Overrides of the flow's retry policy for this step.
    pub retry: Option<RetryOverride>,
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    Action(ActionStep),
    Branch(BranchStep),
    Switch(SwitchStep),
    ForEach(ForEachStep),
    /// Named values computed from templates (kept in file order).
    Set(serde_json::Map<String, Value>),
    Wait(Duration),
    /// 承認を依頼する: people approve or reject; the run waits for them in the store.
    Approval(PeopleStep),
    /// 担当者へ対応を依頼する: a person completes a form; the run waits for them.
    Task(PeopleStep),
}

impl StepKind {
    pub fn label(&self) -> &'static str {
        match self {
            StepKind::Action(_) => "action",
            StepKind::Branch(_) => "branch",
            StepKind::Switch(_) => "switch",
            StepKind::ForEach(_) => "for_each",
            StepKind::Set(_) => "set",
            StepKind::Wait(_) => "wait",
            StepKind::Approval(_) => "approval",
            StepKind::Task(_) => "task",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ActionStep {
    pub app: String,
    pub action: String,
    pub connection: Option<String>,
    /// Input templates: any JSON shape whose strings are templates.
    pub input: serde_json::Map<String, Value>,
}

/// An approval or a task: who is asked, what they see, and what happens when they answer,
/// send the run back, or do not answer in time.
#[derive(Debug, Clone, PartialEq)]
pub struct PeopleStep {
    pub to: People,
    /// A template over the obtained values: what the people asked read.
    pub message: String,
    /// Approvals: how many approvals decide (a rejection always decides at once).
    pub rule: ApprovalRule,
    /// Tasks: the form the person fills in (the form trigger's `fields`), kept as given
    /// and read by [`crate::form::parse`].
    pub fields: Option<Value>,
    /// An earlier step the run returns to when someone sends it back.
    pub send_back_to: Option<String>,
    pub deadline: Option<Deadline>,
    /// Approvals: steps run when approved, then the run goes on.
    pub then_steps: Vec<Step>,
    /// Approvals: steps run when rejected (or at a deadline that takes this lane); the run
    /// then ends.
    pub else_steps: Vec<Step>,
}

/// Who is asked. Members by name and emails may be templates; an email of a member reaches
/// that member, any other email an outsider (who gets a single-use link).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct People {
    pub members: Vec<String>,
    pub roles: Vec<String>,
    pub emails: Vec<String>,
    /// The member who started the run (a manual start or a members-only form's answer).
    pub starter: bool,
}

impl People {
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.roles.is_empty() && self.emails.is_empty() && !self.starter
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalRule {
    /// The first approval decides.
    Any,
    /// Every person asked must approve.
    All,
    /// This many approvals decide.
    Count(u32),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Deadline {
    pub after: Duration,
    pub then: AtDeadline,
    /// `then: escalate`: who is asked as well; they get `after` again, after which the run
    /// fails.
    pub escalate_to: People,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtDeadline {
    Fail,
    /// Approvals: take the `else` lane, as a rejection would.
    Else,
    Escalate,
}

impl AtDeadline {
    pub fn name(self) -> &'static str {
        match self {
            AtDeadline::Fail => "fail",
            AtDeadline::Else => "else",
            AtDeadline::Escalate => "escalate",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BranchStep {
    pub condition: Condition,
    pub then_steps: Vec<Step>,
    pub else_steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SwitchStep {
    pub cases: Vec<SwitchCase>,
    pub default: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SwitchCase {
    /// The lane name recorded when this case is taken.
    pub name: String,
    pub condition: Condition,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ForEachStep {
    /// A template that must evaluate to a list.
    pub items: Value,
    /// More items than this fail the step rather than run away.
    pub max_iterations: usize,
    pub steps: Vec<Step>,
}

pub const DEFAULT_MAX_ITERATIONS: usize = 1000;

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Compare {
        value: Value,
        op: Operator,
        /// Absent for the unary operators (is_empty, is_not_empty).
        to: Option<Value>,
    },
    All(Vec<Condition>),
    Any(Vec<Condition>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Equals,
    NotEquals,
    GreaterThan,
    GreaterOrEqual,
    LessThan,
    LessOrEqual,
    Contains,
    NotContains,
    StartsWith,
    EndsWith,
    IsEmpty,
    IsNotEmpty,
    Matches,
}

impl Operator {
    pub const ALL: [Operator; 13] = [
        Operator::Equals,
        Operator::NotEquals,
        Operator::GreaterThan,
        Operator::GreaterOrEqual,
        Operator::LessThan,
        Operator::LessOrEqual,
        Operator::Contains,
        Operator::NotContains,
        Operator::StartsWith,
        Operator::EndsWith,
        Operator::IsEmpty,
        Operator::IsNotEmpty,
        Operator::Matches,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Operator::Equals => "equals",
            Operator::NotEquals => "not_equals",
            Operator::GreaterThan => "greater_than",
            Operator::GreaterOrEqual => "greater_or_equal",
            Operator::LessThan => "less_than",
            Operator::LessOrEqual => "less_or_equal",
            Operator::Contains => "contains",
            Operator::NotContains => "not_contains",
            Operator::StartsWith => "starts_with",
            Operator::EndsWith => "ends_with",
            Operator::IsEmpty => "is_empty",
            Operator::IsNotEmpty => "is_not_empty",
            Operator::Matches => "matches",
        }
    }

    pub fn parse(s: &str) -> Option<Operator> {
        Operator::ALL.into_iter().find(|op| op.name() == s)
    }

    /// Unary operators take no `to` operand.
    pub fn is_unary(self) -> bool {
        matches!(self, Operator::IsEmpty | Operator::IsNotEmpty)
    }
}

/// How often and how patiently a failing step is retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts including the first.
    pub max_attempts: u32,
    pub initial_interval: Duration,
    pub max_interval: Duration,
    pub multiplier: f64,
    /// Spread retries randomly over [delay/2, delay] so a burst of failures does not
    /// come back as a burst of retries.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_interval: Duration::from_secs(2),
            max_interval: Duration::from_secs(600),
            multiplier: 2.0,
            jitter: true,
        }
    }
}

/// A step's partial override of the flow's retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RetryOverride {
    pub max_attempts: Option<u32>,
    pub initial_interval: Option<Duration>,
    pub max_interval: Option<Duration>,
    pub multiplier: Option<f64>,
    pub jitter: Option<bool>,
}

impl RetryPolicy {
    pub fn with_override(self, o: Option<&RetryOverride>) -> RetryPolicy {
        let Some(o) = o else { return self };
        RetryPolicy {
            max_attempts: o.max_attempts.unwrap_or(self.max_attempts),
            initial_interval: o.initial_interval.unwrap_or(self.initial_interval),
            max_interval: o.max_interval.unwrap_or(self.max_interval),
            multiplier: o.multiplier.unwrap_or(self.multiplier),
            jitter: o.jitter.unwrap_or(self.jitter),
        }
    }

    /// The delay before attempt `attempt + 1`, after `attempt` attempts have failed.
    /// `retry_after` (from the remote side) wins when it is longer. `unit` in [0, 1) is the
    /// random draw for jitter, passed in so that tests are deterministic.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
        let exp = self
            .multiplier
            .max(1.0)
            .powi(attempt.saturating_sub(1).min(64) as i32);
        let base = self.initial_interval.as_secs_f64() * exp;
        let capped = base.min(self.max_interval.as_secs_f64());
        let jittered = if self.jitter {
            capped * (0.5 + 0.5 * unit.clamp(0.0, 1.0))
        } else {
            capped
        };
        let delay = Duration::from_secs_f64(jittered.max(0.0));
        match retry_after {
            Some(ra) if ra > delay => ra,
            _ => delay,
        }
    }
}

/// A duration as flow files write it: `500ms`, `30s`, `5m`, `1h`, or plain seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return (secs >= 0.0 && secs.is_finite()).then(|| Duration::from_secs_f64(secs));
    }
    humantime::parse_duration(s).ok()
}

impl Flow {
    /// Every step of the flow, depth first, in file order.
    pub fn walk(&self) -> Vec<&Step> {
        fn go<'a>(steps: &'a [Step], out: &mut Vec<&'a Step>) {
            for s in steps {
                out.push(s);
                for lane in s.lanes() {
                    go(lane.steps, out);
                }
            }
        }
        let mut out = Vec::new();
        go(&self.steps, &mut out);
        out
    }

    /// The innermost loop step `id` sits in, if any.
    pub fn loop_of(&self, id: &str) -> Option<&str> {
        fn go<'a>(steps: &'a [Step], id: &str, inside: Option<&'a str>) -> Option<Option<&'a str>> {
            for s in steps {
                if s.id == id {
                    return Some(inside);
                }
                for lane in s.lanes() {
                    let here = if lane.is_loop_body {
                        Some(s.id.as_str())
                    } else {
                        inside
                    };
                    if let Some(found) = go(lane.steps, id, here) {
                        return Some(found);
                    }
                }
            }
            None
        }
        go(&self.steps, id, None).flatten()
    }

    pub fn find_step(&self, id: &str) -> Option<&Step> {
        self.walk().into_iter().find(|s| s.id == id)
    }

    /// The obtained values certainly available to step `id`, in order: the trigger, every
    /// earlier step on its path, and the containers it sits in (their lane or loop item).
    /// Steps of a lane the run may not have taken are not among them. `None` when there
    /// is no such step.
    pub fn available_before(&self, id: &str) -> Option<Vec<String>> {
        fn go(steps: &[Step], id: &str, avail: &mut Vec<String>) -> bool {
            for s in steps {
                if s.id == id {
                    return true;
                }
                for lane in s.lanes() {
                    let mut inner = avail.clone();
                    inner.push(s.id.clone());
                    if go(lane.steps, id, &mut inner) {
                        *avail = inner;
                        return true;
                    }
                }
                avail.push(s.id.clone());
            }
            false
        }
        let mut avail = vec!["trigger".to_string()];
        go(&self.steps, id, &mut avail).then_some(avail)
    }
}

/// A nested list of steps inside a branch, switch or loop.
#[derive(Debug, Clone, Copy)]
pub struct Lane<'a> {
    /// `then`, `else`, a case name, `default`, or `each` for a loop body.
    pub name: &'a str,
    pub steps: &'a [Step],
    /// Loop bodies run zero or more times; their results are reached through the loop.
    pub is_loop_body: bool,
}

impl Step {
    pub fn lanes(&self) -> Vec<Lane<'_>> {
        match &self.kind {
            StepKind::Branch(b) => vec![
                Lane {
                    name: "then",
                    steps: &b.then_steps,
                    is_loop_body: false,
                },
                Lane {
                    name: "else",
                    steps: &b.else_steps,
                    is_loop_body: false,
                },
            ],
            StepKind::Switch(s) => {
                let mut lanes: Vec<Lane<'_>> = s
                    .cases
                    .iter()
                    .map(|c| Lane {
                        name: &c.name,
                        steps: &c.steps,
                        is_loop_body: false,
                    })
                    .collect();
                lanes.push(Lane {
                    name: "default",
                    steps: &s.default,
                    is_loop_body: false,
                });
                lanes
            }
            StepKind::ForEach(f) => vec![Lane {
                name: "each",
                steps: &f.steps,
                is_loop_body: true,
            }],
            StepKind::Approval(a) => vec![
                Lane {
                    name: "then",
                    steps: &a.then_steps,
                    is_loop_body: false,
                },
                Lane {
                    name: "else",
                    steps: &a.else_steps,
                    is_loop_body: false,
                },
            ],
            _ => Vec::new(),
        }
    }

    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_and_is_capped() {
        let p = RetryPolicy {
            jitter: false,
            ..RetryPolicy::default()
        };
        let secs: Vec<u64> = (1..=12).map(|a| p.delay(a, None, 0.0).as_secs()).collect();
        assert_eq!(secs, [2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600, 600]);
    }

    #[test]
    fn jitter_stays_within_half_and_full_delay() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(3, None, 0.0), Duration::from_secs(4));
        assert_eq!(p.delay(3, None, 1.0), Duration::from_secs(8));
    }

    #[test]
    fn a_longer_retry_after_wins() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(30)), 1.0),
            Duration::from_secs(30)
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_millis(1)), 1.0),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn step_override_replaces_only_the_fields_it_names() {
        let o = RetryOverride {
            max_attempts: Some(9),
            ..RetryOverride::default()
        };
        let p = RetryPolicy::default().with_override(Some(&o));
        assert_eq!(p.max_attempts, 9);
        assert_eq!(p.initial_interval, Duration::from_secs(2));
    }

    #[test]
    fn operators_round_trip_their_names() {
        for op in Operator::ALL {
            assert_eq!(Operator::parse(op.name()), Some(op));
        }
        assert_eq!(Operator::parse("equal"), None);
    }
}
