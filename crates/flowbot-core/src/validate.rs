//! Checks that need the whole flow and the app manifests: unique step ids, references to
//! obtained values that exist and are certainly available where they are used, known apps,
//! actions, inputs and connections, and template syntax.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Value};

use crate::connector::Apps;
use crate::decode::{decode, RESERVED_NAMES};
use crate::diag::{did_you_mean, join_key, Diagnostic, Positions, Sink};
use crate::manifest::{AppManifest, FieldKind, FieldSpec};
use crate::model::*;
use crate::template::{references, strings};

/// A flow file read and checked.
pub struct Checked {
    /// Present only when there were no problems.
    pub flow: Option<Flow>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Read and check a flow file: every problem, sorted by position.
pub fn check(source: &str, apps: &Apps) -> Checked {
    let positions = Positions::index(source);
    let decoded = decode(source, &positions);
    let mut diagnostics = decoded.diagnostics;
    if let Some(flow) = &decoded.flow {
        diagnostics.extend(validate(flow, apps, &positions, &decoded.broken_ids));
    }
    diagnostics.sort_by_key(|d| (d.line, d.column));
    diagnostics.dedup();
    Checked {
        flow: if diagnostics.is_empty() {
            decoded.flow
        } else {
            None
        },
        diagnostics,
    }
}

/// Where a step sits: the YAML path and the lanes that enclose it.
#[derive(Debug, Clone)]
struct Place {
    order: usize,
    yaml: String,
    /// Enclosing (container step id, lane name, is loop body), outermost first.
    lanes: Vec<(String, String, bool)>,
}

/// Semantic checks on a decoded flow.
/// `broken_ids` are steps the decoder reported and left out; references to them are not
/// reported a second time.
pub fn validate(
    flow: &Flow,
    apps: &Apps,
    positions: &Positions,
    broken_ids: &[String],
) -> Vec<Diagnostic> {
    let mut v = Validator {
        flow,
        apps,
        sink: Sink::new(positions),
        places: HashMap::new(),
        broken_ids,
    };
    v.index_places(&flow.steps, &mut Vec::new(), &mut 0);
    v.connections();
    v.trigger();
    let trigger_only = BTreeSet::from(["trigger".to_string()]);
    if let Some(key) = &flow.concurrency_key {
        v.template(key, "concurrency_key", &trigger_only, None);
    }
    if let Some(d) = &flow.dedupe {
        v.template(&d.key, "dedupe.key", &trigger_only, None);
    }
    if let Some(t) = &flow.run_title {
        v.template(t, "run_title", &trigger_only, None);
    }
    // `sent_back` (the last send-back's comment) is there for every step.
    let mut avail = BTreeSet::from(["trigger".to_string(), "sent_back".to_string()]);
    v.steps(&flow.steps, &mut avail);
    v.sink.diags
}

/// The roles people may be asked by (the store's roles, by name).
pub const ROLES: &[&str] = &["owner", "admin", "editor", "viewer", "operator"];

struct Validator<'a, 'p> {
    flow: &'a Flow,
    apps: &'a Apps,
    sink: Sink<'p>,
    places: HashMap<&'a str, Place>,
    broken_ids: &'a [String],
}

impl<'a> Validator<'a, '_> {
    fn index_places(
        &mut self,
        steps: &'a [Step],
        lanes: &mut Vec<(String, String, bool)>,
        order: &mut usize,
    ) {
        for s in steps {
            let yaml = s.source.clone();
            *order += 1;
            if let Some(first) = self.places.get(s.id.as_str()) {
                let (line, _) = self.sink.positions().value(&first.yaml);
                self.sink.at_value(
                    &join_key(&yaml, "id"),
                    format!(
                        "duplicate step id `{}` (first used on line {line}); step ids must be unique in a flow",
                        s.id
                    ),
                );
            } else {
                self.places.insert(
                    &s.id,
                    Place {
                        order: *order,
                        yaml: yaml.clone(),
                        lanes: lanes.clone(),
                    },
                );
            }
            for lane in s.lanes() {
                lanes.push((s.id.clone(), lane.name.to_string(), lane.is_loop_body));
                self.index_places(lane.steps, lanes, order);
                lanes.pop();
            }
        }
    }

