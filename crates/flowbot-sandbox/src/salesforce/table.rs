//! An object's records, with an index of their text values by field and lower-cased value.
//!
//! A query `WHERE Mail__c = '…'`, an external ID's duplicate check and an upsert by
//! external ID each read every record otherwise, so an org's answers got slower with every
//! record written (a burst of 10,000 customers made the simulator, not flowbot, the
//! bottleneck). The index only narrows the candidates: callers still apply their exact
//! comparison to each.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Map, Value};

#[derive(Default, Clone)]
pub(super) struct Table {
    rows: BTreeMap<String, Map<String, Value>>,
    /// (field, lower-cased text) → ids of the records holding it.
    by_text: HashMap<(String, String), BTreeSet<String>>,
}

/// The index key of a value compared as text: strings, and numbers as SOQL writes them.
fn text_key(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.to_lowercase()),
        Value::Number(n) => Some(n.to_string().to_lowercase()),
        _ => None,
    }
}

impl Table {
    pub(super) fn get(&self, id: &str) -> Option<&Map<String, Value>> {
        self.rows.get(id)
    }

    pub(super) fn len(&self) -> usize {
        self.rows.len()
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &Map<String, Value>> {
        self.rows.values()
    }

    /// Records whose `field` may equal `value` compared as text ignoring case (a superset of
    /// the exact matches); `None` when the value is not text (look at every record).
    pub(super) fn candidates<'a>(
        &'a self,
        field: &str,
        value: &Value,
    ) -> Option<impl Iterator<Item = (&'a String, &'a Map<String, Value>)>> {
        let key = (field.to_string(), text_key(value)?);
        let ids = self.by_text.get(&key);
        Some(
            ids.into_iter()
                .flatten()
                .filter_map(|id| self.rows.get_key_value(id)),
        )
    }

    fn index(&mut self, id: &str, rec: &Map<String, Value>, add: bool) {
        for (field, v) in rec {
            let Some(text) = text_key(v) else { continue };
            let key = (field.clone(), text);
            if add {
                self.by_text.entry(key).or_default().insert(id.to_string());
            } else if let Some(ids) = self.by_text.get_mut(&key) {
                ids.remove(id);
                if ids.is_empty() {
                    self.by_text.remove(&key);
                }
            }
        }
    }

    pub(super) fn insert(&mut self, id: String, rec: Map<String, Value>) {
        self.remove(&id);
        self.index(&id, &rec, true);
        self.rows.insert(id, rec);
    }

    pub(super) fn remove(&mut self, id: &str) -> Option<Map<String, Value>> {
        let old = self.rows.remove(id)?;
        self.index(id, &old, false);
        Some(old)
    }

    /// Change a record (an empty one when it does not exist) and re-index it.
    pub(super) fn update(&mut self, id: &str, change: impl FnOnce(&mut Map<String, Value>)) {
        let mut rec = self.remove(id).unwrap_or_default();
        change(&mut rec);
        self.insert(id.to_string(), rec);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn found(t: &Table, field: &str, v: Value) -> Vec<String> {
        t.candidates(field, &v)
            .unwrap()
            .map(|(id, _)| id.clone())
            .collect()
    }

    #[test]
    fn the_index_follows_inserts_updates_and_removals() {
        let mut t = Table::default();
        t.insert("1".into(), rec(json!({"Mail__c": "A@x.jp", "N": 7})));
        t.insert("2".into(), rec(json!({"Mail__c": "b@x.jp"})));
        assert_eq!(found(&t, "Mail__c", json!("a@X.JP")), ["1"]);
        assert_eq!(found(&t, "N", json!(7)), ["1"]);
        t.update("1", |r| {
            r.insert("Mail__c".into(), json!("c@x.jp"));
        });
        assert!(found(&t, "Mail__c", json!("a@x.jp")).is_empty());
        assert_eq!(found(&t, "Mail__c", json!("C@x.jp")), ["1"]);
        t.remove("2");
        assert!(found(&t, "Mail__c", json!("b@x.jp")).is_empty());
        assert!(t.candidates("Mail__c", &Value::Null).is_none());
        let snapshot = t.clone();
        t.insert("3".into(), rec(json!({"Mail__c": "c@x.jp"})));
        assert_eq!(found(&t, "Mail__c", json!("c@x.jp")), ["1", "3"]);
        assert_eq!(found(&snapshot, "Mail__c", json!("c@x.jp")), ["1"]);
        assert_eq!(t.len(), 2);
    }
}
