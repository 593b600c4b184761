//! The app's manifest: its actions, inputs and outputs, in Japanese and English.

use flowbot_core::manifest::{ActionSpec, AppManifest, FieldKind, FieldSpec, OutputSpec, Text};
use serde_json::json;

use super::*;

pub(super) fn t(en: &str, ja: &str) -> Text {
    Text::new(en, ja)
}

pub(super) fn object_input() -> FieldSpec {
    FieldSpec::new("object", FieldKind::Text, t("Object", "オブジェクト"))
        .required()
        .help(
            "The object's API name, e.g. Account, Contact, Lead",
            "オブジェクトの API 参照名（例: Account、Contact、Lead）",
        )
}

pub(super) fn fields_input(help_en: &str, help_ja: &str) -> FieldSpec {
    FieldSpec::new("fields", FieldKind::Map, t("Fields", "項目"))
        .required()
        .help(help_en, help_ja)
}

pub(super) fn record_outputs(created: bool) -> Vec<OutputSpec> {
    let mut v = vec![
        OutputSpec::new("id", FieldKind::Text, t("Record ID", "レコード ID")),
        OutputSpec::new("success", FieldKind::Boolean, t("Succeeded", "成功")),
    ];
    if created {
        v.push(OutputSpec::new(
            "created",
            FieldKind::Boolean,
            t("Created", "作成された"),
        ));
    }
    v
}

pub(super) fn query_outputs() -> Vec<OutputSpec> {
    vec![
        OutputSpec::new("totalSize", FieldKind::Integer, t("Records found", "件数")),
        OutputSpec::new("records", FieldKind::List, t("Records", "レコード")),
        OutputSpec::new(
            "pages",
            FieldKind::Integer,
            t(
                "API calls the query took",
                "クエリにかかった API 呼び出し数",
            ),
        ),
    ]
}

pub(super) fn collection_outputs() -> Vec<OutputSpec> {
    vec![
        OutputSpec::new(
            "results",
            FieldKind::List,
            t("Per-record results", "レコードごとの結果"),
        ),
        OutputSpec::new("succeeded", FieldKind::Integer, t("Succeeded", "成功件数")),
        OutputSpec::new("failed", FieldKind::Integer, t("Failed", "失敗件数")),
    ]
}

pub(super) fn action(
    id: &str,
    name: Text,
    description: Text,
    inputs: Vec<FieldSpec>,
    outputs: Vec<OutputSpec>,
    idempotent: bool,
    writes: bool,
) -> ActionSpec {
    ActionSpec {
        id: id.into(),
        name,
        description,
        inputs,
        outputs,
        idempotent,
        writes,
        usage: false,
    }
}

