//! YAML text to a spanned tree.
//!
//! [`parse`] reads one YAML document with granit-parser's event stream and builds a
//! [`Node`] tree whose every node, key and value carries the byte span of the text it
//! came from. Every problem is reported as a [`Diagnostic`]; nothing here panics, whatever
//! the input.
//!
//! Design notes:
//!
//! - Spans are byte offsets, taken from granit's `Span::byte_range` (always present for
//!   `Parser::new_from_str`). A scalar's span covers the scalar as written, quotes
//!   included; literal and folded block scalars cover their content without the trailing
//!   line breaks. A collection's span runs from its first token (`[`, `{`, the first `-`
//!   or the first key) to the end of its last child, or to its closing bracket.
//! - The tree is built from events with an explicit stack, never by recursion, and
//!   granit's own parser is a state machine; so depth is only bounded by
//!   [`Limits::max_depth`], which is checked on every collection start and every alias
//!   expansion. The tree handed back is therefore never deeper than `max_depth`, which
//!   keeps recursive consumers (including `Drop` and `Clone`) safe.
//! - Aliases are expanded by cloning the anchored node, which keeps the spans of the
//!   anchored text. Every anchor remembers its size (nodes, bytes of text, height), and
//!   the limits are checked before cloning, so a "billion laughs" file stops at the first
//!   alias that would cross [`Limits::max_nodes`], having done at most `max_nodes` work.
//!   The copies kept in the anchor table count towards the same budget, and the text
//!   they copy counts towards [`Limits::max_bytes`], so that nested anchors cannot
//!   multiply memory either.
//! - Empty values (`key:` with nothing after it) are [`NodeKind::Null`]; a written `null`
//!   or `~` stays a plain [`Scalar`] that resolves to [`ScalarValue::Null`]. Both are
//!   [`Node::is_null`].

use std::borrow::Cow;
use std::collections::HashMap;

use granit_parser::{ErrorKind, Event, Marker, Parser, ScalarStyle, ScanError, StructureStyle, Tag};

use super::parts;
use crate::diagnostics::{Diagnostic, Diagnostics, codes};
use crate::source::{FileId, Span, Spanned};

/// A YAML node with the span of its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub span: Span,
    pub kind: NodeKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// An empty value: `key:` with nothing after it, an empty document.
    Null,
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scalar {
    /// The value after YAML escape processing and line folding.
    pub text: String,
    /// Single or double quoted, a literal (`|`) or folded (`>`) block, or tagged `!!str`:
    /// the author wrote a string, whatever it looks like.
    pub quoted: bool,
}

/// One `key: value` entry of a mapping. Keys are always strings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: Spanned<String>,
    pub value: Node,
}

/// What a scalar means under the YAML 1.2 core schema.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ScalarValue<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

impl Scalar {
    /// The core-schema value of this scalar. Quoted scalars are always strings.
    pub fn resolve(&self) -> ScalarValue<'_> {
        if self.quoted { ScalarValue::Str(&self.text) } else { resolve_plain(&self.text) }
    }
}

fn resolve_plain(text: &str) -> ScalarValue<'_> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return ScalarValue::Null,
        "true" | "True" | "TRUE" => return ScalarValue::Bool(true),
        "false" | "False" | "FALSE" => return ScalarValue::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return ScalarValue::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return ScalarValue::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return ScalarValue::Float(f64::NAN),
        _ => {}
    }
    let radix = |digits: &str, radix: u32| {
        if !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix)) {
            Some(i64::from_str_radix(digits, radix).map_or(ScalarValue::Str(text), ScalarValue::Int))
        } else {
            None
        }
    };
    if let Some(value) = text.strip_prefix("0o").and_then(|digits| radix(digits, 8)) {
        return value;
    }
    if let Some(value) = text.strip_prefix("0x").and_then(|digits| radix(digits, 16)) {
        return value;
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) {
        // Too large for i64: keep the text rather than silently losing precision.
        return text.parse::<i64>().map_or(ScalarValue::Str(text), ScalarValue::Int);
    }
    if is_core_float(text) {
        if let Ok(value) = text.parse::<f64>() {
            return ScalarValue::Float(value);
        }
    }
    ScalarValue::Str(text)
}

/// How YAML 1.1 (PyYAML, anklume's reader) resolves a plain scalar that is, or looks
/// like, an integer: `Some(Some(n))` an integer, `Some(None)` text, `None` when it is
/// neither an integer nor integer-like text there (left to the YAML 1.2 reading).
/// PyYAML's integer forms: `0b` binary, a leading `0` octal, decimal, `0x` hex and
/// base 60 (`1:30`), each with `_` allowed between digits.
fn yaml11_int(text: &str) -> Option<Option<i128>> {
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let first = unsigned.chars().next()?;
    if !first.is_ascii_digit() {
        return None;
    }
    let digits = |body: &str, radix: u32| {
        if body.is_empty() || !body.chars().all(|c| c == '_' || c.is_digit(radix)) {
            return None;
        }
        if body.contains('_') {
            i128::from_str_radix(&body.replace('_', ""), radix).ok()
        } else {
            i128::from_str_radix(body, radix).ok()
        }
    };
    let value = if let Some(body) = unsigned.strip_prefix("0b") {
        digits(body, 2)
    } else if let Some(body) = unsigned.strip_prefix("0x") {
        digits(body, 16)
    } else if unsigned.contains(':') {
        // `[1-9][0-9_]*(:[0-5]?[0-9])+`
        let mut parts = unsigned.split(':');
        let head = parts.next().filter(|head| !head.starts_with('0')).and_then(|head| digits(head, 10));
        parts.try_fold(head?, |total, part| {
            let valid = (1..=2).contains(&part.len())
                && part.chars().all(|c| c.is_ascii_digit())
                && (part.len() == 1 || part.as_bytes()[0] <= b'5');
            valid.then(|| part.parse::<i128>().ok()).flatten().map(|sixty| total * 60 + sixty)
        })
    } else if unsigned.len() > 1 && unsigned.starts_with('0') {
        digits(&unsigned[1..], 8)
    } else {
        digits(unsigned, 10)
    };
    match value {
        Some(value) => Some(Some(if negative { -value } else { value })),
        // Digits that are no YAML 1.1 integer (`09`, `0o17`) are text there.
        None if unsigned.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => Some(None),
        None => None,
    }
}

/// `[-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`
fn is_core_float(text: &str) -> bool {
    let bytes = text.as_bytes();
    let at = |i: usize| bytes.get(i).copied();
    let digits_from = |mut i: usize| {
        while at(i).is_some_and(|b| b.is_ascii_digit()) {
            i += 1;
        }
        i
    };
    let mut i = usize::from(matches!(at(0), Some(b'-' | b'+')));
    let integer_start = i;
    i = digits_from(i);
    let integer_digits = i - integer_start;
    if at(i) == Some(b'.') {
        let fraction_start = i + 1;
        i = digits_from(fraction_start);
        if integer_digits == 0 && i == fraction_start {
            return false;
        }
    } else if integer_digits == 0 {
        return false;
    }
    if matches!(at(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(at(i), Some(b'-' | b'+')) {
            i += 1;
        }
        let exponent_start = i;
        i = digits_from(i);
        if i == exponent_start {
            return false;
        }
    }
    i == bytes.len()
}

impl Node {
    /// The kind of value, as named in diagnostics: "null", "string", "boolean",
    /// "integer", "number", "list" or "mapping".
    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Null => "null",
            NodeKind::Seq(_) => "list",
            NodeKind::Map(_) => "mapping",
            NodeKind::Scalar(scalar) => match scalar.resolve() {
                ScalarValue::Null => "null",
                ScalarValue::Bool(_) => "boolean",
                ScalarValue::Int(_) => "integer",
                ScalarValue::Float(_) => "number",
                ScalarValue::Str(_) => "string",
            },
        }
    }

    pub fn as_map(&self) -> Option<&[Entry]> {
        match &self.kind {
            NodeKind::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            NodeKind::Seq(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_scalar(&self) -> Option<&Scalar> {
        match &self.kind {
            NodeKind::Scalar(scalar) => Some(scalar),
            _ => None,
        }
    }

    /// The first entry with this key, if this node is a mapping.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.as_map()?.iter().find(|entry| entry.key.value == key)
    }

    /// An empty value, or a plain `null`, `Null`, `NULL` or `~`.
    pub fn is_null(&self) -> bool {
        match &self.kind {
            NodeKind::Null => true,
            NodeKind::Scalar(scalar) => matches!(scalar.resolve(), ScalarValue::Null),
            _ => false,
        }
    }
}

/// Bounds on what one input may cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted text, in bytes. Also bounds the text that alias expansion copies.
    pub max_bytes: usize,
    /// Deepest nesting of mappings and lists, alias expansions included.
    pub max_depth: usize,
    /// Most nodes (scalars, keys, collections), counted after alias expansion.
    pub max_nodes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_bytes: 64 * 1024 * 1024, max_depth: 64, max_nodes: 2_000_000 }
    }
}

/// Read `text` as a single YAML document.
///
/// Returns the root node, or `None` when nothing usable could be read; then at least one
/// error was pushed. A tree may also come back together with errors that did not make it
/// unusable (a duplicate key, whose later entry is dropped; a key that is not a string;
/// a second document, after which reading stops).
pub fn parse(file: FileId, text: &str, limits: &Limits, diagnostics: &mut Diagnostics) -> Option<Node> {
    if text.len() > limits.max_bytes {
        diagnostics.push(
            Diagnostic::new(
                codes::RESOURCE_LIMIT,
                Span::new(file, 0, 0),
                format!("the file is larger than {}", byte_size(limits.max_bytes)),
                format!("this file holds more than {}", byte_size(limits.max_bytes)),
            )
            .with_help(format!(
                "Split or shorten the file: at most {} are read, and an infra.yml is normally a few kilobytes.",
                byte_size(limits.max_bytes)
            )),
        );
        return None;
    }

    if text.len() >= parts::MIN_BYTES
        && crate::parallel::cores() > 1
        && let Some(root) = parts::parse_in_parts(file, text, limits, crate::parallel::cores())
    {
        return Some(root);
    }
    parse_whole(file, text, limits, diagnostics)
}

/// [`parse`] on one thread, whatever the size of the text.
pub(super) fn parse_whole(file: FileId, text: &str, limits: &Limits, diagnostics: &mut Diagnostics) -> Option<Node> {
    read_events(file, text, 0, limits, diagnostics).root
}

/// What reading one text (a whole file, or a part of one) gave.
pub(super) struct Read {
    pub root: Option<Node>,
    /// Nodes built, aliases expanded.
    pub nodes: usize,
    /// Whether the text defined an anchor or used an alias.
    pub aliases: bool,
}

/// Read `text`, which starts `base` bytes into its file, as one YAML document. Spans
/// are offsets in the file.
pub(super) fn read_events(
    file: FileId,
    text: &str,
    base: usize,
    limits: &Limits,
    diagnostics: &mut Diagnostics,
) -> Read {
    // granit has its own nesting limits. Its scanner may read up to 1024 characters ahead
    // (a possible simple key) before the parser emits the events of what it read, so keep
    // its limits out of the way: the builder reports depth at the first collection too deep.
    // They still bound the parser's own state should the builder's check ever be bypassed.
    let nesting = limits.max_depth.saturating_add(2048);
    let options = granit_parser::options! {
        emit_comments: false,
        emit_unresolved_aliases: true,
        flow_nesting_limit: nesting,
        block_nesting_limit: nesting,
    };
    let mut parser = Parser::new_from_str_with_options(text, options);
    let mut builder = Builder::new(file, text, base, limits, diagnostics);
    while let Some(next) = parser.next_event() {
        match next {
            Ok((event, span)) => {
                let range = builder.range(span.byte_range(), span.start, span.end);
                match builder.event(event, range) {
                    Step::Continue => {}
                    Step::Done => break,
                    Step::Abort => return builder.aborted(),
                }
            }
            Err(error) => {
                builder.scan_error(&error);
                return builder.aborted();
            }
        }
    }
    builder.finish()
}

