//! The web UI: server-rendered minijinja pages from `web/`, embedded in the binary, with a
//! little vanilla JS that calls the REST API. Japanese and English (Accept-Language, or
//! `?lang=` remembered in a cookie). Pages auto-escape everything: whatever a user or a
//! webhook wrote is shown as text, never as markup.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use flowbot_core::model::{Step, StepKind};
use flowbot_store::{RunFilter, RunStatus};
use minijinja::{context, AutoEscape, Environment};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth;
use crate::AppState;

const PAGES: &[(&str, &str)] = &[
    (
        "base.html",
        include_str!("../../../web/templates/base.html"),
    ),
    (
        "login.html",
        include_str!("../../../web/templates/login.html"),
    ),
    (
        "flows.html",
        include_str!("../../../web/templates/flows.html"),
    ),
    (
        "flow.html",
        include_str!("../../../web/templates/flow.html"),
    ),
    (
        "templates.html",
        include_str!("../../../web/templates/templates.html"),
    ),
    (
        "runs.html",
        include_str!("../../../web/templates/runs.html"),
    ),
    ("run.html", include_str!("../../../web/templates/run.html")),
    (
        "connections.html",
        include_str!("../../../web/templates/connections.html"),
    ),
    (
        "settings.html",
        include_str!("../../../web/templates/settings.html"),
    ),
    (
        "editor.html",
        include_str!("../../../web/templates/editor.html"),
    ),
];

