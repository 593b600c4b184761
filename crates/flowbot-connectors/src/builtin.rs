//! Apps that only start flows: the generic webhook and the manual trigger. Their events
//! arrive through the server or the CLI, so they have no actions to execute.

use async_trait::async_trait;
use flowbot_core::manifest::{AppManifest, FieldKind, OutputSpec, Text, TriggerSpec};
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
                }],
                actions: Vec::new(),
            },
        },
    ]
}
