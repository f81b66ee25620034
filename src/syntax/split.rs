//! anklume's split layout: an `infra/` directory instead of one file. `base.yml` holds
//! `project_name` and `global` (and possibly some domains), every `domains/*.yml` is a
//! mapping of domain name → domain (merged in file-name order), and `policies.yml`
//! holds `network_policies`. The files are merged into one tree whose nodes keep the
//! spans of the files they came from, so diagnostics name the right file and line.

use super::yaml::{Entry, Node, NodeKind};
use crate::diagnostics::{Diagnostic, Diagnostics, codes};
use crate::source::{Span, Spanned};

/// Merge `base` with the domain files and the policies file into one infra tree.
/// A domain defined twice (in two files, or in base.yml and a file) is an error that
/// points at both definitions; the first one is kept.
pub fn merge(base: Node, domain_files: Vec<Node>, policies: Option<Node>, diagnostics: &mut Diagnostics) -> Node {
    let NodeKind::Map(mut entries) = base.kind else {
        // The reader reports a root that is not a mapping.
        return base;
    };
    let file_start = Span::new(base.span.file, 0, 0);
    let domains_index = match entries.iter().position(|entry| entry.key.value == "domains") {
        Some(index) => index,
        None => {
            entries.push(Entry {
                key: Spanned::new("domains".to_string(), file_start),
                value: Node { span: file_start, kind: NodeKind::Map(Vec::new()) },
            });
            entries.len() - 1
        }
    };
    if entries[domains_index].value.is_null() {
        let span = entries[domains_index].value.span;
        entries[domains_index].value = Node { span, kind: NodeKind::Map(Vec::new()) };
    }
    for file in domain_files {
        let NodeKind::Map(domains) = file.kind else {
            if !file.is_null() {
                diagnostics.push(
                    Diagnostic::new(
                        codes::WRONG_TYPE,
                        file.span,
                        format!("expected a mapping of domains, found {}", file.kind_name()),
                        "a file under domains/ maps domain names to domains",
                    )
                    .with_help("Write `<domain>:` at the top level, then the domain's keys under it."),
                );
            }
            continue;
        };
        // The domains node of base.yml is a mapping by now (made so above).
        let NodeKind::Map(merged) = &mut entries[domains_index].value.kind else { continue };
        for domain in domains {
            if let Some(first) = merged.iter().find(|existing| existing.key.value == domain.key.value) {
                diagnostics.push(
                    Diagnostic::new(
                        codes::DUPLICATE_KEY,
                        domain.key.span,
                        format!("domain `{}` is defined twice", domain.key.value),
                        "defined again here",
                    )
                    .with_label(first.key.span, "first defined here")
                    .with_help("Keep one definition: each domain lives in exactly one file."),
                );
                continue;
            }
            merged.push(domain);
        }
    }
    if let Some(file) = policies {
        match file.kind {
            NodeKind::Map(policy_entries) => {
                for entry in policy_entries {
                    if entry.key.value == "network_policies" {
                        // As anklume does: policies.yml replaces base.yml's policies.
                        entries.retain(|existing| existing.key.value != "network_policies");
                        entries.push(entry);
                    } else {
                        diagnostics.push(
                            Diagnostic::new(
                                codes::UNKNOWN_KEY,
                                entry.key.span,
                                format!("unknown key `{}` in policies.yml", entry.key.value),
                                "ignored",
                            )
                            .with_help("policies.yml holds only `network_policies`."),
                        );
                    }
                }
            }
            _ if file.is_null() => {}
            _ => diagnostics.push(Diagnostic::new(
                codes::WRONG_TYPE,
                file.span,
                format!("expected a mapping, found {}", file.kind_name()),
                "policies.yml is a mapping with `network_policies`",
            )),
        }
    }
    Node { span: base.span, kind: NodeKind::Map(entries) }
}
