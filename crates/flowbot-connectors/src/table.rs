//! The `table` app: flowbot's own tables, as a trigger (a row created, updated or
//! deleted) and as steps (get, search, add, update, upsert, delete, count). Its rows live
//! in the store, which the app reaches only through core's run-scoped table source
//! (`flowbot_core::table::call`), never directly.

use async_trait::async_trait;
use flowbot_core::manifest::{
    ActionSpec, AppManifest, FieldKind, FieldSpec, OutputSpec, Text, TriggerSpec,
};
use flowbot_core::table::{APP, ROW_CREATED, ROW_DELETED, ROW_UPDATED};
use flowbot_core::{ActionCall, ActionError, Connector};
use serde_json::{json, Value};

pub struct TableApp {
    manifest: AppManifest,
}

impl Default for TableApp {
    fn default() -> Self {
        TableApp {
            manifest: manifest(),
        }
    }
}

#[async_trait]
impl Connector for TableApp {
    fn manifest(&self) -> &AppManifest {
        &self.manifest
    }

    async fn execute(&self, call: ActionCall<'_>) -> Result<Value, ActionError> {
        flowbot_core::table::call(call.action, call.input).await
    }
}

fn table_input() -> FieldSpec {
    FieldSpec::new("table", FieldKind::Text, Text::new("Table", "テーブル"))
        .required()
        .help(
            "The table's name, in the flow's project",
            "フローのプロジェクトにあるテーブルの名前",
        )
}

fn id_input() -> FieldSpec {
    FieldSpec::new("id", FieldKind::Text, Text::new("Row id", "レコードID"))
        .required()
        .help(
            "The row's `_id` (its primary key's value, or its automatic number)",
            "レコードの `_id`（主キーの値、または自動採番の番号）",
        )
}

fn values_input() -> FieldSpec {
    FieldSpec::new("values", FieldKind::Map, Text::new("Values", "値"))
        .required()
        .help("Column key → value", "列のキー → 値")
}

fn conditions_inputs() -> Vec<FieldSpec> {
    vec![
        FieldSpec::new("where", FieldKind::Map, Text::new("Equal to", "一致する値"))
            .help(
                "Column key → the value it must equal",
                "列のキー → 一致すべき値",
            ),
        FieldSpec::new("conditions", FieldKind::List, Text::new("Conditions", "条件"))
            .max_items(20)
            .help(
                "Each: { column, op (equals, not_equals, contains, greater_than, less_than, is_empty, is_not_empty), value }",
                "各条件: { column, op（equals, not_equals, contains, greater_than, less_than, is_empty, is_not_empty）, value }",
            ),
    ]
}

fn row_output() -> OutputSpec {
    OutputSpec::new("row", FieldKind::Json, Text::new("Row", "レコード"))
}