/// UI text: key → (English, Japanese).
const TEXT: &[(&str, &str, &str)] = &[
    ("menu", "Menu", "メニュー"),
    ("flows", "Flows", "フローボット"),
    ("templates", "Templates", "テンプレート"),
    ("runs", "Run history", "実行履歴"),
    ("run", "Run", "実行"),
    ("connections", "Connections", "マイアプリ連携"),
    ("switch_lang", "日本語", "English"),
    ("logout", "Log out", "ログアウト"),
    ("login", "Log in", "ログイン"),
    ("username", "User name", "ユーザー名"),
    ("password", "Password", "パスワード"),
    ("name", "Name", "名前"),
    ("trigger", "Trigger", "トリガー"),
    ("last_run", "Last run", "最新の実行"),
    ("last_24h", "Last 24 h", "過去24時間"),
    ("runs_count", "runs", "件"),
    ("failed_count", "failed", "件失敗"),
    ("no_flows", "No flows yet. Start from a template:", "フローボットがまだありません。テンプレートから始めましょう:"),
    ("export_yaml", "Export YAML", "YAML を書き出す"),
    ("webhook_url", "Webhook URL", "Webhook URL"),
    ("copy", "Copy", "コピー"),
    ("copied", "Copied", "コピーしました"),
    ("webhook_help", "Paste this URL in ecforce under 設定 > Webhook 管理 (customer events), or in the service that sends the events.", "この URL を ecforce の 設定 > Webhook 管理（顧客イベント）、またはイベントを送るサービスに貼り付けてください。"),
    ("regenerate", "New URL", "URL を再発行"),
    ("regenerate_confirm", "The current URL stops working at once. Continue?", "現在の URL はすぐに使えなくなります。続けますか？"),
    ("save", "Save", "保存"),
    ("no_slots", "This flow needs no connections.", "このフローに連携は不要です。"),
    ("steps", "Steps", "オペレーション"),
    ("import", "Try this template", "テンプレートを試す"),
    ("flow", "Flow", "フロー"),
    ("status", "Status", "状態"),
    ("all", "All", "すべて"),
    ("filter", "Filter", "絞り込む"),
    ("chart_caption", "Succeeded (green) and failed (red) runs per hour, last 24 h", "1時間ごとの成功（緑）と失敗（赤）の実行数（過去24時間）"),
    ("rerun_all_failed", "Re-run all failed runs", "失敗した実行をすべて再実行"),
    ("started", "Received", "受信日時"),
    ("error", "Error", "エラー"),
    ("no_runs", "No runs yet.", "実行はまだありません。"),
    ("older", "Older runs", "さらに古い実行"),
    ("attempt", "attempt", "試行"),
    ("retry_note", "flowbot retries temporary errors by itself and notifies only when a run finally fails; re-run it once the cause is fixed.", "flowbot は一時的なエラーを自動で再試行し、最終的に失敗したときだけ通知します。原因を直してから再実行してください。"),
    ("rerun_failed", "Re-run from the failed step", "失敗したステップから再実行"),
    ("rerun_start", "Run again from the start", "最初から再実行"),
    ("cancel", "Cancel", "キャンセル"),
    ("restarted", "started over", "最初からやり直し"),
    ("lane", "Lane taken", "分岐先"),
    ("input", "Input", "入力"),
    ("output", "Obtained values", "取得した値"),
    ("no_steps", "No step has run yet.", "まだ実行されたステップはありません。"),
    ("app", "App", "アプリ"),
    ("test", "Test", "テスト"),
    ("no_connections", "No connections yet.", "連携はまだありません。"),
    ("new_connection", "New connection", "新しい連携"),
    ("queued", "Queued", "待機中"),
    ("running", "Running", "実行中"),
    ("succeeded", "Succeeded", "成功"),
    ("failed", "Failed", "失敗"),
    ("canceled", "Canceled", "キャンセル"),
    ("started_step", "In progress", "実行中"),
    ("settings", "Settings", "設定"),
    ("notifications", "Failure notifications", "エラー通知"),
    ("destination", "Sent to", "送信先"),
    ("remove", "Remove", "削除"),
    ("no_channels", "No notification channel yet: failures are only in the run history.", "通知先はまだありません。失敗は実行履歴にのみ表示されます。"),
    ("add_channel", "Add a channel", "通知先を追加"),
    ("email_to", "Email address (email)", "メールアドレス（メール）"),
    ("room_id", "Room ID (Chatwork)", "ルーム ID（Chatwork）"),
    ("yaml_editor", "Edit the flow as YAML (saving makes a new version)", "YAML で編集（保存すると新しいバージョンになります）"),
    ("validate", "Check", "チェック"),
    ("test_trigger", "Test the trigger", "トリガーのテスト"),
    ("test_trigger_help", "Press Test, then make the app send an event (e.g. save a customer in ecforce): its obtained values appear here.", "「テスト」を押してから、アプリでイベントを起こしてください（例: ecforce で顧客を保存）。取得した値がここに表示されます。"),
    ("connect_salesforce", "Connect to Salesforce", "Salesforce に接続"),
    ("save_version", "Save as a new version", "新しいバージョンとして保存"),
    ("edit_flow", "Edit the flow", "フローを編集"),
    ("new_flow", "New flow", "フローを新規作成"),
    ("edit_as_new", "Open in the editor", "エディタで開く"),
    ("editor_title", "Flow editor", "フローエディタ"),
    ("flow_id", "Flow ID", "フロー ID"),
    ("flow_id_help", "Letters, digits, - and _; it becomes part of the webhook URL.", "英数字と - _ が使えます。Webhook URL の一部になります。"),
    ("flow_name", "Flow name", "フロー名"),
    ("back_to_flow", "Back to the flow", "フローに戻る"),
    ("add_step", "Add a step", "オペレーションを追加"),
    ("search_catalogue", "Search apps and actions", "アプリとアクションを検索"),
    ("close", "Close", "閉じる"),
    ("step_settings", "Settings of the step", "オペレーションの設定"),
    ("obtained_values", "Obtained values", "取得した値"),
    ("obtained_values_help", "Click an input, then a value to insert it there.", "入力欄をクリックしてから値をクリックすると、そこに挿入されます。"),
    ("problems_title", "Problems", "問題点"),
    ("apply_yaml", "Apply the YAML to the forms", "YAML をフォームに反映"),
    ("versions", "Versions", "バージョン"),
];

