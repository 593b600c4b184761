//! Reading a flow file: YAML text → [`Flow`], with every structural problem reported.
//!
//! serde_yaml gives the typed values (a quoted "0" stays a string, 0 a number) and syntax
//! errors with positions; the decoder walks those values by hand so that it can keep going
//! after a problem and report them all, each at the position [`Positions`] knows for its path.
//!
//! One concern, kept in one file on purpose: every key of the format is read here, next to
//! the others, so that a new key, its error messages and its "did you mean" stay together;
//! splitting by step kind would scatter the shared walking and reporting.

use std::time::Duration;

use serde_json::Value;
use serde_yaml::Value as Yaml;

use crate::diag::{did_you_mean, join_key, Diagnostic, Positions, Sink};
use crate::model::*;

const TOP_KEYS: &[&str] = &[
    "version",
    "id",
    "name",
    "description",
    "connections",
    "trigger",
    "concurrency_key",
    "run_title",
    "dedupe",
    "retry",
    "timeout",
    "steps",
];
const COMMON_STEP_KEYS: &[&str] = &["id", "name", "description", "retry", "timeout"];
const ACTION_KEYS: &[&str] = &["app", "action", "connection", "input"];
const KIND_KEYS: &[&str] = &[
    "action", "branch", "switch", "for_each", "set", "wait", "approval", "task",
];
const PEOPLE_KEYS: &[&str] = &["members", "roles", "emails", "starter"];
const RETRY_KEYS: &[&str] = &[
    "max_attempts",
    "initial_interval",
    "max_interval",
    "multiplier",
    "jitter",
];

/// The result of reading a file: the flow if its structure was readable, and every problem.
pub struct Decoded {
    /// The flow, possibly partial: steps that could not be read are left out (and
    /// reported), so that the rest can still be checked in the same pass.
    pub flow: Option<Flow>,
    pub diagnostics: Vec<Diagnostic>,
    /// Ids of the steps left out, with those nested in them: references to them are not
    /// reported again as unknown.
    pub broken_ids: Vec<String>,
}

/// Parse and decode a flow file. Semantic checks (references, manifests, templates) are
/// [`crate::validate`]'s job; this reports only what stops the file being a flow.
pub fn decode(source: &str, positions: &Positions) -> Decoded {
    let yaml: Yaml = match serde_yaml::from_str(source) {
        Ok(y) => y,
        Err(e) => {
            let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
            return Decoded {
                flow: None,
                broken_ids: Vec::new(),
                diagnostics: vec![Diagnostic {
                    line,
                    column,
                    path: String::new(),
                    message: format!("YAML syntax error: {}", strip_location(&e.to_string())),
                }],
            };
        }
    };
    let mut d = Decoder {
        sink: Sink::new(positions),
        broken_ids: Vec::new(),
    };
    let flow = d.flow(&yaml);
    let mut diagnostics = d.sink.diags;
    diagnostics.sort_by_key(|d| (d.line, d.column));
    Decoded {
        flow,
        diagnostics,
        broken_ids: d.broken_ids,
    }
}

/// serde_yaml appends " at line L column C" to its messages; the position is reported apart.
fn strip_location(msg: &str) -> &str {
    match msg.find(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    }
}

struct Decoder<'p> {
    sink: Sink<'p>,
    broken_ids: Vec<String>,
}

