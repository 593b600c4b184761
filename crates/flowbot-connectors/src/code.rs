//! The `code` app: a step that runs a short JavaScript function over values of earlier
//! steps, in an embedded QuickJS (rquickjs) that can reach nothing outside itself.
//!
//! Each call gets a fresh runtime and context (nothing is shared between runs), built with
//! only the intrinsics below: no `Date` or `performance` (no clock), no modules, no
//! loader, no host functions but the `console` we install. `Math.random` stays: QuickJS
//! seeds it from the clock (in microseconds) when the context is made, so its numbers
//! could betray when the run started, never the time as it passes; a script that wants
//! repeatable output must not use it. The script runs on a blocking thread, bounded in CPU time by an interrupt
//! handler and in memory by the runtime's allocator limit, and at most a few run at once
//! so runaway scripts cannot take every blocking thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use flowbot_core::manifest::{ActionSpec, AppManifest, FieldKind, FieldSpec, OutputSpec, Text};
use flowbot_core::{ActionCall, ActionError, Connector};
use rquickjs::context::intrinsic;
use rquickjs::{CatchResultExt, CaughtError, Context, Ctx, Function, Runtime};
use serde_json::{json, Map, Value};
use tokio::sync::Semaphore;

/// Defaults and caps of the per-step limits.
pub const DEFAULT_TIME_LIMIT_MS: u64 = 1_000;
pub const MAX_TIME_LIMIT_MS: u64 = 30_000;
pub const DEFAULT_MEMORY_LIMIT_MB: u64 = 64;
pub const MAX_MEMORY_LIMIT_MB: u64 = 512;
/// The most a result may weigh as JSON: it is stored in the run's step record (twice
/// when it is an object, as `result` and as the top-level keys).
pub const MAX_RESULT_BYTES: usize = 1024 * 1024;
/// Program text beyond this is refused before parsing: parsing is not interruptible.
pub const MAX_CODE_BYTES: usize = 256 * 1024;
/// `console` output kept per run, in lines and characters per line.
pub const MAX_LOG_LINES: usize = 100;
pub const MAX_LOG_LINE_CHARS: usize = 1_000;
/// QuickJS's own stack bound. It must stay well below the blocking thread's stack (tokio's
/// default is 2 MiB) so deep recursion ends as a JavaScript error, not a crashed process.
const MAX_STACK_BYTES: usize = 512 * 1024;

/// What the script may use: the base objects QuickJS always adds (Object, Array, String,
/// Number, Math, Error, Symbol, Reflect, …), plus these. `Eval` is what lets the host run
/// code at all; inside the sandbox `eval`/`Function` reach nothing the script could not.
/// `Promise` is there because QuickJS leaks (and, with its assertions, aborts the process
/// on freeing the runtime) when an `async` function is made without it; nothing runs its
/// jobs, and a returned promise is refused like any other non-JSON result.
type Intrinsics = (
    intrinsic::Eval,
    intrinsic::RegExpCompiler,
    intrinsic::RegExp,
    intrinsic::Json,
    intrinsic::MapSet,
    intrinsic::Promise,
);

/// Installs `console` with a host function the script never sees by name, and returns
/// the serialiser of the result: JSON that refuses what JSON would silently drop or
/// mangle (functions, symbols, Map, Set), naming the key.
const PRELUDE: &str = r#"(function (emit) {
  const show = (v) => {
    if (typeof v === 'string') return v;
    if (v instanceof Error) return String(v);
    try { const s = JSON.stringify(v); return s === undefined ? String(v) : s; } catch (e) { return String(v); }
  };
  const write = (prefix) => (...args) => { emit(prefix + args.map(show).join(' ')); };
  globalThis.console = Object.freeze({
    log: write(''), info: write(''), debug: write(''),
    warn: write('[warn] '), error: write('[error] '),
  });
  return (value) => JSON.stringify(value, function (key, v) {
    const at = key === '' ? 'the result' : `\`${key}\``;
    const t = typeof v;
    if (t === 'function' || t === 'symbol') throw new TypeError(`${at} is a ${t}`);
    if (t === 'bigint') throw new TypeError(`${at} is a BigInt: turn it into a Number or a string first`);
    if (t === 'number' && !Number.isFinite(v)) throw new TypeError(`${at} is ${v}, which JSON cannot hold`);
    if (v instanceof Map || v instanceof Set) throw new TypeError(`${at} is a ${v instanceof Map ? 'Map' : 'Set'}: turn it into an object or array first`);
    if (v instanceof Promise) throw new TypeError(`${at} is a Promise: the code has nothing to wait for, so return the value itself`);
    return v;
  });
})"#;