/// The editor's own words, handed to its script: key → (English, Japanese).
const EDITOR_TEXT: &[(&str, &str, &str)] = &[
    ("then", "then (condition holds)", "条件に一致する場合"),
    ("else", "else", "それ以外の場合"),
    ("default_lane", "default (no case matches)", "どれにも一致しない場合"),
    ("loop_body", "for each item", "各項目に対して"),
    ("problems", "{n} problem(s): see the list below", "問題が {n} 件あります（下の一覧）"),
    ("no_problems", "No problems", "問題はありません"),
    ("move_up", "Move up", "上へ移動"),
    ("move_down", "Move down", "下へ移動"),
    ("remove", "Remove", "削除"),
    ("remove_confirm", "Remove step {id} (and the steps inside it)?", "オペレーション {id}（と中のオペレーション）を削除しますか？"),
    ("add_step", "Add a step", "オペレーションを追加"),
    ("nothing_found", "Nothing matches", "一致するものがありません"),
    ("kind_branch", "Branch (if / else)", "分岐（条件）"),
    ("kind_switch", "Switch (cases)", "分岐（複数の条件）"),
    ("kind_for_each", "Loop (for each item)", "繰り返し（ループ）"),
    ("kind_set", "Computed values", "値の計算"),
    ("kind_wait", "Wait", "待機"),
    ("required", "required", "必須"),
    ("key", "Key", "キー"),
    ("value", "Value", "値"),
    ("item", "Item", "項目"),
    ("add_row", "Add a row", "行を追加"),
    ("connection", "Connection", "連携アカウント"),
    ("connection_help", "The account this step signs in with (Connections / マイアプリ連携).", "このオペレーションで使うアカウント（マイアプリ連携）。"),
    ("condition", "Condition", "条件"),
    ("match", "Which conditions must hold", "一致させる条件"),
    ("cond_one", "This condition", "この条件"),
    ("cond_all", "All of these", "すべて満たす"),
    ("cond_any", "Any of these", "いずれかを満たす"),
    ("cond_value", "Value", "値"),
    ("cond_op", "Operator", "演算子"),
    ("cond_to", "Compared with", "比較する値"),
    ("add_condition", "Add a condition", "条件を追加"),
    ("op_equals", "equals", "等しい"),
    ("op_not_equals", "does not equal", "等しくない"),
    ("op_greater_than", "greater than", "より大きい"),
    ("op_greater_or_equal", "greater or equal", "以上"),
    ("op_less_than", "less than", "より小さい"),
    ("op_less_or_equal", "less or equal", "以下"),
    ("op_contains", "contains", "含む"),
    ("op_not_contains", "does not contain", "含まない"),
    ("op_starts_with", "starts with", "で始まる"),
    ("op_ends_with", "ends with", "で終わる"),
    ("op_is_empty", "is empty", "空である"),
    ("op_is_not_empty", "is not empty", "空でない"),
    ("op_matches", "matches (regular expression)", "正規表現に一致"),
    ("select_step", "Choose the trigger or a step on the left to see its settings.", "左のトリガーまたはオペレーションを選ぶと設定が表示されます。"),
    ("step_id", "Step ID", "オペレーション ID"),
    ("step_id_help", "Later steps refer to this step's values as {{ id.field }}.", "後のオペレーションはこの値を {{ id.項目 }} で参照します。"),
    ("step_name", "Name", "名前"),
    ("test_step", "Test this step", "このオペレーションをテスト"),
    ("case", "Case", "条件"),
    ("case_name", "Lane name", "分岐名"),
    ("add_case", "Add a case", "条件を追加"),
    ("loop_items", "Items (a list)", "繰り返す項目（リスト）"),
    ("loop_items_help", "A value giving a list, e.g. {{ orders.body }}.", "リストになる値（例: {{ orders.body }}）。"),
    ("loop_max", "At most this many items", "最大件数"),
    ("trigger", "Trigger", "トリガー"),
    ("trigger_app", "App", "アプリ"),
    ("trigger_events", "Events", "イベント"),
    ("concurrency_key", "One at a time per", "同時に実行しない単位"),
    ("concurrency_key_help", "Runs with the same value never overlap (e.g. one customer's).", "この値が同じ実行は重ならずに順番に実行されます（例: 同じ顧客）。"),
    ("trigger_sample", "Sample event", "テスト用のイベント"),
    ("trigger_sample_help", "The pickers show the values of a sample event: capture one, fetch one, or enter one.", "取得した値の一覧にはサンプルのイベントの値が表示されます。受信・取得・入力のいずれかで用意してください。"),
    ("wait_webhook", "Wait for the next webhook", "次の Webhook を待つ"),
    ("fetch_recent", "Fetch a recent customer", "最近の顧客を取得"),
    ("enter_sample", "Or enter a sample (JSON)", "またはサンプルを入力（JSON）"),
    ("enter_sample_help", "The trigger's obtained values, e.g. {\"customer_id\": \"123\"}.", "トリガーの取得した値（例: {\"customer_id\": \"123\"}）。"),
    ("save_sample", "Use this sample", "このサンプルを使う"),
    ("id_first", "Give the flow an ID first: samples are kept under it.", "先にフロー ID を入力してください（サンプルはフローごとに保存されます）。"),
    ("sample_saved", "Sample saved", "サンプルを保存しました"),
    ("sample_invalid", "Not valid JSON", "JSON として読めません"),
    ("waiting", "Waiting for a webhook… send one from the app now.", "Webhook を待っています… アプリから送信してください。"),
    ("nothing_received", "Nothing arrived in time.", "時間内に届きませんでした。"),
    ("testing", "Testing…", "テスト中…"),
    ("confirm_write", "This step writes to the real app. Run it with this input?", "このオペレーションは実際のアプリに書き込みます。この入力で実行しますか？"),
    ("not_run", "Not run.", "実行しませんでした。"),
    ("rendered_input", "Input:", "入力:"),
    ("output", "Obtained values:", "取得した値:"),
    ("failed", "Failed", "失敗"),
    ("values_help", "Choose a step to see the values available to it.", "オペレーションを選ぶと使える値が表示されます。"),
    ("no_values", "No values yet: test this step or the trigger first.", "まだ値がありません。先にテストしてください。"),
    ("focus_first", "Click the input to insert into first.", "先に挿入先の入力欄をクリックしてください。"),
    ("fix_first", "Fix the problems before saving.", "保存する前に問題点を直してください。"),
    ("saved", "Saved as a new version.", "新しいバージョンとして保存しました。"),
    ("restore", "Restore", "このバージョンに戻す"),
    ("restore_confirm", "Make version {v} current again (as a new version)?", "バージョン {v} を現在のバージョンに戻しますか（新しいバージョンとして保存）？"),
    ("diff_from", "From", "比較元"),
    ("diff_to", "To", "比較先"),
    ("show_diff", "Show the differences", "差分を表示"),
];

