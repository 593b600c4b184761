//! What an app's refusal means and what to do about it, in plain words in the operator's
//! language. Apps answer with codes (`HTTP_401`, `REQUIRED_FIELD_MISSING`, `GAIA_RE01`…)
//! and English messages; the pages show the explanation first and the original once.

/// One kind of trouble: the codes that mean it, and what to say (English, Japanese).
struct Kind {
    codes: &'static [&'static str],
    en: &'static str,
    ja: &'static str,
}

const KINDS: &[Kind] = &[
    Kind {
        codes: &["HTTP_401", "SIGN_IN_REFUSED", "INVALID_SESSION_ID", "invalid_grant", "invalid_client", "INVALID_AUTH_HEADER", "CB_WA01"],
        en: "The app did not accept the sign-in: the token or password is wrong, expired or revoked. Open Connections, enter it again (or Connect again) and test the connection.",
        ja: "アプリがログイン情報を受け付けませんでした。トークンやパスワードが誤っているか、期限切れ・無効になっています。マイアプリ連携で入力し直す（または再接続する）と、接続テストで確認できます。",
    },
    Kind {
        codes: &["HTTP_403", "INSUFFICIENT_ACCESS", "INSUFFICIENT_ACCESS_OR_READONLY", "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY", "MISSING_SCOPES", "API_DISABLED_FOR_ORG", "GAIA_NO01"],
        en: "The connection's account may not do this: give it the permission (a profile, a scope, the app's API access) in the app, then run again.",
        ja: "この連携のアカウントには、この操作の権限がありません。アプリ側で権限（プロファイル、スコープ、API の利用許可）を付けてから、もう一度実行してください。",
    },
    Kind {
        codes: &["HTTP_404", "NOT_FOUND", "OBJECT_NOT_FOUND", "INVALID_CROSS_REFERENCE_KEY", "GAIA_RE01", "GAIA_AP01", "ENTITY_IS_DELETED"],
        en: "What the step points at does not exist (any more): check the ID or the address the step uses — often a value from an earlier step that was empty or changed.",
        ja: "ステップが指している対象が見つかりません（削除された可能性もあります）。ステップが使う ID やアドレスを確認してください。前のステップの値が空だった・変わったことがよくある原因です。",
    },
    Kind {
        codes: &["REQUIRED_FIELD_MISSING", "CB_VA01", "FIELD_CUSTOM_VALIDATION_EXCEPTION", "INVALID_EMAIL_ADDRESS", "STRING_TOO_LONG", "INVALID_TYPE_ON_FIELD_IN_RECORD", "FIELD_INTEGRITY_EXCEPTION", "HTTP_422", "HTTP_400", "VALIDATION_ERROR", "INVALID_FIELD"],
        en: "The app refused the data this step sent: a required value is empty or a value has the wrong form. Check the step's mapping (the fields named here) and the trigger's data, then re-run.",
        ja: "このステップが送ったデータをアプリが受け付けませんでした。必須の値が空か、値の形式が合っていません。ステップの項目の対応付け（ここに挙がった項目）とトリガーのデータを確認してから再実行してください。",
    },
    Kind {
        codes: &["DUPLICATE_VALUE", "DUPLICATES_DETECTED", "CONFLICT", "HTTP_409", "GAIA_DA02"],
        en: "The record already exists: search first and update it, or use an upsert action, which is safe to repeat.",
        ja: "同じレコードがすでにあります。先に検索して更新するか、繰り返しても安全な「作成または更新（upsert）」のアクションを使ってください。",
    },
    Kind {
        codes: &["HTTP_429", "REQUEST_LIMIT_EXCEEDED", "RATE_LIMITED", "GAIA_TO04"],
        en: "The app's request limit was reached. flowbot waits and tries again on its own; if it keeps happening, run fewer flows at once or raise the limit in the app.",
        ja: "アプリの API 呼び出し上限に達しました。flowbot が時間をおいて自動で再試行します。繰り返す場合は、同時に動くフローを減らすか、アプリ側の上限を引き上げてください。",
    },
    Kind {
        codes: &["HTTP_500", "HTTP_502", "HTTP_503", "HTTP_504", "SERVER_UNAVAILABLE", "UNABLE_TO_LOCK_ROW", "NETWORK", "TIMEOUT"],
        en: "The app was unavailable or busy. flowbot tries again on its own; if the run still failed, re-run it later.",
        ja: "アプリが一時的に応答できない状態でした。flowbot が自動で再試行します。それでも失敗した場合は、時間をおいて再実行してください。",
    },
];

/// The explanation of an app's code, in `lang` (`ja` or English); None for a code not known.
pub fn explain(code: Option<&str>, lang: &str) -> Option<&'static str> {
    let code = code?;
    KINDS
        .iter()
        .find(|k| k.codes.iter().any(|c| c.eq_ignore_ascii_case(code)))
        .map(|k| if lang == "ja" { k.ja } else { k.en })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_explained_in_both_languages_and_unknown_ones_are_not() {
        assert!(explain(Some("HTTP_401"), "ja")
            .unwrap()
            .contains("マイアプリ連携"));
        assert!(explain(Some("REQUIRED_FIELD_MISSING"), "en")
            .unwrap()
            .contains("mapping"));
        assert!(explain(Some("gaia_re01"), "ja")
            .unwrap()
            .contains("見つかりません"));
        assert_eq!(explain(Some("SOMETHING_ELSE"), "ja"), None);
        assert_eq!(explain(None, "en"), None);
        // No code is claimed by two kinds.
        let mut seen = std::collections::HashSet::new();
        for k in KINDS {
            for c in k.codes {
                assert!(seen.insert(c.to_ascii_lowercase()), "{c} twice");
            }
        }
    }
}