impl Decoder<'_> {
    fn flow(&mut self, y: &Yaml) -> Option<Flow> {
        let map = self.mapping(y, "", "the flow file")?;
        self.check_keys(map, "", TOP_KEYS, "the flow");
        match map.get("version") {
            None => self
                .sink
                .at_value("", "missing `version`: add `version: 1` at the top"),
            Some(Yaml::Number(n)) if n.as_u64() == Some(1) => {}
            Some(_) => self.sink.at_value(
                "version",
                "unsupported `version`: this flowbot reads flow format version 1",
            ),
        }
        let id = self.required_str(map, "", "id");
        if let Some(id) = &id {
            if !is_flow_id(id) {
                self.sink.at_value(
                    "id",
                    format!("flow id `{id}` may contain only letters, digits, `-` and `_`"),
                );
            }
        }
        let name = self.required_str(map, "", "name");
        let description = self.optional_str(map, "", "description");
        let connections = self.connections(map.get("connections"));
        let trigger = match map.get("trigger") {
            Some(t) => self.trigger(t),
            None => {
                self.sink.at_value("", "missing `trigger`");
                None
            }
        };
        let concurrency_key = self.optional_str(map, "", "concurrency_key");
        let run_title = self.optional_str(map, "", "run_title");
        let dedupe = map.get("dedupe").and_then(|d| self.dedupe(d));
        let retry = self
            .retry(map.get("retry"), "retry")
            .map(|o| RetryPolicy::default().with_override(Some(&o)))
            .unwrap_or_default();
        let timeout = self.optional_duration(map, "", "timeout");
        let steps = match map.get("steps") {
            Some(s) => self.steps(s, "steps"),
            None => {
                self.sink.at_value("", "missing `steps`");
                Some(Vec::new())
            }
        };
        Some(Flow {
            id: id?,
            name: name?,
            description,
            connections: connections?,
            trigger: trigger?,
            concurrency_key,
            run_title,
            dedupe,
            retry,
            timeout,
            steps: steps?,
        })
    }

    fn connections(&mut self, y: Option<&Yaml>) -> Option<Vec<ConnectionSlot>> {
        let Some(y) = y else { return Some(Vec::new()) };
        let map = self.mapping(y, "connections", "`connections`")?;
        let mut out = Vec::new();
        for (k, v) in map {
            let Some(name) = self.key_str(k, "connections") else {
                continue;
            };
            let path = join_key("connections", &name);
            // `slot: app` is short for `slot: { app: app }`.
            let app = match v {
                Yaml::String(app) => Some(app.clone()),
                _ => self.mapping(v, &path, "a connection slot").and_then(|m| {
                    self.check_keys(m, &path, &["app"], "a connection slot");
                    self.required_str(m, &path, "app")
                }),
            };
            if let Some(app) = app {
                out.push(ConnectionSlot { name, app });
            }
        }
        Some(out)
    }

    fn trigger(&mut self, y: &Yaml) -> Option<Trigger> {
        let map = self.mapping(y, "trigger", "`trigger`")?;
        self.check_keys(
            map,
            "trigger",
            &["app", "event", "events", "connection", "options"],
            "the trigger",
        );
        let app = self.required_str(map, "trigger", "app");
        let mut events = Vec::new();
        if let Some(e) = self.optional_str(map, "trigger", "event") {
            events.push(e);
        }
        if let Some(list) = map.get("events") {
            if map.contains_key("event") {
                self.sink.at_key(
                    "trigger.events",
                    "give either `event` or `events` in the trigger, not both",
                );
            }
            match list {
                Yaml::Sequence(items) => {
                    for (i, it) in items.iter().enumerate() {
                        match it {
                            Yaml::String(s) => events.push(s.clone()),
                            _ => self.sink.at_value(
                                &format!("trigger.events[{i}]"),
                                "an event name must be text",
                            ),
                        }
                    }
                }
                _ => self
                    .sink
                    .at_value("trigger.events", "`events` must be a list of event names"),
            }
        }
        let connection = self.optional_str(map, "trigger", "connection");
        let options = match map.get("options") {
            None => serde_json::Map::new(),
            Some(o) => match self.json(o, "trigger.options") {
                Value::Object(m) => m,
                Value::Null => serde_json::Map::new(),
                _ => {
                    self.sink
                        .at_value("trigger.options", "`options` must be a mapping");
                    serde_json::Map::new()
                }
            },
        };
        Some(Trigger {
            app: app?,
            events,
            connection,
            options,
        })
    }

    fn dedupe(&mut self, y: &Yaml) -> Option<Dedupe> {
        let map = self.mapping(y, "dedupe", "`dedupe`")?;
        self.check_keys(map, "dedupe", &["key", "window"], "`dedupe`");
        let key = self.required_str(map, "dedupe", "key");
        let window = match map.get("window") {
            Some(w) => self.duration(w, "dedupe.window"),
            None => Some(Duration::from_secs(600)),
        };
        Some(Dedupe {
            key: key?,
            window: window?,
        })
    }

    fn retry(&mut self, y: Option<&Yaml>, path: &str) -> Option<RetryOverride> {
        let map = self.mapping(y?, path, "a retry policy")?;
        self.check_keys(map, path, RETRY_KEYS, "a retry policy");
        let max_attempts = match map.get("max_attempts") {
            None => None,
            Some(Yaml::Number(n)) if n.as_u64().is_some_and(|n| (1..=100).contains(&n)) => {
                n.as_u64().map(|n| n as u32)
            }
            Some(_) => {
                self.sink.at_value(
                    &join_key(path, "max_attempts"),
                    "`max_attempts` must be a whole number from 1 to 100",
                );
                None
            }
        };
        let multiplier = match map.get("multiplier") {
            None => None,
            Some(Yaml::Number(n)) if n.as_f64().is_some_and(|f| (1.0..=10.0).contains(&f)) => {
                n.as_f64()
            }
            Some(_) => {
                self.sink.at_value(
                    &join_key(path, "multiplier"),
                    "`multiplier` must be a number from 1 to 10",
                );
                None
            }
        };
        let jitter = match map.get("jitter") {
            None => None,
            Some(Yaml::Bool(b)) => Some(*b),
            Some(_) => {
                self.sink
                    .at_value(&join_key(path, "jitter"), "`jitter` must be true or false");
                None
            }
        };
        Some(RetryOverride {
            max_attempts,
            initial_interval: self.optional_duration(map, path, "initial_interval"),
            max_interval: self.optional_duration(map, path, "max_interval"),
            multiplier,
            jitter,
        })
    }

    fn steps(&mut self, y: &Yaml, path: &str) -> Option<Vec<Step>> {
        let seq = match y {
            Yaml::Sequence(s) => s,
            Yaml::Null => return Some(Vec::new()),
            _ => {
                self.sink
                    .at_value(path, format!("`{}` must be a list of steps", last(path)));
                return None;
            }
        };
        let mut out = Vec::new();
        for (i, s) in seq.iter().enumerate() {
            match self.step(s, &format!("{path}[{i}]")) {
                Some(step) => out.push(step),
                None => collect_ids(s, &mut self.broken_ids),
            }
        }
        Some(out)
    }

    fn step(&mut self, y: &Yaml, path: &str) -> Option<Step> {
        let map = self.mapping(y, path, "a step")?;
        let id = self.required_str(map, path, "id");
        if let Some(id) = &id {
            if !is_step_id(id) {
                self.sink.at_value(
                    &join_key(path, "id"),
                    format!(
                        "step id `{id}` must start with a letter or `_` and contain only \
                         letters, digits and `_` (it is used as a name in templates)"
                    ),
                );
            } else if RESERVED_NAMES.contains(&id.as_str()) {
                self.sink.at_value(
                    &join_key(path, "id"),
                    format!("step id `{id}` is reserved; choose another"),
                );
            }
        }
        let label = id.as_deref().unwrap_or("?").to_string();
        let name = self.optional_str(map, path, "name");
        self.optional_str(map, path, "description");
        let retry = self.retry(map.get("retry"), &join_key(path, "retry"));
        let timeout = self.optional_duration(map, path, "timeout");

        let present: Vec<&str> = KIND_KEYS
            .iter()
            .copied()
            .filter(|k| map.contains_key(*k))
            .collect();
        let kind_key = match present.as_slice() {
            [one] => *one,
            [] if map.contains_key("app") => "action",
            [] => {
                self.check_keys(map, path, &all_step_keys(), "a step");
                self.sink.at_value(
                    path,
                    format!(
                        "step `{label}` has no kind: give it one of `action`, `branch`, \
                         `switch`, `for_each`, `set`, `wait`, `approval` or `task`"
                    ),
                );
                return None;
            }
            [first, second, ..] => {
                self.sink.at_key(
                    &join_key(path, second),
                    format!(
                        "step `{label}` has both `{first}` and `{second}`: a step is of \
                         exactly one kind"
                    ),
                );
                return None;
            }
        };
        let mut allowed: Vec<&str> = COMMON_STEP_KEYS.to_vec();
        if kind_key == "action" {
            allowed.extend_from_slice(ACTION_KEYS);
        } else {
            allowed.push(kind_key);
        }
        let article = if kind_key == "action" { "an" } else { "a" };
        self.check_keys(map, path, &allowed, &format!("{article} `{kind_key}` step"));

        let kpath = join_key(path, kind_key);
        let kind = match kind_key {
            "action" => self.action(map, path).map(StepKind::Action),
            "branch" => self.branch(&map["branch"], &kpath).map(StepKind::Branch),
            "switch" => self.switch(&map["switch"], &kpath).map(StepKind::Switch),
            "for_each" => self
                .for_each(&map["for_each"], &kpath)
                .map(StepKind::ForEach),
            "set" => {
                match self.json(&map["set"], &kpath) {
                    Value::Object(m) if !m.is_empty() => {
                        for k in m.keys() {
                            if !is_step_id(k) {
                                self.sink.at_key(
                                &join_key(&kpath, k),
                                format!("value name `{k}` must be a simple name (letters, digits, `_`)"),
                            );
                            }
                        }
                        Some(StepKind::Set(m))
                    }
                    _ => {
                        self.sink.at_value(
                            &kpath,
                            "`set` must be a mapping of names to values or templates",
                        );
                        None
                    }
                }
            }
            "wait" => self.duration(&map["wait"], &kpath).map(StepKind::Wait),
            "approval" => self
                .people_step(&map["approval"], &kpath, false)
                .map(StepKind::Approval),
            "task" => self
                .people_step(&map["task"], &kpath, true)
                .map(StepKind::Task),
            _ => unreachable!("kind keys are listed in KIND_KEYS"),
        };
        Some(Step {
            id: id?,
            source: path.to_string(),
            name,
            kind: kind?,
            retry,
            timeout,
        })
    }

    fn action(&mut self, map: &serde_yaml::Mapping, path: &str) -> Option<ActionStep> {
        let app = self.required_str(map, path, "app");
        let action = self.required_str(map, path, "action");
        let connection = self.optional_str(map, path, "connection");
        let ipath = join_key(path, "input");
        let input = match map.get("input") {
            None => serde_json::Map::new(),
            Some(v) => match self.json(v, &ipath) {
                Value::Object(m) => m,
                Value::Null => serde_json::Map::new(),
                _ => {
                    self.sink
                        .at_value(&ipath, "`input` must be a mapping of input names to values");
                    return None;
                }
            },
        };
        Some(ActionStep {
            app: app?,
            action: action?,
            connection,
            input,
        })
    }

    fn branch(&mut self, y: &Yaml, path: &str) -> Option<BranchStep> {
        let map = self.mapping(y, path, "`branch`")?;
        self.check_keys(map, path, &["if", "then", "else"], "a branch");
        let condition = match map.get("if") {
            Some(c) => self.condition(c, &join_key(path, "if")),
            None => {
                self.sink.at_value(path, "a branch needs an `if` condition");
                None
            }
        };
        let then_steps = self.lane(map, path, "then");
        let else_steps = self.lane(map, path, "else");
        Some(BranchStep {
            condition: condition?,
            then_steps: then_steps?,
            else_steps: else_steps?,
        })
    }

    /// An `approval` or a `task`: who, what they read, and what their answers lead to.
    fn people_step(&mut self, y: &Yaml, path: &str, task: bool) -> Option<PeopleStep> {
        let map = self.mapping(y, path, if task { "`task`" } else { "`approval`" })?;
        let (keys, what): (&[&str], _) = if task {
            (
                &["to", "message", "fields", "send_back_to", "deadline"],
                "a task",
            )
        } else {
            (
                &[
                    "to",
                    "message",
                    "rule",
                    "send_back_to",
                    "deadline",
                    "then",
                    "else",
                ],
                "an approval",
            )
        };
        self.check_keys(map, path, keys, what);
        let to = match map.get("to") {
            Some(t) => self.people(t, &join_key(path, "to")),
            None => {
                self.sink.at_value(
                    path,
                    format!(
                        "{what} needs `to`: who is asked (`members`, `roles`, `emails` or \
                         `starter: true`)"
                    ),
                );
                None
            }
        };
        let message = self.optional_str(map, path, "message").unwrap_or_default();
        let rule = match map.get("rule") {
            None => ApprovalRule::Any,
            Some(Yaml::String(s)) if s == "any" => ApprovalRule::Any,
            Some(Yaml::String(s)) if s == "all" => ApprovalRule::All,
            Some(Yaml::Number(n)) if n.as_u64().is_some_and(|n| (1..=100).contains(&n)) => {
                ApprovalRule::Count(n.as_u64().unwrap_or(1) as u32)
            }
            Some(_) => {
                self.sink.at_value(
                    &join_key(path, "rule"),
                    "`rule` is `any` (the first approval decides), `all`, or a number of \
                     approvals from 1 to 100",
                );
                ApprovalRule::Any
            }
        };
        let fields = map
            .get("fields")
            .map(|f| self.json(f, &join_key(path, "fields")));
        if task && fields.is_none() {
            self.sink.at_value(
                path,
                "a task needs `fields`: the form the person fills in, e.g. \
                 `- { key: note, label: メモ, type: long_text }`",
            );
        }
        let send_back_to = self.optional_str(map, path, "send_back_to");
        let deadline = match map.get("deadline") {
            None | Some(Yaml::Null) => Some(None),
            Some(d) => self
                .deadline(d, &join_key(path, "deadline"), task)
                .map(Some),
        };
        let then_steps = self.lane(map, path, "then");
        let else_steps = self.lane(map, path, "else");
        Some(PeopleStep {
            to: to?,
            message,
            rule,
            fields,
            send_back_to,
            deadline: deadline?,
            then_steps: then_steps?,
            else_steps: else_steps?,
        })
    }

    fn people(&mut self, y: &Yaml, path: &str) -> Option<People> {
        let map = self.mapping(y, path, "`to`")?;
        self.check_keys(map, path, PEOPLE_KEYS, "`to`");
        let mut list = |key: &str| -> Vec<String> {
            match map.get(key) {
                None | Some(Yaml::Null) => Vec::new(),
                Some(Yaml::String(s)) => vec![s.clone()],
                Some(Yaml::Sequence(items)) => items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| match v {
                        Yaml::String(s) if !s.trim().is_empty() => Some(s.clone()),
                        _ => {
                            self.sink.at_value(
                                &format!("{}[{i}]", join_key(path, key)),
                                format!("each of `{key}` must be text"),
                            );
                            None
                        }
                    })
                    .collect(),
                Some(_) => {
                    self.sink.at_value(
                        &join_key(path, key),
                        format!("`{key}` must be a list of text"),
                    );
                    Vec::new()
                }
            }
        };
        let members = list("members");
        let roles = list("roles");
        let emails = list("emails");
        let starter = match map.get("starter") {
            None | Some(Yaml::Null) => false,
            Some(Yaml::Bool(b)) => *b,
            Some(_) => {
                self.sink.at_value(
                    &join_key(path, "starter"),
                    "`starter` must be true or false",
                );
                false
            }
        };
        let people = People {
            members,
            roles,
            emails,
            starter,
        };
        if people.is_empty() {
            self.sink.at_value(
                path,
                "nobody is asked: name `members`, `roles`, `emails`, or `starter: true`",
            );
            return None;
        }
        Some(people)
    }

    fn deadline(&mut self, y: &Yaml, path: &str, task: bool) -> Option<Deadline> {
        let map = self.mapping(y, path, "`deadline`")?;
        self.check_keys(map, path, &["after", "then", "escalate_to"], "a deadline");
        let after = match map.get("after") {
            Some(v) => self.duration(v, &join_key(path, "after")),
            None => {
                self.sink
                    .at_value(path, "a deadline needs `after`: e.g. `after: 2d`");
                None
            }
        };
        let then = match map.get("then") {
            None => Some(AtDeadline::Fail),
            Some(Yaml::String(s)) if s == "fail" => Some(AtDeadline::Fail),
            Some(Yaml::String(s)) if s == "else" && !task => Some(AtDeadline::Else),
            Some(Yaml::String(s)) if s == "escalate" => Some(AtDeadline::Escalate),
            Some(_) => {
                let choices = if task {
                    "`fail` or `escalate`"
                } else {
                    "`fail`, `else` (the approval's else lane) or `escalate`"
                };
                self.sink.at_value(
                    &join_key(path, "then"),
                    format!("what happens at the deadline is {choices}"),
                );
                None
            }
        };
        let escalate_to = match map.get("escalate_to") {
            Some(t) => self.people(t, &join_key(path, "escalate_to")),
            None => Some(People::default()),
        };
        if then == Some(AtDeadline::Escalate) && escalate_to.as_ref().is_some_and(People::is_empty)
        {
            self.sink.at_value(
                path,
                "`then: escalate` needs `escalate_to`: who is asked when nobody answered",
            );
            return None;
        }
        Some(Deadline {
            after: after?,
            then: then?,
            escalate_to: escalate_to?,
        })
    }

    fn lane(&mut self, map: &serde_yaml::Mapping, path: &str, key: &str) -> Option<Vec<Step>> {
        match map.get(key) {
            Some(s) => self.steps(s, &join_key(path, key)),
            None => Some(Vec::new()),
        }
    }

    fn switch(&mut self, y: &Yaml, path: &str) -> Option<SwitchStep> {
        let map = self.mapping(y, path, "`switch`")?;
        self.check_keys(map, path, &["cases", "default"], "a switch");
        let cpath = join_key(path, "cases");
        let mut cases = Vec::new();
        let mut ok = true;
        match map.get("cases") {
            Some(Yaml::Sequence(seq)) if !seq.is_empty() => {
                for (i, c) in seq.iter().enumerate() {
                    let p = format!("{cpath}[{i}]");
                    match self.case(c, &p, i) {
                        Some(case) => {
                            if cases.iter().any(|x: &SwitchCase| x.name == case.name) {
                                self.sink
                                    .at_value(&p, format!("two cases are named `{}`", case.name));
                            }
                            cases.push(case)
                        }
                        None => ok = false,
                    }
                }
            }
            _ => {
                self.sink
                    .at_value(path, "a switch needs `cases`: a list of `if` + `steps`");
                ok = false;
            }
        }
        let default = self.lane(map, path, "default");
        (ok).then_some(())?;
        Some(SwitchStep {
            cases,
            default: default?,
        })
    }

    fn case(&mut self, y: &Yaml, path: &str, index: usize) -> Option<SwitchCase> {
        let map = self.mapping(y, path, "a switch case")?;
        self.check_keys(map, path, &["name", "if", "steps"], "a switch case");
        let name = self
            .optional_str(map, path, "name")
            .unwrap_or_else(|| format!("case{}", index + 1));
        if name == "default" {
            self.sink.at_value(
                &join_key(path, "name"),
                "`default` is the name of the switch's fallback lane; choose another case name",
            );
        }
        let condition = match map.get("if") {
            Some(c) => self.condition(c, &join_key(path, "if")),
            None => {
                self.sink
                    .at_value(path, "a switch case needs an `if` condition");
                None
            }
        };
        let steps = self.lane(map, path, "steps");
        Some(SwitchCase {
            name,
            condition: condition?,
            steps: steps?,
        })
    }

    fn for_each(&mut self, y: &Yaml, path: &str) -> Option<ForEachStep> {
        let map = self.mapping(y, path, "`for_each`")?;
        self.check_keys(map, path, &["items", "max_iterations", "steps"], "a loop");
        let items = match map.get("items") {
            Some(v) => Some(self.json(v, &join_key(path, "items"))),
            None => {
                self.sink
                    .at_value(path, "a loop needs `items`: a template giving a list");
                None
            }
        };
        let max_iterations = match map.get("max_iterations") {
            None => DEFAULT_MAX_ITERATIONS,
            Some(Yaml::Number(n)) if n.as_u64().is_some_and(|n| n >= 1) => {
                n.as_u64().unwrap_or(1) as usize
            }
            Some(_) => {
                self.sink.at_value(
                    &join_key(path, "max_iterations"),
                    "`max_iterations` must be a whole number of at least 1",
                );
                DEFAULT_MAX_ITERATIONS
            }
        };
        let steps = self.lane(map, path, "steps");
        Some(ForEachStep {
            items: items?,
            max_iterations,
            steps: steps?,
        })
    }

    fn condition(&mut self, y: &Yaml, path: &str) -> Option<Condition> {
        let map = self.mapping(y, path, "a condition")?;
        for group in ["all", "any"] {
            if let Some(list) = map.get(group) {
                self.check_keys(map, path, &[group], "a condition group");
                let gpath = join_key(path, group);
                let Yaml::Sequence(items) = list else {
                    self.sink
                        .at_value(&gpath, format!("`{group}` must be a list of conditions"));
                    return None;
                };
                if items.is_empty() {
                    self.sink
                        .at_value(&gpath, format!("`{group}` needs at least one condition"));
                    return None;
                }
                let mut conds = Vec::new();
                let mut ok = true;
                for (i, c) in items.iter().enumerate() {
                    match self.condition(c, &format!("{gpath}[{i}]")) {
                        Some(c) => conds.push(c),
                        None => ok = false,
                    }
                }
                ok.then_some(())?;
                return Some(if group == "all" {
                    Condition::All(conds)
                } else {
                    Condition::Any(conds)
                });
            }
        }
        self.check_keys(map, path, &["value", "op", "to"], "a condition");
        let op_name = self.required_str(map, path, "op");
        let op = op_name.as_deref().and_then(|name| {
            let op = Operator::parse(name);
            if op.is_none() {
                let names: Vec<&str> = Operator::ALL.iter().map(|o| o.name()).collect();
                self.sink.at_value(
                    &join_key(path, "op"),
                    format!("unknown operator `{name}`{}", did_you_mean(name, &names)),
                );
            }
            op
        });
        let value = match map.get("value") {
            Some(v) => Some(self.json(v, &join_key(path, "value"))),
            None => {
                self.sink
                    .at_value(path, "a condition needs `value`: what to test");
                None
            }
        };
        let to = map.get("to").map(|v| self.json(v, &join_key(path, "to")));
        let op = op?;
        match (op.is_unary(), &to) {
            (true, Some(_)) => self.sink.at_key(
                &join_key(path, "to"),
                format!("operator `{}` takes no `to`", op.name()),
            ),
            (false, None) => self.sink.at_value(
                path,
                format!("operator `{}` needs `to`: what to compare with", op.name()),
            ),
            _ => {}
        }
        Some(Condition::Compare {
            value: value?,
            op,
            to,
        })
    }

    // ---- helpers ----

    fn mapping<'y>(
        &mut self,
        y: &'y Yaml,
        path: &str,
        what: &str,
    ) -> Option<&'y serde_yaml::Mapping> {
        match y {
            Yaml::Mapping(m) => Some(m),
            _ => {
                self.sink.at_value(
                    path,
                    format!("{what} must be a mapping of `key: value` lines"),
                );
                None
            }
        }
    }

    fn check_keys(&mut self, map: &serde_yaml::Mapping, path: &str, allowed: &[&str], what: &str) {
        for k in map.keys() {
            let Some(key) = self.key_str(k, path) else {
                continue;
            };
            if !allowed.contains(&key.as_str()) {
                self.sink.at_key(
                    &join_key(path, &key),
                    format!(
                        "unknown key `{key}` in {what}{}",
                        did_you_mean(&key, allowed)
                    ),
                );
            }
        }
    }

    fn key_str(&mut self, k: &Yaml, path: &str) -> Option<String> {
        match k {
            Yaml::String(s) => Some(s.clone()),
            Yaml::Number(n) => Some(n.to_string()),
            Yaml::Bool(b) => Some(b.to_string()),
            _ => {
                self.sink.at_value(path, "keys must be plain text");
                None
            }
        }
    }

    fn required_str(&mut self, map: &serde_yaml::Mapping, path: &str, key: &str) -> Option<String> {
        match map.get(key) {
            Some(Yaml::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            Some(Yaml::String(_)) => {
                self.sink
                    .at_value(&join_key(path, key), format!("`{key}` must not be empty"));
                None
            }
            Some(Yaml::Number(n)) if key != "id" => Some(n.to_string()),
            Some(_) => {
                self.sink
                    .at_value(&join_key(path, key), format!("`{key}` must be text"));
                None
            }
            None => {
                let what = if path.is_empty() {
                    "the flow".to_string()
                } else if path.ends_with(']') && last(path).starts_with("steps") {
                    "this step".to_string()
                } else {
                    format!("`{}`", last(path))
                };
                self.sink
                    .at_value(path, format!("missing `{key}` in {what}"));
                None
            }
        }
    }

    fn optional_str(&mut self, map: &serde_yaml::Mapping, path: &str, key: &str) -> Option<String> {
        match map.get(key) {
            None | Some(Yaml::Null) => None,
            Some(Yaml::String(s)) => Some(s.clone()),
            Some(_) => {
                self.sink
                    .at_value(&join_key(path, key), format!("`{key}` must be text"));
                None
            }
        }
    }

    fn optional_duration(
        &mut self,
        map: &serde_yaml::Mapping,
        path: &str,
        key: &str,
    ) -> Option<Duration> {
        map.get(key)
            .and_then(|v| self.duration(v, &join_key(path, key)))
    }

    fn duration(&mut self, y: &Yaml, path: &str) -> Option<Duration> {
        let parsed = match y {
            Yaml::Number(n) => n
                .as_f64()
                .filter(|f| *f >= 0.0)
                .map(Duration::from_secs_f64),
            Yaml::String(s) => parse_duration(s),
            _ => None,
        };
        if parsed.is_none() {
            self.sink.at_value(
                path,
                format!(
                    "`{}` must be a duration such as `500ms`, `30s`, `5m` or `1h`",
                    last(path)
                ),
            );
        }
        parsed
    }

    /// YAML → JSON for inputs and templates. Mapping keys become text; tags are refused.
    fn json(&mut self, y: &Yaml, path: &str) -> Value {
        match y {
            Yaml::Null => Value::Null,
            Yaml::Bool(b) => Value::Bool(*b),
            Yaml::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Value::from(i)
                } else if let Some(u) = n.as_u64() {
                    Value::from(u)
                } else {
                    n.as_f64()
                        .and_then(serde_json::Number::from_f64)
                        .map_or(Value::Null, Value::Number)
                }
            }
            Yaml::String(s) => Value::String(s.clone()),
            Yaml::Sequence(seq) => Value::Array(
                seq.iter()
                    .enumerate()
                    .map(|(i, v)| self.json(v, &format!("{path}[{i}]")))
                    .collect(),
            ),
            Yaml::Mapping(m) => {
                let mut out = serde_json::Map::new();
                for (k, v) in m {
                    if let Some(key) = self.key_str(k, path) {
                        let child = join_key(path, &key);
                        let value = self.json(v, &child);
                        out.insert(key, value);
                    }
                }
                Value::Object(out)
            }
            Yaml::Tagged(t) => {
                self.sink.at_value(
                    path,
                    format!("YAML tags such as `{}` are not supported here", t.tag),
                );
                Value::Null
            }
        }
    }
}