/// What the event loop does next.
enum Step {
    Continue,
    /// The stream ended, or a second document started: stop reading, keep the tree.
    Done,
    /// A resource limit was hit: stop, no tree.
    Abort,
}

/// What makes the node count grow, for the wording of the limit diagnostic.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cause {
    Node,
    Alias,
    Anchor,
}

/// What an anchor stands for, and what copying it costs.
struct Anchor {
    node: Node,
    nodes: usize,
    bytes: usize,
    height: usize,
}

/// A collection being built.
struct Frame {
    start: usize,
    /// End of the furthest child (as written: an alias counts as its `*name` token).
    end: usize,
    flow: bool,
    anchor: usize,
    /// `Builder::nodes` and `Builder::tree_bytes` before this collection started.
    nodes_before: usize,
    bytes_before: usize,
    /// Height of the tallest child (0 for scalars).
    height: usize,
    content: Content,
}

enum Content {
    Seq(Vec<Node>),
    Map { entries: Vec<Entry>, key: KeySlot, keys: KeyIndex },
}

/// Where the keys of a mapping being built were first written, to find duplicates: a
/// scan of its entries while it is small (no copy of its keys), an index once it is
/// large (no quadratic time, whatever the input).
#[derive(Default)]
struct KeyIndex {
    index: Option<HashMap<String, Span>>,
}

impl KeyIndex {
    /// Mappings up to this many entries are scanned.
    const SCANNED: usize = 16;

    /// Where `key` was first written, if it already is a key of `entries`.
    fn first(&self, entries: &[Entry], key: &str) -> Option<Span> {
        match &self.index {
            Some(index) => index.get(key).copied(),
            None => entries.iter().find(|entry| entry.key.value == key).map(|entry| entry.key.span),
        }
    }

    /// `key` is the mapping's next key (its entry is pushed once its value is read).
    fn add(&mut self, entries: &[Entry], key: &Spanned<String>) {
        let index = match &mut self.index {
            Some(index) => index,
            None if entries.len() < Self::SCANNED => return,
            None => self.index.insert(entries.iter().map(|entry| (entry.key.value.clone(), entry.key.span)).collect()),
        };
        index.insert(key.value.clone(), key.span);
    }
}

/// In a mapping, whether the next node is a key or the value of which key.
enum KeySlot {
    Empty,
    Key(Spanned<String>),
    /// The value of a dropped entry (duplicate or invalid key).
    Drop,
}

struct Builder<'a> {
    file: FileId,
    text: &'a str,
    /// Where `text` starts in the file: offsets in `text` plus this are spans.
    base: usize,
    limits: &'a Limits,
    diagnostics: &'a mut Diagnostics,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Anchor>,
    /// Nodes in the tree, aliases expanded.
    nodes: usize,
    /// Nodes held by the anchor table.
    anchor_nodes: usize,
    /// Scalar and key text in the tree, aliases expanded.
    tree_bytes: usize,
    /// Text copied by alias expansion and by the anchor table.
    copied_bytes: usize,
    documents: usize,
    root: Option<Node>,
    /// An error that leaves holes in the tree (an unknown or recursive alias).
    broken: bool,
    /// A merge key (`<<`) was applied: entries reach across the mapping they came from.
    merged: bool,
}

