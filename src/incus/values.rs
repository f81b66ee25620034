//! Incus's value mini-languages: byte sizes, CPU limits, snapshot expiries, snapshot
//! schedules and image references.
//!
//! Each language is a pest grammar under `grammar/` (documented in
//! `grammar/GRAMMAR.md`, with its source of truth in Incus). The grammar is the syntax;
//! what depends on more than one token (bounds, names per cron field, reversed ranges,
//! a unit given twice) is checked here, on the parse tree. pest's types stay in this
//! file: callers get `Ok(())` or a [`ValueError`] with a byte range inside the value
//! and a short lowercase message.

use std::collections::BTreeMap;
use std::fmt;

use pest::Parser;
use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::Pair;

use crate::source::Span;

mod grammar {
    //! The generated parser. Rule names carry their language as a prefix (`size_`,
    //! `cpu_`, `expiry_`, `cron_`, `image_`) because the files share one `Rule` enum.

    #[derive(pest_derive::Parser)]
    #[grammar = "../grammar/size.pest"]
    #[grammar = "../grammar/cpu.pest"]
    #[grammar = "../grammar/expiry.pest"]
    #[grammar = "../grammar/cron.pest"]
    #[grammar = "../grammar/image.pest"]
    pub struct Values;
}

use grammar::{Rule, Values};

/// Why a value is not in its language: `offset..offset + len` is a byte range inside
/// the value (empty at the end of the value when something is missing there).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueError {
    pub offset: usize,
    pub len: usize,
    pub message: String,
}

impl ValueError {
    fn range(start: usize, end: usize, message: impl Into<String>) -> ValueError {
        ValueError { offset: start, len: end.saturating_sub(start), message: message.into() }
    }

    /// The character of `text` at `offset` (nothing at the end of `text`).
    fn at_char(text: &str, offset: usize, message: impl Into<String>) -> ValueError {
        let len = char_at(text, offset).map_or(0, char::len_utf8);
        ValueError { offset, len, message: message.into() }
    }

    fn whole(text: &str, message: impl Into<String>) -> ValueError {
        ValueError::range(0, text.len(), message)
    }

    fn of(pair: &Pair<'_, Rule>, message: impl Into<String>) -> ValueError {
        let span = pair.as_span();
        ValueError::range(span.start(), span.end(), message)
    }

    /// Where the error is in the file, given the span of the YAML scalar that holds
    /// `value`. A plain scalar's span is the value itself, a quoted one's the value
    /// between its quotes; when the scalar was written otherwise (escapes, folded
    /// lines, a block scalar) the offsets cannot be mapped and the whole scalar is
    /// returned.
    pub fn span_in(&self, span: Span, value: &str) -> Span {
        // Every YAML escape and line folding makes the value shorter than what was
        // written, except the escapes of these characters (`\N`, `\_`, `\L`, `\P`);
        // block scalars hold a line break.
        let plain = !value.contains(['\n', '\r', '\u{85}', '\u{a0}', '\u{2028}', '\u{2029}']);
        let written = span.end - span.start;
        let shift = match written.checked_sub(value.len()) {
            Some(0) if plain => 0,
            Some(2) if plain => 1,
            _ => return span,
        };
        span.sub(shift + self.offset, self.len)
    }
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ValueError {}

/// Where pest stopped, and the rules it expected there.
struct Failure {
    pos: usize,
    expected: Vec<Rule>,
}

impl Failure {
    fn expects(&self, rules: &[Rule]) -> bool {
        self.expected.iter().any(|rule| rules.contains(rule))
    }
}

fn parse(rule: Rule, text: &str) -> Result<Pair<'_, Rule>, Failure> {
    match Values::parse(rule, text) {
        Ok(mut pairs) => pairs.next().ok_or(Failure { pos: 0, expected: Vec::new() }),
        Err(error) => {
            let pos = match error.location {
                InputLocation::Pos(pos) => pos,
                InputLocation::Span((start, _)) => start,
            };
            let expected = match &error.variant {
                ErrorVariant::ParsingError { positives, .. } => positives.clone(),
                ErrorVariant::CustomError { .. } => Vec::new(),
            };
            Err(Failure { pos: pos.min(text.len()), expected })
        }
    }
}

fn char_at(text: &str, offset: usize) -> Option<char> {
    text.get(offset..).and_then(|rest| rest.chars().next())
}

/// An invisible formatting character (Unicode category Cf, the common ones): a
/// zero-width space, a bidirectional override (which can make text read differently
/// from what it is), a byte order mark.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{ad}' | '\u{600}'..='\u{605}' | '\u{61c}' | '\u{6dd}' | '\u{70f}' | '\u{180e}'
        | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}' | '\u{e0001}' | '\u{e0020}'..='\u{e007f}')
}

/// A character as a message names it: `x`, a space, U+0007.
fn describe(c: char) -> String {
    match c {
        ' ' => "a space".to_string(),
        '\t' => "a tab".to_string(),
        '\0' => "a NUL byte".to_string(),
        c if c.is_control() => format!("the control character U+{:04X}", u32::from(c)),
        c if c.is_whitespace() => format!("whitespace (U+{:04X})", u32::from(c)),
        c if is_invisible(c) => format!("the invisible character U+{:04X}", u32::from(c)),
        c => format!("`{c}`"),
    }
}

/// Text from the value as a message quotes it: control and invisible characters
/// escaped (`\u{7}`).
fn shown(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() || is_invisible(c) { c.escape_unicode().to_string() } else { c.to_string() })
        .collect()
}

/// What was found at `pos`: a character, or the end.
fn found(text: &str, pos: usize) -> String {
    char_at(text, pos).map_or_else(|| "the end".to_string(), describe)
}

/// The run of letters starting at `pos` (a unit or a name as it was written).
fn word_at(text: &str, pos: usize) -> &str {
    let rest = text.get(pos..).unwrap_or("");
    let len = rest.find(|c: char| !c.is_alphabetic()).unwrap_or(rest.len());
    &rest[..len]
}

/// `.5` or `,5` at `pos`: the end of the decimal part, if there is one.
fn decimals_at(text: &str, pos: usize) -> Option<usize> {
    let rest = text.get(pos..)?;
    let digits = rest.strip_prefix(['.', ','])?;
    let len = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
    (len > 0).then_some(pos + 1 + len)
}