    fn connections(&mut self) {
        for slot in &self.flow.connections {
            if self.apps.get(&slot.app).is_none() {
                let path = format!("connections.{}.app", slot.name);
                let ids = self.apps.ids();
                self.sink.at_value(
                    &path,
                    format!(
                        "connection `{}` is for unknown app `{}`{}",
                        slot.name,
                        slot.app,
                        did_you_mean(&slot.app, &ids)
                    ),
                );
            }
        }
    }

    fn trigger(&mut self) {
        let t = &self.flow.trigger;
        let Some(app) = self.known_app(&t.app, "trigger.app") else {
            return;
        };
        if app.triggers.is_empty() {
            self.sink
                .at_value("trigger.app", format!("app `{}` has no triggers", app.id));
            return;
        }
        let ids: Vec<&str> = app.triggers.iter().map(|t| t.id.as_str()).collect();
        if t.events.is_empty() && app.triggers.len() > 1 {
            self.sink.at_value(
                "trigger",
                format!(
                    "say which `event` of `{}` starts this flow (one of: {})",
                    app.id,
                    ids.join(", ")
                ),
            );
        }
        let mut specs = Vec::new();
        for (i, e) in t.events.iter().enumerate() {
            match app.trigger(e) {
                Some(spec) => specs.push(spec),
                None => {
                    let path = if self.flow.trigger.events.len() == 1
                        && self.sink.positions().value("trigger.event")
                            != self.sink.positions().value("trigger")
                    {
                        "trigger.event".to_string()
                    } else {
                        format!("trigger.events[{i}]")
                    };
                    self.sink.at_value(
                        &path,
                        format!(
                            "unknown event `{e}` for app `{}`{}",
                            app.id,
                            did_you_mean(e, &ids)
                        ),
                    );
                }
            }
        }
        if t.events.is_empty() {
            specs.extend(app.triggers.first());
        }
        self.connection_ref(app, t.connection.as_deref(), "trigger");
        // Options: the union of the chosen events' options.
        let mut fields: Vec<&FieldSpec> = Vec::new();
        for s in &specs {
            for o in &s.options {
                if !fields.iter().any(|f| f.name == o.name) {
                    fields.push(o);
                }
            }
        }
        if !specs.is_empty() {
            let options = Value::Object(t.options.clone());
            self.fields(&fields, &options, "trigger.options", "trigger option");
        }
        // A table trigger's condition is read as each row change will read it.
        if app.id == crate::table::APP {
            if let Some(c) = t.options.get("condition").filter(|c| !c.is_null()) {
                if let Err(m) = crate::table::condition_from_json(c) {
                    self.sink.at_value("trigger.options.condition", m);
                }
            }
        }
        // A mail trigger's conditions are read as each received mail will read them.
        if app.id == crate::mail::APP {
            if let Err(problems) = crate::mail::filter_of(&t.options) {
                for (path, message) in problems {
                    self.sink
                        .at_value(&format!("trigger.options.{path}"), message);
                }
            }
        }
        // A form's fields are read as the form page will read them.
        if app.id == "form" {
            if let Err(problems) = crate::form::parse(&t.options) {
                for (path, message) in problems {
                    self.sink
                        .at_value(&format!("trigger.options.{path}"), message);
                }
            }
        }
    }