pub(super) fn manifest() -> AppManifest {
    let records_input = || {
        FieldSpec::new("records", FieldKind::List, t("Records", "レコード"))
            .required()
            .max_items(COLLECTION_LIMIT)
            .help(
                "Up to 200 records, each a mapping of fields",
                "最大200件。各レコードは項目の対応表",
            )
    };
    AppManifest {
        id: "salesforce".into(),
        name: t("Salesforce", "Salesforce"),
        description: t(
            "Search, create and update records in your Salesforce org.",
            "Salesforce 組織のレコードを検索・作成・更新します。",
        ),
        connection: vec![
            FieldSpec::new("my_domain_url", FieldKind::Text, t("My Domain URL", "マイドメイン URL"))
                .required()
                .help("e.g. https://yourcompany.my.salesforce.com (Setup → My Domain)", "例: https://yourcompany.my.salesforce.com（設定 → 私のドメイン）"),
            FieldSpec::new("api_version", FieldKind::Text, t("API version", "API バージョン"))
                .default_value(json!(DEFAULT_API_VERSION)),
            FieldSpec::new("auth", FieldKind::Select, t("Sign-in method", "認証方式"))
                .choices(&["client_credentials", "jwt_bearer", "refresh_token"])
                .default_value(json!("client_credentials")),
            FieldSpec::new("client_id", FieldKind::Text, t("Consumer key", "コンシューマ鍵")).required(),
            FieldSpec::new("client_secret", FieldKind::Text, t("Consumer secret", "コンシューマの秘密")).secret(),
            FieldSpec::new("username", FieldKind::Text, t("Username (JWT)", "ユーザー名（JWT）")),
            FieldSpec::new("private_key", FieldKind::Text, t("Private key, PEM (JWT)", "秘密鍵 PEM（JWT）")).secret(),
            FieldSpec::new("audience", FieldKind::Text, t("Audience (JWT)", "オーディエンス（JWT）"))
                .default_value(json!("https://login.salesforce.com"))
                .help("https://login.salesforce.com, or https://test.salesforce.com for a sandbox — never the My Domain URL", "本番は https://login.salesforce.com、Sandbox は https://test.salesforce.com（マイドメイン URL ではありません）"),
            FieldSpec::new("refresh_token", FieldKind::Text, t("Refresh token", "リフレッシュトークン")).secret(),
        ],
        triggers: Vec::new(),
        actions: vec![
            action(
                "search_records",
                t("Search records", "レコードを検索する"),
                t("Find records whose fields equal the given values.", "項目が指定の値と一致するレコードを検索します。"),
                vec![
                    object_input(),
                    FieldSpec::new("where", FieldKind::Map, t("Conditions", "検索条件"))
                        .required()
                        .help("Field API name → value; all must match (text compares without regard to case)", "項目の API 参照名 → 値（すべて一致。テキストは大文字小文字を区別しません）"),
                    FieldSpec::new("fields", FieldKind::List, t("Fields to return", "取得する項目"))
                        .default_value(json!(["Id"])),
                    FieldSpec::new("limit", FieldKind::Integer, t("At most", "最大件数")),
                ],
                query_outputs(),
                true,
                false,
            ),
            action(
                "query",
                t("Run a SOQL query", "SOQL で検索する"),
                t("Any SOQL query; quote values with the soql_quote filter.", "任意の SOQL。値は soql_quote フィルターで囲みます。"),
                vec![FieldSpec::new("soql", FieldKind::Text, t("SOQL", "SOQL")).required()],
                query_outputs(),
                true,
                false,
            ),
            action(
                "get_record",
                t("Get a record", "レコードを取得する"),
                t("Read one record by its ID.", "ID でレコードを1件取得します。"),
                vec![
                    object_input(),
                    FieldSpec::new("id", FieldKind::Text, t("Record ID", "レコード ID")).required(),
                    FieldSpec::new("fields", FieldKind::List, t("Fields", "項目")),
                ],
                vec![OutputSpec::new("Id", FieldKind::Text, t("Record ID", "レコード ID"))],
                true,
                false,
            ),
            action(
                "create_record",
                t("Create a record", "レコードを追加する"),
                t("Create one record.", "レコードを1件作成します。"),
                vec![object_input(), fields_input("Field API name → value", "項目の API 参照名 → 値")],
                record_outputs(true),
                false,
                true,
            ),
            action(
                "update_record",
                t("Update a record", "レコードを更新する"),
                t("Change fields of one record.", "レコード1件の項目を更新します。"),
                vec![
                    object_input(),
                    FieldSpec::new("id", FieldKind::Text, t("Record ID", "レコード ID")).required(),
                    fields_input("Fields to change: API name → value", "更新する項目: API 参照名 → 値"),
                ],
                record_outputs(false),
                true,
                true,
            ),
            action(
                "upsert_record",
                t("Create or update by external ID", "外部 ID で作成または更新する"),
                t(
                    "One call: updates the record whose external-ID field has this value, or creates it.",
                    "1回の呼び出しで、外部 ID 項目がこの値のレコードを更新、なければ作成します。",
                ),
                vec![
                    object_input(),
                    FieldSpec::new("external_id_field", FieldKind::Text, t("External ID field", "外部 ID 項目"))
                        .required()
                        .help("A field marked External ID, e.g. Ecforce_Customer_Id__c", "外部 ID に設定された項目（例: Ecforce_Customer_Id__c）"),
                    FieldSpec::new("external_id", FieldKind::Text, t("External ID", "外部 ID")).required(),
                    fields_input("Other fields: API name → value", "その他の項目: API 参照名 → 値"),
                ],
                record_outputs(true),
                true,
                true,
            ),
            action(
                "delete_record",
                t("Delete a record", "レコードを削除する"),
                t("Delete one record by its ID.", "ID でレコードを1件削除します。"),
                vec![object_input(), FieldSpec::new("id", FieldKind::Text, t("Record ID", "レコード ID")).required()],
                vec![OutputSpec::new("id", FieldKind::Text, t("Record ID", "レコード ID"))],
                true,
                true,
            ),
            action(
                "create_records",
                t("Create up to 200 records", "レコードを一括作成する（最大200件）"),
                t("One call through sObject Collections.", "sObject Collections で1回の呼び出しで作成します。"),
                vec![
                    object_input(),
                    records_input(),
                    FieldSpec::new("all_or_none", FieldKind::Boolean, t("All or none", "すべて成功時のみ確定")).default_value(json!(false)),
                ],
                collection_outputs(),
                false,
                true,
            ),
            action(
                "update_records",
                t("Update up to 200 records", "レコードを一括更新する（最大200件）"),
                t("Each record carries its Id.", "各レコードに Id を含めます。"),
                vec![
                    object_input(),
                    records_input(),
                    FieldSpec::new("all_or_none", FieldKind::Boolean, t("All or none", "すべて成功時のみ確定")).default_value(json!(false)),
                ],
                collection_outputs(),
                true,
                true,
            ),
            action(
                "upsert_records",
                t("Create or update up to 200 records by external ID", "外部 ID で一括作成・更新する（最大200件）"),
                t("Each record carries its external-ID field.", "各レコードに外部 ID 項目を含めます。"),
                vec![
                    object_input(),
                    FieldSpec::new("external_id_field", FieldKind::Text, t("External ID field", "外部 ID 項目")).required(),
                    records_input(),
                    FieldSpec::new("all_or_none", FieldKind::Boolean, t("All or none", "すべて成功時のみ確定")).default_value(json!(false)),
                ],
                collection_outputs(),
                true,
                true,
            ),
        ],
    }
}