/// A decimal integer of at most `i64::MAX` (Incus parses its numbers as Go `int64`).
fn integer(digits: &str) -> Option<u64> {
    digits.parse::<u64>().ok().filter(|value| i64::try_from(*value).is_ok())
}

fn too_large(pair: &Pair<'_, Rule>) -> ValueError {
    ValueError::of(pair, format!("`{}` is too large", pair.as_str()))
}

// ---------------------------------------------------------------------------------
// Sizes

/// The units of Incus byte sizes (`ParseByteSizeString`), case-sensitive, with their
/// multipliers. No unit, `B` and ` bytes` mean bytes.
pub const SIZE_UNITS: &[(&str, u64)] = &[
    ("B", 1),
    (" bytes", 1),
    ("kB", 1000),
    ("MB", 1000_u64.pow(2)),
    ("GB", 1000_u64.pow(3)),
    ("TB", 1000_u64.pow(4)),
    ("PB", 1000_u64.pow(5)),
    ("EB", 1000_u64.pow(6)),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("PiB", 1 << 50),
    ("EiB", 1 << 60),
];

/// An Incus byte size, such as a disk `size`: an integer and an optional unit
/// (`10GiB`, `500MB`, `1048576`). No decimals, no short units (`512M`, `2Gib`).
pub fn parse_size(text: &str) -> Result<(), ValueError> {
    size(text, false)
}

/// `limits.memory`: a byte size or a percentage of the host's memory (`2GiB`, `50%`),
/// not zero and not over 100%.
pub fn parse_size_or_percent(text: &str) -> Result<(), ValueError> {
    size(text, true)
}

fn size(text: &str, percent: bool) -> Result<(), ValueError> {
    let rule = if percent { Rule::size_or_percent } else { Rule::size_value };
    let top = parse(rule, text).map_err(|failure| size_syntax(text, &failure, percent))?;
    let mut number = None;
    let mut multiplier = 1;
    let mut is_percent = false;
    for pair in top.into_inner() {
        match pair.as_rule() {
            Rule::size_number => number = Some(pair),
            Rule::size_unit => {
                multiplier = SIZE_UNITS.iter().find(|(unit, _)| *unit == pair.as_str()).map_or(1, |(_, m)| *m);
            }
            Rule::size_percent => is_percent = true,
            _ => {}
        }
    }
    let Some(number) = number else { return Ok(()) };
    let value = integer(number.as_str()).ok_or_else(|| too_large(&number))?;
    if is_percent {
        return match value {
            0 => Err(ValueError::whole(text, "a percentage cannot be 0%")),
            101.. => Err(ValueError::whole(text, format!("`{text}` is more than 100%"))),
            _ => Ok(()),
        };
    }
    if i64::try_from(u128::from(value) * u128::from(multiplier)).is_err() {
        return Err(ValueError::whole(text, format!("`{text}` is too large")));
    }
    if percent && value == 0 {
        return Err(ValueError::whole(text, "a memory limit cannot be 0"));
    }
    Ok(())
}

fn is_size_unit(text: &str) -> bool {
    SIZE_UNITS.iter().any(|(unit, _)| *unit == text)
}

fn size_syntax(text: &str, failure: &Failure, percent: bool) -> ValueError {
    let pos = failure.pos;
    if failure.expects(&[Rule::size_number]) {
        return match char_at(text, pos) {
            None => ValueError::at_char(text, pos, "expected a number"),
            Some(c) => ValueError::at_char(text, pos, format!("expected a number, found {}", describe(c))),
        };
    }
    let rest = text.get(pos..).unwrap_or("");
    match char_at(text, pos) {
        None => ValueError::at_char(text, pos, "expected a unit"),
        Some('.' | ',') if decimals_at(text, pos).is_some() => {
            ValueError::range(pos, decimals_at(text, pos).unwrap_or(pos + 1), "decimals are not allowed")
        }
        Some('%') if !percent => ValueError::at_char(text, pos, "a percentage is not allowed here"),
        Some(' ') => {
            let after = &rest[1..];
            if is_size_unit(after) || (percent && after == "%") {
                ValueError::at_char(text, pos, "a space is not allowed before the unit")
            } else if !word_at(text, pos + 1).is_empty() {
                let word = word_at(text, pos + 1);
                ValueError::range(pos + 1, pos + 1 + word.len(), format!("unit `{word}` is not a size unit"))
            } else {
                ValueError::at_char(text, pos, "a space is not allowed in a size")
            }
        }
        Some(c) if c.is_alphabetic() => {
            let word = word_at(text, pos);
            ValueError::range(pos, pos + word.len(), format!("unit `{word}` is not a size unit"))
        }
        Some(c) => ValueError::at_char(text, pos, format!("{} is not allowed in a size", describe(c))),
    }
}

// ---------------------------------------------------------------------------------
// CPU limits

/// `limits.cpu`: a count of CPUs (`2`, at least 1) or a set of CPUs to pin (`0-3`,
/// `1,3`, `0-1,4`; `1-1` pins CPU 1).
pub fn parse_cpu_limit(text: &str) -> Result<(), ValueError> {
    let top = parse(Rule::cpu_limit, text).map_err(|failure| cpu_syntax(text, &failure))?;
    let items: Vec<Pair<'_, Rule>> = top.into_inner().filter(|pair| pair.as_rule() == Rule::cpu_item).collect();
    // The CPUs of the items so far, as disjoint inclusive ranges: first -> last.
    let mut ranges: BTreeMap<u64, u64> = BTreeMap::new();
    for item in &items {
        let mut bounds = Vec::new();
        for number in item.clone().into_inner() {
            bounds.push(integer(number.as_str()).ok_or_else(|| too_large(&number))?);
        }
        let (first, last) = match bounds[..] {
            [first, last] => (first, last),
            [one] => (one, one),
            _ => continue,
        };
        if first > last {
            return Err(ValueError::of(item, format!("range `{}` is reversed", item.as_str())));
        }
        // The lowest CPU of this item already listed: `first` itself, or the start of
        // a later range.
        let covering = ranges.range(..=first).next_back().filter(|(_, end)| **end >= first).map(|_| first);
        if let Some(cpu) = covering.or_else(|| ranges.range(first..=last).next().map(|(start, _)| *start)) {
            return Err(ValueError::of(item, format!("cpu {cpu} appears twice")));
        }
        ranges.insert(first, last);
    }
    // One plain number is a count.
    if let [item] = &items[..]
        && ranges.get(&0) == Some(&0)
        && item.as_str().bytes().all(|b| b.is_ascii_digit())
    {
        return Err(ValueError::whole(text, "a cpu count must be at least 1"));
    }
    Ok(())
}