/// The script body becomes a function of `values`; the header shares its line with the
/// body's first line so error lines are the user's own.
fn wrap(code: &str) -> String {
    format!("(function (values) {{ \"use strict\"; {code}\n}})")
}

/// The limits of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub time: Duration,
    pub memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            time: Duration::from_millis(DEFAULT_TIME_LIMIT_MS),
            memory_bytes: (DEFAULT_MEMORY_LIMIT_MB as usize) << 20,
        }
    }
}

impl Limits {
    /// The limits a step's inputs ask for, refused (not clamped) beyond the caps so a
    /// flow never runs under limits other than those it states.
    pub fn from_input(input: &Map<String, Value>) -> Result<Limits, ActionError> {
        let ms = limit_input(
            input,
            "time_limit_ms",
            DEFAULT_TIME_LIMIT_MS,
            MAX_TIME_LIMIT_MS,
        )?;
        let mb = limit_input(
            input,
            "memory_limit_mb",
            DEFAULT_MEMORY_LIMIT_MB,
            MAX_MEMORY_LIMIT_MB,
        )?;
        Ok(Limits {
            time: Duration::from_millis(ms),
            memory_bytes: (mb as usize) << 20,
        })
    }

    fn time_text(&self) -> String {
        let ms = self.time.as_millis();
        if ms.is_multiple_of(1000) {
            format!("{} s", ms / 1000)
        } else {
            format!("{ms} ms")
        }
    }

    fn memory_text(&self) -> String {
        format!("{} MiB", self.memory_bytes >> 20)
    }
}

fn limit_input(
    input: &Map<String, Value>,
    key: &str,
    default: u64,
    max: u64,
) -> Result<u64, ActionError> {
    let n = match input.get(key) {
        None | Some(Value::Null) => return Ok(default),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(default),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    match n {
        Some(n) if n.fract() == 0.0 && n >= 1.0 && n <= max as f64 => Ok(n as u64),
        _ => Err(ActionError::fatal(format!(
            "input `{key}` must be a whole number from 1 to {max}"
        ))),
    }
}

/// What a script produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Ran {
    pub result: Value,
    pub logs: Vec<String>,
}

impl Ran {
    /// The step's output: `result`, `logs`, and an object result's keys at the top level
    /// (so `{{ step.key }}` reads them). `result` and `logs` are always the step's own: a
    /// returned key of either name is read as `{{ step.result.result }}`.
    pub fn into_output(self) -> Value {
        let mut out = Map::new();
        if let Value::Object(m) = &self.result {
            for (k, v) in m {
                out.insert(k.clone(), v.clone());
            }
        }
        out.insert("result".into(), self.result);
        out.insert(
            "logs".into(),
            Value::Array(self.logs.into_iter().map(Value::String).collect()),
        );
        Value::Object(out)
    }
}

#[derive(Default)]
struct Logs {
    lines: Vec<String>,
    dropped: usize,
}

impl Logs {
    fn push(&mut self, line: &str) {
        if self.lines.len() >= MAX_LOG_LINES {
            self.dropped += 1;
            return;
        }
        let mut kept: String = line.chars().take(MAX_LOG_LINE_CHARS).collect();
        if kept.len() < line.len() {
            kept.push('…');
        }
        self.lines.push(kept);
    }

    fn finish(mut self) -> Vec<String> {
        if self.dropped > 0 {
            self.lines
                .push(format!("({} more lines were not kept)", self.dropped));
        }
        self.lines
    }
}