const BLANK_FLOW: &str = "version: 1\nid: ''\nname: ''\ntrigger: {}\nsteps: []\n";

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        for (name, src) in PAGES {
            env.add_template(name, src)
                .expect("the embedded pages are valid templates");
        }
        env
    })
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/flows") }))
        .route("/login", get(login))
        .route("/flows", get(flows))
        .route("/flows/{id}", get(flow))
        .route("/flows/new", get(new_flow))
        .route("/flows/{id}/edit", get(edit_flow))
        .route("/templates", get(templates))
        .route("/runs", get(runs))
        .route("/runs/{id}", get(run))
        .route("/connections", get(connections))
        .route("/settings", get(settings))
        .route(
            "/static/app.css",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
                    include_str!("../../../web/static/app.css"),
                )
            }),
        )
        .route(
            "/static/editor.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    include_str!("../../../web/static/editor.js"),
                )
            }),
        )
        .route(
            "/static/app.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    include_str!("../../../web/static/app.js"),
                )
            }),
        )
}

/// The language: `?lang=` (remembered), the cookie, or the browser's Accept-Language.
fn lang(headers: &HeaderMap, q: &LangQuery) -> (&'static str, bool) {
    if let Some(l) = q.lang.as_deref() {
        return (if l == "ja" { "ja" } else { "en" }, true);
    }
    if let Some(l) = auth::cookie(headers, "flowbot_lang") {
        return (if l == "ja" { "ja" } else { "en" }, false);
    }
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    (
        if accept.trim_start().starts_with("ja") {
            "ja"
        } else {
            "en"
        },
        false,
    )
}