fn cpu_syntax(text: &str, failure: &Failure) -> ValueError {
    let pos = failure.pos;
    if failure.expects(&[Rule::cpu_number, Rule::cpu_item]) {
        return match char_at(text, pos) {
            None => ValueError::at_char(text, pos, "expected a number"),
            Some(c) => ValueError::at_char(text, pos, format!("expected a number, found {}", describe(c))),
        };
    }
    match char_at(text, pos) {
        Some('-') => ValueError::at_char(text, pos, "a range has only two ends"),
        Some(c) => ValueError::at_char(text, pos, format!("{} is not allowed in a cpu limit", describe(c))),
        None => ValueError::at_char(text, pos, "expected a number"),
    }
}

// ---------------------------------------------------------------------------------
// Snapshot expiries

/// The expiry units anklumec accepts, with what they mean.
pub const EXPIRY_UNITS: &[(&str, &str)] =
    &[("M", "minutes"), ("H", "hours"), ("d", "days"), ("w", "weeks"), ("y", "years")];

/// `snapshots.expiry`: one or more `<integer><unit>` parts separated by single spaces,
/// each unit at most once (`30d`, `2H 30M`, `1y 6w`). Units: `M` minutes, `H` hours,
/// `d` days, `w` weeks, `y` years.
pub fn parse_duration(text: &str) -> Result<(), ValueError> {
    let top = parse(Rule::expiry, text).map_err(|failure| expiry_syntax(text, &failure))?;
    let mut seen: Vec<&str> = Vec::new();
    for part in top.into_inner().filter(|pair| pair.as_rule() == Rule::expiry_part) {
        for pair in part.clone().into_inner() {
            match pair.as_rule() {
                Rule::expiry_number if integer(pair.as_str()).is_none() => return Err(too_large(&pair)),
                Rule::expiry_unit if seen.contains(&pair.as_str()) => {
                    return Err(ValueError::of(&part, format!("unit `{}` appears twice", pair.as_str())));
                }
                Rule::expiry_unit => seen.push(pair.as_str()),
                _ => {}
            }
        }
    }
    Ok(())
}

/// Why `word`, written where an expiry unit belongs, is not one.
fn expiry_unit_message(word: &str) -> String {
    if word == "m" {
        return "unit `m` is ambiguous: months to Incus, minutes to anklume".to_string();
    }
    let hint = match word.to_lowercase().as_str() {
        "h" | "hr" | "hrs" | "hour" | "hours" => "hours are `H`",
        "min" | "mins" | "minute" | "minutes" => "minutes are `M`",
        "d" | "day" | "days" => "days are `d`",
        "w" | "wk" | "wks" | "week" | "weeks" => "weeks are `w`",
        "y" | "yr" | "yrs" | "year" | "years" => "years are `y`",
        "mo" | "mon" | "month" | "months" => "months are not accepted",
        "s" | "sec" | "secs" | "second" | "seconds" => "seconds are not accepted",
        _ => return format!("unit `{word}` is not an expiry unit"),
    };
    format!("unit `{word}` is not an expiry unit ({hint})")
}

fn expiry_syntax(text: &str, failure: &Failure) -> ValueError {
    let pos = failure.pos;
    let next = char_at(text, pos);
    if failure.expects(&[Rule::expiry_number, Rule::expiry_part]) {
        return match next {
            None if pos == 0 => ValueError::at_char(text, pos, "expected a duration, such as `30d`"),
            None if text[..pos].ends_with(' ') => ValueError::range(pos - 1, pos, "unexpected space at the end"),
            Some(' ') => ValueError::at_char(text, pos, "parts are separated by one space"),
            _ => ValueError::at_char(text, pos, format!("expected a number, found {}", found(text, pos))),
        };
    }
    if failure.expects(&[Rule::expiry_unit]) {
        return match next {
            None => ValueError::at_char(text, pos, "expected a unit: M, H, d, w or y"),
            Some('.' | ',') if decimals_at(text, pos).is_some() => {
                ValueError::range(pos, decimals_at(text, pos).unwrap_or(pos + 1), "decimals are not allowed")
            }
            Some(' ') if !word_at(text, pos + 1).is_empty() => {
                let word = word_at(text, pos + 1);
                if EXPIRY_UNITS.iter().any(|(unit, _)| *unit == word) {
                    ValueError::at_char(text, pos, "a space is not allowed before the unit")
                } else {
                    ValueError::range(pos + 1, pos + 1 + word.len(), expiry_unit_message(word))
                }
            }
            Some(c) if c.is_alphabetic() => {
                let word = word_at(text, pos);
                ValueError::range(pos, pos + word.len(), expiry_unit_message(word))
            }
            Some(c) => ValueError::at_char(text, pos, format!("expected a unit, found {}", describe(c))),
        };
    }
    match next {
        Some(',') => ValueError::at_char(text, pos, "parts are separated by a space, not `,`"),
        Some(c) if c.is_ascii_digit() => ValueError::at_char(text, pos, "expected a space between parts"),
        Some(c) => ValueError::at_char(text, pos, format!("{} is not allowed in an expiry", describe(c))),
        None => ValueError::at_char(text, pos, "expected a duration, such as `30d`"),
    }
}

// ---------------------------------------------------------------------------------
// Snapshot schedules

/// The schedule aliases Incus accepts for `snapshots.schedule` (case-insensitive).
pub const SCHEDULE_ALIASES: &[&str] =
    &["@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually", "@startup", "@never"];

const MONTHS: &[&str] = &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// One of the five fields of a cron expression.
struct CronField {
    /// As a message names it after "for": `minutes`.
    plural: &'static str,
    /// As a message names the field: `minute`.
    name: &'static str,
    low: u64,
    high: u64,
    /// Names for the values, from `low` up.
    names: &'static [&'static str],
}