fn action(
    id: &str,
    name: Text,
    description: Text,
    inputs: Vec<FieldSpec>,
    outputs: Vec<OutputSpec>,
    writes: bool,
    idempotent: bool,
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

fn manifest() -> AppManifest {
    let trigger = |id: &str, name: Text| {
        TriggerSpec {
        id: id.into(),
        name,
        options: vec![
            table_input(),
            FieldSpec::new("columns", FieldKind::List, Text::new("Only when these columns change", "この列が変わったときだけ"))
                .help("For `row_updated`: column keys (none: any change)", "`row_updated` のとき: 列のキー（なし: どの変更でも）"),
            FieldSpec::new("condition", FieldKind::Json, Text::new("Condition", "条件"))
                .help(
                    "Start only when it holds for the row ({{ row.column }}); for an update, when it starts to hold. The shape of a branch's `if`",
                    "レコード（{{ row.列 }}）について成り立つときだけ開始します。更新では、成り立つようになったとき。分岐の `if` と同じ形",
                ),
        ],
        outputs: vec![
            OutputSpec::new("row", FieldKind::Json, Text::new("Row", "レコード")),
            OutputSpec::new("previous", FieldKind::Json, Text::new("Row before the change", "変更前のレコード")),
            OutputSpec::new("row_id", FieldKind::Text, Text::new("Row id", "レコードID")),
            OutputSpec::new("event", FieldKind::Text, Text::new("Event", "イベント")),
            OutputSpec::new("table", FieldKind::Text, Text::new("Table", "テーブル")),
        ],
        polling: false,
        setup: Some(Text::new(
            "Runs start in the same write that changes a row: from the grid, the API, a CSV import or a flow's table step. Select rows in the grid to run the flow on them.",
            "レコードを変更した書き込みと同時に実行が始まります（表、API、CSV インポート、フローのテーブル操作のいずれでも）。表でレコードを選んで、このフローを実行することもできます。",
        )),
    }
    };
    AppManifest {
        id: APP.into(),
        name: Text::new("Tables", "テーブル"),
        description: Text::new(
            "Lists kept in flowbot itself: start a flow when a row changes, and read or write rows in steps.",
            "flowbot の中に保存する一覧。レコードが変わったときにフローを開始し、ステップでレコードを読み書きします。",
        ),
        connection: Vec::new(),
        triggers: vec![
            trigger(ROW_CREATED, Text::new("Row added", "レコードが追加されたら")),
            trigger(ROW_UPDATED, Text::new("Row updated", "レコードが更新されたら")),
            trigger(ROW_DELETED, Text::new("Row deleted", "レコードが削除されたら")),
        ],
        actions: vec![
            action(
                "get_row",
                Text::new("Get a row", "レコードを取得する"),
                Text::new("The row with an id; `found` is false when there is none.", "ID でレコードを取得します。ない場合 `found` は false です。"),
                vec![table_input(), id_input()],
                vec![
                    row_output(),
                    OutputSpec::new("found", FieldKind::Boolean, Text::new("Found", "見つかった")),
                ],
                false,
                true,
            ),
            action(
                "search_rows",
                Text::new("Search rows", "レコードを検索する"),
                Text::new("Rows that meet every condition, sorted; `rows` can be looped over.", "すべての条件を満たすレコードを並べ替えて取得します。`rows` は繰り返し処理に使えます。"),
                [vec![table_input()], conditions_inputs(), vec![
                    FieldSpec::new("sort", FieldKind::Text, Text::new("Sort by", "並べ替える列")),
                    FieldSpec::new("order", FieldKind::Select, Text::new("Order", "順序"))
                        .choices(&["asc", "desc"])
                        .default_value(json!("asc")),
                    FieldSpec::new("limit", FieldKind::Integer, Text::new("At most", "最大件数"))
                        .default_value(json!(100))
                        .help("1 to 500", "1〜500"),
                ]]
                .concat(),
                vec![
                    OutputSpec::new("rows", FieldKind::List, Text::new("Rows", "レコード一覧")),
                    OutputSpec::new("count", FieldKind::Integer, Text::new("Number found", "件数")),
                ],
                false,
                true,
            ),
            action(
                "add_row",
                Text::new("Add a row", "レコードを追加する"),
                Text::new("A new row; its table's triggers start in the same write.", "レコードを追加します。テーブルのトリガーは同じ書き込みで開始します。"),
                vec![table_input(), values_input()],
                vec![row_output()],
                true,
                false,
            ),
            action(
                "update_row",
                Text::new("Update a row", "レコードを更新する"),
                Text::new("Change the given columns of a row.", "レコードの指定した列を変更します。"),
                vec![table_input(), id_input(), values_input()],
                vec![row_output()],
                true,
                true,
            ),
            action(
                "upsert_row",
                Text::new("Add or update a row", "レコードを追加または更新する"),
                Text::new("The row whose unique `key` column holds the given value is updated; otherwise one is added.", "一意な列 `key` の値が一致するレコードを更新し、なければ追加します。"),
                vec![
                    table_input(),
                    FieldSpec::new("key", FieldKind::Text, Text::new("Match on column", "照合する列"))
                        .required()
                        .help("A unique column (or the primary key)", "一意な列（または主キー）"),
                    values_input(),
                ],
                vec![
                    row_output(),
                    OutputSpec::new("created", FieldKind::Boolean, Text::new("Added", "追加した")),
                ],
                true,
                true,
            ),
            action(
                "delete_row",
                Text::new("Delete a row", "レコードを削除する"),
                Text::new("Delete a row; `deleted` is false when it was gone already.", "レコードを削除します。すでにない場合 `deleted` は false です。"),
                vec![table_input(), id_input()],
                vec![OutputSpec::new("deleted", FieldKind::Boolean, Text::new("Deleted", "削除した"))],
                true,
                true,
            ),
            action(
                "count_rows",
                Text::new("Count rows", "レコード数を数える"),
                Text::new("How many rows meet every condition.", "すべての条件を満たすレコードの数。"),
                [vec![table_input()], conditions_inputs()].concat(),
                vec![OutputSpec::new("count", FieldKind::Integer, Text::new("Count", "件数"))],
                false,
                true,
            ),
        ],
    }
}
