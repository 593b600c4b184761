//! The built-in template flows, embedded from `flows/` so every binary carries them.

/// A template flow as shipped.
#[derive(Debug, Clone, Copy)]
pub struct Template {
    pub id: &'static str,
    /// The file under `flows/`.
    pub file: &'static str,
    pub yaml: &'static str,
}

/// A template shipped as `flows/ID.yaml`.
macro_rules! template {
    ($id:literal) => {
        Template {
            id: $id,
            file: concat!($id, ".yaml"),
            yaml: include_str!(concat!("../../../flows/", $id, ".yaml")),
        }
    };
}

pub const TEMPLATES: &[Template] = &[
    template!("ecforce-customer-to-salesforce"),
    template!("ecforce-customer-to-salesforce-upsert"),
    template!("shopify-customer-to-kintone"),
    template!("stripe-payment-failed-to-line"),
    template!("inquiry-form-to-salesforce-lead"),
    template!("refund-request-approval"),
    template!("table-customers-to-salesforce"),
    template!("mail-inquiry-ai-to-slack"),
];

pub fn template(id: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_is_a_valid_flow_with_its_id() {
        let apps = crate::registry();
        for t in TEMPLATES {
            let checked = flowbot_core::check(t.yaml, &apps);
            let flow = checked
                .flow
                .unwrap_or_else(|| panic!("{}: {:?}", t.file, checked.diagnostics));
            assert_eq!(flow.id, t.id);
        }
    }
}
