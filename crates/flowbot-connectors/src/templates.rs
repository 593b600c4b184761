//! The built-in template flows, embedded from `flows/` so every binary carries them.

/// A template flow as shipped.
#[derive(Debug, Clone, Copy)]
pub struct Template {
    pub id: &'static str,
    /// The file under `flows/`.
    pub file: &'static str,
    pub yaml: &'static str,
}

pub const TEMPLATES: &[Template] = &[
    Template {
        id: "ecforce-customer-to-salesforce",
        file: "ecforce-customer-to-salesforce.yaml",
        yaml: include_str!("../../../flows/ecforce-customer-to-salesforce.yaml"),
    },
    Template {
        id: "ecforce-customer-to-salesforce-upsert",
        file: "ecforce-customer-to-salesforce-upsert.yaml",
        yaml: include_str!("../../../flows/ecforce-customer-to-salesforce-upsert.yaml"),
    },
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