/// Run `code` with `values` under `limits`, on the calling thread (which it occupies until
/// the script ends or its time is spent). Every failure is fatal: the same script over the
/// same values fails the same way.
pub fn run_script(code: &str, values: &Value, limits: Limits) -> Result<Ran, ActionError> {
    if code.len() > MAX_CODE_BYTES {
        return Err(ActionError::fatal(format!(
            "the code is {} KiB; at most {} KiB is taken",
            code.len() / 1024,
            MAX_CODE_BYTES / 1024
        )));
    }
    let values = serde_json::to_string(values).expect("a JSON value serialises");
    let rt = Runtime::new().map_err(|e| engine_failed(&e))?;
    rt.set_max_stack_size(MAX_STACK_BYTES);
    // The runtime cannot be changed while a context is in use, so the limits cover the
    // engine's own set-up too: a fraction of a millisecond and a few hundred KiB.
    rt.set_memory_limit(limits.memory_bytes);
    let timed_out = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + limits.time;
    let flag = timed_out.clone();
    rt.set_interrupt_handler(Some(Box::new(move || {
        let over = Instant::now() >= deadline;
        if over {
            flag.store(true, Ordering::Relaxed);
        }
        over
    })));
    let ctx = Context::custom::<Intrinsics>(&rt).map_err(|_| out_of_memory(&limits))?;
    let logs = Arc::new(Mutex::new(Logs::default()));

    let outcome = ctx.with(|ctx| {
        let to_json = install(&ctx, &logs)
            .catch(&ctx)
            .map_err(|e| failure(e, &limits, Stage::Code))?;
        let result = (|| {
            let f: Function = ctx.eval(wrap(code))?;
            let values = ctx.json_parse(values)?;
            f.call::<_, rquickjs::Value>((values,))
        })()
        .catch(&ctx)
        .map_err(|e| failure(e, &limits, Stage::Code))?;
        if result.is_undefined() {
            return Ok(None);
        }
        to_json
            .call::<_, Option<String>>((result,))
            .catch(&ctx)
            .map_err(|e| failure(e, &limits, Stage::Result))
    });
    if timed_out.load(Ordering::Relaxed) {
        return Err(ActionError::fatal(format!(
            "the code ran longer than its {} limit",
            limits.time_text()
        ))
        .with_code("CODE_TIME_LIMIT"));
    }
    let outcome = outcome?;

    let result = match outcome {
        None => Value::Null,
        Some(text) if text.len() > MAX_RESULT_BYTES => {
            return Err(ActionError::fatal(format!(
                "the code's result is {} KiB as JSON; at most {} KiB is kept",
                text.len() / 1024,
                MAX_RESULT_BYTES / 1024
            ))
            .with_code("CODE_RESULT"))
        }
        Some(text) => serde_json::from_str(&text).map_err(|e| {
            ActionError::fatal(format!("the code's result cannot be read as JSON: {e}"))
                .with_code("CODE_RESULT")
        })?,
    };
    drop(ctx);
    let logs = std::mem::take(&mut *logs.lock().expect("logs"));
    Ok(Ran {
        result,
        logs: logs.finish(),
    })
}

/// Install `console` and return the result serialiser (see [`PRELUDE`]).
fn install<'js>(ctx: &Ctx<'js>, logs: &Arc<Mutex<Logs>>) -> rquickjs::Result<Function<'js>> {
    let sink = logs.clone();
    let emit = Function::new(ctx.clone(), move |line: rquickjs::String<'js>| {
        let line = line.to_string().unwrap_or_default();
        sink.lock().expect("logs").push(&line);
    })?;
    let prelude: Function = ctx.eval(PRELUDE)?;
    prelude.call((emit,))
}

fn engine_failed(e: &rquickjs::Error) -> ActionError {
    ActionError::fatal(format!("the JavaScript engine could not start: {e}"))
}

fn out_of_memory(limits: &Limits) -> ActionError {
    ActionError::fatal(format!(
        "the code used more than its {} memory limit",
        limits.memory_text()
    ))
    .with_code("CODE_MEMORY_LIMIT")
}

/// Where a script failed: in its own code, or while its result was made JSON (by our
/// serialiser, whose lines are not the user's).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Code,
    Result,
}

