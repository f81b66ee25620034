//! Reading a large infra.yml on several cores.
//!
//! A file of thousands of machines is almost all `domains:`, a block mapping whose
//! entries start on lines of their own at one indentation. Such a file is cut at
//! domain lines into runs that are read at once, each by its own parser, and the
//! trees are joined. The result must be the tree the whole file gives, spans and all,
//! so the cut is only trusted when nothing can tell it apart:
//!
//! - a run starts at a line indented as the first domain, of the form `name:`; if in
//!   the whole file that line were inside a quoted scalar or a flow collection, the run
//!   before it would end inside one, which is an error;
//! - every run reads without a diagnostic, with no anchor or alias (they reach across
//!   runs), and the runs together stay within the node and depth limits;
//! - each tree has the shape and the starting offset that the cut implies, and no key
//!   is repeated across runs.
//!
//! Otherwise the file is read again on one thread, and that reading is the answer:
//! its diagnostics are the ones the user sees. `tests` hold the two readings equal on
//! every fixture and on generated files made to fool the cut.

use super::yaml::{self, Limits, Node, NodeKind, Read};
use crate::diagnostics::Diagnostics;
use crate::source::FileId;
use std::collections::HashSet;

/// Smaller files are read on one thread: starting threads would cost more than it saves.
pub(super) const MIN_BYTES: usize = 256 * 1024;

/// The tree of `text` read in about `parts` runs on as many threads, or `None` when the
/// text cannot be cut safely or a run found anything to say (the caller then reads it
/// whole).
pub(super) fn parse_in_parts(file: FileId, text: &str, limits: &Limits, parts: usize) -> Option<Node> {
    let layout = Layout::of(text, parts)?;
    // A domain run's mappings sit one level higher in its own tree than in the file's.
    let domain_depth = limits.max_depth.checked_sub(1)?;
    let runs = layout.runs(text.len());
    let reads = crate::parallel::map(&runs, |run| {
        let limits = Limits {
            max_depth: if run.domains { domain_depth } else { limits.max_depth },
            max_nodes: node_share(limits.max_nodes, run.end - run.start, text.len()),
            ..*limits
        };
        read_run(file, text, run, &limits)
    });
    join(&layout, &runs, reads, limits)
}

/// Where a text is cut: the offset of the `domains` key, where its block starts, the
/// cuts inside it, and the first top-level line after it, if any.
#[derive(Debug, PartialEq, Eq)]
struct Layout {
    domains_key: usize,
    block_start: usize,
    indent: usize,
    cuts: Vec<usize>,
    tail: Option<usize>,
}

/// A run of the text, and whether it holds domain entries only.
#[derive(Debug)]
struct Run {
    start: usize,
    end: usize,
    domains: bool,
}

impl Layout {
    /// The cuts of `text` into at most `parts` domain runs of about equal size (with
    /// the text before the first cut in the first), or `None` when the text does not
    /// have the simple shape the cut relies on.
    fn of(text: &str, parts: usize) -> Option<Layout> {
        let mut lines = Lines { text, offset: 0 };
        let domains_key = loop {
            let (start, line) = lines.next()?;
            if document_marker(line) {
                return None;
            }
            if let Some(rest) = line.strip_prefix("domains:")
                && (rest.is_empty() || (rest.starts_with(' ') && is_blank_or_comment(rest)))
            {
                break start;
            }
        };
        let block_start = lines.offset;
        let (mut indent, mut candidates, mut block_end, mut tail) = (None, Vec::new(), text.len(), None);
        for (start, line) in lines.by_ref() {
            let body = line.trim_start_matches(' ');
            if body.starts_with('\t') {
                return None;
            }
            if is_blank_or_comment(body) {
                continue;
            }
            let depth = line.len() - body.len();
            if depth == 0 {
                if document_marker(line) {
                    return None;
                }
                (block_end, tail) = (start, Some(start));
                break;
            }
            match indent {
                None => indent = Some(depth),
                Some(indent) if indent == depth && is_simple_key(body) => candidates.push(start),
                Some(_) => {}
            }
        }
        // After the block, only a document marker matters (it ends the document).
        if lines.any(|(_, line)| document_marker(line)) {
            return None;
        }
        let indent = indent?;
        let size = block_end - block_start;
        let mut cuts: Vec<usize> = Vec::with_capacity(parts);
        for part in 1..parts {
            let target = block_start + size * part / parts;
            let next =
                candidates.iter().copied().find(|&cut| cut >= target && cuts.last().is_none_or(|&last| cut > last));
            cuts.extend(next);
        }
        if cuts.is_empty() {
            return None;
        }
        Some(Layout { domains_key, block_start, indent, cuts, tail })
    }