const CRON_FIELDS: [CronField; 5] = [
    CronField { plural: "minutes", name: "minute", low: 0, high: 59, names: &[] },
    CronField { plural: "hours", name: "hour", low: 0, high: 23, names: &[] },
    CronField { plural: "days of the month", name: "day-of-month", low: 1, high: 31, names: &[] },
    CronField { plural: "months", name: "month", low: 1, high: 12, names: MONTHS },
    CronField { plural: "days of the week", name: "day-of-week", low: 0, high: 6, names: DAYS },
];

fn cron_field(rule: Rule) -> Option<&'static CronField> {
    let index = match rule {
        Rule::cron_minute => 0,
        Rule::cron_hour => 1,
        Rule::cron_day_of_month => 2,
        Rule::cron_month => 3,
        Rule::cron_day_of_week => 4,
        _ => return None,
    };
    Some(&CRON_FIELDS[index])
}

/// `snapshots.schedule`: a 5-field cron expression (minute, hour, day of month, month,
/// day of week) such as `0 3 * * *`, or an alias such as `@daily`; several of them may
/// be joined with `, `.
pub fn parse_cron(text: &str) -> Result<(), ValueError> {
    let top = parse(Rule::cron_schedule, text).map_err(|failure| cron_syntax(text, &failure))?;
    for trigger in top.into_inner() {
        match trigger.as_rule() {
            Rule::cron_alias => check_alias(&trigger)?,
            Rule::cron_expression => {
                for field in trigger.into_inner() {
                    let Some(kind) = cron_field(field.as_rule()) else { continue };
                    for item in field.into_inner() {
                        check_cron_item(kind, item)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_alias(alias: &Pair<'_, Rule>) -> Result<(), ValueError> {
    let written = alias.as_str();
    if SCHEDULE_ALIASES.iter().any(|known| known.eq_ignore_ascii_case(written)) {
        return Ok(());
    }
    let start = alias.as_span().start();
    if let Some(comma) = written.find(',') {
        return Err(ValueError::range(start + comma, start + comma + 1, LIST_SEPARATOR));
    }
    Err(ValueError::of(alias, format!("`{}` is not a schedule alias", shown(written))))
}

fn check_cron_item(field: &CronField, item: Pair<'_, Rule>) -> Result<(), ValueError> {
    for part in item.into_inner() {
        match part.as_rule() {
            Rule::cron_range => {
                let mut bounds = Vec::new();
                for value in part.clone().into_inner() {
                    bounds.push(cron_value(field, &value)?);
                }
                if let [first, last] = bounds[..]
                    && first > last
                {
                    return Err(ValueError::of(&part, format!("range `{}` is reversed", part.as_str())));
                }
            }
            Rule::cron_step => match part.as_str().parse::<u64>() {
                Ok(0) => return Err(ValueError::of(&part, "a step must be at least 1")),
                Ok(_) => {}
                Err(_) => return Err(too_large(&part)),
            },
            _ => {}
        }
    }
    Ok(())
}

/// The number a cron value stands for in `field`.
fn cron_value(field: &CronField, value: &Pair<'_, Rule>) -> Result<u64, ValueError> {
    let written = value.as_str();
    if written.starts_with(|c: char| c.is_ascii_digit()) {
        // Too many digits to parse is out of range too.
        let number = written.parse::<u64>().unwrap_or(u64::MAX);
        if !(field.low..=field.high).contains(&number) {
            let message = format!("`{written}` is out of range for {} ({}-{})", field.plural, field.low, field.high);
            return Err(ValueError::of(value, message));
        }
        return Ok(number);
    }
    let Some(index) = field.names.iter().position(|name| name.eq_ignore_ascii_case(written)) else {
        let message = match field.names {
            [] => format!("names are not allowed in the {} field", field.name),
            [first, .., last] => format!("`{written}` is not a {} name ({first}-{last})", field.name),
            [_] => format!("`{written}` is not a {} name", field.name),
        };
        return Err(ValueError::of(value, message));
    };
    Ok(field.low + index as u64)
}

/// The field a position in a cron expression falls in, counting spaces since the
/// start of the expression (after the last `, `).
fn cron_field_at(text: &str, pos: usize) -> usize {
    let before = &text[..pos];
    let start = before.rfind(", ").map_or(0, |at| at + 2);
    before[start..].matches(' ').count()
}

fn cron_syntax(text: &str, failure: &Failure) -> ValueError {
    let pos = failure.pos;
    let next = char_at(text, pos);
    let field = cron_field_at(text, pos);
    let field_rules = [
        Rule::cron_minute,
        Rule::cron_hour,
        Rule::cron_day_of_month,
        Rule::cron_month,
        Rule::cron_day_of_week,
        Rule::cron_item,
        Rule::cron_range,
        Rule::cron_value,
        Rule::cron_any,
        Rule::cron_schedule,
    ];
    match next {
        None if pos == 0 => ValueError::at_char(text, pos, "expected a cron expression, such as `0 3 * * *`"),
        None if failure.expects(&[Rule::cron_space]) => {
            let missing = CRON_FIELDS.get(field + 1).map_or("field", |f| f.name);
            ValueError::at_char(text, pos, format!("missing the {missing} field (a cron expression has 5)"))
        }
        None if failure.expects(&[Rule::cron_step]) => ValueError::at_char(text, pos, "expected a step after `/`"),
        None if failure.expects(&[Rule::cron_alias]) => {
            ValueError::at_char(text, pos, "expected a schedule after `, `")
        }
        None if text[..pos].ends_with(' ') => ValueError::range(pos - 1, pos, "unexpected space at the end"),
        None if text[..pos].ends_with('-') => ValueError::at_char(text, pos, "expected a number or a name after `-`"),
        None => ValueError::at_char(text, pos, "expected a number, a name or `*`"),
        Some(' ') if text[..pos].ends_with(", ") => ValueError::at_char(text, pos, LIST_SEPARATOR),
        Some(' ') if pos == 0 => ValueError::at_char(text, pos, "unexpected space at the start"),
        Some(' ') if pos + 1 == text.len() => ValueError::at_char(text, pos, "unexpected space at the end"),
        Some(' ') if field >= 4 && !failure.expects(&field_rules) => extra_cron_field(text, pos),
        Some(_) if text[..pos].ends_with('-') && failure.expects(&[Rule::cron_value]) => {
            ValueError::at_char(text, pos, format!("expected a number or a name after `-`, found {}", found(text, pos)))
        }
        Some(c) if failure.expects(&[Rule::cron_step]) => {
            ValueError::at_char(text, pos, format!("expected a step after `/`, found {}", describe(c)))
        }
        Some(' ' | '\t') => ValueError::at_char(text, pos, "fields are separated by one space"),
        Some(',') if failure.expects(&[Rule::cron_list_sep]) && !text[pos..].starts_with(", ") => {
            ValueError::at_char(text, pos, LIST_SEPARATOR)
        }
        Some('@') if text[..pos].ends_with(',') => ValueError::range(pos - 1, pos, LIST_SEPARATOR),
        Some(c) if failure.expects(&field_rules) => {
            ValueError::at_char(text, pos, format!("expected a number, a name or `*`, found {}", describe(c)))
        }
        Some(c) => ValueError::at_char(text, pos, format!("{} is not allowed in a cron field", describe(c))),
    }
}

const LIST_SEPARATOR: &str = "schedules are separated by `, ` (a comma and a space)";

/// A sixth field at the space at `pos`; or, when the fifth field ends in `,` and five
/// fields follow it, a second schedule joined by `,` without the space.
fn extra_cron_field(text: &str, pos: usize) -> ValueError {
    let field_start = text[..pos].rfind(' ').map_or(0, |at| at + 1);
    if let Some(comma) = text[field_start..pos].rfind(',') {
        let comma = field_start + comma;
        let next = text[comma + 1..].split(", ").next().unwrap_or("");
        if next.split(' ').count() == 5 {
            return ValueError::range(comma, comma + 1, LIST_SEPARATOR);
        }
    }
    let extra = &text[pos + 1..];
    let len = extra.find([' ', ',']).unwrap_or(extra.len());
    ValueError::range(pos + 1, pos + 1 + len, "a cron expression has 5 fields")
}

// ---------------------------------------------------------------------------------
// Image references

/// An image reference: `[<remote>:]<alias-or-fingerprint>` (`images:debian/13`,
/// `local:tiny`, `tiny`, `8910fe0f96fa`).
pub fn parse_image_ref(text: &str) -> Result<(), ValueError> {
    parse(Rule::image_ref, text).map(|_| ()).map_err(|failure| image_syntax(text, &failure))
}

fn is_remote_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

fn image_syntax(text: &str, failure: &Failure) -> ValueError {
    let pos = failure.pos;
    let before = &text[..pos];
    match char_at(text, pos) {
        None if text.is_empty() => ValueError::at_char(text, pos, "an image reference cannot be empty"),
        None => ValueError::at_char(text, pos, format!("expected an image alias or fingerprint after `{before}`")),
        Some('-') if pos == 0 => ValueError::at_char(text, pos, "an image reference cannot start with `-`"),
        Some('-') => ValueError::at_char(text, pos, "an image name cannot start with `-`"),
        Some(':') if pos == 0 => ValueError::at_char(text, pos, "expected a remote name before `:`"),
        Some(':') if before.contains(':') => {
            ValueError::at_char(text, pos, "only one `:` is allowed, after the remote")
        }
        Some(':') => match before.char_indices().find(|(_, c)| !is_remote_char(*c)) {
            Some((at, c)) => ValueError::at_char(text, at, format!("{} is not allowed in a remote name", describe(c))),
            None => ValueError::at_char(text, pos, "only one `:` is allowed, after the remote"),
        },
        Some(c) => ValueError::at_char(text, pos, format!("{} is not allowed in an image reference", describe(c))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Check = fn(&str) -> Result<(), ValueError>;

    fn assert_valid(check: Check, values: &[&str]) {
        for value in values {
            assert_eq!(check(value), Ok(()), "{value:?} should be valid");
        }
    }

    /// `(value, text under the error, message)`.
    fn assert_invalid(check: Check, cases: &[(&str, &str, &str)]) {
        let mut wrong = Vec::new();
        for (value, under, message) in cases {
            match check(value) {
                Ok(()) => wrong.push(format!("{value:?} should be invalid")),
                Err(error) => {
                    let at = value.get(error.offset..error.offset + error.len);
                    if at != Some(*under) || error.message != *message {
                        wrong.push(format!("{value:?}: got {at:?} {:?}", error.message));
                    }
                }
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn sizes() {
        let valid = [
            "1",
            "0",
            "1048576",
            "01GiB",
            "1B",
            "1 bytes",
            "1kB",
            "500MB",
            "2GB",
            "1TB",
            "1PB",
            "1EB",
            "512KiB",
            "512MiB",
            "2GiB",
            "1TiB",
            "1PiB",
            "7EiB",
            "9223372036854775807",
            "9223372036854775807B",
        ];
        assert_valid(parse_size, &valid);
        assert_invalid(
            parse_size,
            &[
                ("", "", "expected a number"),
                ("GiB", "G", "expected a number, found `G`"),
                ("-1GiB", "-", "expected a number, found `-`"),
                ("+1GiB", "+", "expected a number, found `+`"),
                (" 1GiB", " ", "expected a number, found a space"),
                ("512M", "M", "unit `M` is not a size unit"),
                ("2Gib", "Gib", "unit `Gib` is not a size unit"),
                ("2gib", "gib", "unit `gib` is not a size unit"),
                ("1KB", "KB", "unit `KB` is not a size unit"),
                ("1kiB", "kiB", "unit `kiB` is not a size unit"),
                ("2GiBs", "GiBs", "unit `GiBs` is not a size unit"),
                ("1bytes", "bytes", "unit `bytes` is not a size unit"),
                ("1 byte", "byte", "unit `byte` is not a size unit"),
                ("1 GiB", " ", "a space is not allowed before the unit"),
                ("1GiB ", " ", "a space is not allowed in a size"),
                ("1.5GiB", ".5", "decimals are not allowed"),
                ("1,5GiB", ",5", "decimals are not allowed"),
                ("50%", "%", "a percentage is not allowed here"),
                ("2GiB!", "!", "`!` is not allowed in a size"),
                ("2Gié", "Gié", "unit `Gié` is not a size unit"),
                ("8EiB", "8EiB", "`8EiB` is too large"),
                ("9223372036854775808", "9223372036854775808", "`9223372036854775808` is too large"),
                ("99999999999999999999999GiB", "99999999999999999999999", "`99999999999999999999999` is too large"),
                ("9999999999EiB", "9999999999EiB", "`9999999999EiB` is too large"),
            ],
        );
    }

    #[test]
    fn memory_limits() {
        assert_valid(parse_size_or_percent, &["2GiB", "512MiB", "1", "1%", "50%", "100%", "01%", "1 bytes"]);
        assert_invalid(
            parse_size_or_percent,
            &[
                ("0", "0", "a memory limit cannot be 0"),
                ("0GiB", "0GiB", "a memory limit cannot be 0"),
                ("0%", "0%", "a percentage cannot be 0%"),
                ("00%", "00%", "a percentage cannot be 0%"),
                ("101%", "101%", "`101%` is more than 100%"),
                ("-5%", "-", "expected a number, found `-`"),
                ("5.5%", ".5", "decimals are not allowed"),
                ("50 %", " ", "a space is not allowed before the unit"),
                ("%", "%", "expected a number, found `%`"),
                ("1%%", "%", "`%` is not allowed in a size"),
                ("1GiB%", "%", "`%` is not allowed in a size"),
                ("2Gib", "Gib", "unit `Gib` is not a size unit"),
                ("512M", "M", "unit `M` is not a size unit"),
                ("1.5GiB", ".5", "decimals are not allowed"),
            ],
        );
    }

    #[test]
    fn cpu_limits() {
        let valid = [
            "1", "2", "01", "256", "0-3", "1-1", "0-0", "1,3", "0,1", "0-1,4", "1,2,3,4", "0-1,2-3", "0-99999", "3,1",
            "4-5,0-3",
        ];
        assert_valid(parse_cpu_limit, &valid);
        assert_invalid(
            parse_cpu_limit,
            &[
                ("", "", "expected a number"),
                ("0", "0", "a cpu count must be at least 1"),
                ("00", "00", "a cpu count must be at least 1"),
                ("3-0", "3-0", "range `3-0` is reversed"),
                ("1,1", "1", "cpu 1 appears twice"),
                ("2,3,3", "3", "cpu 3 appears twice"),
                ("0-2,1", "1", "cpu 1 appears twice"),
                ("1,0-2", "0-2", "cpu 1 appears twice"),
                ("0-1,1-2", "1-2", "cpu 1 appears twice"),
                ("0-0,0", "0", "cpu 0 appears twice"),
                ("5-9,0-3,2-7", "2-7", "cpu 2 appears twice"),
                ("5-9,0-3,4-7", "4-7", "cpu 5 appears twice"),
                ("-", "-", "expected a number, found `-`"),
                ("0,5-2", "5-2", "range `5-2` is reversed"),
                ("1-", "", "expected a number"),
                ("1,", "", "expected a number"),
                (",1", ",", "expected a number, found `,`"),
                ("1,,2", ",", "expected a number, found `,`"),
                ("+2", "+", "expected a number, found `+`"),
                ("1-+2", "+", "expected a number, found `+`"),
                ("1-2-3", "-", "a range has only two ends"),
                ("1,2-3-4", "-", "a range has only two ends"),
                (" 2", " ", "expected a number, found a space"),
                ("2 ", " ", "a space is not allowed in a cpu limit"),
                ("1.5", ".", "`.` is not allowed in a cpu limit"),
                ("2\u{7}", "\u{7}", "the control character U+0007 is not allowed in a cpu limit"),
                ("sockets=2", "s", "expected a number, found `s`"),
                ("99999999999999999999", "99999999999999999999", "`99999999999999999999` is too large"),
            ],
        );
    }

    #[test]
    fn expiries() {
        let valid = [
            "0d",
            "1d",
            "30d",
            "14d",
            "01d",
            "24H",
            "60M",
            "2w",
            "1y",
            "9999999999d",
            "1d 2H",
            "2H 3M",
            "1H 1d",
            "1y 1w 1d 1H 1M",
            "0d 1H",
        ];
        assert_valid(parse_duration, &valid);
        assert_invalid(
            parse_duration,
            &[
                ("", "", "expected a duration, such as `30d`"),
                ("d", "d", "expected a number, found `d`"),
                ("30", "", "expected a unit: M, H, d, w or y"),
                ("24h", "h", "unit `h` is not an expiry unit (hours are `H`)"),
                ("60m", "m", "unit `m` is ambiguous: months to Incus, minutes to anklume"),
                ("6months", "months", "unit `months` is not an expiry unit (months are not accepted)"),
                ("10S", "S", "unit `S` is not an expiry unit (seconds are not accepted)"),
                ("10s", "s", "unit `s` is not an expiry unit (seconds are not accepted)"),
                ("1D", "D", "unit `D` is not an expiry unit (days are `d`)"),
                ("30days", "days", "unit `days` is not an expiry unit (days are `d`)"),
                ("2 weeks", "weeks", "unit `weeks` is not an expiry unit (weeks are `w`)"),
                ("14 days", "days", "unit `days` is not an expiry unit (days are `d`)"),
                ("30 d", " ", "a space is not allowed before the unit"),
                ("1dx", "dx", "unit `dx` is not an expiry unit"),
                ("2Hours", "Hours", "unit `Hours` is not an expiry unit (hours are `H`)"),
                ("1q", "q", "unit `q` is not an expiry unit"),
                ("1.5d", ".5", "decimals are not allowed"),
                ("-1d", "-", "expected a number, found `-`"),
                ("+1d", "+", "expected a number, found `+`"),
                ("1d  2H", " ", "parts are separated by one space"),
                (" 1d", " ", "parts are separated by one space"),
                ("1d ", " ", "unexpected space at the end"),
                ("1d,2H", ",", "parts are separated by a space, not `,`"),
                ("1d2H", "2", "expected a space between parts"),
                ("1d 1d", "1d", "unit `d` appears twice"),
                ("1d 2H 3d", "3d", "unit `d` appears twice"),
                ("1d\t2H", "\t", "a tab is not allowed in an expiry"),
                ("1d é", "é", "expected a number, found `é`"),
                ("1dé", "é", "`é` is not allowed in an expiry"),
                ("99999999999999999999d", "99999999999999999999", "`99999999999999999999` is too large"),
            ],
        );
    }

    #[test]
    fn schedules() {
        let valid = [
            "0 3 * * *",
            "*/15 * * * 1-5",
            "0 0 1 jan mon",
            "0 0 1 JAN MON",
            "0 0 * * Sun",
            "0 0 * DEC *",
            "0 0 * jan-mar *",
            "0 0 * 1-mar *",
            "0 0 * * mon-fri",
            "0 0 * feb/2 *",
            "59 23 31 12 6",
            "0 0 1 1 0",
            "01 03 * * *",
            "1-1 * * * *",
            "0/5 * * * *",
            "1-10/3 * * * *",
            "*/60 * * * *",
            "0 0 */31 * *",
            "1,2,3 * * * *",
            "? * * * *",
            "0 0 ? * ?",
            "?/5 * * * *",
            "0 0 31 2 *",
            "0 0 * * 0-6/2",
            "@hourly",
            "@daily",
            "@midnight",
            "@weekly",
            "@monthly",
            "@yearly",
            "@annually",
            "@startup",
            "@never",
            "@DAILY",
            "@Daily",
            "@hourly, @weekly",
            "0 3 * * *, 0 4 * * *",
            "0 3 * * *, @daily",
            "@startup, 0 3 * * *",
        ];
        assert_valid(parse_cron, &valid);
        assert_invalid(
            parse_cron,
            &[
                ("", "", "expected a cron expression, such as `0 3 * * *`"),
                ("0", "", "missing the hour field (a cron expression has 5)"),
                ("0 3", "", "missing the day-of-month field (a cron expression has 5)"),
                ("0 3 * *", "", "missing the day-of-week field (a cron expression has 5)"),
                ("0 3 * * * *", "*", "a cron expression has 5 fields"),
                ("0 3 * * 1 2", "2", "a cron expression has 5 fields"),
                ("0  3 * * *", " ", "fields are separated by one space"),
                ("0\t3 * * *", "\t", "fields are separated by one space"),
                (" 0 3 * * *", " ", "unexpected space at the start"),
                ("0 3 * * * ", " ", "unexpected space at the end"),
                ("60 * * * *", "60", "`60` is out of range for minutes (0-59)"),
                ("0 24 * * *", "24", "`24` is out of range for hours (0-23)"),
                ("0 0 0 * *", "0", "`0` is out of range for days of the month (1-31)"),
                ("0 0 32 * *", "32", "`32` is out of range for days of the month (1-31)"),
                ("0 0 * 0 *", "0", "`0` is out of range for months (1-12)"),
                ("0 0 * 13 *", "13", "`13` is out of range for months (1-12)"),
                ("0 0 * * 7", "7", "`7` is out of range for days of the week (0-6)"),
                ("0 0 * * 1-7", "7", "`7` is out of range for days of the week (0-6)"),
                ("1,2,99 * * * *", "99", "`99` is out of range for minutes (0-59)"),
                (
                    "99999999999999999999999 * * * *",
                    "99999999999999999999999",
                    "`99999999999999999999999` is out of range for minutes (0-59)",
                ),
                ("5-2 * * * *", "5-2", "range `5-2` is reversed"),
                ("0 0 * * sat-sun", "sat-sun", "range `sat-sun` is reversed"),
                ("0 0 * 12-jan *", "12-jan", "range `12-jan` is reversed"),
                ("*/0 * * * *", "0", "a step must be at least 1"),
                ("1-10/0 * * * *", "0", "a step must be at least 1"),
                ("*/ * * * *", " ", "expected a step after `/`, found a space"),
                ("*/x * * * *", "x", "expected a step after `/`, found `x`"),
                ("*/5/2 * * * *", "/", "`/` is not allowed in a cron field"),
                (
                    "*/99999999999999999999999 * * * *",
                    "99999999999999999999999",
                    "`99999999999999999999999` is too large",
                ),
                ("1- * * * *", " ", "expected a number or a name after `-`, found a space"),
                ("-1 * * * *", "-", "expected a number, a name or `*`, found `-`"),
                ("1-2-3 * * * *", "-", "`-` is not allowed in a cron field"),
                ("*-5 * * * *", "-", "`-` is not allowed in a cron field"),
                ("+5 * * * *", "+", "expected a number, a name or `*`, found `+`"),
                ("1,,2 * * * *", ",", "expected a number, a name or `*`, found `,`"),
                (",1 * * * *", ",", "expected a number, a name or `*`, found `,`"),
                ("0 3 * * $", "$", "expected a number, a name or `*`, found `$`"),
                ("0 0 * * monday", "monday", "`monday` is not a day-of-week name (sun-sat)"),
                ("0 0 * janvier *", "janvier", "`janvier` is not a month name (jan-dec)"),
                ("0 0 * * jan", "jan", "`jan` is not a day-of-week name (sun-sat)"),
                ("0 0 jan * *", "jan", "names are not allowed in the day-of-month field"),
                ("0 0 L * *", "L", "names are not allowed in the day-of-month field"),
                ("0 0 1W * *", "W", "`W` is not allowed in a cron field"),
                ("0 0 * * 1#2", "#", "`#` is not allowed in a cron field"),
                ("@nightly", "@nightly", "`@nightly` is not a schedule alias"),
                ("@reboot", "@reboot", "`@reboot` is not a schedule alias"),
                ("@every 1h", "@every 1h", "`@every 1h` is not a schedule alias"),
                ("@", "@", "`@` is not a schedule alias"),
                ("@daily\u{7}", "@daily\u{7}", "`@daily\\u{7}` is not a schedule alias"),
                ("@dai\u{202e}ly", "@dai\u{202e}ly", "`@dai\\u{202e}ly` is not a schedule alias"),
                ("@hourly,@weekly", ",", "schedules are separated by `, ` (a comma and a space)"),
                ("0 3 * * *,0 4 * * *", ",", "schedules are separated by `, ` (a comma and a space)"),
                ("0 3 * * *,@daily", ",", "schedules are separated by `, ` (a comma and a space)"),
                ("0 3 * * *, ", "", "expected a schedule after `, `"),
                ("@daily, ", "", "expected a schedule after `, `"),
                ("@daily,  @hourly", " ", "schedules are separated by `, ` (a comma and a space)"),
                ("0 3 * * *,  0 4 * * *", " ", "schedules are separated by `, ` (a comma and a space)"),
                ("CRON_TZ=UTC 0 3 * *", "_", "`_` is not allowed in a cron field"),
                ("TZ=UTC 0 3 * * *", "=", "`=` is not allowed in a cron field"),
                ("0 3 * * é", "é", "expected a number, a name or `*`, found `é`"),
            ],
        );
    }

    #[test]
    fn image_references() {
        let valid = [
            "images:debian/13",
            "images:debian/13/cloud",
            "images:debian/13/amd64",
            "local:tiny",
            "tiny",
            "8910fe0f96fa",
            "local:8910fe0f96fa",
            "my-server:debian/13",
            "my.server_2:x",
            "debian/13",
            "images:Debian-13_x.y",
            "images:débian",
            "a",
        ];
        assert_valid(parse_image_ref, &valid);
        assert_invalid(
            parse_image_ref,
            &[
                ("", "", "an image reference cannot be empty"),
                ("-rf", "-", "an image reference cannot start with `-`"),
                ("--help", "-", "an image reference cannot start with `-`"),
                ("images:-x", "-", "an image name cannot start with `-`"),
                (":debian/13", ":", "expected a remote name before `:`"),
                ("images:", "", "expected an image alias or fingerprint after `images:`"),
                ("images:debian 13", " ", "a space is not allowed in an image reference"),
                (" tiny", " ", "a space is not allowed in an image reference"),
                ("tiny ", " ", "a space is not allowed in an image reference"),
                ("a\u{7}", "\u{7}", "the control character U+0007 is not allowed in an image reference"),
                ("a\0b", "\0", "a NUL byte is not allowed in an image reference"),
                ("a\tb", "\t", "a tab is not allowed in an image reference"),
                ("im\u{a0}ages", "\u{a0}", "whitespace (U+00A0) is not allowed in an image reference"),
                ("images:debian:13", ":", "only one `:` is allowed, after the remote"),
                ("images::13", ":", "only one `:` is allowed, after the remote"),
                ("ré:debian", "é", "`é` is not allowed in a remote name"),
                ("a/b:c", "/", "`/` is not allowed in a remote name"),
                (
                    "images:deb\u{202e}ian",
                    "\u{202e}",
                    "the invisible character U+202E is not allowed in an image reference",
                ),
                ("\u{200b}tiny", "\u{200b}", "the invisible character U+200B is not allowed in an image reference"),
                ("-x:debian", "-", "an image reference cannot start with `-`"),
            ],
        );
    }

    /// Offsets are bytes: errors after multi-byte characters land on the right bytes.
    #[test]
    fn offsets_are_bytes() {
        let error = parse_image_ref("déb ian").expect_err("space");
        assert_eq!((error.offset, error.len), (4, 1));
        let error = parse_cron("0 3 * * ☃").expect_err("snowman");
        assert_eq!((error.offset, error.len), (8, 3));
        let error = parse_duration("1d 2☃").expect_err("snowman unit");
        assert_eq!((error.offset, error.len), (4, 3));
        let error = parse_size("2€").expect_err("euro");
        assert_eq!((error.offset, error.len), (1, 3));
        assert_eq!(error.message, "`€` is not allowed in a size");
        let error = parse_cpu_limit("0-1,é").expect_err("accent");
        assert_eq!((error.offset, error.len), (4, 2));
    }

    #[test]
    fn spans_in_the_file() {
        use crate::source::FileId;
        let error = ValueError { offset: 2, len: 1, message: String::new() };
        // Plain: `key: 0 3 x * *` with the value at 5..14.
        let plain = Span::new(FileId(0), 5, 14);
        assert_eq!(error.span_in(plain, "0 3 x * *").range(), 7..8);
        // Quoted: `"0 3 x * *"` at 5..16.
        let quoted = Span::new(FileId(0), 5, 16);
        assert_eq!(error.span_in(quoted, "0 3 x * *").range(), 8..9);
        // Escapes: the whole scalar.
        let escaped = Span::new(FileId(0), 5, 19);
        assert_eq!(error.span_in(escaped, "0 3 x * *").range(), 5..19);
        // A missing part at the end of a quoted value: an empty span before the quote.
        let end = ValueError { offset: 7, len: 0, message: String::new() };
        assert_eq!(end.span_in(Span::new(FileId(0), 0, 9), "0 3 * *").range(), 8..8);
    }

    /// A small deterministic generator (xorshift), for inputs no table thought of.
    struct Noise(u64);

    impl Noise {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn string(&mut self, pieces: &[&str]) -> String {
            let len = self.next() % 12;
            (0..len).map(|_| pieces[(self.next() % pieces.len() as u64) as usize]).collect()
        }
    }

    #[test]
    fn no_panic_on_arbitrary_strings() {
        let pieces = [
            "0",
            "1",
            "5",
            "9",
            "59",
            "60",
            "99999999999999999999",
            " ",
            "  ",
            ",",
            ", ",
            "-",
            "/",
            "*",
            "?",
            "@",
            ":",
            "%",
            ".",
            "d",
            "H",
            "M",
            "m",
            "h",
            "w",
            "y",
            "S",
            "GiB",
            "Gib",
            "MB",
            "B",
            " bytes",
            "jan",
            "sun",
            "daily",
            "@daily",
            "images",
            "é",
            "☃",
            "😀",
            "\u{0}",
            "\t",
            "\n",
            "\u{a0}",
            "\u{202e}",
            "x",
            "-x",
        ];
        let checks: [(&str, Check); 6] = [
            ("size", parse_size),
            ("memory", parse_size_or_percent),
            ("cpu", parse_cpu_limit),
            ("expiry", parse_duration),
            ("cron", parse_cron),
            ("image", parse_image_ref),
        ];
        let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
        for _ in 0..3000 {
            let text = noise.string(&pieces);
            for (name, check) in checks {
                if let Err(error) = check(&text) {
                    let end = error.offset + error.len;
                    assert!(end <= text.len(), "{name} {text:?}: {error:?} past the end");
                    assert!(text.get(error.offset..end).is_some(), "{name} {text:?}: {error:?} splits a character");
                    assert!(!error.message.is_empty(), "{name} {text:?}: no message");
                    assert!(error.len > 0 || error.offset == text.len(), "{name} {text:?}: {error:?} is empty inside");
                }
            }
        }
    }
}