/// Names that templates already use and so cannot be step ids.
pub const RESERVED_NAMES: &[&str] = &[
    "trigger",
    "sent_back",
    "item",
    "index",
    "loop",
    "true",
    "false",
    "none",
    "null",
    "range",
    "dict",
    "now",
    "self",
    "super",
    "namespace",
];

/// Every `id:` inside a YAML value.
fn collect_ids(y: &Yaml, out: &mut Vec<String>) {
    match y {
        Yaml::Mapping(m) => {
            if let Some(Yaml::String(id)) = m.get("id") {
                out.push(id.clone());
            }
            for v in m.values() {
                collect_ids(v, out);
            }
        }
        Yaml::Sequence(s) => {
            for v in s {
                collect_ids(v, out);
            }
        }
        _ => {}
    }
}

fn all_step_keys() -> Vec<&'static str> {
    let mut v = COMMON_STEP_KEYS.to_vec();
    v.extend_from_slice(ACTION_KEYS);
    v.extend_from_slice(&KIND_KEYS[1..]);
    v
}

fn last(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

pub fn is_step_id(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub fn is_flow_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_str(src: &str) -> Decoded {
        decode(src, &Positions::index(src))
    }

    fn messages(src: &str) -> Vec<String> {
        decode_str(src)
            .diagnostics
            .iter()
            .map(|d| d.to_string())
            .collect()
    }

    const MINIMAL: &str = "version: 1\nid: f\nname: F\ntrigger: { app: manual }\nsteps: []\n";

    #[test]
    fn a_minimal_flow_decodes() {
        let d = decode_str(MINIMAL);
        assert!(d.diagnostics.is_empty(), "{:?}", d.diagnostics);
        let f = d.flow.unwrap();
        assert_eq!(f.id, "f");
        assert_eq!(f.retry, RetryPolicy::default());
    }

    #[test]
    fn every_step_kind_decodes() {
        let src = r#"
version: 1
id: kinds
name: kinds
trigger: { app: manual }
retry: { max_attempts: 3, initial_interval: 1s }
timeout: 10s
steps:
  - id: a
    app: http
    action: request
    input: { url: "http://x" }
    retry: { max_attempts: 2 }
  - id: b
    branch:
      if: { all: [ { value: 1, op: equals, to: "1" }, { any: [ { value: "", op: is_empty } ] } ] }
      then: [ { id: w, wait: 1s } ]
  - id: s
    switch:
      cases:
        - { name: big, if: { value: 3, op: greater_than, to: 2 }, steps: [ { id: v, set: { x: 1 } } ] }
      default: []
  - id: l
    for_each: { items: "{{ trigger.list }}", max_iterations: 5, steps: [ { id: inner, set: { y: 2 } } ] }
"#;
        let d = decode_str(src);
        assert!(d.diagnostics.is_empty(), "{:?}", d.diagnostics);
        let f = d.flow.unwrap();
        assert_eq!(f.retry.max_attempts, 3);
        assert_eq!(f.retry.initial_interval, Duration::from_secs(1));
        assert_eq!(f.timeout, Some(Duration::from_secs(10)));
        let kinds: Vec<&str> = f.walk().iter().map(|s| s.kind.label()).collect();
        assert_eq!(
            kinds,
            ["action", "branch", "wait", "switch", "set", "for_each", "set"]
        );
        assert_eq!(f.steps[0].retry.unwrap().max_attempts, Some(2));
    }

    #[test]
    fn unknown_keys_get_a_suggestion() {
        let src = MINIMAL.replace("steps: []", "stpes: []");
        let m = messages(&src);
        assert!(
            m.contains(&"5:1: unknown key `stpes` in the flow; did you mean `steps`?".to_string()),
            "{m:?}"
        );
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let src = "version: 2\nid: \"bad id\"\nname: x\ntrigger: { app: manual, evnt: x }\nsteps:\n  - id: 1x\n    wait: soon\n";
        let m = messages(src);
        assert_eq!(m.len(), 5, "{m:?}");
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let m = messages("version: 1\nid: [unclosed\n");
        assert_eq!(m.len(), 1);
        assert!(m[0].starts_with("3:1: YAML syntax error"), "{m:?}");
    }

    #[test]
    fn yaml_types_are_kept() {
        let src = MINIMAL.replace(
            "steps: []",
            "steps:\n  - id: s\n    set: { n: 0, t: \"0\", l: [1], z: null }\n",
        );
        let f = decode_str(&src).flow.unwrap();
        let StepKind::Set(m) = &f.steps[0].kind else {
            panic!()
        };
        assert_eq!(
            Value::Object(m.clone()),
            serde_json::json!({"n":0,"t":"0","l":[1],"z":null})
        );
    }
}