    /// The runs: the head with the first domains, the other domain runs, the tail.
    fn runs(&self, len: usize) -> Vec<Run> {
        let block_end = self.tail.unwrap_or(len);
        let mut runs = vec![Run { start: 0, end: self.cuts[0], domains: false }];
        for (index, &start) in self.cuts.iter().enumerate() {
            let end = self.cuts.get(index + 1).copied().unwrap_or(block_end);
            runs.push(Run { start, end, domains: true });
        }
        if let Some(tail) = self.tail {
            runs.push(Run { start: tail, end: len, domains: false });
        }
        runs
    }
}

/// The nodes a run of `bytes` of a text of `total` bytes may build: twice its share of
/// the file's budget. A run that needs more gives up (the file is then read whole, and
/// that reading reports the limit), so that the runs together never build much more
/// than the whole reading would have before it stopped.
fn node_share(max_nodes: usize, bytes: usize, total: usize) -> usize {
    let share = (max_nodes as u128 * 2 * bytes as u128 / total.max(1) as u128) as usize;
    share.saturating_add(1024).min(max_nodes)
}

fn read_run(file: FileId, text: &str, run: &Run, limits: &Limits) -> Read {
    let mut diagnostics = Diagnostics::new();
    let read = yaml::read_events(file, &text[run.start..run.end], run.start, limits, &mut diagnostics);
    if diagnostics.is_empty() { read } else { Read { root: None, ..read } }
}

/// The runs' trees as the one tree of the whole text, if they fit together.
fn join(layout: &Layout, runs: &[Run], reads: Vec<Read>, limits: &Limits) -> Option<Node> {
    let nodes = reads.iter().try_fold(0usize, |total, read| total.checked_add(read.nodes))?;
    if nodes > limits.max_nodes || reads.iter().any(|read| read.aliases) {
        return None;
    }
    let mut reads = reads.into_iter().zip(runs);
    let (head, _) = reads.next()?;
    let mut root = head.root?;
    let NodeKind::Map(top) = &mut root.kind else { return None };
    let domains_entry =
        top.last_mut().filter(|entry| entry.key.value == "domains" && entry.key.span.start == layout.domains_key)?;
    let domains = &mut domains_entry.value;
    // A flow mapping would start on the `domains:` line.
    if domains.span.start < layout.block_start {
        return None;
    }
    let NodeKind::Map(entries) = &mut domains.kind else { return None };
    let mut names: HashSet<String> = entries.iter().map(|entry| entry.key.value.clone()).collect();
    let mut tail = None;
    for (read, run) in reads {
        let node = read.root?;
        let NodeKind::Map(more) = node.kind else { return None };
        if !run.domains {
            tail = Some((node.span, more, run.start));
            continue;
        }
        if node.span.start != run.start + layout.indent || more.is_empty() {
            return None;
        }
        for entry in &more {
            if !names.insert(entry.key.value.clone()) {
                return None;
            }
        }
        entries.extend(more);
        domains.span.end = domains.span.end.max(node.span.end);
    }
    let domains_end = domains.span.end;
    if let Some((span, more, start)) = tail {
        if span.start != start {
            return None;
        }
        let keys: HashSet<&str> = top.iter().map(|entry| entry.key.value.as_str()).collect();
        if more.iter().any(|entry| keys.contains(entry.key.value.as_str())) {
            return None;
        }
        top.extend(more);
        root.span.end = root.span.end.max(span.end);
    }
    root.span.end = root.span.end.max(domains_end);
    Some(root)
}

/// The lines of a text with their offsets, line breaks left out.
struct Lines<'a> {
    text: &'a str,
    offset: usize,
}