impl<'a> Builder<'a> {
    fn new(
        file: FileId,
        text: &'a str,
        base: usize,
        limits: &'a Limits,
        diagnostics: &'a mut Diagnostics,
    ) -> Builder<'a> {
        Builder {
            file,
            text,
            base,
            limits,
            diagnostics,
            stack: Vec::new(),
            anchors: HashMap::new(),
            nodes: 0,
            anchor_nodes: 0,
            tree_bytes: 0,
            copied_bytes: 0,
            documents: 0,
            root: None,
            broken: false,
            merged: false,
        }
    }

    fn span(&self, start: usize, end: usize) -> Span {
        Span::new(self.file, self.base + start, self.base + end)
    }

    /// Byte range of a granit span, clamped to the text and to character boundaries.
    fn range(&self, bytes: Option<std::ops::Range<usize>>, start: Marker, end: Marker) -> (usize, usize) {
        let (start, end) = match bytes {
            Some(range) => (range.start, range.end),
            None => (char_to_byte(self.text, start.index()), char_to_byte(self.text, end.index())),
        };
        let start = floor_boundary(self.text, start);
        (start, floor_boundary(self.text, end).max(start))
    }

    fn marker_offset(&self, marker: &Marker) -> usize {
        let offset = marker.byte_offset().unwrap_or_else(|| char_to_byte(self.text, marker.index()));
        floor_boundary(self.text, offset)
    }

    /// A span on the character at `offset` (empty at a line end or the end of the text).
    fn point(&self, offset: usize) -> Span {
        let offset = floor_boundary(self.text, offset);
        let width = match self.text.get(offset..).and_then(|rest| rest.chars().next()) {
            Some('\n' | '\r') | None => 0,
            Some(c) => c.len_utf8(),
        };
        self.span(offset, offset + width)
    }

    fn event(&mut self, event: Event<'_>, (start, end): (usize, usize)) -> Step {
        match event {
            Event::DocumentStart(..) => {
                self.documents += 1;
                if self.documents > 1 {
                    self.diagnostics.push(
                        Diagnostic::new(
                            codes::DOCUMENT_SHAPE,
                            self.span(start, end),
                            "the file holds more than one YAML document",
                            "a second YAML document starts here",
                        )
                        .with_help("This file must hold one document: remove the `---`, or split the file."),
                    );
                    return Step::Done;
                }
                Step::Continue
            }
            Event::StreamEnd => Step::Done,
            Event::Scalar(value, style, anchor, tag) => self.scalar(value, style, anchor, tag.as_deref(), start, end),
            Event::SequenceStart(style, anchor, _) => self.open(style, anchor, false, start, end),
            Event::MappingStart(style, anchor, _) => self.open(style, anchor, true, start, end),
            Event::SequenceEnd | Event::MappingEnd => self.close(end),
            Event::Alias(id) => self.alias(id, start, end),
            Event::UnresolvedAlias(name) => {
                let span = self.span(start, end);
                self.diagnostics.push(
                    Diagnostic::new(
                        codes::YAML_SYNTAX,
                        span,
                        format!("invalid YAML: unknown alias `*{name}`"),
                        format!("no anchor `&{name}` is defined before this alias"),
                    )
                    .with_help(format!(
                        "Put the anchor `&{name}` on a node above this line, or correct the alias name."
                    )),
                );
                self.broken = true;
                self.placeholder(span)
            }
            _ => Step::Continue,
        }
    }

    /// Whether `count` more nodes fit in the budget; reports the crossing when not.
    fn fits(&mut self, count: usize, at: Span, cause: Cause) -> bool {
        let total = self.nodes.saturating_add(self.anchor_nodes).saturating_add(count);
        if total <= self.limits.max_nodes {
            return true;
        }
        let max = self.limits.max_nodes;
        let label = match cause {
            Cause::Alias => "expanding this alias crosses the limit",
            Cause::Anchor => "keeping a copy of this anchored node crosses the limit",
            Cause::Node => "the limit is crossed here",
        };
        let diagnostic = if cause == Cause::Node && self.anchors.is_empty() {
            Diagnostic::new(codes::RESOURCE_LIMIT, at, format!("the file holds more than {max} nodes"), label)
                .with_help("Split the file or remove entries; an infra.yml normally holds a few thousand values.")
        } else {
            Diagnostic::new(codes::RESOURCE_LIMIT, at, format!("alias expansion exceeds {max} nodes"), label).with_help(
                "Remove the nested aliases: each alias copies its whole anchored node, so aliases of aliases grow exponentially.",
            )
        };
        self.diagnostics.push(diagnostic);
        false
    }

    fn depth_error(&mut self, at: Span, alias: bool) {
        let max = self.limits.max_depth;
        let (message, label) = if alias {
            (format!("alias expansion nests deeper than {max} levels"), "this alias expands too deep here")
        } else {
            (format!("nesting deeper than {max} levels"), "this collection is nested too deeply")
        };
        self.diagnostics.push(
            Diagnostic::new(codes::RESOURCE_LIMIT, at, message, label)
                .with_help("Flatten the structure: infra.yml never needs more than a few levels of nesting."),
        );
    }

    fn scalar(
        &mut self,
        value: Cow<'_, str>,
        style: ScalarStyle,
        anchor: usize,
        tag: Option<&Tag>,
        start: usize,
        end: usize,
    ) -> Step {
        let explicit_str = tag.is_some_and(|tag| tag.is_yaml_core_schema_tag("str"));
        let end = match style {
            // Block scalars run to the next token: leave out their trailing line breaks.
            ScalarStyle::Literal | ScalarStyle::Folded => self
                .text
                .get(start..end)
                .map_or(end, |written| start + written.trim_end_matches([' ', '\t', '\r', '\n']).len()),
            _ => end,
        };
        let empty = style == ScalarStyle::Plain && start == end && !explicit_str;
        // granit places an empty value at the end of its key: move it after the `:`.
        let (start, end) = if empty && self.value_expected() { self.after_colon(start) } else { (start, end) };
        let span = self.span(start, end);
        let kind = if empty {
            NodeKind::Null
        } else {
            NodeKind::Scalar(Scalar { text: value.into_owned(), quoted: style != ScalarStyle::Plain || explicit_str })
        };
        let nodes_before = self.nodes;
        let bytes_before = self.tree_bytes;
        if !self.fits(1, span, Cause::Node) {
            return Step::Abort;
        }
        self.nodes += 1;
        if let NodeKind::Scalar(scalar) = &kind {
            self.tree_bytes += scalar.text.len();
            if !scalar.quoted && !self.key_expected() {
                self.yaml11_difference(scalar, span);
            }
        }
        self.complete(Node { span, kind }, anchor, 0, nodes_before, bytes_before)
    }

    /// Whether the next node is a mapping key.
    fn key_expected(&self) -> bool {
        matches!(self.stack.last(), Some(Frame { content: Content::Map { key: KeySlot::Empty, .. }, .. }))
    }

    /// W0012 when anklume's YAML 1.1 reads this plain value as another number, or a
    /// number where this reading has text (or the other way round).
    fn yaml11_difference(&mut self, scalar: &Scalar, span: Span) {
        let Some(theirs) = yaml11_int(&scalar.text) else { return };
        let ours = match resolve_plain(&scalar.text) {
            ScalarValue::Int(value) => Some(i128::from(value)),
            // Decimal digits past 64 bits: an integer in both readings (out of range
            // wherever a number is read), no difference to report.
            ScalarValue::Str(text)
                if text.strip_prefix(['-', '+']).unwrap_or(text).bytes().all(|b| b.is_ascii_digit()) =>
            {
                return;
            }
            _ => None,
        };
        let (label, reads) = match (ours, theirs) {
            (Some(ours), Some(theirs)) if ours != theirs => {
                (format!("{ours} here, {theirs} in anklume"), format!("the integer {theirs}"))
            }
            (None, Some(theirs)) => {
                (format!("text here, the integer {theirs} in anklume"), format!("the integer {theirs}"))
            }
            (Some(ours), None) => (format!("{ours} here, text in anklume"), "text".to_string()),
            _ => return,
        };
        self.diagnostics.push(
            Diagnostic::new(
                codes::YAML11_NUMBER,
                span,
                format!("`{}` reads differently in anklume (YAML 1.1)", scalar.text),
                label,
            )
            .with_note(format!("anklume's YAML 1.1 reader takes `{}` for {reads}", scalar.text))
            .with_help("Write the number without a leading zero, `_` or `:`, or quote it if the text is meant."),
        );
    }

    fn open(&mut self, style: StructureStyle, anchor: usize, map: bool, start: usize, end: usize) -> Step {
        let flow = style == StructureStyle::Flow;
        let start = if flow || map { start } else { self.dash_before(start) };
        let head = if flow { self.span(start, end) } else { self.point(start) };
        if self.stack.len() >= self.limits.max_depth {
            self.depth_error(head, false);
            return Step::Abort;
        }
        let nodes_before = self.nodes;
        if !self.fits(1, head, Cause::Node) {
            return Step::Abort;
        }
        self.nodes += 1;
        let content = if map {
            Content::Map { entries: Vec::new(), key: KeySlot::Empty, keys: KeyIndex::default() }
        } else {
            Content::Seq(Vec::new())
        };
        self.stack.push(Frame {
            start,
            end: if flow { end } else { start },
            flow,
            anchor,
            nodes_before,
            bytes_before: self.tree_bytes,
            height: 0,
            content,
        });
        Step::Continue
    }

    /// Whether the next node is the value of a mapping entry.
    fn value_expected(&self) -> bool {
        self.stack
            .last()
            .is_some_and(|frame| matches!(frame.content, Content::Map { key: KeySlot::Key(_) | KeySlot::Drop, .. }))
    }

    /// The empty range just after the `:` that follows `offset` (after spaces only).
    fn after_colon(&self, offset: usize) -> (usize, usize) {
        let rest = self.text.get(offset..).unwrap_or_default();
        let blank = rest.len() - rest.trim_start_matches([' ', '\t']).len();
        if rest.get(blank..).is_some_and(|rest| rest.starts_with(':')) {
            (offset + blank + 1, offset + blank + 1)
        } else {
            (offset, offset)
        }
    }

    /// granit starts an indentless block sequence (`key:\n- item`) at its first item, not
    /// at the `-`: move back to the dash.
    fn dash_before(&self, start: usize) -> usize {
        let before = self.text.get(..start).unwrap_or_default();
        let trimmed = before.trim_end_matches([' ', '\t', '\r', '\n']);
        if self.text.get(start..).is_some_and(|rest| rest.starts_with('-')) {
            start
        } else if trimmed.ends_with('-') {
            trimmed.len() - 1
        } else {
            start
        }
    }

    fn close(&mut self, end: usize) -> Step {
        let Some(frame) = self.stack.pop() else {
            return Step::Continue;
        };
        let end = if frame.flow { frame.end.max(end) } else { frame.end };
        let span = self.span(frame.start, end);
        let kind = match frame.content {
            Content::Seq(items) => NodeKind::Seq(items),
            Content::Map { entries, .. } => NodeKind::Map(self.merge_keys(entries)),
        };
        self.complete(Node { span, kind }, frame.anchor, frame.height + 1, frame.nodes_before, frame.bytes_before)
    }

    /// YAML 1.1's merge key, which anklume's reader (PyYAML) applies and YAML 1.2 does
    /// not have: `<<: *defaults` (or a list of such mappings) gives the mapping the
    /// entries it does not write itself. As PyYAML does: the merged entries come first,
    /// then the mapping's own; a key keeps the place it was first given and the value
    /// it was given last; of several merged mappings, the first wins. A quoted `"<<"`
    /// is an ordinary key.
    fn merge_keys(&mut self, entries: Vec<Entry>) -> Vec<Entry> {
        let (text, base) = (self.text, self.base);
        let is_merge = |entry: &Entry| {
            let written = entry.key.span.start.checked_sub(base).and_then(|start| text.get(start..));
            entry.key.value == "<<" && written.is_some_and(|rest| rest.starts_with("<<"))
        };
        if !entries.iter().any(is_merge) {
            return entries;
        }
        self.merged = true;
        let mut merged = Vec::new();
        let mut own = Vec::with_capacity(entries.len());
        for entry in entries {
            if !is_merge(&entry) {
                own.push(entry);
                continue;
            }
            match entry.value.kind {
                NodeKind::Map(more) => merged.extend(more),
                NodeKind::Seq(items) if items.iter().all(|item| matches!(item.kind, NodeKind::Map(_))) => {
                    for item in items.into_iter().rev() {
                        if let NodeKind::Map(more) = item.kind {
                            merged.extend(more);
                        }
                    }
                }
                kind => {
                    let found = Node { span: entry.value.span, kind }.kind_name();
                    self.diagnostics.push(
                        Diagnostic::new(
                            codes::WRONG_TYPE,
                            entry.value.span,
                            "a merge key (`<<`) takes a mapping or a list of mappings",
                            format!("this {found} cannot be merged"),
                        )
                        .with_help("Write `<<: *name`, where `&name` anchors a mapping, or `<<: [*one, *two]`."),
                    );
                }
            }
        }
        let mut out: Vec<Entry> = Vec::with_capacity(merged.len() + own.len());
        let mut places: HashMap<String, usize> = HashMap::new();
        for entry in merged.into_iter().chain(own) {
            match places.get(&entry.key.value) {
                Some(&place) => out[place] = entry,
                None => {
                    places.insert(entry.key.value.clone(), out.len());
                    out.push(entry);
                }
            }
        }
        out
    }

    /// A finished node: remember it if anchored, then attach it to its parent.
    fn complete(&mut self, node: Node, anchor: usize, height: usize, nodes_before: usize, bytes_before: usize) -> Step {
        if anchor != 0 {
            let nodes = self.nodes - nodes_before;
            let bytes = self.tree_bytes - bytes_before;
            // The anchor table holds a copy: it costs as much as an expansion.
            if !self.fits(nodes, node.span, Cause::Anchor) || !self.copy_bytes(bytes, node.span) {
                return Step::Abort;
            }
            self.anchor_nodes += nodes;
            self.anchors.insert(anchor, Anchor { node: node.clone(), nodes, bytes, height });
        }
        let written = node.span;
        self.attach(node, written, height);
        Step::Continue
    }

    fn copy_bytes(&mut self, bytes: usize, at: Span) -> bool {
        let total = self.copied_bytes.saturating_add(bytes);
        if total <= self.limits.max_bytes {
            self.copied_bytes = total;
            return true;
        }
        self.diagnostics.push(
            Diagnostic::new(
                codes::RESOURCE_LIMIT,
                at,
                format!("alias expansion exceeds {}", byte_size(self.limits.max_bytes)),
                "the copied text crosses the limit here",
            )
            .with_help(
                "Remove the nested aliases: each alias copies its whole anchored node, so aliases of aliases grow exponentially.",
            ),
        );
        false
    }

    fn alias(&mut self, id: usize, start: usize, end: usize) -> Step {
        let span = self.span(start, end);
        let Some(anchor) = self.anchors.get(&id) else {
            // granit resolves an alias to an anchor still open around it: a recursive structure.
            let name = self.text.get(start + 1..end).unwrap_or_default();
            self.diagnostics.push(
                Diagnostic::new(
                    codes::YAML_SYNTAX,
                    span,
                    format!("invalid YAML: alias `*{name}` refers to a node that contains it"),
                    format!("this alias is inside the node anchored as `&{name}`"),
                )
                .with_help("An alias cannot refer to its own enclosing node: that would be an infinite structure."),
            );
            self.broken = true;
            return self.placeholder(span);
        };
        let (nodes, bytes, height) = (anchor.nodes, anchor.bytes, anchor.height);
        if self.stack.len().saturating_add(height) > self.limits.max_depth {
            self.depth_error(span, true);
            return Step::Abort;
        }
        if !self.fits(nodes, span, Cause::Alias) || !self.copy_bytes(bytes, span) {
            return Step::Abort;
        }
        self.nodes += nodes;
        let Some(anchor) = self.anchors.get(&id) else {
            return Step::Continue;
        };
        let node = anchor.node.clone();
        self.tree_bytes += bytes;
        self.attach(node, span, height);
        Step::Continue
    }

    /// A null node standing for something that could not be read.
    fn placeholder(&mut self, span: Span) -> Step {
        if !self.fits(1, span, Cause::Node) {
            return Step::Abort;
        }
        self.nodes += 1;
        // In key position, drop the entry without a second diagnostic about an empty key.
        if let Some(Frame { content: Content::Map { key: key @ KeySlot::Empty, .. }, end, .. }) = self.stack.last_mut()
        {
            *key = KeySlot::Drop;
            *end = (*end).max(span.end - self.base);
            return Step::Continue;
        }
        self.attach(Node { span, kind: NodeKind::Null }, span, 0);
        Step::Continue
    }

    /// Attach a node to the collection being built. `written` is where the node appears
    /// in the text: its own span, or the `*name` token for an alias.
    fn attach(&mut self, node: Node, written: Span, height: usize) {
        let Some(frame) = self.stack.last_mut() else {
            if self.root.is_none() {
                self.root = Some(node);
            }
            return;
        };
        // Frames hold offsets in `self.text`; spans are offsets in the file.
        frame.end = frame.end.max(written.end - self.base);
        frame.height = frame.height.max(height);
        match &mut frame.content {
            Content::Seq(items) => items.push(node),
            Content::Map { entries, key, keys } => match std::mem::replace(key, KeySlot::Empty) {
                KeySlot::Empty => *key = make_key(node, written, entries, keys, self.text, self.base, self.diagnostics),
                KeySlot::Key(key) => entries.push(Entry { key, value: node }),
                KeySlot::Drop => {}
            },
        }
    }

    fn scan_error(&mut self, error: &ScanError) {
        let offset = self.marker_offset(error.marker());
        let kind = error.kind();
        if *kind == ErrorKind::RecursionLimitExceeded {
            let at = self.point(offset);
            self.depth_error(at, false);
            return;
        }
        if is_tab_error(kind) {
            let diagnostic = match indentation_tab(self.text, offset) {
                Some(tab) => Diagnostic::new(
                    codes::YAML_SYNTAX,
                    self.span(tab, tab + 1),
                    "invalid YAML: a tab is used for indentation",
                    "this tab indents the line",
                ),
                None => {
                    let at = line_tab(self.text, offset).unwrap_or(offset);
                    Diagnostic::new(
                        codes::YAML_SYNTAX,
                        self.point(at),
                        format!("invalid YAML: {}", readable(kind)),
                        "a tab is not allowed here",
                    )
                }
            };
            self.diagnostics
                .push(diagnostic.with_help("YAML indentation must use spaces, not tabs; replace the tab with spaces."));
            return;
        }
        let (problem, label, help) = describe(kind);
        // granit reports a bad escape at the string's opening quote: find the escape.
        let at = match (bad_escape(self.text, offset), kind) {
            (Some((start, end)), kind) if is_escape_error(kind) => self.span(start, end),
            // granit may report a control character at the start of the value it is in:
            // point at the character itself, later on the line.
            (_, ErrorKind::UnexpectedCharacter { character }) if character.is_control() => {
                let line = self.text.get(offset..).and_then(|rest| rest.split('\n').next()).unwrap_or_default();
                match line.find(*character) {
                    Some(found) => self.span(offset + found, offset + found + character.len_utf8()),
                    None => self.point(offset),
                }
            }
            _ => self.point(offset),
        };
        let mut diagnostic =
            Diagnostic::new(codes::YAML_SYNTAX, at, format!("invalid YAML: {problem}"), label).with_help(help);
        if indentation_tab(self.text, offset)
            .is_some_and(|tab| line_start(self.text, tab) == line_start(self.text, offset))
        {
            diagnostic = diagnostic.with_note("this line is indented with a tab; YAML indentation must use spaces");
        }
        // The parser stops where it notices the problem, often lines after the bracket
        // that was never closed: show which one is still open.
        if let Some(open) = self.stack.iter().rev().find(|frame| frame.flow)
            && let Some(bracket @ ('[' | '{')) = self.text.get(open.start..).and_then(|rest| rest.chars().next())
            && open.start + self.base < at.start
        {
            let closing = if bracket == '[' { ']' } else { '}' };
            diagnostic = diagnostic.with_label(
                self.span(open.start, open.start + 1),
                format!("this `{bracket}` is still open: no `{closing}` before the error"),
            );
        }
        self.diagnostics.push(diagnostic);
    }

    fn finish(self) -> Read {
        if self.documents == 0 || (self.root.is_none() && !self.broken) {
            let has_text = self.text.lines().any(|line| !line.trim().is_empty());
            let label = if has_text { "the file holds only comments" } else { "the file is empty" };
            self.diagnostics.push(
                Diagnostic::new(
                    codes::DOCUMENT_SHAPE,
                    Span::new(self.file, 0, 0),
                    "the file holds no YAML document",
                    label,
                )
                .with_help(
                    "Write the infrastructure as a YAML mapping, starting with a line such as `project_name: demo`.",
                ),
            );
            return self.aborted();
        }
        let root = if self.broken { None } else { self.root };
        Read {
            root,
            nodes: self.nodes,
            aliases: !self.anchors.is_empty() || self.copied_bytes > 0 || self.broken || self.merged,
        }
    }

    /// Reading stopped: no tree.
    fn aborted(self) -> Read {
        Read { root: None, nodes: self.nodes, aliases: !self.anchors.is_empty() || self.merged }
    }
}