/// Why the script failed, in the user's terms (a spent time limit is told apart by the
/// caller). Read while the limits still hold: the runtime cannot change while its context
/// is in use.
fn failure(e: CaughtError<'_>, limits: &Limits, stage: Stage) -> ActionError {
    let (text, line) = match &e {
        CaughtError::Error(rquickjs::Error::Allocation) => return out_of_memory(limits),
        CaughtError::Exception(x) => {
            let message = x.message().unwrap_or_default();
            if message == "out of memory" {
                return out_of_memory(limits);
            }
            let name = x
                .as_object()
                .get::<_, Option<rquickjs::Coerced<String>>>("name")
                .ok()
                .flatten()
                .map(|n| n.0)
                .unwrap_or_else(|| "Error".into());
            let text = match (stage, message.is_empty()) {
                (Stage::Result, _) => message,
                (Stage::Code, true) => name,
                (Stage::Code, false) => format!("{name}: {message}"),
            };
            (text, x.stack().as_deref().and_then(script_line))
        }
        // When QuickJS cannot even allocate the error for a refused allocation, it throws
        // `null` (or, mid-operation, its internal "uninitialized" marker) instead. A
        // script's own `throw null` reads the same way; that is the price of telling a
        // spent memory limit apart without an allocator of our own.
        CaughtError::Value(v) if v.is_null() || v.type_of() == rquickjs::Type::Uninitialized => {
            return out_of_memory(limits)
        }
        CaughtError::Value(v) => {
            // `throw "text"` and other values that are not errors.
            let shown = v
                .as_string()
                .and_then(|s| s.to_string().ok())
                .or_else(|| {
                    v.ctx()
                        .json_stringify(v.clone())
                        .ok()
                        .flatten()
                        .and_then(|s| s.to_string().ok())
                })
                .unwrap_or_else(|| format!("a {}", v.type_name()));
            (format!("it threw {shown}"), None)
        }
        CaughtError::Error(other) => (other.to_string(), None),
    };
    // A script may throw a whole document; the step's record needs only its start.
    let text = match text.char_indices().nth(MAX_LOG_LINE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    };
    match stage {
        Stage::Result => ActionError::fatal(format!("the code's result is not JSON: {text}"))
            .with_code("CODE_RESULT"),
        Stage::Code => {
            let at = line.map(|l| format!(" (line {l})")).unwrap_or_default();
            ActionError::fatal(format!("the code failed: {text}{at}")).with_code("CODE_ERROR")
        }
    }
}

/// The user's line of the innermost frame of a stack (QuickJS names evaluated code
/// `eval_script`), or of a syntax error's position.
fn script_line(stack: &str) -> Option<u32> {
    stack.lines().find_map(|l| {
        let at = l.find("eval_script:")? + "eval_script:".len();
        let digits: String = l[at..].chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}

/// The code step's connector.
pub struct CodeApp {
    manifest: AppManifest,
    /// Scripts running now: each holds a blocking thread until it ends.
    running: Arc<Semaphore>,
}

impl Default for CodeApp {
    /// At most as many scripts at once as the machine has CPUs (at least two, so one
    /// runaway script never makes every other wait for its limit).
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, usize::from);
        CodeApp::with_concurrency(cpus.max(2))
    }
}

impl CodeApp {
    pub fn with_concurrency(n: usize) -> Self {
        CodeApp {
            manifest: manifest(),
            running: Arc::new(Semaphore::new(n.max(1))),
        }
    }
}

#[async_trait]
impl Connector for CodeApp {
    fn manifest(&self) -> &AppManifest {
        &self.manifest
    }

    async fn execute(&self, call: ActionCall<'_>) -> Result<Value, ActionError> {
        if call.action != "javascript" {
            return Err(ActionError::fatal(format!(
                "the code app has no action `{}`",
                call.action
            )));
        }
        let code = match call.input.get("code") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            _ => return Err(ActionError::fatal("input `code` is required")),
        };
        let values = call
            .input
            .get("values")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let limits = Limits::from_input(call.input)?;
        // The permit moves into the blocking task: a script whose step was abandoned (the
        // step's timeout) still counts until its own limit stops it.
        let permit = self
            .running
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let ran = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            run_script(&code, &values, limits)
        })
        .await
        .map_err(|e| ActionError::fatal(format!("the code step stopped unexpectedly: {e}")))??;
        Ok(ran.into_output())
    }
}

fn t(en: &str, ja: &str) -> Text {
    Text::new(en, ja)
}