impl<'a> Iterator for Lines<'a> {
    type Item = (usize, &'a str);

    fn next(&mut self) -> Option<(usize, &'a str)> {
        let rest = self.text.get(self.offset..).filter(|rest| !rest.is_empty())?;
        let start = self.offset;
        let line = match rest.find('\n') {
            Some(end) => {
                self.offset += end + 1;
                &rest[..end]
            }
            None => {
                self.offset = self.text.len();
                rest
            }
        };
        Some((start, line.strip_suffix('\r').unwrap_or(line)))
    }
}

/// Spaces only, or a comment after them.
fn is_blank_or_comment(text: &str) -> bool {
    let trimmed = text.trim_start_matches(' ');
    trimmed.is_empty() || trimmed.starts_with('#')
}

/// A directive, or the start or end of a document: the text may hold more than one.
fn document_marker(line: &str) -> bool {
    line.starts_with('%') || line.starts_with("---") || line.starts_with("...")
}

/// `name:` alone on its line, or followed by a value after a space: a plain key.
fn is_simple_key(body: &str) -> bool {
    let name_end =
        body.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))).unwrap_or(body.len());
    let first_ok = body.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    first_ok && body[name_end..].strip_prefix(':').is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole-file reading, with its diagnostics.
    fn whole(text: &str) -> (Option<Node>, Diagnostics) {
        let mut diagnostics = Diagnostics::new();
        let root = yaml::parse_whole(FileId(0), text, &Limits::default(), &mut diagnostics);
        (root, diagnostics)
    }

    /// When the cut reading answers, it is the whole reading, which found nothing to say.
    fn assert_same(text: &str, parts: usize) -> bool {
        let Some(split) = parse_in_parts(FileId(0), text, &Limits::default(), parts) else { return false };
        let (root, diagnostics) = whole(text);
        assert!(diagnostics.is_empty(), "read in {parts} parts, but the whole text draws {diagnostics:?}:\n{text}");
        assert_eq!(root.as_ref(), Some(&split), "read in {parts} parts differs from the whole:\n{text}");
        true
    }

    fn domains(count: usize, indent: &str) -> String {
        let mut text = String::from("project_name: demo\nglobal:\n  base_subnet: \"10.100\"\ndomains:\n");
        for domain in 0..count {
            text.push_str(&format!("{indent}d{domain}:\n{indent}  trust_level: admin\n{indent}  machines:\n"));
            for machine in 0..3 {
                text.push_str(&format!(
                    "{indent}    m{domain}x{machine}:\n{indent}      type: lxc\n{indent}      roles: [a, b]\n"
                ));
            }
        }
        text
    }

    #[test]
    fn a_large_file_is_cut_and_read_the_same() {
        for indent in ["  ", "    "] {
            let text = domains(40, indent);
            for parts in 2..=6 {
                assert!(assert_same(&text, parts), "the file was not cut in {parts} parts (indent {indent:?})");
            }
            let layout = Layout::of(&text, 4).expect("a layout");
            assert_eq!(layout.cuts.len(), 3);
            assert!(layout.cuts.iter().all(|&cut| text[cut..].starts_with(&format!("{indent}d"))));
        }
        let with_tail = domains(20, "  ") + "# policies follow\npolicies:\n  - from: d1\n    to: d2\n";
        assert!(assert_same(&with_tail, 3));
        assert!(assert_same(&with_tail.replace('\n', "\r\n"), 3));
    }

    #[test]
    fn every_fixture_reads_the_same_in_parts() {
        let mut files = 0;
        for group in std::fs::read_dir(crate::test_fixtures::group("")).into_iter().flatten().flatten() {
            for (_, text) in crate::test_fixtures::texts_in(&group.path()) {
                for parts in 2..=4 {
                    assert_same(&text, parts);
                }
                files += 1;
            }
        }
        assert!(files > 100, "only {files} fixtures");
    }

    /// What a domain block may hold, chosen to fool the cut: lines that look like a
    /// domain but sit inside a quoted scalar or a flow collection, block scalars,
    /// anchors reaching across domains, repeated names, markers, tabs and odd indents.
    const FRAGMENTS: &[&str] = &[
        "    trust_level: admin\n",
        "    description: \"two\n  dfake: lines\n  end\"\n",
        "    description: 'it''s\n  dfake:\n  x'\n",
        "    roles: [a,\n  dfake: b,\n  c]\n",
        "    config: {a: 1,\n  dfake: 2}\n",
        "    notes: |\n      text\n\n      more\n",
        "    notes: >-\n      folded\n",
        "    description: plain\n      continued\n",
        "    base: &shared {k: v}\n",
        "    copy: *shared\n",
        "  # a comment at the domains' indentation\n",
        "# a comment at the left margin\n",
        "\n",
        "    machines:\n      web:\n        type: lxc\n",
        "   odd: indent\n",
        "\tx: tab\n",
        "---\n",
        "...\n",
        "  - listed\n",
        "    key: value # comment\n",
        "    \"quoted key\": 1\n",
        "    ? complex\n    : key\n",
        "    empty:\n",
        "    text: \"a # not a comment\"\n",
        "    unicode: \"é\u{00a0}ü\"\n",
    ];

    const HEADS: &[&str] = &[
        "  d{}:\n",
        "  d{}: scalar\n",
        "  d{}: {a: 1}\n",
        "  d{}: [x,\n  y]\n",
        "  d{}:   # comment\n",
        "  dup:\n",
        "  d{}: &a\n",
    ];

    const TAILS: &[&str] = &[
        "",
        "policies:\n  - a: b\n",
        "domains:\n  again: 1\n",
        "project_name: twice\n",
        "# only a comment\n",
        "---\nsecond: document\n",
        "global: *shared\n",
    ];

    /// xorshift64*: the same cases on every run.
    struct Random(u64);

    impl Random {
        fn below(&mut self, bound: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % bound
        }
    }

    #[test]
    fn generated_files_read_the_same_in_parts_or_are_read_whole() {
        let mut random = Random(0x9e37_79b9_7f4a_7c15);
        let (mut cut, mut whole_only) = (0, 0);
        for case in 0..4000 {
            let mut text = String::from("project_name: demo\ndomains:\n");
            for domain in 0..2 + random.below(12) {
                // Mostly plain domains: a cut needs candidates.
                let head = if random.below(12) == 0 { HEADS[random.below(HEADS.len())] } else { HEADS[0] };
                text.push_str(&head.replace("{}", &domain.to_string()));
                if head.ends_with(":\n") || head.ends_with("comment\n") {
                    for line in 0..random.below(4) {
                        if random.below(12) == 0 {
                            text.push_str(FRAGMENTS[random.below(FRAGMENTS.len())]);
                        } else {
                            text.push_str(&format!("    key{line}: value\n"));
                        }
                    }
                }
            }
            if random.below(2) == 0 {
                text.push_str(TAILS[random.below(TAILS.len())]);
            }
            if case % 7 == 0 {
                text = text.replace('\n', "\r\n");
            }
            for parts in 2..=4 {
                if assert_same(&text, parts) {
                    cut += 1;
                } else {
                    whole_only += 1;
                }
            }
        }
        // Both paths are taken often enough to mean something.
        assert!(cut > 3000 && whole_only > 3000, "{cut} cut, {whole_only} read whole");
    }

    /// A file over the node limit is read whole, which reports it; no run builds much
    /// more than its share of the budget first.
    #[test]
    fn the_node_limit_is_the_whole_files() {
        let text = domains(40, "  ");
        let (root, _) = whole(&text);
        let count = |node: &Node| -> usize {
            fn count(node: &Node) -> usize {
                1 + match &node.kind {
                    NodeKind::Map(entries) => entries.iter().map(|entry| 1 + count(&entry.value)).sum(),
                    NodeKind::Seq(items) => items.iter().map(count).sum(),
                    _ => 0,
                }
            }
            count(node)
        };
        let nodes = root.as_ref().map(count).unwrap_or_default();
        let tight = Limits { max_nodes: nodes - 1, ..Limits::default() };
        assert_eq!(parse_in_parts(FileId(0), &text, &tight, 2), None);
        let mut diagnostics = Diagnostics::new();
        assert_eq!(yaml::parse_whole(FileId(0), &text, &tight, &mut diagnostics), None);
        assert_eq!(diagnostics.iter().map(|d| d.code.id).collect::<Vec<_>>(), ["E0006"]);
        assert!(node_share(1_000_000, 100, 1_000) <= 201_024);
        assert_eq!(node_share(1_000_000, 1_000, 1_000), 1_000_000);
        assert_eq!(node_share(usize::MAX, 1, 1), usize::MAX);
    }

    #[test]
    fn small_or_oddly_shaped_texts_are_not_cut() {
        assert_eq!(Layout::of("domains:\n  a:\n    x: 1\n", 2), None, "one domain: nothing to cut");
        assert_eq!(Layout::of("domains: {a: 1,\n  b: 2}\n", 2), None, "a flow mapping");
        assert_eq!(Layout::of("%YAML 1.2\n---\ndomains:\n  a: 1\n  b: 2\n", 2), None, "a directive");
        assert_eq!(Layout::of("domains:\n  a: 1\n  b: 2\n---\nx: 1\n", 2), None, "a second document");
        assert_eq!(Layout::of("domains:\n\t a: 1\n  b: 2\n", 2), None, "a tab");
        // A line inside a quoted scalar looks like a domain: the run before it ends
        // inside the quotes, and the text is read whole.
        let text = "domains:\n  a:\n    k1: 1\n    k2: 2\n    k3: 3\n    d: \"x\n  fake: y\n  z\"\n  b: 1\n";
        let layout = Layout::of(text, 2).expect("a layout");
        assert_eq!(layout.cuts, vec![text.find("  fake").unwrap_or_default()]);
        assert_eq!(parse_in_parts(FileId(0), text, &Limits::default(), 2), None);
        let (root, diagnostics) = whole(text);
        assert!(diagnostics.is_empty());
        let keys = root.as_ref().and_then(|root| root.get("domains")).and_then(|domains| domains.value.as_map());
        let keys: Vec<&str> = keys.unwrap_or_default().iter().map(|entry| entry.key.value.as_str()).collect();
        assert_eq!(keys, ["a", "b"]);
        let layout = Layout::of("domains:\n  a: 1\n  b: 2\nafter: 1\n", 2);
        assert_eq!(layout.map(|layout| (layout.cuts, layout.tail)), Some((vec![16], Some(23))));
    }
}