/// Turn the node read in key position into a key, or report why it cannot be one.
fn make_key(
    node: Node,
    written: Span,
    entries: &[Entry],
    keys: &mut KeyIndex,
    text: &str,
    base: usize,
    diagnostics: &mut Diagnostics,
) -> KeySlot {
    let problem = match node.kind {
        NodeKind::Scalar(scalar) if !matches!(scalar.resolve(), ScalarValue::Null) => {
            if let Some(first) = keys.first(entries, &scalar.text) {
                let name = &scalar.text;
                diagnostics.push(
                    Diagnostic::new(
                        codes::DUPLICATE_KEY,
                        written,
                        format!("duplicate key `{name}`"),
                        format!("`{name}` is defined again here"),
                    )
                    .with_label(first, "first defined here")
                    .with_help("Remove one of the two entries or rename one; a mapping holds each key once.")
                    .with_note("anklumec keeps the first entry and ignores this one"),
                );
                return KeySlot::Drop;
            }
            let key = Spanned::new(scalar.text, written);
            keys.add(entries, &key);
            return KeySlot::Key(key);
        }
        NodeKind::Null => ("empty mapping key", "this entry has no key", "Write a name before the `:`."),
        NodeKind::Scalar(_) => (
            "null mapping key",
            "this key is null",
            "Use a name as the key; to use the word itself as a key, quote it (`\"null\"`).",
        ),
        NodeKind::Seq(_) => (
            "a list cannot be a mapping key",
            "this key is a list",
            "Use a plain name as the key; infra.yml keys are names, not lists or mappings.",
        ),
        NodeKind::Map(_) => (
            "a mapping cannot be a mapping key",
            "this key is a mapping",
            "Use a plain name as the key; infra.yml keys are names, not lists or mappings.",
        ),
    };
    let (message, label, help) = problem;
    let at = if node.span.start != node.span.end {
        node.span
    } else if text.get(written.start - base..).is_some_and(|rest| rest.starts_with(':')) {
        // An entry without a key: point at its `:`.
        Span::new(written.file, written.start, written.start + 1)
    } else {
        written
    };
    diagnostics.push(Diagnostic::new(codes::WRONG_TYPE, at, message, label).with_help(help));
    KeySlot::Drop
}

fn is_tab_error(kind: &ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::TabNotAllowed
            | ErrorKind::TabInBlockIndentation
            | ErrorKind::TabInIndentation
            | ErrorKind::TabInPlainScalar
            | ErrorKind::TabAtBlockScalarStart
    )
}

fn is_escape_error(kind: &ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::UnknownQuotedScalarEscape
            | ErrorKind::InvalidQuotedScalarHexEscape
            | ErrorKind::InvalidLowSurrogateHexEscape
            | ErrorKind::InvalidLowSurrogate
            | ErrorKind::MissingLowSurrogate
            | ErrorKind::UnpairedLowSurrogate
            | ErrorKind::InvalidUnicodeEscape
    )
}

/// The first invalid escape of the double-quoted string opening at `quote`, as a byte
/// range covering the backslash and the escape.
fn bad_escape(text: &str, quote: usize) -> Option<(usize, usize)> {
    let body = text.get(quote..)?.strip_prefix('"')?;
    let mut chars = body.char_indices();
    while let Some((index, c)) = chars.next() {
        match c {
            '"' => return None,
            '\\' => {
                let start = quote + 1 + index;
                let (_, escape) = chars.next()?;
                let digits = match escape {
                    'x' => 2,
                    'u' => 4,
                    'U' => 8,
                    '0' | 'a' | 'b' | 't' | '\t' | 'n' | 'v' | 'f' | 'r' | 'e' | ' ' | '"' | '/' | '\\' | 'N' | '_'
                    | 'L' | 'P' | '\n' | '\r' => continue,
                    other => return Some((start, start + 1 + other.len_utf8())),
                };
                let hex = body.get(index + 2..).unwrap_or_default();
                let valid = hex.len() >= digits && hex.bytes().take(digits).all(|b| b.is_ascii_hexdigit());
                let end = start + 2 + hex.bytes().take(digits).take_while(u8::is_ascii_hexdigit).count();
                if !valid {
                    return Some((start, end));
                }
                let code = hex.get(..digits).and_then(|digits| u32::from_str_radix(digits, 16).ok());
                if code.is_none_or(|code| char::from_u32(code).is_none() && !(0xD800..0xDC00).contains(&code)) {
                    return Some((start, end));
                }
                for _ in 0..digits {
                    chars.next();
                }
            }
            _ => {}
        }
    }
    None
}

fn line_start(text: &str, offset: usize) -> usize {
    text.get(..offset).and_then(|before| before.rfind('\n')).map_or(0, |newline| newline + 1)
}

/// granit reports a tab in indentation sometimes before it (at the start of the scalar
/// whose continuation line it indents, or at a block scalar's `|`), sometimes after it.
/// Find the tab: the first one in the leading whitespace of the error's line or of the
/// lines after it (a multi-line plain scalar may span a few).
fn indentation_tab(text: &str, offset: usize) -> Option<usize> {
    let mut position = line_start(text, offset);
    for _ in 0..64 {
        let rest = text.get(position..)?;
        let line = rest.split('\n').next().unwrap_or_default();
        let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
        if let Some(tab) = line.get(..indent).and_then(|indent| indent.find('\t')) {
            return Some(position + tab);
        }
        position += rest.find('\n')? + 1;
    }
    None
}

/// The first tab on the error's line at or after the error, else before it.
fn line_tab(text: &str, offset: usize) -> Option<usize> {
    let start = line_start(text, offset);
    let line = text.get(start..)?.split('\n').next()?;
    let relative = offset - start;
    line.get(relative..)
        .and_then(|after| after.find('\t'))
        .map(|tab| offset + tab)
        .or_else(|| line.get(..relative)?.rfind('\t').map(|tab| start + tab))
}

/// Problem (for the message), label and help for a syntax error.
fn describe(kind: &ErrorKind) -> (String, String, String) {
    const INDENTATION: &str = "Check the indentation of this line: it must line up with the entries of its \
        mapping or list, or be indented under a key that ends with `:`.";
    let (problem, label, help): (String, &str, &str) = match kind {
        ErrorKind::UnclosedQuotedScalar => (
            "unclosed quote".into(),
            "this quote is never closed",
            "Add the matching closing quote; inside double quotes, write a literal `\"` as `\\\"`.",
        ),
        ErrorKind::UnclosedFlowCollection { open } => {
            let close = if *open == '[' { ']' } else { '}' };
            return (
                format!("unclosed `{open}`"),
                format!("this `{open}` is never closed"),
                format!("Add the matching `{close}`, or write the collection in block style, one entry per line."),
            );
        }
        ErrorKind::MismatchedFlowCollectionEnd { open, close } => {
            return (
                format!("`{open}` closed by `{close}`"),
                format!("this `{open}` is closed by a `{close}`"),
                "Close `[` with `]` and `{` with `}`.".into(),
            );
        }
        ErrorKind::MisplacedFlowCollectionEnd => (
            "unexpected closing bracket".into(),
            "no open bracket to close here",
            "Remove the bracket, or quote the value if the bracket belongs to the text.",
        ),
        ErrorKind::ExpectedBlockMappingKey => {
            ("this line does not fit the indentation of its mapping".into(), "expected a key here", INDENTATION)
        }
        ErrorKind::ExpectedBlockSequenceEntry => {
            ("this line does not fit the indentation of its list".into(), "expected a `- ` list item here", INDENTATION)
        }
        ErrorKind::InvalidIndentation | ErrorKind::InvalidFlowScalarIndent | ErrorKind::InvalidQuotedScalarIndent => {
            ("invalid indentation".into(), "this line is wrongly indented", INDENTATION)
        }
        ErrorKind::InvalidBlockScalarIndent => (
            "wrongly indented line in a block scalar".into(),
            "this line is indented less than the text above it",
            "Indent every line of a `|` or `>` block at least as much as its first line.",
        ),
        ErrorKind::MappingValueNotAllowed => (
            "unexpected `:`".into(),
            "a mapping cannot start here",
            "Put nested keys on their own lines, indented under their parent key; if the `:` is part of the \
             value, quote the whole value.",
        ),
        ErrorKind::InvalidMappingValueWhitespace | ErrorKind::FlowMappingValueAdjacentCollection => (
            "missing space after `:`".into(),
            "a `:` separating a key from its value must be followed by a space",
            "Write `key: value`, with a space after the colon.",
        ),
        ErrorKind::InvalidBlockEntryWhitespace => (
            "missing space after `-`".into(),
            "a list item's `-` must be followed by a space",
            "Write `- item`, with a space after the dash.",
        ),
        ErrorKind::UnexpectedCharacter { character } if character.is_control() => {
            return (
                format!("control character `{}` in the text", character.escape_default()),
                "YAML text cannot hold this character as it is".into(),
                "Write it as an escape in a double-quoted string (`\"\\x07\"`, `\"\\e\"`), or remove it.".into(),
            );
        }
        ErrorKind::UnexpectedCharacter { character } => {
            return (
                format!("unexpected character `{}`", character.escape_default()),
                "a plain value cannot start with this character".into(),
                "Quote the value, for example `\"@value\"`.".into(),
            );
        }
        kind if is_escape_error(kind) => (
            "invalid escape sequence in a double-quoted string".into(),
            "invalid `\\` escape",
            "In double quotes a backslash starts an escape such as `\\n`; write `\\\\` for a backslash, or use \
             single quotes, which have no escapes.",
        ),
        ErrorKind::InvalidColonPlacement => (
            "unexpected `:` inside brackets".into(),
            "a `:` cannot appear here",
            "A `[` or `{` opened before this line may be missing its closing bracket; otherwise quote the value \
             that contains the `:`.",
        ),
        ErrorKind::ExpectedFlowSequenceSeparator => (
            "expected `,` or `]`".into(),
            "expected `,` or `]` here",
            "Separate the items of a `[...]` list with commas and close it with `]`; quote values that contain \
             `,`, `[`, `]`, `{` or `}`.",
        ),
        ErrorKind::ExpectedFlowMappingSeparator => (
            "expected `,` or `}`".into(),
            "expected `,` or `}` here",
            "Separate the entries of a `{...}` mapping with commas and close it with `}`; quote values that \
             contain `,`, `[`, `]`, `{` or `}`.",
        ),
        ErrorKind::SimpleKeyExpected | ErrorKind::InvalidSimpleKey => (
            "expected `: ` after a key".into(),
            "this line is not a `key: value` entry",
            "Write `key: value`, with a space after the colon; quote values that contain `: ` or start with a \
             special character.",
        ),
        ErrorKind::InvalidTrailingSingleQuotedScalar | ErrorKind::InvalidTrailingDoubleQuotedScalar => (
            readable(kind),
            "this quoted string is followed by more text",
            "Quote the whole value, or move the text after the closing quote into it.",
        ),
        ErrorKind::CommentInterceptedScalar => (
            "a comment interrupts a multi-line value".into(),
            "this value continues after a comment line",
            "Remove the comment, or quote the value.",
        ),
        ErrorKind::CommentNotSeparated => (
            "`#` directly after a value".into(),
            "a comment must be preceded by a space",
            "Put a space before `#` to start a comment, or quote the value if `#` belongs to it.",
        ),
        _ => (
            readable(kind),
            "the YAML parser stopped here",
            "Fix the YAML syntax here; common causes are a missing space after `:`, an unclosed quote or \
             bracket, or a line indented at a level that matches no enclosing mapping.",
        ),
    };
    (problem, label.into(), help.into())
}