fn manifest() -> AppManifest {
    AppManifest {
        id: "code".into(),
        name: t("Code", "コード"),
        description: t(
            "Run a short JavaScript function over values of earlier steps.",
            "前のステップの値を使って、短い JavaScript を実行します。",
        ),
        connection: Vec::new(),
        triggers: Vec::new(),
        actions: vec![ActionSpec {
            id: "javascript".into(),
            name: t("Run JavaScript", "JavaScript を実行する"),
            description: t(
                "Runs the code as a function of `values` and gives what it returns. No files, network or clock.",
                "コードを `values` を受け取る関数として実行し、return した値を返します。ファイル・ネットワーク・時刻は使えません。",
            ),
            inputs: vec![
                FieldSpec::new("code", FieldKind::Code, t("Code", "コード"))
                    .required()
                    .help(
                        "The body of a function: read `values`, `return` the result (an object, list, text, number, true/false or null). Not a template: use `values` for earlier steps' values.",
                        "関数の本体です。`values` を読み、結果を `return` します（オブジェクト・リスト・文字列・数値・true/false・null）。テンプレートではありません。前のステップの値は `values` で渡します。",
                    ),
                FieldSpec::new("values", FieldKind::Map, t("Values", "値")).help(
                    "Name → value, e.g. items → {{ get_order.items }}; the code reads values.items",
                    "名前 → 値（例: items → {{ get_order.items }}）。コードからは values.items で読めます",
                ),
                FieldSpec::new(
                    "time_limit_ms",
                    FieldKind::Integer,
                    t("Time limit (ms)", "制限時間（ミリ秒）"),
                )
                .default_value(json!(DEFAULT_TIME_LIMIT_MS))
                .help(
                    "The code is stopped after this much running time (at most 30000)",
                    "この時間を超えて動いたコードは止められます（最大 30000）",
                ),
                FieldSpec::new(
                    "memory_limit_mb",
                    FieldKind::Integer,
                    t("Memory limit (MiB)", "メモリ上限（MiB）"),
                )
                .default_value(json!(DEFAULT_MEMORY_LIMIT_MB))
                .help(
                    "The code is stopped when it uses more memory than this (at most 512)",
                    "これより多くのメモリを使ったコードは止められます（最大 512）",
                ),
            ],
            outputs: vec![
                OutputSpec::new("result", FieldKind::Json, t("Result", "結果")),
                OutputSpec::new("logs", FieldKind::List, t("Console output", "コンソール出力")),
            ],
            idempotent: true,
            writes: false,
            usage: false,
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_from_quickjs_stacks() {
        assert_eq!(
            script_line("    at <anonymous> (eval_script:3:11)\n"),
            Some(3)
        );
        assert_eq!(
            script_line("    at f (native)\n    at g (eval_script:12:1)"),
            Some(12)
        );
        assert_eq!(script_line("no position"), None);
    }

    #[test]
    fn logs_are_bounded() {
        let mut logs = Logs::default();
        for i in 0..(MAX_LOG_LINES + 5) {
            logs.push(&format!("{i}{}", "x".repeat(2 * MAX_LOG_LINE_CHARS)));
        }
        let lines = logs.finish();
        assert_eq!(lines.len(), MAX_LOG_LINES + 1);
        assert_eq!(lines[0].chars().count(), MAX_LOG_LINE_CHARS + 1);
        assert_eq!(lines[MAX_LOG_LINES], "(5 more lines were not kept)");
    }

    #[test]
    fn limits_are_read_and_refused_beyond_their_caps() {
        let input = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(Limits::from_input(&Map::new()).unwrap(), Limits::default());
        let l = Limits::from_input(&input(
            json!({"time_limit_ms": "2500", "memory_limit_mb": 8}),
        ))
        .unwrap();
        assert_eq!(l.time, Duration::from_millis(2500));
        assert_eq!(l.memory_bytes, 8 << 20);
        assert_eq!(l.time_text(), "2500 ms");
        for bad in [
            json!({"time_limit_ms": 30_001}),
            json!({"memory_limit_mb": 0}),
            json!({"memory_limit_mb": 1.5}),
        ] {
            assert!(Limits::from_input(&input(bad.clone())).is_err(), "{bad}");
        }
    }

    /// Not a check: the cost of a fresh runtime and context and a trivial script, for the
    /// record (`cargo test -p flowbot-connectors --lib start_up -- --nocapture`).
    #[test]
    fn start_up_cost() {
        let n = 50;
        let started = Instant::now();
        for _ in 0..n {
            let ran = run_script("return 1 + 1", &json!({}), Limits::default()).unwrap();
            assert_eq!(ran.result, json!(2));
        }
        eprintln!(
            "fresh runtime + context + `return 1 + 1`: {:.2} ms each ({n} runs)",
            started.elapsed().as_secs_f64() * 1000.0 / n as f64
        );
    }
}
