//! The objects the simulated org has, with the field rules real users hit: Account's `Name`
//! is required and at most 255 characters, email fields at most 80 and must look like an
//! email, external-ID fields are unique.

use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Id,
    String,
    Email,
    Phone,
    DateTime,
}

impl FieldType {
    fn name(self) -> &'static str {
        match self {
            FieldType::Id => "id",
            FieldType::String => "string",
            FieldType::Email => "email",
            FieldType::Phone => "phone",
            FieldType::DateTime => "datetime",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    pub kind: FieldType,
    pub length: usize,
    pub required: bool,
    pub external_id: bool,
    /// Set by the org, not by API writes.
    pub system: bool,
}

#[derive(Debug, Clone)]
pub struct Object {
    pub name: &'static str,
    pub label: &'static str,
    pub key_prefix: &'static str,
    pub fields: Vec<Field>,
}

impl Object {
    /// A field by name, as SOQL and the REST API match them: without regard to case.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    pub fn describe(&self, version: &str) -> Value {
        json!({
            "name": self.name,
            "label": self.label,
            "keyPrefix": self.key_prefix,
            "createable": true,
            "updateable": true,
            "queryable": true,
            "urls": { "sobject": format!("/services/data/{version}/sobjects/{}", self.name) },
            "fields": self.fields.iter().map(|f| json!({
                "name": f.name,
                "label": f.label,
                "type": f.kind.name(),
                "length": f.length,
                "nillable": !f.required,
                "createable": !f.system,
                "updateable": !f.system,
                "externalId": f.external_id,
                "unique": f.external_id,
            })).collect::<Vec<_>>(),
        })
    }
}

fn f(name: &'static str, label: &'static str, kind: FieldType, length: usize) -> Field {
    Field {
        name,
        label,
        kind,
        length,
        required: false,
        external_id: false,
        system: false,
    }
}

fn system(name: &'static str, label: &'static str, kind: FieldType) -> Field {
    Field {
        system: true,
        ..f(name, label, kind, 18)
    }
}

fn required(mut field: Field) -> Field {
    field.required = true;
    field
}

fn external(mut field: Field) -> Field {
    field.external_id = true;
    field
}

fn common() -> Vec<Field> {
    vec![
        system("Id", "ID", FieldType::Id),
        system("CreatedDate", "作成日", FieldType::DateTime),
        system("LastModifiedDate", "最終更新日", FieldType::DateTime),
    ]
}

/// The objects of the simulated org.
pub fn objects() -> Vec<Object> {
    let mut account = common();
    account.extend([
        required(f("Name", "取引先名", FieldType::String, 255)),
        f("Mail__c", "メール", FieldType::Email, 80),
        f("Phone", "電話", FieldType::Phone, 40),
        f(
            "BillingPostalCode",
            "郵便番号(請求先)",
            FieldType::String,
            20,
        ),
        f("BillingState", "都道府県(請求先)", FieldType::String, 80),
        f(
            "BillingStreet",
            "町名・番地(請求先)",
            FieldType::String,
            255,
        ),
        f("Description", "説明", FieldType::String, 32000),
        external(f(
            "Ecforce_Customer_Id__c",
            "ecforce 顧客ID",
            FieldType::String,
            64,
        )),
    ]);
    let mut contact = common();
    contact.extend([
        required(f("LastName", "姓", FieldType::String, 80)),
        f("FirstName", "名", FieldType::String, 40),
        f("Email", "メール", FieldType::Email, 80),
        f("Phone", "電話", FieldType::Phone, 40),
        external(f(
            "Ecforce_Customer_Id__c",
            "ecforce 顧客ID",
            FieldType::String,
            64,
        )),
    ]);
    let mut lead = common();
    lead.extend([
        required(f("LastName", "姓", FieldType::String, 80)),
        f("FirstName", "名", FieldType::String, 40),
        required(f("Company", "会社名", FieldType::String, 255)),
        f("Email", "メール", FieldType::Email, 80),
        f("Phone", "電話", FieldType::Phone, 40),
        f("LeadSource", "リードソース", FieldType::String, 40),
        f("Rating", "評価", FieldType::String, 40),
        f("Description", "説明", FieldType::String, 32000),
        external(f(
            "Ecforce_Customer_Id__c",
            "ecforce 顧客ID",
            FieldType::String,
            64,
        )),
    ]);
    vec![
        Object {
            name: "Account",
            label: "取引先",
            key_prefix: "001",
            fields: account,
        },
        Object {
            name: "Contact",
            label: "取引先責任者",
            key_prefix: "003",
            fields: contact,
        },
        Object {
            name: "Lead",
            label: "リード",
            key_prefix: "00Q",
            fields: lead,
        },
    ]
}

/// A rough email check, as strict as Salesforce's for the cases users hit.
pub fn looks_like_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c == ',' || c == ';' || c == '<' || c == '>')
        && !domain.contains('@')
}