    fn known_app(&mut self, id: &str, path: &str) -> Option<&'a AppManifest> {
        let app = self.apps.manifest(id);
        if app.is_none() {
            let ids = self.apps.ids();
            self.sink.at_value(
                path,
                format!("unknown app `{id}`{}", did_you_mean(id, &ids)),
            );
        }
        app
    }

    /// A `connection:` reference from a trigger or step at `path`.
    fn connection_ref(&mut self, app: &AppManifest, slot: Option<&str>, path: &str) {
        let cpath = join_key(path, "connection");
        match slot {
            None if app.needs_connection() => {
                let hint = self
                    .flow
                    .connections
                    .iter()
                    .find(|c| c.app == app.id)
                    .map(|c| format!(": add `connection: {}`", c.name))
                    .unwrap_or_else(|| {
                        format!(
                            ": declare one under `connections:` (e.g. `{0}: {{ app: {0} }}`) and name it here",
                            app.id
                        )
                    });
                self.sink
                    .at_value(path, format!("app `{}` needs a connection{hint}", app.id));
            }
            None => {}
            Some(name) => match self.flow.connections.iter().find(|c| c.name == name) {
                None => {
                    let names: Vec<&str> = self
                        .flow
                        .connections
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect();
                    self.sink.at_value(
                        &cpath,
                        format!(
                            "unknown connection `{name}`: declare it under `connections:`{}",
                            did_you_mean(name, &names)
                        ),
                    );
                }
                Some(c) if c.app != app.id => self.sink.at_value(
                    &cpath,
                    format!(
                        "connection `{name}` is for app `{}`, but this uses app `{}`",
                        c.app, app.id
                    ),
                ),
                Some(_) if !app.needs_connection() => self
                    .sink
                    .at_value(&cpath, format!("app `{}` takes no connection", app.id)),
                Some(_) => {}
            },
        }
    }

    /// Check given values against field specs: unknown names, missing required fields,
    /// literal values of the wrong kind.
    fn fields(&mut self, specs: &[&FieldSpec], given: &Value, path: &str, what: &str) {
        let Value::Object(given) = given else { return };
        let names: Vec<&str> = specs.iter().map(|f| f.name.as_str()).collect();
        for (k, v) in given {
            let fpath = join_key(path, k);
            let Some(spec) = specs.iter().find(|f| &f.name == k) else {
                self.sink.at_key(
                    &fpath,
                    format!("unknown {what} `{k}`{}", did_you_mean(k, &names)),
                );
                continue;
            };
            let is_template = spec.kind != FieldKind::Code
                && matches!(v, Value::String(s) if crate::template::is_template(s));
            if !is_template && !v.is_null() {
                if !spec.kind.accepts(v) {
                    self.sink.at_value(
                        &fpath,
                        format!(
                            "{what} `{k}` must be {}, not {}",
                            kind_article(spec.kind.name()),
                            crate::template::kind_of(v)
                        ),
                    );
                } else if !spec.choices.is_empty() {
                    let text = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    if !spec.choices.contains(&text) {
                        let choices: Vec<&str> = spec.choices.iter().map(String::as_str).collect();
                        self.sink.at_value(
                            &fpath,
                            format!(
                                "{what} `{k}` cannot be `{text}`{}",
                                did_you_mean(&text.to_lowercase(), &choices)
                            ),
                        );
                    }
                }
            }
        }
        for spec in specs {
            if spec.required && spec.default.is_none() && !given.contains_key(&spec.name) {
                self.sink
                    .at_value(path, format!("missing required {what} `{}`", spec.name));
            }
        }
    }

    fn steps(&mut self, steps: &'a [Step], avail: &mut BTreeSet<String>) {
        for s in steps {
            self.step(s, &s.source, avail);
            avail.insert(s.id.clone());
        }
    }

    fn step(&mut self, s: &'a Step, yaml: &str, avail: &mut BTreeSet<String>) {
        match &s.kind {
            StepKind::Action(a) => {
                let Some(app) = self.known_app(&a.app, &join_key(yaml, "app")) else {
                    return;
                };
                let Some(spec) = app.action(&a.action) else {
                    let ids: Vec<&str> = app.actions.iter().map(|x| x.id.as_str()).collect();
                    let msg = if ids.is_empty() {
                        format!("app `{}` has no actions", app.id)
                    } else {
                        format!(
                            "unknown action `{}` for app `{}`{}",
                            a.action,
                            app.id,
                            did_you_mean(&a.action, &ids)
                        )
                    };
                    self.sink.at_value(&join_key(yaml, "action"), msg);
                    return;
                };
                self.connection_ref(app, a.connection.as_deref(), yaml);
                let fields: Vec<&FieldSpec> = spec.inputs.iter().collect();
                let input = Value::Object(a.input.clone());
                let ipath = join_key(yaml, "input");
                self.fields(&fields, &input, &ipath, "input");
                // Program text is never rendered, so `{{` in it is not a template.
                let templated: Map<String, Value> = a
                    .input
                    .iter()
                    .filter(|(k, _)| {
                        !spec
                            .inputs
                            .iter()
                            .any(|f| &f.name == *k && f.kind == FieldKind::Code)
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                self.templates_in(&Value::Object(templated), &ipath, avail, Some(&s.id));
            }
            StepKind::Set(values) => {
                let v = Value::Object(values.clone());
                self.templates_in(&v, &join_key(yaml, "set"), avail, Some(&s.id));
            }
            StepKind::Wait(_) => {}
            StepKind::Approval(p) => {
                self.people_step(s, p, &join_key(yaml, "approval"), avail);
                self.lanes(s, avail);
            }
            StepKind::Task(p) => self.people_step(s, p, &join_key(yaml, "task"), avail),
            StepKind::Branch(b) => {
                self.condition(&b.condition, &format!("{yaml}.branch.if"), avail, &s.id);
                self.lanes(s, avail);
            }
            StepKind::Switch(sw) => {
                for (i, c) in sw.cases.iter().enumerate() {
                    self.condition(
                        &c.condition,
                        &format!("{yaml}.switch.cases[{i}].if"),
                        avail,
                        &s.id,
                    );
                }
                self.lanes(s, avail);
            }
            StepKind::ForEach(f) => {
                let ipath = format!("{yaml}.for_each.items");
                match &f.items {
                    Value::String(t) if crate::template::is_template(t) => {
                        self.template(t, &ipath, avail, Some(&s.id));
                    }
                    Value::Array(_) => self.templates_in(&f.items, &ipath, avail, Some(&s.id)),
                    other => self.sink.at_value(
                        &ipath,
                        format!(
                            "`items` must be a list or a template giving one, not {}",
                            crate::template::kind_of(other)
                        ),
                    ),
                }
                self.lanes(s, avail);
            }
        }
    }

    fn people_step(&mut self, s: &'a Step, p: &PeopleStep, path: &str, avail: &BTreeSet<String>) {
        let mut people = vec![(&p.to, join_key(path, "to"))];
        if let Some(d) = &p.deadline {
            people.push((&d.escalate_to, join_key(path, "deadline.escalate_to")));
        }
        for (to, tpath) in people {
            for (key, list) in [("members", &to.members), ("emails", &to.emails)] {
                for (i, t) in list.iter().enumerate() {
                    self.template(t, &format!("{tpath}.{key}[{i}]"), avail, Some(&s.id));
                }
            }
            for (i, r) in to.roles.iter().enumerate() {
                if !ROLES.contains(&r.as_str()) {
                    self.sink.at_value(
                        &format!("{tpath}.roles[{i}]"),
                        format!("unknown role `{r}`{}", did_you_mean(r, ROLES)),
                    );
                }
            }
        }
        self.template(&p.message, &join_key(path, "message"), avail, Some(&s.id));
        if let Some(fields) = &p.fields {
            let mut options = serde_json::Map::new();
            options.insert("fields".into(), fields.clone());
            if let Err(problems) = crate::form::parse(&options) {
                for (at, message) in problems {
                    self.sink.at_value(&join_key(path, &at), message);
                }
            }
        }
        if let Some(target) = &p.send_back_to {
            let tpath = join_key(path, "send_back_to");
            let earlier = avail.contains(target) && self.flow.find_step(target).is_some();
            if !earlier {
                self.sink.at_value(
                    &tpath,
                    format!(
                        "`send_back_to` must name an earlier step that always runs before \
                         `{}`; `{target}` is not one",
                        s.id
                    ),
                );
            } else if self.flow.loop_of(target) != self.flow.loop_of(&s.id) {
                self.sink.at_value(
                    &tpath,
                    format!(
                        "`{target}` and `{}` are in different loops: a send-back stays \
                         within one loop's item",
                        s.id
                    ),
                );
            }
        }
    }

    fn lanes(&mut self, s: &'a Step, avail: &BTreeSet<String>) {
        for lane in s.lanes() {
            // Inside its lanes a container's own value (the lane taken, the loop item) is
            // available; the lane's steps are not available after it.
            let mut inner = avail.clone();
            inner.insert(s.id.clone());
            self.steps(lane.steps, &mut inner);
        }
    }

    fn condition(&mut self, c: &Condition, path: &str, avail: &BTreeSet<String>, me: &str) {
        match c {
            Condition::All(cs) | Condition::Any(cs) => {
                let group = if matches!(c, Condition::All(_)) {
                    "all"
                } else {
                    "any"
                };
                for (i, c) in cs.iter().enumerate() {
                    self.condition(c, &format!("{path}.{group}[{i}]"), avail, me);
                }
            }
            Condition::Compare { value, op, to } => {
                self.templates_in(value, &join_key(path, "value"), avail, Some(me));
                if let Some(to) = to {
                    let tpath = join_key(path, "to");
                    self.templates_in(to, &tpath, avail, Some(me));
                    if *op == Operator::Matches {
                        if let Value::String(p) = to {
                            if !crate::template::is_template(p) {
                                if let Err(e) = regex::Regex::new(p) {
                                    self.sink.at_value(
                                        &tpath,
                                        format!(
                                            "`{p}` is not a valid regular expression: {}",
                                            crate::condition::regex_reason(&e)
                                        ),
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn templates_in(&mut self, v: &Value, path: &str, avail: &BTreeSet<String>, me: Option<&str>) {
        for (sub, text) in strings(v) {
            let p = if sub.is_empty() {
                path.to_string()
            } else if sub.starts_with('[') {
                format!("{path}{sub}")
            } else {
                join_key(path, &sub)
            };
            self.template(text, &p, avail, me);
        }
    }

    fn template(&mut self, text: &str, path: &str, avail: &BTreeSet<String>, me: Option<&str>) {
        let refs = match references(text) {
            Ok(r) => r,
            Err(e) => {
                let (l, c) = e.position.unwrap_or((1, 1));
                self.sink.in_template(path, l, c, e.message);
                return;
            }
        };
        for name in refs {
            if avail.contains(&name) || self.broken_ids.contains(&name) {
                continue;
            }
            let msg = self.unavailable(&name, me, avail);
            self.sink.at_value(path, msg);
        }
    }

    /// Explain why `name` cannot be used from step `me`.
    fn unavailable(&self, name: &str, me: Option<&str>, avail: &BTreeSet<String>) -> String {
        let Some(me) = me else {
            let what = if self.places.contains_key(name) {
                format!("`{name}` is a step")
            } else {
                format!("`{name}` is unknown")
            };
            return format!(
                "this key can use only `trigger` (it is rendered when the event arrives, \
                 before any step runs); {what}"
            );
        };
        let Some(target) = self.places.get(name) else {
            let names: Vec<&str> = avail.iter().map(String::as_str).collect();
            let hint = did_you_mean(name, &names);
            let reserved = if RESERVED_NAMES.contains(&name) && name != "trigger" {
                format!(" (`{name}` is not an obtained value)")
            } else {
                String::new()
            };
            return format!("step `{me}` refers to unknown value `{name}`{reserved}{hint}");
        };
        if name == me {
            return format!("step `{me}` refers to its own output, which does not exist yet");
        }
        let here = &self.places[me];
        if target.order > here.order {
            return format!("step `{me}` refers to step `{name}`, which runs later");
        }
        for lane in &target.lanes {
            if !here.lanes.contains(lane) {
                let (container, lane_name, is_loop) = lane;
                return if *is_loop {
                    format!(
                        "step `{me}` refers to step `{name}`, which runs inside loop `{container}`; \
                         after the loop use `{container}.results`"
                    )
                } else {
                    format!(
                        "step `{me}` refers to step `{name}`, which runs only in the `{lane_name}` \
                         lane of `{container}`, so it may not have run"
                    )
                };
            }
        }
        format!("step `{me}` cannot use `{name}` here")
    }
}

fn kind_article(kind: &str) -> String {
    match kind {
        "integer" => "an integer".to_string(),
        "json" => "JSON".to_string(),
        "map" => "a mapping".to_string(),
        "headers" => "a mapping of headers".to_string(),
        "list" => "a list".to_string(),
        "boolean" => "true or false".to_string(),
        other => format!("a {other}"),
    }
}
