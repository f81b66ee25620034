//! A network ACL as the incus client prints it (`incus query /1.0/network-acls/NAME`):
//! tab-indented JSON, keys sorted, empty fields left out. deploy.sh compares this
//! text with what the server holds, which tells a converged ACL from one changed by
//! hand without parsing JSON in bash, and sends the same text to create or replace
//! it (the API ignores `name` in a replacement).

use crate::plan::{AclRule, AclSpec};

/// The document, from `{` to the closing `}`, without `project` and `used_by` (which
/// the server adds after `name`).
pub fn acl_document(spec: &AclSpec) -> String {
    let mut out = String::with_capacity(256 + spec.ingress.len() * 160);
    out.push_str("{\n\t\"config\": {},\n");
    field(&mut out, 1, "description", &spec.description, true);
    out.push_str("\t\"egress\": [],\n\t\"ingress\": [");
    for (index, rule) in spec.ingress.iter().enumerate() {
        out.push_str(if index == 0 { "\n" } else { ",\n" });
        rule_object(&mut out, rule);
    }
    out.push_str(if spec.ingress.is_empty() { "],\n" } else { "\n\t],\n" });
    field(&mut out, 1, "name", &spec.name, false);
    out.push('}');
    out
}

fn rule_object(out: &mut String, rule: &AclRule) {
    out.push_str("\t\t{\n");
    let fields: Vec<(&str, &str)> =
        rule.incus_fields().into_iter().filter_map(|(key, value)| Some((key, value?))).collect();
    for (index, (key, value)) in fields.iter().enumerate() {
        field(out, 3, key, value, index + 1 < fields.len());
    }
    out.push_str("\t\t}");
}

fn field(out: &mut String, depth: usize, key: &str, value: &str, comma: bool) {
    for _ in 0..depth {
        out.push('\t');
    }
    out.push('"');
    out.push_str(key);
    out.push_str("\": ");
    string(out, value);
    out.push_str(if comma { ",\n" } else { "\n" });
}

/// A JSON string as Go's encoder writes it without HTML escaping (which is how the
/// incus client prints, built with Go 1.22 or later): `"` and `\`, the short escapes
/// `\n`, `\r`, `\t`, `\b`, `\f`, other
/// control characters as `\u00XX`, and the two line separators JavaScript would
/// break on as `\u2028` and `\u2029`.
fn string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::ast::Protocol;

    fn rule(source: &str, destination: Option<&str>, ports: Option<&str>, description: &str) -> AclRule {
        AclRule {
            source: Some(source.into()),
            destination: destination.map(str::to_string),
            protocol: ports.map(|_| Protocol::Tcp),
            destination_port: ports.map(str::to_string),
            description: description.into(),
        }
    }

    /// The text below is what `incus query /1.0/network-acls/net-xb` printed on
    /// incusd 6.0.4 for this ACL (less `project` and `used_by`).
    #[test]
    fn the_document_is_what_the_incus_client_prints() {
        let spec = AclSpec {
            name: "net-xb".into(),
            description: "a <b> & \"c\" \u{e9} \u{2028} x\\y\tz".into(),
            ingress: vec![
                rule("10.202.0.0/24", None, None, "p1 <x> \u{e9}"),
                AclRule { description: String::new(), ..rule("10.201.0.2", None, Some("80,443,1000-1010"), "") },
            ],
        };
        let printed = "{\n\t\"config\": {},\n\t\"description\": \"a <b> & \\\"c\\\" \u{e9} \\u2028 x\\\\y\\tz\",\n\t\"egress\": [],\n\t\"ingress\": [\n\t\t{\n\t\t\t\"action\": \"allow\",\n\t\t\t\"description\": \"p1 <x> \u{e9}\",\n\t\t\t\"source\": \"10.202.0.0/24\",\n\t\t\t\"state\": \"enabled\"\n\t\t},\n\t\t{\n\t\t\t\"action\": \"allow\",\n\t\t\t\"destination_port\": \"80,443,1000-1010\",\n\t\t\t\"protocol\": \"tcp\",\n\t\t\t\"source\": \"10.201.0.2\",\n\t\t\t\"state\": \"enabled\"\n\t\t}\n\t],\n\t\"name\": \"net-xb\"\n}";
        assert_eq!(acl_document(&spec), printed);
    }

    #[test]
    fn the_document_is_json_that_says_what_the_plan_says() {
        let spec = AclSpec {
            name: "net-a".into(),
            description: "ctl \u{1} char".into(),
            ingress: vec![rule("10.100.0.0/24", Some("10.120.0.5"), Some("22"), "policy 1")],
        };
        let value: serde_json::Value = serde_json::from_str(&acl_document(&spec)).expect("JSON");
        assert_eq!(value["description"], "ctl \u{1} char");
        assert_eq!(value["ingress"][0]["destination"], "10.120.0.5");
        assert_eq!(value["ingress"][0]["destination_port"], "22");
        assert_eq!(value["ingress"][0]["protocol"], "tcp");
        assert_eq!(value["egress"], serde_json::json!([]));
        assert_eq!(value["name"], "net-a");
        let empty = AclSpec { ingress: vec![], ..spec };
        let value: serde_json::Value = serde_json::from_str(&acl_document(&empty)).expect("JSON");
        assert_eq!(value["ingress"], serde_json::json!([]));
    }
}