fn texts(lang: &str) -> HashMap<&'static str, &'static str> {
    words(TEXT, lang)
}

/// A table of (key, English, Japanese) in one language.
fn words(
    table: &[(&'static str, &'static str, &'static str)],
    lang: &str,
) -> HashMap<&'static str, &'static str> {
    table
        .iter()
        .map(|(k, en, ja)| (*k, if lang == "ja" { *ja } else { *en }))
        .collect()
}

#[derive(Deserialize, Default)]
pub struct LangQuery {
    lang: Option<String>,
}

/// What every page needs: the signed-in user (or a redirect to the login page).
struct Page {
    user: String,
    csrf: String,
    lang: &'static str,
    remember: bool,
}

async fn page(s: &AppState, headers: &HeaderMap, q: &LangQuery) -> Result<Page, Response> {
    let (lang, remember) = lang(headers, q);
    let session = match auth::cookie(headers, auth::SESSION_COOKIE) {
        Some(token) => s
            .store
            .session(&auth::token_hash(token))
            .await
            .ok()
            .flatten(),
        None => None,
    };
    match session {
        Some(sess) => Ok(Page {
            user: sess.user.username,
            csrf: sess.csrf_token,
            lang,
            remember,
        }),
        None => Err(Redirect::to("/login").into_response()),
    }
}

fn render(p: &Page, name: &str, title: &str, current: &str, extra: Value) -> Response {
    let t = texts(p.lang);
    let other = if p.lang == "ja" { "en" } else { "ja" };
    let ctx = context! {
        lang => p.lang, other_lang => other, t => t, user => p.user, csrf => p.csrf,
        title => title, page => current, ..minijinja::Value::from_serialize(&extra)
    };
    let html = match env().get_template(name).and_then(|tpl| tpl.render(ctx)) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(page = name, error = %e, "a page could not be rendered");
            return (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be shown",
            )
                .into_response();
        }
    };
    let mut resp = Html(html).into_response();
    if p.remember {
        let c = format!(
            "flowbot_lang={}; Path=/; SameSite=Lax; Max-Age=31536000",
            p.lang
        );
        resp.headers_mut()
            .insert(header::SET_COOKIE, c.parse().expect("ascii cookie"));
    }
    resp
}

async fn login(headers: HeaderMap, Query(q): Query<LangQuery>) -> Response {
    let (lang, remember) = lang(&headers, &q);
    let p = Page {
        user: String::new(),
        csrf: String::new(),
        lang,
        remember,
    };
    let t = texts(lang);
    render(
        &p,
        "login.html",
        t["login"],
        "login",
        json!({ "user": Value::Null }),
    )
}