/// granit's message, reordered from "while parsing X, problem" to "problem while parsing X".
fn readable(kind: &ErrorKind) -> String {
    let message = kind.to_string();
    let message = match kind {
        ErrorKind::UnexpectedEof => "unexpected end of file".to_string(),
        _ => message.replace("EOF", "end of file"),
    };
    let message = match message.strip_prefix("while ").and_then(|rest| rest.split_once(", ")) {
        Some((context, problem)) => format!("{problem} while {context}"),
        None => message,
    };
    message.trim_end_matches('.').to_string()
}

fn floor_boundary(text: &str, offset: usize) -> usize {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

fn char_to_byte(text: &str, index: usize) -> usize {
    text.char_indices().nth(index).map_or(text.len(), |(offset, _)| offset)
}

fn byte_size(bytes: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * 1024;
    if bytes >= MIB && bytes % MIB == 0 {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes % KIB == 0 {
        format!("{} KiB", bytes / KIB)
    } else if bytes == 1 {
        "1 byte".to_string()
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::diagnostics::Diagnostic;

    const FILE: FileId = FileId(3);

    fn parse_with(text: &str, limits: &Limits) -> (Option<Node>, Vec<Diagnostic>) {
        let mut diagnostics = Diagnostics::new();
        let root = parse(FILE, text, limits, &mut diagnostics);
        assert!(root.is_some() || diagnostics.has_errors(), "None without an error for {text:?}");
        (root, diagnostics.iter().cloned().collect())
    }

    fn read(text: &str) -> (Option<Node>, Vec<Diagnostic>) {
        parse_with(text, &Limits::default())
    }

    /// Parse text that must be clean.
    fn ok(text: &str) -> Node {
        let (root, diagnostics) = read(text);
        assert!(diagnostics.is_empty(), "unexpected diagnostics for {text:?}: {diagnostics:#?}");
        root.unwrap()
    }

    /// Parse text that must produce exactly one diagnostic.
    fn one(text: &str) -> (Option<Node>, Diagnostic) {
        let (root, mut diagnostics) = read(text);
        assert_eq!(diagnostics.len(), 1, "expected one diagnostic for {text:?}: {diagnostics:#?}");
        (root, diagnostics.remove(0))
    }

    fn at(text: &str, span: Span) -> &str {
        assert_eq!(span.file, FILE);
        &text[span.range()]
    }

    fn path<'n>(node: &'n Node, keys: &[&str]) -> &'n Node {
        keys.iter().fold(node, |node, key| &node.get(key).unwrap_or_else(|| panic!("no key {key}")).value)
    }

    fn text_of(node: &Node) -> &str {
        &node.as_scalar().unwrap().text
    }

    // ----- spans -------------------------------------------------------------------------

    const MULTIBYTE: &str = "\
# Infrastructure — démo
project_name: démo — café
domains:
  pro:
    description: \"Équipe « pro » — ok\"
    note: 'l''été'
    machines:
      - wéb-1
      - {name: bâse, ip: 10.0.0.1}
  perso: {}
";

    #[test]
    fn spans_slice_multibyte_text() {
        let text = MULTIBYTE;
        let root = ok(text);
        assert_eq!(root.span.start, text.find("project_name").unwrap());
        assert_eq!(at(text, root.span), text.trim_start_matches(|c| c != 'p').trim_end());

        let entry = root.get("project_name").unwrap();
        assert_eq!(at(text, entry.key.span), "project_name");
        assert_eq!(at(text, entry.value.span), "démo — café");
        assert_eq!(text_of(&entry.value), "démo — café");

        let pro = path(&root, &["domains", "pro"]);
        assert!(at(text, pro.span).starts_with("description:"));
        assert!(at(text, pro.span).ends_with("ip: 10.0.0.1}"));

        let description = path(&root, &["domains", "pro", "description"]);
        assert_eq!(at(text, description.span), "\"Équipe « pro » — ok\"");
        assert_eq!(description.as_scalar().unwrap(), &Scalar { text: "Équipe « pro » — ok".into(), quoted: true });

        let note = path(&root, &["domains", "pro", "note"]);
        assert_eq!(at(text, note.span), "'l''été'");
        assert_eq!(text_of(note), "l'été");

        let machines = path(&root, &["domains", "pro", "machines"]);
        assert_eq!(at(text, machines.span), "- wéb-1\n      - {name: bâse, ip: 10.0.0.1}");
        let items = machines.as_seq().unwrap();
        assert_eq!(at(text, items[0].span), "wéb-1");
        assert_eq!(at(text, items[1].span), "{name: bâse, ip: 10.0.0.1}");
        let name = items[1].get("name").unwrap();
        assert_eq!(at(text, name.key.span), "name");
        assert_eq!(at(text, name.value.span), "bâse");

        let perso = path(&root, &["domains", "perso"]);
        assert_eq!(at(text, perso.span), "{}");
        assert_eq!(perso.as_map().unwrap().len(), 0);

        let domains = path(&root, &["domains"]);
        assert_eq!(at(text, domains.span), text[text.find("pro:").unwrap()..].trim_end());
    }

    #[test]
    fn flow_collections_cover_their_brackets() {
        let text = "a: [1, \"é\", {b: c}, [ ]]\n";
        let root = ok(text);
        let a = path(&root, &["a"]);
        assert_eq!(at(text, a.span), "[1, \"é\", {b: c}, [ ]]");
        let items = a.as_seq().unwrap();
        assert_eq!(items.len(), 4);
        assert_eq!(at(text, items[1].span), "\"é\"");
        assert_eq!(at(text, items[2].span), "{b: c}");
        assert_eq!(at(text, items[3].span), "[ ]");
        assert_eq!(at(text, root.span), text.trim_end());
    }

    #[test]
    fn flow_root_and_nested_block_sequences() {
        let text = "- [a, b]\n-\n  - c\n  - d\n";
        let root = ok(text);
        assert_eq!(at(text, root.span), text.trim_end());
        let items = root.as_seq().unwrap();
        assert_eq!(at(text, items[1].span), "- c\n  - d");
    }

    #[test]
    fn indentless_sequence_starts_at_its_dash() {
        let text = "list:\n- x\n- y\nafter: 1\n";
        let root = ok(text);
        let list = path(&root, &["list"]);
        assert_eq!(at(text, list.span), "- x\n- y");
        assert_eq!(root.get("after").unwrap().value.as_scalar().unwrap().resolve(), ScalarValue::Int(1));
    }

    #[test]
    fn block_scalars_are_quoted_and_spanned_without_trailing_breaks() {
        let text = "script: |\n  echo été\n  exit 0\n\nfolded: >-\n  one\n  two\nplain: a\n  b\n";
        let root = ok(text);
        let script = path(&root, &["script"]);
        assert_eq!(script.as_scalar().unwrap(), &Scalar { text: "echo été\nexit 0\n".into(), quoted: true });
        assert_eq!(at(text, script.span), "echo été\n  exit 0");
        let folded = path(&root, &["folded"]);
        assert_eq!(folded.as_scalar().unwrap(), &Scalar { text: "one two".into(), quoted: true });
        assert_eq!(at(text, folded.span), "one\n  two");
        let plain = path(&root, &["plain"]);
        assert_eq!(plain.as_scalar().unwrap(), &Scalar { text: "a b".into(), quoted: false });
        assert_eq!(at(text, plain.span), "a\n  b");
    }

    #[test]
    fn crlf_line_endings() {
        let text = "a: 1\r\nb:\r\n  - é\r\n";
        let root = ok(text);
        assert_eq!(at(text, path(&root, &["a"]).span), "1");
        let b = path(&root, &["b"]);
        assert_eq!(at(text, b.as_seq().unwrap()[0].span), "é");
    }

    #[test]
    fn empty_values_are_null_and_written_nulls_are_scalars() {
        let text = "a:\nb: ~\nc: null\nd: \"null\"\ne: !!str\n";
        let root = ok(text);
        let a = path(&root, &["a"]);
        assert_eq!(a.kind, NodeKind::Null);
        assert!(a.is_null());
        assert_eq!(a.kind_name(), "null");
        assert_eq!(a.span.start, a.span.end);
        assert_eq!(a.span.start, 2, "an empty value sits right after its key's colon");
        let b = path(&root, &["b"]);
        assert!(b.is_null());
        assert_eq!(b.kind_name(), "null");
        assert_eq!(text_of(b), "~");
        assert!(path(&root, &["c"]).is_null());
        let d = path(&root, &["d"]);
        assert!(!d.is_null());
        assert_eq!(d.kind_name(), "string");
        let e = path(&root, &["e"]);
        assert_eq!(e.as_scalar().unwrap(), &Scalar { text: String::new(), quoted: true });
    }

    #[test]
    fn str_tag_marks_a_scalar_quoted() {
        let text = "a: !!str 5\nb: !!str true\nc: !custom 5\n";
        let root = ok(text);
        let a = path(&root, &["a"]);
        assert_eq!(a.as_scalar().unwrap().resolve(), ScalarValue::Str("5"));
        assert_eq!(at(text, a.span), "5");
        assert_eq!(path(&root, &["b"]).kind_name(), "string");
        assert_eq!(path(&root, &["c"]).kind_name(), "integer");
    }

    #[test]
    fn comments_are_ignored_and_merge_keys_are_applied() {
        let text = "# top\nbase: &b {x: 1} # inline\nuse:\n  <<: *b # merge\n  y: 2\n";
        let root = ok(text);
        let entries = path(&root, &["use"]).as_map().unwrap();
        let keys: Vec<&str> = entries.iter().map(|e| e.key.value.as_str()).collect();
        assert_eq!(keys, ["x", "y"]);
        // A merged entry keeps the span of its definition.
        assert_eq!(at(text, entries[0].key.span), "x");
        assert_eq!(at(text, entries[0].value.span), "1");
    }

    /// PyYAML's order and precedence: merged entries first, a key keeping its first
    /// place and its last value; the mapping's own keys win; of merged mappings, the
    /// first wins; a quoted `"<<"` is an ordinary key (beside a merge key, the two are
    /// one key to the duplicate check: E0002).
    #[test]
    fn merge_keys_follow_pyyaml() {
        let text = "a: &a {k: a, x: 1}\nb: &b {k: b, y: 2}\nm:\n  z: own\n  k: mine\n  <<: [*a, *b]\nn:\n  <<: *b\n  w: 3\nq:\n  \"<<\": literal\n";
        let root = ok(text);
        let pairs = |node: &Node| -> Vec<(String, String)> {
            node.as_map()
                .unwrap()
                .iter()
                .map(|e| (e.key.value.clone(), e.value.as_scalar().map(|s| s.text.clone()).unwrap_or_default()))
                .collect()
        };
        let m = pairs(path(&root, &["m"]));
        let expected = [("k", "mine"), ("y", "2"), ("x", "1"), ("z", "own")];
        assert_eq!(m, expected.map(|(k, v)| (k.to_string(), v.to_string())));
        let n = pairs(path(&root, &["n"]));
        let expected = [("k", "b"), ("y", "2"), ("w", "3")];
        assert_eq!(n, expected.map(|(k, v)| (k.to_string(), v.to_string())));
        assert_eq!(pairs(path(&root, &["q"])), [("<<".to_string(), "literal".to_string())]);
    }

    /// PyYAML's integer resolution, against its regular expression and constructor.
    #[test]
    fn yaml11_integers_are_pyyamls() {
        let int = |text: &str| yaml11_int(text);
        for (text, value) in [
            ("0", 0),
            ("10", 10),
            ("-10", -10),
            ("+7", 7),
            ("010", 8),
            ("00", 0),
            ("0_17", 15),
            ("1_000", 1000),
            ("0b101", 5),
            ("0x1f", 31),
            ("12:30", 750),
            ("1:0:0", 3600),
            ("-1:30", -90),
        ] {
            assert_eq!(int(text), Some(Some(value)), "{text}");
        }
        for text in ["09", "019", "0o17", "1e3", "2GiB", "0x"] {
            assert_eq!(int(text), Some(None), "{text} is text in YAML 1.1");
        }
        // Neither integers nor integer-like: text in both readings, left to YAML 1.2.
        for text in ["", "-", "web", "1.5", "10.0.0.1", "1:2:x y", ".5", "0:30", "10:99"] {
            assert_eq!(int(text), None, "{text}");
        }
    }

    #[test]
    fn yaml11_differences_are_warned_on_values_only() {
        let (_, diagnostics) = read("a: 010\nb: 10\nc: '010'\nd: 0x1f\n010: x\ne: [12:30, 1_0]\nf: 0o7\n");
        let warned: Vec<&str> =
            diagnostics.iter().filter(|d| d.code.id == "W0012").map(|d| d.message.as_str()).collect();
        assert_eq!(
            warned,
            [
                "`010` reads differently in anklume (YAML 1.1)",
                "`12:30` reads differently in anklume (YAML 1.1)",
                "`1_0` reads differently in anklume (YAML 1.1)",
                "`0o7` reads differently in anklume (YAML 1.1)",
            ]
        );
    }

    /// A raw control character is reported where it is, plain or quoted, and the help
    /// does not tell to quote what may be quoted already.
    #[test]
    fn a_control_character_is_pointed_at() {
        for text in ["name: abcd\u{7}ef\n", "name: \"abcd\u{7}ef\"\n"] {
            let (_, diagnostics) = read(text);
            let diagnostic = diagnostics.first().unwrap_or_else(|| panic!("{text:?}: no diagnostic"));
            assert_eq!(diagnostic.code.id, "E0001", "{text:?}");
            assert!(diagnostic.message.contains("control character"), "{text:?}: {}", diagnostic.message);
            assert_eq!(at(text, diagnostic.labels[0].span), "\u{7}", "{text:?}");
            assert!(diagnostic.help.as_deref().is_some_and(|help| help.contains("escape")), "{text:?}");
        }
    }

    #[test]
    fn a_merge_key_takes_mappings_only() {
        for text in ["m:\n  <<: 3\n  a: 1\n", "m:\n  <<: [1, 2]\n", "m:\n  <<:\n"] {
            let (_, diagnostics) = read(text);
            assert_eq!(diagnostics.len(), 1, "{text}: {diagnostics:?}");
            assert_eq!(diagnostics[0].code.id, "E0003", "{text}");
            assert!(diagnostics[0].message.contains("merge key"), "{text}");
        }
    }

    #[test]
    fn document_markers_around_one_document() {
        let text = "%YAML 1.2\n---\na: 1\n...\n# trailing comment\n";
        let root = ok(text);
        assert_eq!(at(text, path(&root, &["a"]).span), "1");
    }

    #[test]
    fn scalar_root_is_returned() {
        let root = ok("just text\n");
        assert_eq!(root.kind_name(), "string");
        let root = ok("---\n");
        assert_eq!(root.kind, NodeKind::Null);
    }

    // ----- node helpers -------------------------------------------------------------------

    #[test]
    fn node_helpers() {
        let root = ok("m: {a: 1}\ns: [x]\nt: yes\nu: 1.5\nv: true\nw: -3\n");
        assert!(root.as_map().is_some() && root.as_seq().is_none() && root.as_scalar().is_none());
        let kinds: Vec<_> = root.as_map().unwrap().iter().map(|entry| entry.value.kind_name()).collect();
        assert_eq!(kinds, ["mapping", "list", "string", "number", "boolean", "integer"]);
        assert!(path(&root, &["s"]).as_seq().is_some());
        assert!(path(&root, &["s"]).get("x").is_none());
        assert!(root.get("missing").is_none());
        assert!(!root.is_null());
    }

    // ----- resolve ------------------------------------------------------------------------

    fn plain(text: &str) -> ScalarValue<'_> {
        resolve_plain(text)
    }

    #[test]
    fn resolve_core_schema() {
        use ScalarValue::*;
        for null in ["", "~", "null", "Null", "NULL"] {
            assert_eq!(plain(null), Null, "{null:?}");
        }
        for text in ["nULL", "nil", "None"] {
            assert_eq!(plain(text), Str(text));
        }
        for (text, value) in
            [("true", true), ("True", true), ("TRUE", true), ("false", false), ("False", false), ("FALSE", false)]
        {
            assert_eq!(plain(text), Bool(value), "{text:?}");
        }
        for text in ["yes", "no", "on", "off", "tRUE", "y"] {
            assert_eq!(plain(text), Str(text), "YAML 1.1 booleans are strings in 1.2: {text:?}");
        }
        let ints = [
            ("0", 0),
            ("42", 42),
            ("-17", -17),
            ("+8", 8),
            ("007", 7),
            ("0o17", 15),
            ("0x1F", 31),
            ("0xff", 255),
            ("9223372036854775807", i64::MAX),
            ("-9223372036854775808", i64::MIN),
        ];
        for (text, value) in ints {
            assert_eq!(plain(text), Int(value), "{text:?}");
        }
        for text in ["9223372036854775808", "-9223372036854775809", "0x10000000000000000", "99999999999999999999"] {
            assert_eq!(plain(text), Str(text), "overflow stays a string: {text:?}");
        }
        for text in ["0o", "0o8", "0x", "0xg", "-0x1", "+0o7", "1_000", "0b101", "1 2", "--1", "+", "-"] {
            assert_eq!(plain(text), Str(text), "{text:?}");
        }
        let floats = [
            ("1.5", 1.5),
            ("-0.25", -0.25),
            ("+2.", 2.0),
            (".5", 0.5),
            ("-.5", -0.5),
            ("1e3", 1000.0),
            ("1E-2", 0.01),
            ("2.5e+2", 250.0),
            ("1.e2", 100.0),
        ];
        for (text, value) in floats {
            assert_eq!(plain(text), Float(value), "{text:?}");
        }
        for text in [".inf", ".Inf", ".INF", "+.inf", "+.INF"] {
            assert_eq!(plain(text), Float(f64::INFINITY), "{text:?}");
        }
        for text in ["-.inf", "-.Inf", "-.INF"] {
            assert_eq!(plain(text), Float(f64::NEG_INFINITY), "{text:?}");
        }
        for text in [".nan", ".NaN", ".NAN"] {
            assert!(matches!(plain(text), Float(value) if value.is_nan()), "{text:?}");
        }
        for text in
            [".", "1e", "e3", ".e3", "1.5.2", "inf", "nan", ".Nan", "-.nan", "1,5", "1.5e3.2", "10.0.0.1", "1e+"]
        {
            assert_eq!(plain(text), Str(text), "{text:?}");
        }
        let quoted = Scalar { text: "true".into(), quoted: true };
        assert_eq!(quoted.resolve(), Str("true"));
        let quoted = Scalar { text: String::new(), quoted: true };
        assert_eq!(quoted.resolve(), Str(""));
    }

    // ----- duplicate and invalid keys -----------------------------------------------------

    #[test]
    fn duplicate_key_keeps_the_first_entry() {
        let text = "machines:\n  wéb: {type: lxc}\n  db: {}\n  wéb: {type: vm}\nnext: 1\n";
        let (root, diagnostic) = one(text);
        assert_eq!(diagnostic.code, codes::DUPLICATE_KEY);
        assert_eq!(diagnostic.message, "duplicate key `wéb`");
        let second = text.rfind("wéb").unwrap();
        let first = text.find("wéb").unwrap();
        assert_eq!(diagnostic.labels.len(), 2);
        assert!(diagnostic.labels[0].primary);
        assert_eq!(diagnostic.labels[0].span, Span::new(FILE, second, second + "wéb".len()));
        assert_eq!(diagnostic.labels[0].message, "`wéb` is defined again here");
        assert!(!diagnostic.labels[1].primary);
        assert_eq!(diagnostic.labels[1].span, Span::new(FILE, first, first + "wéb".len()));
        assert_eq!(diagnostic.labels[1].message, "first defined here");
        assert!(diagnostic.help.as_deref().unwrap().ends_with('.'));

        let root = root.unwrap();
        let machines = path(&root, &["machines"]).as_map().unwrap();
        assert_eq!(machines.len(), 2);
        assert_eq!(at(text, path(&root, &["machines", "wéb", "type"]).span), "lxc");
        assert!(root.get("next").is_some());
    }

    #[test]
    fn duplicate_keys_in_flow_mappings_and_across_quoting() {
        let text = "{a: 1, 'a': 2, \"b\": 3, b: 4, a: 5}";
        let (root, diagnostics) = read(text);
        let root = root.unwrap();
        assert_eq!(diagnostics.len(), 3);
        assert!(diagnostics.iter().all(|d| d.code == codes::DUPLICATE_KEY));
        assert_eq!(at(text, diagnostics[0].labels[0].span), "'a'");
        assert_eq!(at(text, diagnostics[0].labels[1].span), "a");
        assert_eq!(at(text, diagnostics[1].labels[1].span), "\"b\"");
        assert_eq!(root.as_map().unwrap().len(), 2);
        assert_eq!(text_of(path(&root, &["a"])), "1");
    }

    /// Large mappings find duplicates through an index instead of a scan: the same
    /// answers on both sides of the switch, for keys written before and after it.
    #[test]
    fn duplicate_keys_in_large_mappings() {
        for size in [KeyIndex::SCANNED - 1, KeyIndex::SCANNED, KeyIndex::SCANNED + 1, 3 * KeyIndex::SCANNED] {
            let mut text: String = (0..size).map(|n| format!("k{n}: {n}\n")).collect();
            text.push_str("k0: again\n");
            text.push_str(&format!("k{}: again\n", size - 1));
            text.push_str("last: 1\n");
            let (root, diagnostics) = read(&text);
            assert_eq!(diagnostics.len(), 2, "{size} keys");
            assert!(diagnostics.iter().all(|d| d.code == codes::DUPLICATE_KEY));
            assert_eq!(at(&text, diagnostics[0].labels[1].span), "k0");
            assert_eq!(diagnostics[0].labels[1].span.start, 0);
            let last = format!("k{}", size - 1);
            assert_eq!(at(&text, diagnostics[1].labels[1].span), last);
            assert_eq!(diagnostics[1].labels[1].span.start, text.find(&format!("{last}:")).unwrap());
            let root = root.unwrap();
            assert_eq!(root.as_map().unwrap().len(), size + 1, "{size} keys");
            assert_eq!(text_of(path(&root, &["k0"])), "0");
        }
    }

    #[test]
    fn same_key_in_different_mappings_is_fine() {
        ok("a: {name: x}\nb: {name: y}\nc:\n  - name: 1\n  - name: 2\n");
    }

    #[test]
    fn non_scalar_and_null_keys_are_rejected() {
        let cases = [
            ("? [a, b]\n: v\nok: 1\n", "[a, b]", "this key is a list"),
            ("? {a: 1}\n: v\nok: 1\n", "{a: 1}", "this key is a mapping"),
            ("~: v\nok: 1\n", "~", "this key is null"),
            ("{null: v, ok: 1}", "null", "this key is null"),
            (": v\nok: 1\n", ":", "this entry has no key"),
        ];
        for (text, key, label) in cases {
            let (root, diagnostic) = one(text);
            assert_eq!(diagnostic.code, codes::WRONG_TYPE, "{text:?}");
            assert_eq!(diagnostic.labels[0].message, label, "{text:?}");
            assert_eq!(at(text, diagnostic.labels[0].span), key, "{text:?}");
            let root = root.unwrap();
            let entries = root.as_map().unwrap();
            assert_eq!(entries.len(), 1, "{text:?}");
            assert_eq!(entries[0].key.value, "ok");
        }
        // A quoted "null" is an ordinary key.
        assert!(ok("\"null\": 1\n").get("null").is_some());
    }

    #[test]
    fn keys_that_look_like_other_types_are_strings() {
        let root = ok("80: http\ntrue: 1\n1.5: x\n");
        let keys: Vec<_> = root.as_map().unwrap().iter().map(|entry| entry.key.value.as_str()).collect();
        assert_eq!(keys, ["80", "true", "1.5"]);
    }

    // ----- syntax errors ------------------------------------------------------------------

    fn syntax_error(text: &str) -> Diagnostic {
        let (root, diagnostic) = one(text);
        assert!(root.is_none(), "{text:?}");
        assert_eq!(diagnostic.code, codes::YAML_SYNTAX, "{text:?}: {diagnostic:#?}");
        assert!(diagnostic.message.starts_with("invalid YAML: "), "{text:?}: {}", diagnostic.message);
        let span = diagnostic.labels[0].span;
        assert!(span.end - span.start <= 4, "{text:?}: zero-or-one-character span expected, got {span:?}");
        assert!(text.get(span.range()).is_some());
        assert!(diagnostic.help.is_some());
        diagnostic
    }

    #[test]
    fn tab_indentation_points_at_the_tab() {
        let cases = [
            "a:\n\tb: 1\n",
            "a: 1\n\tb: 2\n",
            "a:\n  b: 1\n\tc: 2\n",
            "a:\n  b:\n  \tc: 1\n",
            "été:\n  - x\n\t- y\n",
            "a:\n    b: |\n\t  text\n",
            "a:\n\t- x\n",
            "a: x\n  y\n  z\n  w\n\tb: 1\n",
        ];
        for text in cases {
            let diagnostic = syntax_error(text);
            let span = diagnostic.labels[0].span;
            assert_eq!(at(text, span), "\t", "{text:?}");
            assert_eq!(diagnostic.message, "invalid YAML: a tab is used for indentation");
            assert!(diagnostic.help.as_deref().unwrap().contains("YAML indentation must use spaces, not tabs"));
        }
        // Tabs as separation, not indentation, are valid YAML.
        ok("a:\tb\nc: [1,\n\t2]\n");
    }

    #[test]
    fn unclosed_quote() {
        let text = "nom: été\ndescription: \"pas fermé\nautre: 1\n";
        let diagnostic = syntax_error(text);
        assert_eq!(at(text, diagnostic.labels[0].span), "\"");
        assert_eq!(diagnostic.labels[0].span.start, text.find('"').unwrap());
        assert_eq!(diagnostic.message, "invalid YAML: unclosed quote");
        assert_eq!(diagnostic.labels[0].message, "this quote is never closed");
    }

    #[test]
    fn unclosed_and_mismatched_brackets() {
        let text = "é: {x: [1, 2]\n";
        let diagnostic = syntax_error(text);
        assert_eq!(at(text, diagnostic.labels[0].span), "{");
        assert_eq!(diagnostic.message, "invalid YAML: unclosed `{`");
        let text = "a: [1}\n";
        let diagnostic = syntax_error(text);
        assert_eq!(at(text, diagnostic.labels[0].span), "[");
        assert_eq!(diagnostic.message, "invalid YAML: `[` closed by `}`");
    }

    #[test]
    fn other_syntax_errors() {
        let text = "a: b: c\n";
        let diagnostic = syntax_error(text);
        assert_eq!(diagnostic.labels[0].span.start, 4);
        assert_eq!(diagnostic.message, "invalid YAML: unexpected `:`");

        let text = "a:\n  b: 1\n c: 2\n";
        let diagnostic = syntax_error(text);
        assert!(diagnostic.message.contains("indentation"), "{}", diagnostic.message);

        let text = "- a\nb: 1\n";
        let diagnostic = syntax_error(text);
        assert_eq!(diagnostic.labels[0].span, Span::new(FILE, 4, 5));

        let text = "a: @x\n";
        let diagnostic = syntax_error(text);
        assert_eq!(diagnostic.message, "invalid YAML: unexpected character `@`");
        assert_eq!(at(text, diagnostic.labels[0].span), "@");

        let text = "a: \"é\\n\\qy\"\n";
        let diagnostic = syntax_error(text);
        assert_eq!(at(text, diagnostic.labels[0].span), "\\q");
        let text = "a: \"\\x4\"\n";
        let diagnostic = syntax_error(text);
        assert_eq!(at(text, diagnostic.labels[0].span), "\\x4");

        let text = "a: [1, 2\nb: 3\n";
        let diagnostic = syntax_error(text);
        assert!(!diagnostic.message.starts_with("invalid YAML: while"), "{}", diagnostic.message);
    }

    #[test]
    fn error_at_end_of_file_is_an_empty_span() {
        let text = "a: [1, 2";
        let (_, diagnostics) = read(text);
        assert_eq!(diagnostics.len(), 1);
        let span = diagnostics[0].labels[0].span;
        assert!(span.end <= text.len());
    }

    #[test]
    fn the_innermost_open_bracket_is_labelled() {
        // (text, where the open bracket is, how many labels): at the end of the file the
        // bracket is the primary label; elsewhere a secondary one, the primary being
        // where the parser stopped.
        for (text, bracket, labels) in [
            ("a: [1, 2", 3, 1),
            ("a: {b: [1], c: {d: 1\ne: 2\n", 15, 2),
            ("a: [1, {b: 2}\nc: 3\n", 3, 2),
            ("list: [x, [y, z]\n", 6, 1),
        ] {
            let (_, diagnostics) = read(text);
            assert_eq!(diagnostics.len(), 1, "{text:?}");
            let starts: Vec<usize> = diagnostics[0].labels.iter().map(|label| label.span.start).collect();
            assert!(starts.contains(&bracket), "{text:?}: {:#?}", diagnostics[0]);
            assert_eq!(starts.len(), labels, "{text:?}");
        }
        // A bracket closed before the error is not named.
        let (_, diagnostics) = read("a: [1, 2]\nb: \"x");
        assert!(diagnostics[0].labels.iter().all(|label| label.primary));
    }

    #[test]
    fn readable_messages() {
        assert_eq!(
            readable(&ErrorKind::ExpectedBlockMappingKey),
            "did not find expected key while parsing a block mapping"
        );
        assert_eq!(
            readable(&ErrorKind::UnexpectedEofFlowSequence),
            "unexpected end of file while parsing a flow sequence"
        );
        assert_eq!(readable(&ErrorKind::UnexpectedEof), "unexpected end of file");
    }

    // ----- aliases ------------------------------------------------------------------------

    #[test]
    fn aliases_are_expanded_with_the_anchored_spans() {
        let text = "base: &b\n  image: débian\n  cpu: 2\nweb: *b\nlist: [&s été, *s]\n";
        let root = ok(text);
        let web = path(&root, &["web"]);
        assert_eq!(web, path(&root, &["base"]));
        assert_eq!(at(text, path(&root, &["web", "image"]).span), "débian");
        let list = path(&root, &["list"]).as_seq().unwrap();
        assert_eq!(list[0], list[1]);
        assert_eq!(at(text, list[1].span), "été");
        // The list's span still ends at its closing bracket, not at the anchored text.
        assert_eq!(at(text, path(&root, &["list"]).span), "[&s été, *s]");
    }

    #[test]
    fn alias_used_as_a_key_is_spanned_at_the_alias() {
        let text = "a: &k name\nm:\n  *k : 1\n  *k : 2\n";
        let (root, diagnostic) = one(text);
        assert_eq!(diagnostic.code, codes::DUPLICATE_KEY);
        let second = text.rfind("*k").unwrap();
        assert_eq!(diagnostic.labels[0].span, Span::new(FILE, second, second + 2));
        let m = path(&root.unwrap(), &["m"]).clone();
        let entry = &m.as_map().unwrap()[0];
        assert_eq!(entry.key.value, "name");
        assert_eq!(at(text, entry.key.span), "*k");
    }

    #[test]
    fn unknown_alias() {
        let text = "a: 1\nb: *nope\nc: *other\n";
        let (root, diagnostics) = read(text);
        assert!(root.is_none());
        assert_eq!(diagnostics.len(), 2, "every unknown alias is reported: {diagnostics:#?}");
        assert_eq!(diagnostics[0].code, codes::YAML_SYNTAX);
        assert_eq!(diagnostics[0].message, "invalid YAML: unknown alias `*nope`");
        assert_eq!(at(text, diagnostics[0].labels[0].span), "*nope");
        assert_eq!(at(text, diagnostics[1].labels[0].span), "*other");
    }

    #[test]
    fn unknown_alias_as_a_key_is_reported_once() {
        let text = "m:\n  *nope : 1\n  ok: 2\n";
        let (root, diagnostic) = one(text);
        assert!(root.is_none());
        assert_eq!(diagnostic.message, "invalid YAML: unknown alias `*nope`");
    }

    #[test]
    fn recursive_alias() {
        let text = "a: &x [1, *x]\n";
        let (root, diagnostic) = one(text);
        assert!(root.is_none());
        assert_eq!(diagnostic.code, codes::YAML_SYNTAX);
        assert_eq!(at(text, diagnostic.labels[0].span), "*x");
    }

    fn billion_laughs(levels: usize, width: usize) -> String {
        let mut text = String::from("l0: &l0 [lol]\n");
        for level in 1..=levels {
            let aliases = vec![format!("*l{}", level - 1); width].join(", ");
            text.push_str(&format!("l{level}: &l{level} [{aliases}]\n"));
        }
        text
    }

    #[test]
    fn billion_laughs_is_rejected_quickly() {
        let text = billion_laughs(10, 10);
        let started = std::time::Instant::now();
        let (root, diagnostics) = read(&text);
        let elapsed = started.elapsed();
        assert!(root.is_none());
        assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
        assert_eq!(diagnostics[0].code, codes::RESOURCE_LIMIT);
        assert_eq!(diagnostics[0].message, "alias expansion exceeds 2000000 nodes");
        assert!(at(&text, diagnostics[0].labels[0].span).starts_with("*l"));
        assert!(elapsed < std::time::Duration::from_secs(5), "took {elapsed:?}");
    }

    #[test]
    fn billion_laughs_with_small_budget_stops_at_the_crossing_alias() {
        let text = billion_laughs(9, 9);
        let limits = Limits { max_nodes: 1000, ..Limits::default() };
        let started = std::time::Instant::now();
        let (root, diagnostics) = parse_with(&text, &limits);
        assert!(started.elapsed() < std::time::Duration::from_millis(500));
        assert!(root.is_none());
        assert_eq!(diagnostics.len(), 1);
        assert_eq!(diagnostics[0].message, "alias expansion exceeds 1000 nodes");
        assert_eq!(diagnostics[0].labels[0].message, "expanding this alias crosses the limit");
        // l0 = 2 nodes kept twice, l1 = 10 (+10), l2 = 82 (+82): the crossing is in l3.
        let line = text[..diagnostics[0].labels[0].span.start].matches('\n').count();
        assert_eq!(line, 3);
    }

    #[test]
    fn long_text_copied_by_aliases_is_bounded() {
        let long = "x".repeat(1000);
        let mut text = format!("a: &a \"{long}\"\nb: [");
        text.push_str(&vec!["*a"; 100].join(", "));
        text.push_str("]\n");
        let limits = Limits { max_bytes: 50_000, ..Limits::default() };
        let (root, diagnostics) = parse_with(&text, &limits);
        assert!(root.is_none());
        assert_eq!(diagnostics.len(), 1);
        assert_eq!(diagnostics[0].code, codes::RESOURCE_LIMIT);
        assert!(diagnostics[0].message.starts_with("alias expansion exceeds"), "{}", diagnostics[0].message);
        assert_eq!(at(&text, diagnostics[0].labels[0].span), "*a");
    }

    #[test]
    fn alias_chains_cannot_build_deep_trees() {
        let mut text = String::from("a0: &a0 [x]\n");
        for level in 1..200 {
            text.push_str(&format!("a{level}: &a{level} [*a{}]\n", level - 1));
        }
        let (root, diagnostics) = read(&text);
        assert!(root.is_none());
        assert_eq!(diagnostics.len(), 1);
        assert_eq!(diagnostics[0].code, codes::RESOURCE_LIMIT);
        assert_eq!(diagnostics[0].message, "alias expansion nests deeper than 64 levels");
        assert_eq!(at(&text, diagnostics[0].labels[0].span), "*a62");
    }

    // ----- documents ----------------------------------------------------------------------

    #[test]
    fn second_document_is_rejected() {
        let text = "a: 1\n---\nb: 2\n";
        let (root, diagnostic) = one(text);
        assert_eq!(diagnostic.code, codes::DOCUMENT_SHAPE);
        assert_eq!(at(text, diagnostic.labels[0].span), "---");
        assert_eq!(diagnostic.labels[0].message, "a second YAML document starts here");
        assert_eq!(
            diagnostic.help.as_deref(),
            Some("This file must hold one document: remove the `---`, or split the file.")
        );
        assert!(root.unwrap().get("a").is_some());

        let text = "a: 1\n...\nb: 2\n";
        let (_, diagnostic) = one(text);
        assert_eq!(diagnostic.code, codes::DOCUMENT_SHAPE);
        assert_eq!(diagnostic.labels[0].span.start, text.find('b').unwrap());

        let (_, diagnostic) = one("---\na: 1\n---\n");
        assert_eq!(diagnostic.code, codes::DOCUMENT_SHAPE);
    }

    #[test]
    fn empty_files_hold_no_document() {
        for text in ["", "\n\n", "   \n", "# only a comment\n# and another\n", "...\n"] {
            let (root, diagnostic) = one(text);
            assert!(root.is_none());
            assert_eq!(diagnostic.code, codes::DOCUMENT_SHAPE, "{text:?}");
            assert_eq!(diagnostic.message, "the file holds no YAML document");
            assert_eq!(diagnostic.labels[0].span, Span::new(FILE, 0, 0));
        }
    }

    // ----- limits -------------------------------------------------------------------------

    #[test]
    fn default_limits() {
        assert_eq!(Limits::default(), Limits { max_bytes: 64 * 1024 * 1024, max_depth: 64, max_nodes: 2_000_000 });
    }

    #[test]
    fn oversized_text_is_not_parsed() {
        let text = "a: [".repeat(100);
        let limits = Limits { max_bytes: 100, ..Limits::default() };
        let (root, diagnostic) = {
            let (root, mut diagnostics) = parse_with(&text, &limits);
            assert_eq!(diagnostics.len(), 1);
            (root, diagnostics.remove(0))
        };
        assert!(root.is_none());
        assert_eq!(diagnostic.code, codes::RESOURCE_LIMIT);
        assert_eq!(diagnostic.message, "the file is larger than 100 bytes");
        assert_eq!(diagnostic.labels[0].span, Span::new(FILE, 0, 0));
        assert_eq!(byte_size(64 * 1024 * 1024), "64 MiB");
    }

    #[test]
    fn node_limit_without_aliases() {
        let text = "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]";
        let limits = Limits { max_nodes: 5, ..Limits::default() };
        let (root, diagnostics) = parse_with(text, &limits);
        assert!(root.is_none());
        assert_eq!(diagnostics.len(), 1);
        assert_eq!(diagnostics[0].message, "the file holds more than 5 nodes");
        assert_eq!(at(text, diagnostics[0].labels[0].span), "5");
        // Exactly at the limit is fine.
        let limits = Limits { max_nodes: 11, ..Limits::default() };
        assert!(parse_with(text, &limits).0.is_some());
    }

    /// Run `f` on a thread with a small stack: proves the code does not recurse per level.
    fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::Builder::new().stack_size(256 * 1024).spawn(f).unwrap().join().unwrap()
    }

    #[test]
    fn depth_bomb_in_flow_style() {
        on_small_stack(|| {
            let text = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
            let started = std::time::Instant::now();
            let (root, diagnostics) = read(&text);
            assert!(started.elapsed() < std::time::Duration::from_secs(2));
            assert!(root.is_none());
            assert_eq!(diagnostics.len(), 1);
            assert_eq!(diagnostics[0].code, codes::RESOURCE_LIMIT);
            assert_eq!(diagnostics[0].message, "nesting deeper than 64 levels");
            assert_eq!(diagnostics[0].labels[0].span, Span::new(FILE, 64, 65));
        });
    }

    #[test]
    fn depth_bomb_in_block_style() {
        on_small_stack(|| {
            let mut text = String::new();
            for level in 0..2_000 {
                text.push_str(&" ".repeat(level));
                text.push_str("k:\n");
            }
            let (root, diagnostics) = read(&text);
            assert!(root.is_none());
            assert_eq!(diagnostics.len(), 1);
            assert_eq!(diagnostics[0].code, codes::RESOURCE_LIMIT);
            // The 65th mapping starts at the key on line 65.
            let line = text[..diagnostics[0].labels[0].span.start].matches('\n').count();
            assert_eq!(line, 64);

            let text = format!("{}x\n", "- ".repeat(5_000));
            let (root, diagnostics) = read(&text);
            assert!(root.is_none());
            assert_eq!(diagnostics[0].code, codes::RESOURCE_LIMIT);
        });
    }

    #[test]
    fn depth_at_the_limit_is_accepted() {
        let limits = Limits { max_depth: 3, ..Limits::default() };
        assert!(parse_with("a: {b: [c]}", &limits).0.is_some());
        let (root, diagnostics) = parse_with("a: {b: [{c: d}]}", &limits);
        assert!(root.is_none());
        assert_eq!(diagnostics[0].message, "nesting deeper than 3 levels");
        assert_eq!(diagnostics[0].labels[0].span, Span::new(FILE, 8, 9));
        // Mixed block and flow nesting counts both.
        let (root, _) = parse_with("a:\n  b:\n    - [x]\n", &limits);
        assert!(root.is_none());
    }

    // ----- robustness ---------------------------------------------------------------------

    const FRAGMENTS: &[&str] = &[
        "a",
        "é",
        "—",
        "key",
        ":",
        ": ",
        " ",
        "  ",
        "\t",
        "\n",
        "\r\n",
        "-",
        "- ",
        "? ",
        "[",
        "]",
        "{",
        "}",
        ",",
        "\"",
        "'",
        "\\",
        "#",
        "# c\n",
        "&a ",
        "*a",
        "&b ",
        "*b",
        "*",
        "&",
        "!!str ",
        "!",
        "!<x>",
        "|",
        ">",
        "|-",
        ">+2",
        "---",
        "...",
        "%YAML 1.2\n",
        "%TAG ! x\n",
        "@",
        "`",
        "%",
        "0x1F",
        "1.5",
        "~",
        "null",
        "<<",
        "\u{feff}",
        "\0",
        "\u{7f}",
        "\u{1F600}",
        "\\u00e9",
        "\\x",
        "\"\\",
        "\n  ",
        "\n    ",
        "\n- ",
        "\n  - ",
    ];

    fn check_spans(text: &str, node: &Node) {
        let mut stack = vec![node];
        while let Some(node) = stack.pop() {
            assert!(text.get(node.span.range()).is_some(), "bad node span {:?} in {text:?}", node.span);
            match &node.kind {
                NodeKind::Seq(items) => stack.extend(items),
                NodeKind::Map(entries) => {
                    for entry in entries {
                        assert!(text.get(entry.key.span.range()).is_some(), "bad key span in {text:?}");
                        stack.push(&entry.value);
                    }
                }
                NodeKind::Null | NodeKind::Scalar(_) => {}
            }
        }
    }

    #[test]
    fn arbitrary_input_never_panics() {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..600 {
            let length = (next() % 40) as usize;
            let text: String = (0..length).map(|_| FRAGMENTS[(next() % FRAGMENTS.len() as u64) as usize]).collect();
            let limits =
                if round % 3 == 0 { Limits { max_bytes: 200, max_depth: 3, max_nodes: 12 } } else { Limits::default() };
            let mut diagnostics = Diagnostics::new();
            let root = parse(FILE, &text, &limits, &mut diagnostics);
            if root.is_none() {
                assert!(diagnostics.has_errors(), "None without an error for {text:?}");
            }
            if let Some(root) = &root {
                check_spans(&text, root);
            }
            for diagnostic in diagnostics.iter() {
                assert!(!diagnostic.message.is_empty());
                for label in &diagnostic.labels {
                    assert_eq!(label.span.file, FILE);
                    assert!(text.get(label.span.range()).is_some(), "bad label span {:?} in {text:?}", label.span);
                }
            }
        }
    }

    #[test]
    fn binary_garbage_never_panics() {
        let mut state: u32 = 12345;
        for _ in 0..200 {
            let text: String = (0..64)
                .map(|_| {
                    state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    char::from_u32((state >> 8) % 0x3000).unwrap_or('\u{fffd}')
                })
                .collect();
            let mut diagnostics = Diagnostics::new();
            let root = parse(FILE, &text, &Limits::default(), &mut diagnostics);
            assert!(root.is_some() || diagnostics.has_errors());
            for diagnostic in diagnostics.iter() {
                assert!(text.get(diagnostic.primary_span().range()).is_some());
            }
        }
    }
}
