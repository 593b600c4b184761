//! Apps that only start flows: the generic webhook and the manual trigger. Their events
//! arrive through the server or the CLI, so they have no actions to execute.

use async_trait::async_trait;
use flowbot_core::manifest::{AppManifest, FieldKind, FieldSpec, OutputSpec, Text, TriggerSpec};
use flowbot_core::{ActionCall, ActionError, Connector};
use serde_json::Value;

pub struct TriggerApp {
    manifest: AppManifest,
}

#[async_trait]
impl Connector for TriggerApp {
    fn manifest(&self) -> &AppManifest {
        &self.manifest
    }

    async fn execute(&self, call: ActionCall<'_>) -> Result<Value, ActionError> {
        Err(ActionError::fatal(format!(
            "app `{}` only starts flows; it has no action `{}`",
            self.manifest.id, call.action
        )))
    }
}

pub fn trigger_apps() -> Vec<TriggerApp> {
    vec![
        TriggerApp {
            manifest: AppManifest {
                id: "webhook".into(),
                name: Text::new("Webhook", "Webhook"),
                description: Text::new(
                    "Start the flow when any service POSTs JSON or a form to the flow's URL.",
                    "任意のサービスがフローの URL に JSON またはフォームを POST したときに開始します。",
                ),
                connection: Vec::new(),
                triggers: vec![TriggerSpec {
                    id: "request".into(),
                    name: Text::new("Request received", "リクエストを受信したら"),
                    options: Vec::new(),
                    outputs: vec![
                        OutputSpec::new("body", FieldKind::Json, Text::new("Body", "ボディ")),
                        OutputSpec::new("headers", FieldKind::Map, Text::new("Headers", "ヘッダー")),
                        OutputSpec::new("query", FieldKind::Map, Text::new("Query", "クエリ")),
                    ],
                    polling: false,
                    setup: None,
                }],
                actions: Vec::new(),
            },
        },
        TriggerApp {
            manifest: AppManifest {
                id: "schedule".into(),
                name: Text::new("Schedule", "スケジュール"),
                description: Text::new(
                    "Start the flow at set times, e.g. every day at 09:00 Asia/Tokyo.",
                    "決まった時刻にフローを開始します（例: 毎日 9:00 日本時間）。",
                ),
                connection: Vec::new(),
                triggers: vec![TriggerSpec {
                    id: "cron".into(),
                    name: Text::new("At scheduled times", "指定した日時になったら"),
                    options: vec![
                        FieldSpec::new("cron", FieldKind::Text, Text::new("Schedule (cron)", "スケジュール（cron 形式）"))
                            .required()
                            .help("Five fields: minute hour day month weekday, e.g. `0 9 * * *` for every day at 09:00", "分 時 日 月 曜日 の5項目。例: 毎日9時は `0 9 * * *`"),
                        FieldSpec::new("timezone", FieldKind::Text, Text::new("Time zone", "タイムゾーン"))
                            .default_value(serde_json::json!("Asia/Tokyo")),
                        FieldSpec::new("missed", FieldKind::Select, Text::new("Missed times", "実行できなかった時刻"))
                            .choices(&["skip", "catch_up"])
                            .default_value(serde_json::json!("skip"))
                            .help("What to do about times that passed while flowbot was stopped: skip them, or run once to catch up", "flowbot が停止中に過ぎた時刻の扱い: スキップする、または1回だけ実行する"),
                    ],
                    outputs: vec![
                        OutputSpec::new("slot", FieldKind::Text, Text::new("Scheduled time", "予定時刻")),
                        OutputSpec::new("fired_at", FieldKind::Text, Text::new("Started at", "開始時刻")),
                    ],
                    polling: false,
                    setup: None,
                }],
                actions: Vec::new(),
            },
        },
        TriggerApp {
            manifest: AppManifest {
                id: "form".into(),
                name: Text::new("Form", "フォーム"),
                description: Text::new(
                    "Start the flow when someone sends the flow's form (a public page, or for members only).",
                    "フローのフォーム（公開ページ、またはメンバー限定）が送信されたときに開始します。",
                ),
                connection: Vec::new(),
                triggers: vec![TriggerSpec {
                    id: "submitted".into(),
                    name: Text::new("Form sent", "フォームが送信されたら"),
                    options: vec![
                        FieldSpec::new("title", FieldKind::Json, Text::new("Title", "タイトル"))
                            .help("Text, or `{ ja: …, en: … }`", "文字列、または `{ ja: …, en: … }`"),
                        FieldSpec::new("description", FieldKind::Json, Text::new("Description", "説明")),
                        FieldSpec::new("thanks", FieldKind::Json, Text::new("Thank-you message", "送信後のメッセージ")),
                        FieldSpec::new("members_only", FieldKind::Boolean, Text::new("Members only", "メンバー限定"))
                            .default_value(serde_json::json!(false)),
                        FieldSpec::new("fields", FieldKind::List, Text::new("Fields", "項目"))
                            .required()
                            .help(
                                "Each: key, label, type (text, long_text, number, date, datetime, email, phone, select, multi_select, checkbox), required, help, default, choices, min_length, max_length, pattern, min, max",
                                "各項目: key, label, type（text, long_text, number, date, datetime, email, phone, select, multi_select, checkbox）, required, help, default, choices, min_length, max_length, pattern, min, max",
                            ),
                    ],
                    outputs: Vec::new(),
                    polling: false,
                    setup: Some(Text::new(
                        "Share the form's address (on the flow's page) with whoever fills it in.",
                        "フォームのアドレス（フローのページに表示）を回答する人に共有してください。",
                    )),
                }],
                actions: Vec::new(),
            },
        },
        TriggerApp {
            manifest: AppManifest {
                id: flowbot_core::mail::APP.into(),
                name: Text::new("Mail", "メール"),
                description: Text::new(
                    "Start the flow when a mail arrives at the flow's own address (forward mail there from any mailbox).",
                    "フロー専用のアドレスにメールが届いたときに開始します（任意のメールボックスから転送できます）。",
                ),
                connection: Vec::new(),
                triggers: vec![TriggerSpec {
                    id: flowbot_core::mail::RECEIVED.into(),
                    name: Text::new("Mail received", "メールを受信したら"),
                    options: vec![
                        FieldSpec::new("conditions", FieldKind::List, Text::new("Conditions", "条件"))
                            .max_items(flowbot_core::mail::MAX_CONDITIONS)
                            .help(
                                "Start only for mails that meet every condition. Each: { field: from | to | subject | body, op: contains | not_contains | regex, value } (contains ignores case)",
                                "すべての条件を満たすメールのときだけ開始します。各条件: { field: from | to | subject | body, op: contains | not_contains | regex, value }（contains は大文字・小文字を区別しません）",
                            ),
                    ],
                    outputs: vec![
                        OutputSpec::new("from", FieldKind::Json, Text::new("From", "差出人")),
                        OutputSpec::new("from_address", FieldKind::Text, Text::new("Sender's address", "差出人のアドレス")),
                        OutputSpec::new("to", FieldKind::List, Text::new("To", "宛先")),
                        OutputSpec::new("cc", FieldKind::List, Text::new("Cc", "Cc")),
                        OutputSpec::new("subject", FieldKind::Text, Text::new("Subject", "件名")),
                        OutputSpec::new("text", FieldKind::Text, Text::new("Body (text)", "本文（テキスト）")),
                        OutputSpec::new("html", FieldKind::Text, Text::new("Body (HTML)", "本文（HTML）")),
                        OutputSpec::new("date", FieldKind::Text, Text::new("Sent at", "送信日時")),
                        OutputSpec::new("message_id", FieldKind::Text, Text::new("Message ID", "メッセージID")),
                        OutputSpec::new("attachments", FieldKind::List, Text::new("Attachments", "添付ファイル")),
                        OutputSpec::new("received_at", FieldKind::Text, Text::new("Received at", "受信日時")),
                    ],
                    polling: false,
                    setup: Some(Text::new(
                        "Send or forward mail to the flow's address, shown on the flow's page once the server receives mail (`flowbot serve --smtp-addr`).",
                        "フローのアドレス宛てにメールを送信または転送してください。アドレスは、サーバーがメールを受信する設定（`flowbot serve --smtp-addr`）のとき、フローのページに表示されます。",
                    )),
                }],
                actions: Vec::new(),
            },
        },
        TriggerApp {
            manifest: AppManifest {
                id: "manual".into(),
                name: Text::new("Manual", "手動"),
                description: Text::new(
                    "Start the flow by hand with a payload you give.",
                    "指定したデータで手動でフローを開始します。",
                ),
                connection: Vec::new(),
                triggers: vec![TriggerSpec {
                    id: "run".into(),
                    name: Text::new("Run by hand", "手動で実行したら"),
                    options: Vec::new(),
                    outputs: Vec::new(),
                    polling: false,
                    setup: None,
                }],
                actions: Vec::new(),
            },
        },
    ]
}