fn fmt_time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| {
            t.to_zoned(jiff::tz::TimeZone::get("Asia/Tokyo").unwrap_or(jiff::tz::TimeZone::UTC))
                .strftime("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_default()
}

async fn flows(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let p = match page(&s, &headers, &q).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let since = s.store.clock().now().as_millisecond() - 24 * 3600 * 1000;
    let mut rows = Vec::new();
    for f in s.store.flows().await.unwrap_or_default() {
        let recent = s
            .store
            .runs(&RunFilter {
                flow_id: Some(f.id.clone()),
                since: Some(since),
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap_or_default();
        let last = s
            .store
            .runs(&RunFilter {
                flow_id: Some(f.id.clone()),
                limit: 1,
                ..Default::default()
            })
            .await
            .unwrap_or_default();
        rows.push(json!({
            "id": f.id, "name": f.name, "enabled": f.enabled,
            "last_status": last.first().map(|r| r.status.as_str()),
            "runs_24h": recent.len(),
            "failed_24h": recent.iter().filter(|r| r.status == RunStatus::Failed).count(),
        }));
    }
    let title = texts(p.lang)["flows"];
    render(&p, "flows.html", title, "flows", json!({ "flows": rows }))
}

fn step_cards(steps: &[Step], lang: &str) -> Vec<Value> {
    steps
        .iter()
        .map(|s| {
            let (app, action) = match &s.kind {
                StepKind::Action(a) => (Some(a.app.clone()), Some(a.action.clone())),
                _ => (None, None),
            };
            let lanes: Vec<Value> = s
                .lanes()
                .iter()
                .map(|l| {
                    let label = match (l.name, lang) {
                        ("then", "ja") => "条件に一致した場合".to_string(),
                        ("then", _) => "when the condition holds".to_string(),
                        ("else", "ja") => "それ以外の場合".to_string(),
                        ("else", _) => "otherwise".to_string(),
                        ("each", "ja") => "繰り返す処理".to_string(),
                        ("each", _) => "for each item".to_string(),
                        (other, _) => other.to_string(),
                    };
                    json!({ "label": label, "steps": step_cards(l.steps, lang) })
                })
                .collect();
            json!({ "id": s.id, "name": s.display_name(), "kind": s.kind.label(), "app": app, "action": action, "lanes": lanes })
        })
        .collect()
}

async fn flow(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<LangQuery>,
) -> Response {
    let p = match page(&s, &headers, &q).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Ok(info) = s.store.flow(&id).await else {
        return Redirect::to("/flows").into_response();
    };
    let yaml = s.store.current_yaml(&id).await.unwrap_or_default();
    let parsed = s
        .flows
        .get(&s.store, &s.apps, &id, info.current_version)
        .await
        .ok();
    let bound = s.store.flow_bindings(&id).await.unwrap_or_default();
    let all = s.store.connections().await.unwrap_or_default();
    let slots: Vec<Value> = parsed
        .as_ref()
        .map(|f| {
            f.connections
                .iter()
                .map(|slot| {
                    let choices: Vec<Value> = all.iter().filter(|c| c.app == slot.app).map(|c| json!({ "id": c.id, "name": c.name })).collect();
                    json!({ "name": slot.name, "app": slot.app, "choices": choices, "bound": bound.get(&slot.name) })
                })
                .collect()
        })
        .unwrap_or_default();
    let public = s
        .store
        .setting(flowbot_store::notify::PUBLIC_URL)
        .await
        .ok()
        .flatten()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let trigger = parsed
        .as_ref()
        .map(|f| {
            let events = if f.trigger.events.is_empty() {
                String::new()
            } else {
                format!(" — {}", f.trigger.events.join(", "))
            };
            format!("{}{events}", f.trigger.app)
        })
        .unwrap_or_default();
    let cards = parsed
        .as_ref()
        .map(|f| step_cards(&f.steps, p.lang))
        .unwrap_or_default();
    render(
        &p,
        "flow.html",
        &info.name.clone(),
        "flows",
        json!({
            "flow": info, "yaml": yaml, "slots": slots, "trigger": trigger, "step_cards": cards,
            "webhook_url": format!("{public}/hooks/{}/{}", info.id, info.webhook_token),
        }),
    )
}

#[derive(Deserialize, Default)]
pub struct NewQuery {
    lang: Option<String>,
    template: Option<String>,
}

fn editor(p: &Page, flow_id: &str, yaml: &str) -> Response {
    let words = words(EDITOR_TEXT, p.lang);
    let title = texts(p.lang)["editor_title"];
    render(
        p,
        "editor.html",
        title,
        "flows",
        json!({ "flow_id": flow_id, "yaml": yaml, "editor_text": words }),
    )
}

/// A new flow in the editor: blank, or a copy of a template.
async fn new_flow(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<NewQuery>,
) -> Response {
    let lq = LangQuery { lang: q.lang };
    let p = match page(&s, &headers, &lq).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let yaml = q
        .template
        .as_deref()
        .and_then(|id| s.template(id))
        .unwrap_or(BLANK_FLOW);
    editor(&p, "", yaml)
}

async fn edit_flow(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<LangQuery>,
) -> Response {
    let p = match page(&s, &headers, &q).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Ok(yaml) = s.store.current_yaml(&id).await else {
        return Redirect::to("/flows").into_response();
    };
    editor(&p, &id, &yaml)
}

async fn templates(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let p = match page(&s, &headers, &q).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let list: Vec<Value> = s
        .templates
        .iter()
        .map(|(id, yaml)| {
            let f = flowbot_core::check(yaml, &s.apps).flow;
            json!({ "id": id, "name": f.as_ref().map(|f| f.name.clone()), "description": f.and_then(|f| f.description) })
        })
        .collect();
    let title = texts(p.lang)["templates"];
    render(
        &p,
        "templates.html",
        title,
        "templates",
        json!({ "templates": list }),
    )
}

#[derive(Deserialize, Default)]
pub struct RunsQuery {
    flow: Option<String>,
    status: Option<String>,
    before: Option<i64>,
    lang: Option<String>,
}

async fn runs(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<RunsQuery>,
) -> Response {
    let lq = LangQuery {
        lang: q.lang.clone(),
    };
    let p = match page(&s, &headers, &lq).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let flow = q.flow.clone().filter(|f| !f.is_empty());
    let status = q.status.as_deref().and_then(RunStatus::parse);
    let list = s
        .store
        .runs(&RunFilter {
            flow_id: flow.clone(),
            status,
            before_seq: q.before,
            limit: 50,
            ..Default::default()
        })
        .await
        .unwrap_or_default();
    let next = (list.len() == 50)
        .then(|| list.last().map(|r| r.seq))
        .flatten();
    // The chart: succeeded and failed runs per hour over the last day.
    let now = s.store.clock().now().as_millisecond();
    let day = s
        .store
        .runs(&RunFilter {
            flow_id: flow.clone(),
            since: Some(now - 24 * 3600 * 1000),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap_or_default();
    let mut buckets = [(0u32, 0u32); 24];
    for r in &day {
        let h = ((now - r.created_at) / 3_600_000).clamp(0, 23) as usize;
        match r.status {
            RunStatus::Succeeded => buckets[23 - h].0 += 1,
            RunStatus::Failed => buckets[23 - h].1 += 1,
            _ => {}
        }
    }
    let max = buckets.iter().map(|(a, b)| a + b).max().unwrap_or(0).max(1);
    let chart: Vec<Value> = buckets
        .iter()
        .enumerate()
        .map(|(i, (ok, bad))| json!({ "label": format!("-{}h", 23 - i), "ok": ok, "bad": bad, "ok_h": ok * 70 / max, "bad_h": bad * 70 / max }))
        .collect();
    let rows: Vec<Value> = list
        .iter()
        .map(|r| json!({ "id": r.id, "status": r.status.as_str(), "flow_id": r.flow_id, "created": fmt_time(r.created_at), "error": r.error }))
        .collect();
    let flows: Vec<Value> = s
        .store
        .flows()
        .await
        .unwrap_or_default()
        .iter()
        .map(|f| json!({ "id": f.id, "name": f.name }))
        .collect();
    let title = texts(p.lang)["runs"];
    render(
        &p,
        "runs.html",
        title,
        "runs",
        json!({ "runs": rows, "chart": chart, "flows": flows, "filter_flow": flow.unwrap_or_default(),
                "filter_status": q.status.unwrap_or_default(), "next": next }),
    )
}

async fn run(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<LangQuery>,
) -> Response {
    let p = match page(&s, &headers, &q).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Ok(run) = s.store.run(&id).await else {
        return Redirect::to("/runs").into_response();
    };
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let steps: Vec<Value> = s
        .store
        .step_records(&id)
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let status = match r.status {
                flowbot_core::StepStatus::Started => "running",
                flowbot_core::StepStatus::Succeeded => "succeeded",
                flowbot_core::StepStatus::Failed => "failed",
            };
            let what = match (&r.app, &r.action) {
                (Some(a), Some(b)) => format!("{a} {b}"),
                _ => r.kind.clone(),
            };
            // The code and the fields once: connectors often quote them in the message.
            let error = r.error.as_ref().map(|e| {
                let code = e.code.as_deref().filter(|c| !e.message.contains(*c)).map(|c| format!("[{c}] ")).unwrap_or_default();
                let fields = if e.fields.iter().all(|f| e.message.contains(f.as_str())) { String::new() } else { format!(" ({})", e.fields.join(", ")) };
                format!("{code}{}{fields}", e.message)
            });
            json!({
                "path": r.path, "status": status, "what": what, "attempt": r.attempt, "generation": r.generation,
                "ms": r.duration().map(|d| d.as_millis()).unwrap_or(0), "lane": r.lane,
                "input": r.input.as_ref().map(pretty), "output": r.output.as_ref().filter(|_| r.lane.is_none()).map(pretty),
                "error": error,
            })
        })
        .collect();
    let title = texts(p.lang)["run"];
    render(
        &p,
        "run.html",
        title,
        "runs",
        json!({ "run": { "id": run.id, "status": run.status.as_str(), "flow_id": run.flow_id, "flow_version": run.flow_version,
                          "attempt": run.attempt, "error": run.error, "error_step": run.error_step },
                "trigger": pretty(&run.trigger), "steps": steps }),
    )
}

async fn connections(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let p = match page(&s, &headers, &q).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let list = s.store.connections().await.unwrap_or_default();
    let apps: Vec<Value> = s
        .apps
        .manifests()
        .filter(|m| !m.connection.is_empty())
        .map(|m| {
            let name = if p.lang == "ja" { &m.name.ja } else { &m.name.en };
            let fields: Vec<Value> = m
                .connection
                .iter()
                .map(|f| {
                    json!({
                        "name": f.name, "label": if p.lang == "ja" { &f.label.ja } else { &f.label.en },
                        "help": if p.lang == "ja" { &f.help.ja } else { &f.help.en },
                        "secret": f.secret, "required": f.required,
                        "default": f.default.as_ref().and_then(|d| d.as_str().map(str::to_string)).unwrap_or_default(),
                    })
                })
                .collect();
            json!({ "id": m.id, "name": name, "fields": fields })
        })
        .collect();
    let title = texts(p.lang)["connections"];
    render(
        &p,
        "connections.html",
        title,
        "connections",
        json!({ "connections": list, "apps": apps }),
    )
}

async fn settings(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let p = match page(&s, &headers, &q).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let all = s.store.connections().await.unwrap_or_default();
    let usable: Vec<Value> = all
        .iter()
        .filter(|c| matches!(c.app.as_str(), "email" | "slack" | "chatwork"))
        .map(|c| json!({ "id": c.id, "name": c.name, "app": c.app }))
        .collect();
    let channels: Vec<Value> = s
        .store
        .notifications()
        .await
        .unwrap_or_default()
        .channels
        .iter()
        .map(|ch| {
            let name = all
                .iter()
                .find(|c| c.id == ch.connection_id)
                .map(|c| c.name.clone())
                .unwrap_or_default();
            let dest = ch.to.clone().or(ch.room_id.clone()).unwrap_or_default();
            json!({ "app": ch.app, "connection": name, "destination": dest })
        })
        .collect();
    let title = texts(p.lang)["settings"];
    render(
        &p,
        "settings.html",
        title,
        "settings",
        json!({ "channels": channels, "connections": usable }),
    )
}
