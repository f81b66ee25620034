//! The bash back end: deploy.sh and destroy.sh from the plan, through the minijinja
//! templates `templates/deploy.sh.j2` (with `deploy-steps.sh.j2`, the text of each
//! step, and `deploy-checks.sh.j2`, the preflight's check of each instance) and
//! `templates/destroy.sh.j2`.
//!
//! The templates hold all of the scripts' text. What they are given is a view of the
//! plan in which every value is already in the form its place needs: a `Word` is one
//! bash word, quoted by [`shell_quote`]; the arguments of an `ak_config` or `ak_device`
//! line are such words, one space apart; a `Note` is text for a `#` comment line,
//! control characters escaped by [`comment_safe`]. The view holds nothing else that a
//! template could print (apart from the wait settings, which are numbers), the
//! templates apply no filter, and the engine prints only strings and numbers: a value
//! from infra.yml reaches a script quoted, exactly once, or not at all.
//!
//! Quoting each value once, in Rust, is also what makes a 10,000-machine deploy.sh
//! cheap: the engine only copies prepared words. The steps of a large plan are viewed
//! and rendered in parts, one thread a core, each part in batches, and joined in
//! order; a step's text depends on nothing but the step, so the script does not
//! depend on how many parts or batches.

use super::acl_document::acl_document;
use crate::plan::{Action, Config, Devices, NetworkSpec, Plan, ProjectSpec, Step};
use crate::source::{Location, acts_on_terminal, escape_controls};
use minijinja::value::{Enumerator, Object, Value};
use minijinja::{AutoEscape, Environment, UndefinedBehavior, context};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

const DEPLOY_TEMPLATE: &str = include_str!("../../templates/deploy.sh.j2");
const DEPLOY_STEPS_TEMPLATE: &str = include_str!("../../templates/deploy-steps.sh.j2");
const DEPLOY_CHECKS_TEMPLATE: &str = include_str!("../../templates/deploy-checks.sh.j2");
const DESTROY_TEMPLATE: &str = include_str!("../../templates/destroy.sh.j2");
const COMMON_TEMPLATE: &str = include_str!("../../templates/common.sh.j2");

#[derive(Debug)]
pub struct EmitError(pub String);

impl std::fmt::Display for EmitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot render deploy.sh: {}", self.0)
    }
}

impl std::error::Error for EmitError {}

/// Quote a string as one bash word. Fails only on a NUL byte, which the checker
/// rejects before a plan exists. A value with a character that would act on a
/// terminal rather than show (a control character but tab and newline, a
/// bidirectional override) is written `$'...'` with that character as `\xHH`
/// escapes: the script is read before it runs, and such a value must not hide or
/// rewrite a line of it. (A newline shows: a multi-line value, such as cloud-init
/// user data, stays readable between single quotes.)
pub fn shell_quote(value: &str) -> Result<String, EmitError> {
    quote(value).map(Cow::into_owned)
}

/// [`shell_quote`] without a copy when the value needs no quotes.
fn quote(value: &str) -> Result<Cow<'_, str>, EmitError> {
    if !value.is_empty() && value.bytes().all(bare) {
        return Ok(Cow::Borrowed(value));
    }
    let mut quoted = String::with_capacity(value.len() + 2);
    quote_into(value, &mut quoted)?;
    Ok(Cow::Owned(quoted))
}

/// [`shell_quote`] into `out` (cleared first).
///
/// Most values are names, numbers and `key=value` pairs: shlex writes a value as it is
/// exactly when it is not empty and all its bytes are [`bare`], and between single
/// quotes when none of its bytes is a single quote, a backslash, a caret or NUL. Those
/// two cases are written here without asking shlex (a test holds the two to the same
/// answers); anything else is shlex's.
fn quote_into(value: &str, out: &mut String) -> Result<(), EmitError> {
    out.clear();
    if value.chars().any(acts_on_terminal) {
        return ansi_c_quote_into(value, out);
    }
    if !value.is_empty() && value.bytes().all(bare) {
        out.push_str(value);
    } else if !value.bytes().any(|byte| matches!(byte, b'\'' | b'\\' | b'^' | 0)) {
        out.push('\'');
        out.push_str(value);
        out.push('\'');
    } else {
        let quoted =
            shlex::try_quote(value).map_err(|_| EmitError(format!("cannot quote {value:?} for bash (NUL byte)")))?;
        out.push_str(&quoted);
    }
    Ok(())
}

/// `value` as bash's ANSI-C quoting, `$'...'`: `\\` and `\'` escaped, each character
/// for which [`acts_on_terminal`] holds written as the `\xHH` escapes of its UTF-8
/// bytes (bash reads at most two hex digits after `\x`, and writes the byte whatever
/// the locale).
fn ansi_c_quote_into(value: &str, out: &mut String) -> Result<(), EmitError> {
    if value.contains('\0') {
        return Err(EmitError(format!("cannot quote {value:?} for bash (NUL byte)")));
    }
    out.push_str("$'");
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            c if acts_on_terminal(c) => {
                let mut bytes = [0; 4];
                for byte in c.encode_utf8(&mut bytes).bytes() {
                    out.push_str(&format!("\\x{byte:02x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    Ok(())
}

/// A byte that needs no quoting anywhere in a bash word.
fn bare(byte: u8) -> bool {
    matches!(byte, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'+' | b'-' | b'.' | b'/' | b':' | b'@' | b']' | b'_')
}

/// Text for a `#` comment: control characters (a newline would end the comment and
/// start a command) are written as escapes.
pub fn comment_safe(value: &str) -> String {
    escape_controls(value).into_owned()
}

/// One bash word: a value quoted by [`shell_quote`]. The only form in which a value
/// from the plan reaches a script's commands.
#[derive(Clone, Debug)]
struct Word(Value);

impl Word {
    /// Its length in the script.
    fn len(&self) -> usize {
        self.0.as_str().map_or(0, str::len)
    }
}

impl From<Word> for Value {
    fn from(word: Word) -> Value {
        word.0
    }
}

/// Text for a `#` comment line, escaped by [`comment_safe`].
#[derive(Clone, Debug)]
struct Note(Value);

impl Note {
    fn new(raw: &str) -> Note {
        Note(Value::from(&*escape_controls(raw)))
    }
}

/// Makes [`Word`]s, reusing buffers: one to put a value together, one to quote it, and
/// one to put the words of a line's arguments together.
#[derive(Default)]
struct Quoter {
    raw: String,
    quoted: String,
    line: String,
}

impl Quoter {
    fn word(&mut self, raw: &str) -> Result<Word, EmitError> {
        quote_into(raw, &mut self.quoted)?;
        Ok(Word(Value::from(self.quoted.as_str())))
    }

    /// One word of several parts, such as `key=value` (the form in which the helpers
    /// take config and options) or `project/name:type`.
    fn joined(&mut self, parts: &[&str]) -> Result<Word, EmitError> {
        self.join_raw(parts);
        self.raw_word()
    }

    /// The parts, end to end, in `self.raw`.
    fn join_raw(&mut self, parts: &[&str]) {
        self.raw.clear();
        for part in parts {
            self.raw.push_str(part);
        }
    }

    /// `KIND` then the parts of a path: how the script's output names a step.
    fn titled(&mut self, kind: &str, path: &[&str]) -> Result<Word, EmitError> {
        self.raw.clear();
        self.raw.push_str(kind);
        for part in path {
            self.raw.push_str(part);
        }
        self.raw_word()
    }

    /// `key=value` words, as one list.
    fn pairs(&mut self, config: &Config) -> Result<Value, EmitError> {
        let words = config.iter().map(|(key, value)| self.joined(&[key, "=", value])).collect::<Result<Vec<_>, _>>()?;
        Ok(Value::from(words))
    }

    /// For each entry, its key and value as two words, one line's arguments.
    fn config_pairs(&mut self, config: &Config) -> Result<Value, EmitError> {
        let mut lines = Vec::with_capacity(config.len());
        for (key, value) in config {
            self.line.clear();
            self.push_word(key)?;
            self.push_word(value)?;
            lines.push(Value::from(self.line.as_str()));
        }
        Ok(Value::from(lines))
    }

    /// For each device, its name, its type and its `key=value` options as words, one
    /// line's arguments.
    fn devices(&mut self, devices: &Devices) -> Result<Value, EmitError> {
        let mut lines = Vec::with_capacity(devices.len());
        for (name, device) in devices {
            self.line.clear();
            self.push_word(name)?;
            self.push_word(&device.device_type)?;
            for (key, value) in &device.options {
                self.push_joined(&[key, "=", value])?;
            }
            lines.push(Value::from(self.line.as_str()));
        }
        Ok(Value::from(lines))
    }

    /// The parts, end to end and quoted, as the next word of `self.line`.
    fn push_joined(&mut self, parts: &[&str]) -> Result<(), EmitError> {
        self.join_raw(parts);
        quote_into(&self.raw, &mut self.quoted)?;
        self.push_quoted();
        Ok(())
    }

    /// `value`, quoted, as the next word of `self.line`.
    fn push_word(&mut self, value: &str) -> Result<(), EmitError> {
        quote_into(value, &mut self.quoted)?;
        self.push_quoted();
        Ok(())
    }

    fn push_quoted(&mut self) {
        if !self.line.is_empty() {
            self.line.push(' ');
        }
        self.line.push_str(&self.quoted);
    }

    /// The value put together in `self.raw`, quoted.
    fn raw_word(&mut self) -> Result<Word, EmitError> {
        quote_into(&self.raw, &mut self.quoted)?;
        Ok(Word(Value::from(self.quoted.as_str())))
    }

    /// `file:line:column`, as [`Location`]'s `Display` writes it, in `self.raw`.
    fn location(&mut self, origin: &Location) {
        self.raw.clear();
        self.raw.push_str(&origin.file);
        for number in [origin.line, origin.column] {
            self.raw.push(':');
            push_decimal(number, &mut self.raw);
        }
    }
}

pub fn deploy_script(plan: &Plan) -> Result<String, EmitError> {
    let parts = match plan.steps.len() / STEPS_PER_PART {
        0 | 1 => 1,
        parts => crate::parallel::cores().min(parts),
    };
    deploy_script_in_parts(plan, parts, STEPS_PER_BATCH).map(|(script, _)| script)
}

/// Below this many steps a plan is rendered in one part, on the calling thread.
const STEPS_PER_PART: usize = 1_000;

/// A part views and renders its steps this many at a time: the views of a batch are
/// freed before the next is made, so a large plan never has all its views at once.
const STEPS_PER_BATCH: usize = 256;

/// deploy.sh, its steps rendered in `parts` parts, each on a thread of its own, and
/// within a part in batches of `batch` steps. Each part also renders the preflight
/// checks of its instances. With the script, the size of the buffer reserved for it.
fn deploy_script_in_parts(plan: &Plan, parts: usize, batch: usize) -> Result<(String, usize), EmitError> {
    let environment = environment()?;
    let parts = in_parts(&plan.steps, parts, |steps| {
        let mut quoter = Quoter::default();
        let mut text = Rendered::default();
        let mut checks = Rendered::default();
        // Each batch is rendered into this buffer, then kept in a string of its size.
        let mut buffer = Vec::new();
        // `(image, project/name:type)` of each instance, for the image checks.
        let mut uses: Vec<(&str, String)> = Vec::new();
        for steps in steps.chunks(batch.max(1)) {
            let mut views = Vec::with_capacity(steps.len());
            let mut instances = Vec::new();
            for step in steps {
                let Some(view) = step_view(step, &mut quoter)? else { continue };
                if let Action::EnsureInstance(spec) = &step.action {
                    quoter.line.clear();
                    quoter.push_joined(&[&spec.project, "/", &spec.name, ":", spec.instance_type.keyword()])?;
                    uses.push((spec.image.as_str(), quoter.line.clone()));
                    instances.push(view.clone());
                }
                views.push(view);
            }
            text.render(&environment, "deploy-steps.sh.j2", context! { steps => views }, &mut buffer)?;
            if !instances.is_empty() {
                checks.render(&environment, "deploy-checks.sh.j2", context! { instances => instances }, &mut buffer)?;
            }
        }
        Ok((text, checks, uses))
    })?;
    let mut texts = Vec::with_capacity(parts.len());
    let mut checks = Vec::with_capacity(parts.len());
    // Each image's instances, in plan order (the plan's `images` lists them so): the
    // arguments of its `ak_require_image` line after the image.
    let mut users: HashMap<&str, String> = HashMap::new();
    for (text, part_checks, uses) in parts {
        texts.push(text);
        checks.push(part_checks);
        for (image, item) in uses {
            let line = users.entry(image).or_default();
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&item);
        }
    }
    // The whole script is written once into a buffer that holds it (a 60 MB script
    // that outgrew its buffer would need 200 MB for a moment): the steps' and the
    // preflight's text, the templates' own text, and each value the templates insert.
    let mut size = texts.iter().chain(&checks).map(Rendered::len).sum::<usize>();
    size += DEPLOY_TEMPLATE.len() + COMMON_TEMPLATE.len();
    let mut quoter = Quoter::default();
    let reads = live_reads(plan)?;
    size += reads.iter().map(|read| "\nak_read ".len() + read.len()).sum::<usize>();
    let mut images = Vec::with_capacity(plan.images.len());
    for image in &plan.images {
        let instances = users.remove(image.image.as_str()).unwrap_or_default();
        let word = quoter.word(&image.image)?;
        quoter.location(&image.origin);
        let origin = quoter.raw_word()?;
        size += "\nak_require_image   ".len() + word.len() + origin.len() + instances.len();
        images.push(context! { image => word, origin => origin, instances => instances });
    }
    let (header, header_bytes) = header(plan)?;
    // Six wait settings, each a number of at most 20 digits.
    size += header_bytes + 6 * 20;
    let context = context! {
        header => header,
        waits => minijinja::value::Serde(&plan.waits),
        reads => reads,
        images => images,
        isolation => plan.steps.iter().any(|step| matches!(step.action, Action::EnsureAcl(_))),
        checks => checks.into_iter().map(Value::from_object).collect::<Vec<_>>(),
        steps => texts.into_iter().map(Value::from_object).collect::<Vec<_>>(),
    };
    let template = template(&environment, "deploy.sh.j2")?;
    let mut script = Vec::with_capacity(size + 1);
    template.render_captured_to(context, &mut script).map_err(|error| EmitError(format!("{error:#}")))?;
    // minijinja drops the template's final newline, the script keeps it.
    script.push(b'\n');
    let script = String::from_utf8(script).map_err(|error| EmitError(error.to_string()))?;
    Ok((script, size + 1))
}

/// The arguments of deploy.sh's `ak_read` lines: one recursive listing a kind of
/// resource the plan declares, every project at once (a volume listing a pool), so
/// that a rerun reads the live state in a handful of requests.
fn live_reads(plan: &Plan) -> Result<Vec<String>, EmitError> {
    let has = |wanted: fn(&Action) -> bool| plan.steps.iter().any(|step| wanted(&step.action));
    let mut reads = vec![("project", "/1.0/projects?recursion=1".to_string(), None)];
    if has(|action| matches!(action, Action::EnsureAcl(_))) {
        reads.push(("acl", "/1.0/network-acls?recursion=1".into(), None));
    }
    if has(|action| matches!(action, Action::EnsureNetwork(_))) {
        reads.push(("network", "/1.0/networks?recursion=1".into(), None));
    }
    if has(|action| matches!(action, Action::EnsureProfile(_))) {
        reads.push(("profile", "/1.0/profiles?recursion=1&all-projects=true".into(), None));
    }
    if has(|action| matches!(action, Action::EnsureInstance(_))) {
        reads.push(("instance", "/1.0/instances?recursion=1&all-projects=true".into(), None));
    }
    let pools: std::collections::BTreeSet<&str> = plan
        .steps
        .iter()
        .filter_map(|step| match &step.action {
            Action::EnsureVolume(spec) => Some(spec.pool.as_str()),
            _ => None,
        })
        .collect();
    for pool in pools {
        let path = format!("/1.0/storage-pools/{pool}/volumes/custom?recursion=1&all-projects=true");
        reads.push(("volume", path, Some(pool)));
    }
    reads
        .into_iter()
        .map(|(kind, path, pool)| {
            let mut line = format!("{kind} {}", quote(&path)?);
            if let Some(pool) = pool {
                line.push(' ');
                line.push_str(&quote(pool)?);
            }
            Ok(line)
        })
        .collect()
}

/// Script text a template has rendered (a part's steps, or their preflight checks),
/// in the strings the batches were rendered into. The template that joins the parts
/// prints it as it is (see [`print`](fn@print)): a large script's text is copied once, into
/// the script, and never into a template value.
#[derive(Debug, Default)]
struct Rendered(Vec<String>);

impl Rendered {
    /// Render `name` at the end of this text. `buffer` is scratch space the caller
    /// keeps from one batch to the next.
    fn render(
        &mut self,
        environment: &Environment<'_>,
        name: &str,
        context: Value,
        buffer: &mut Vec<u8>,
    ) -> Result<(), EmitError> {
        let template = template(environment, name)?;
        buffer.clear();
        template.render_captured_to(context, &mut *buffer).map_err(|error| EmitError(format!("{error:#}")))?;
        let text = std::str::from_utf8(buffer).map_err(|error| EmitError(error.to_string()))?;
        self.0.push(text.to_owned());
        Ok(())
    }

    fn len(&self) -> usize {
        self.0.iter().map(String::len).sum()
    }
}

impl Object for Rendered {}

/// destroy.sh: removes what the plan creates, in reverse dependency order (instances,
/// volumes, profiles, projects, bridges), keeping protected instances unless FORCE=1.
pub fn destroy_script(plan: &Plan) -> Result<String, EmitError> {
    // The runner's `anklumec destroy` removes in the same order.
    let removals = plan.teardown();
    let mut quoter = Quoter::default();
    let mut steps = Vec::with_capacity(removals.len());
    for (_, step) in removals {
        steps.extend(step_view(step, &mut quoter)?);
    }
    script(&environment()?, "destroy.sh.j2", context! { header => header(plan)?.0, steps => steps })
}

/// The templates, ready to render: undefined values are errors, nothing is escaped
/// (the views hold words already quoted), and only strings and numbers are printed.
fn environment() -> Result<Environment<'static>, EmitError> {
    let mut environment = Environment::new();
    environment.set_undefined_behavior(UndefinedBehavior::Strict);
    environment.set_auto_escape_callback(|_| AutoEscape::None);
    environment.set_formatter(print);
    for (name, source) in [
        ("common.sh.j2", COMMON_TEMPLATE),
        ("deploy.sh.j2", DEPLOY_TEMPLATE),
        ("deploy-steps.sh.j2", DEPLOY_STEPS_TEMPLATE),
        ("deploy-checks.sh.j2", DEPLOY_CHECKS_TEMPLATE),
        ("destroy.sh.j2", DESTROY_TEMPLATE),
    ] {
        environment.add_template(name, source).map_err(|error| EmitError(error.to_string()))?;
    }
    Ok(environment)
}

/// What `{{ value }}` writes: a string as it is, a number in decimal; anything else (a
/// list, a mapping, none) is a mistake in a template.
fn print(
    out: &mut minijinja::Output<'_>,
    _: &mut minijinja::State<'_, '_>,
    value: &Value,
) -> Result<(), minijinja::Error> {
    if let Some(text) = value.as_str() {
        out.write_str(text)?;
    } else if let Some(rendered) = value.downcast_object_ref::<Rendered>() {
        for text in &rendered.0 {
            out.write_str(text)?;
        }
    } else if value.is_number() {
        write!(out, "{value}")?;
    } else {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("a template prints a {}: only words and numbers belong in a script", value.kind()),
        ));
    }
    Ok(())
}

fn template<'e>(environment: &'e Environment<'_>, name: &str) -> Result<minijinja::Template<'e, 'e>, EmitError> {
    environment.get_template(name).map_err(|error| EmitError(error.to_string()))
}

fn render(environment: &Environment<'_>, name: &str, context: Value) -> Result<String, EmitError> {
    let template = template(environment, name)?;
    template.render(context).map_err(|error| EmitError(format!("{error:#}")))
}

/// A whole script: minijinja drops the template's final newline, the script keeps it.
fn script(environment: &Environment<'_>, name: &str, context: Value) -> Result<String, EmitError> {
    let mut script = render(environment, name, context)?;
    script.push('\n');
    Ok(script)
}

/// The comment block at the top of a script, and the script-wide words: the source
/// path (deploy.sh names it in the provisioning commands it prints last) and the incus
/// remote the plan is for, if any.
/// The header's values, and how many bytes they take in the script (the source's
/// path is written twice, in comments, and once more as a word).
fn header(plan: &Plan) -> Result<(Value, usize), EmitError> {
    let [generator, source, sha256, project] =
        [&plan.generator, &plan.source.path, &plan.source.sha256, &plan.project_name].map(|text| escape_controls(text));
    let source_word = shell_quote(&plan.source.path)?;
    let remote = plan.incus_remote.as_deref().map(shell_quote).transpose()?;
    let bytes = generator.len()
        + 2 * source.len()
        + sha256.len()
        + project.len()
        + source_word.len()
        + remote.as_ref().map_or(0, String::len);
    let header = context! {
        generator => &*generator,
        source => &*source,
        sha256 => &*sha256,
        project => &*project,
        source_word,
        remote,
    };
    Ok((header, bytes))
}

/// `work` over `parts` consecutive runs of `steps` of about equal rendering cost, the
/// first on this thread and each other on a thread of its own, with the results in
/// order. (A plan ends with its start steps and then its wait steps, which cost little
/// or nothing to render: runs of equal step counts would leave the last part idle.)
fn in_parts<'s, T: Send>(
    steps: &'s [Step],
    parts: usize,
    work: impl Fn(&'s [Step]) -> Result<T, EmitError> + Sync,
) -> Result<Vec<T>, EmitError> {
    let runs = crate::parallel::balanced(steps, parts, render_cost);
    crate::parallel::map(&runs, |run| work(run)).into_iter().collect()
}

/// A step's share of the work of rendering: about the lines of script it becomes.
fn render_cost(step: &Step) -> usize {
    let devices = |devices: &Devices| devices.values().map(|device| 1 + device.options.len()).sum::<usize>();
    match &step.action {
        Action::EnsureInstance(spec) => 6 + spec.config.len() + devices(&spec.devices),
        Action::EnsureProfile(spec) => 4 + spec.config.len() + devices(&spec.devices),
        Action::EnsureProject(_) | Action::EnsureNetwork(_) | Action::EnsureVolume(_) => 4,
        Action::EnsureAcl(spec) => 4 + 9 * spec.ingress.len(),
        Action::StartInstance(_) => 3,
        Action::WaitRunning(_) | Action::WaitAgent(_) => 0,
    }
}

/// What the templates see of one step. Fields a step's action does not have are
/// absent (an error if a template reads them). Lists are built once, as values, so
/// that reading them costs no copy.
#[derive(Debug)]
struct StepView {
    action: &'static str,
    id: Note,
    origin_comment: Note,
    /// `KIND project/name`: how the script's output names the step.
    title: Word,
    origin: Word,
    project: Option<Word>,
    name: Option<Word>,
    description: Option<Word>,
    instance_type: Option<Word>,
    pool: Option<Word>,
    image: Option<Word>,
    /// Words.
    profiles: Option<Value>,
    /// `key=value` words (projects, networks, volumes).
    config: Option<Value>,
    /// For each config entry, its key and value: two words (profiles, instances: the
    /// arguments of one `ak_config` line each).
    config_pairs: Option<Value>,
    /// For each device, its name, type and `key=value` options: the arguments of one
    /// `ak_device` line each.
    devices: Option<Value>,
    /// An ACL as the incus client prints it (one word).
    document: Option<Word>,
    /// An ACL's rules, for comment lines.
    rules: Option<Value>,
}

const STEP_FIELDS: &[&str] = &[
    "action",
    "id",
    "origin_comment",
    "title",
    "origin",
    "project",
    "name",
    "description",
    "type",
    "pool",
    "image",
    "profiles",
    "config",
    "config_pairs",
    "devices",
    "document",
    "rules",
];

impl Object for StepView {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.get_value_by_str(key.as_str()?)
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        let word = |word: &Option<Word>| word.as_ref().map(|word| word.0.clone());
        match key {
            "action" => Some(Value::from(self.action)),
            "id" => Some(self.id.0.clone()),
            "origin_comment" => Some(self.origin_comment.0.clone()),
            "title" => Some(self.title.0.clone()),
            "origin" => Some(self.origin.0.clone()),
            "project" => word(&self.project),
            "name" => word(&self.name),
            "description" => word(&self.description),
            "type" => word(&self.instance_type),
            "pool" => word(&self.pool),
            "image" => word(&self.image),
            "profiles" => self.profiles.clone(),
            "config" => self.config.clone(),
            "config_pairs" => self.config_pairs.clone(),
            "devices" => self.devices.clone(),
            "document" => word(&self.document),
            "rules" => self.rules.clone(),
            _ => None,
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(STEP_FIELDS)
    }
}

fn push_decimal(number: usize, buffer: &mut String) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    let mut rest = number;
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    buffer.extend(digits[start..].iter().map(|&digit| char::from(digit)));
}

/// The view of one step (none for the wait steps: the script waits in one loop at its
/// end, `ak_wait_all`, over the instances the run started, with the plan's `waits`).
fn step_view(step: &Step, quoter: &mut Quoter) -> Result<Option<Value>, EmitError> {
    let (action, kind, path): (_, _, &[&str]) = match &step.action {
        Action::EnsureProject(spec) => ("ensure_project", "project ", &[&spec.name]),
        Action::EnsureAcl(spec) => ("ensure_acl", "network ACL ", &[&spec.name]),
        Action::EnsureNetwork(spec) => ("ensure_network", "network ", &[&spec.name]),
        Action::EnsureVolume(spec) => ("ensure_volume", "volume ", &[&spec.project, "/", &spec.pool, "/", &spec.name]),
        Action::EnsureProfile(spec) => ("ensure_profile", "profile ", &[&spec.project, "/", &spec.name]),
        Action::EnsureInstance(spec) => ("ensure_instance", "instance ", &[&spec.project, "/", &spec.name]),
        Action::StartInstance(target) => ("start_instance", "instance ", &[&target.project, "/", &target.name]),
        Action::WaitRunning(_) | Action::WaitAgent(_) => return Ok(None),
    };
    let title = quoter.titled(kind, path)?;
    quoter.location(&step.origin);
    let mut view = StepView {
        action,
        id: Note::new(&step.id),
        origin_comment: Note::new(&quoter.raw),
        title,
        origin: quoter.raw_word()?,
        project: None,
        name: None,
        description: None,
        instance_type: None,
        pool: None,
        image: None,
        profiles: None,
        config: None,
        config_pairs: None,
        devices: None,
        document: None,
        rules: None,
    };
    match &step.action {
        Action::EnsureProject(ProjectSpec { name, description, config })
        | Action::EnsureNetwork(NetworkSpec { name, description, config }) => {
            view.name = Some(quoter.word(name)?);
            view.description = Some(quoter.word(description)?);
            view.config = Some(quoter.pairs(config)?);
        }
        Action::EnsureAcl(spec) => {
            view.name = Some(quoter.word(&spec.name)?);
            view.document = Some(quoter.word(&acl_document(spec))?);
            let rules: Vec<Value> = spec
                .ingress
                .iter()
                .map(|rule| Note::new(&format!("{}  ({})", rule.summary(), rule.description)).0)
                .collect();
            view.rules = Some(Value::from(rules));
        }
        Action::EnsureVolume(spec) => {
            view.project = Some(quoter.word(&spec.project)?);
            view.pool = Some(quoter.word(&spec.pool)?);
            view.name = Some(quoter.word(&spec.name)?);
            view.config = Some(quoter.pairs(&spec.config)?);
        }
        Action::EnsureProfile(spec) => {
            view.project = Some(quoter.word(&spec.project)?);
            view.name = Some(quoter.word(&spec.name)?);
            view.description = Some(quoter.word(&spec.description)?);
            view.config_pairs = Some(quoter.config_pairs(&spec.config)?);
            view.devices = Some(quoter.devices(&spec.devices)?);
        }
        Action::EnsureInstance(spec) => {
            view.project = Some(quoter.word(&spec.project)?);
            view.name = Some(quoter.word(&spec.name)?);
            view.description = Some(quoter.word(&spec.description)?);
            view.instance_type = Some(quoter.word(spec.instance_type.keyword())?);
            view.image = Some(quoter.word(&spec.image)?);
            let profiles = spec.profiles.iter().map(|profile| quoter.word(profile)).collect::<Result<Vec<_>, _>>()?;
            view.profiles = Some(Value::from(profiles));
            view.config_pairs = Some(quoter.config_pairs(&spec.config)?);
            view.devices = Some(quoter.devices(&spec.devices)?);
        }
        Action::StartInstance(target) => {
            view.project = Some(quoter.word(&target.project)?);
            view.name = Some(quoter.word(&target.name)?);
            view.instance_type = Some(quoter.word(target.instance_type.keyword())?);
        }
        Action::WaitRunning(_) | Action::WaitAgent(_) => {}
    }
    Ok(Some(Value::from_object(view)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_is_one_bash_word() {
        assert_eq!(shell_quote("plain-word_1.2").unwrap_or_default(), "plain-word_1.2");
        assert_eq!(shell_quote("").unwrap_or_default(), "''");
        assert_eq!(shell_quote("a b").unwrap_or_default(), "'a b'");
        assert!(shell_quote("nul\0byte").is_err());
    }

    #[test]
    fn bare_bytes_are_those_shlex_leaves_unquoted() {
        for byte in 0..=u8::MAX {
            let text = [byte, b'x'];
            let Ok(text) = std::str::from_utf8(&text) else { continue };
            let unquoted = shlex::try_quote(text).is_ok_and(|quoted| quoted == text);
            assert_eq!(bare(byte), unquoted, "byte {byte:#04x}");
        }
        for text in ["", "^x", "x^", "a b", "ok-word_1.2:3@4/5+6]7", "é", "[x", "x=1", "\u{a0}"] {
            assert_eq!(quote(text).ok(), shlex::try_quote(text).ok(), "{text:?}");
        }
    }

    #[test]
    fn quoting_without_shlex_agrees_with_shlex() {
        let mut texts: Vec<String> = vec![
            String::new(),
            "^x".into(),
            "x^".into(),
            "it's".into(),
            "a\\b".into(),
            "é".into(),
            "\u{a0}".into(),
            "ipv4.address=10.0.0.1".into(),
            "naïve=déjà vu".into(),
            "$(touch canary)".into(),
        ];
        for first in 1..=0x7f_u8 {
            texts.push(char::from(first).to_string());
            for second in 0..=0x7f_u8 {
                texts.push([char::from(first), char::from(second)].iter().collect());
            }
        }
        let mut out = String::new();
        // Values with a control character are ANSI-C quoted instead (next test).
        for text in texts.iter().filter(|text| !text.chars().any(acts_on_terminal)) {
            let expected = shlex::try_quote(text).ok();
            assert_eq!(quote(text).ok(), expected, "{text:?}");
            assert_eq!(quote_into(text, &mut out).ok().map(|()| Cow::Borrowed(out.as_str())), expected, "{text:?}");
        }
    }

    /// A value with a control character (but tab and newline) or a bidirectional
    /// override is one `$'...'` word with no raw control character, and bash reads it
    /// back byte for byte.
    #[test]
    fn values_that_would_hide_a_line_are_ansi_c_quoted() {
        let mut values: Vec<String> = (1..0x20_u8).chain([0x7f]).map(|b| format!("a{}b", char::from(b))).collect();
        values.extend(
            [
                "line one\nincus delete --force web\r",
                "it's \\ a \u{1b}[2J trap",
                "\u{85}next line",
                "rtl \u{202e}txt.exe",
                "\u{1b}",
                "tab\tonly",
                "\x1b1f",
            ]
            .map(String::from),
        );
        let mut words = Vec::new();
        for value in &values {
            let word = shell_quote(value).unwrap_or_default();
            if value.chars().any(acts_on_terminal) {
                assert!(word.starts_with("$'") && word.ends_with('\''), "{value:?}: {word}");
                assert!(!word.chars().any(acts_on_terminal), "{value:?}: {word:?}");
            }
            words.push(word);
        }
        // One printf of every word, each ended by a NUL (which no value holds).
        let script = format!("printf '%s\\0' {}", words.join(" "));
        let output = std::process::Command::new("bash").args(["-c", &script]).output().expect("bash runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let printed: Vec<&[u8]> = output.stdout.split(|&b| b == 0).collect();
        for (value, printed) in values.iter().zip(&printed) {
            assert_eq!(*printed, value.as_bytes(), "{value:?}");
        }
        assert!(shell_quote("a\u{7}\0").is_err(), "NUL is refused");
    }

    /// Every fixture's deploy.sh is the same whether its steps are rendered in one part
    /// or in several (on as many threads), down to one step a part, and in batches of
    /// any size.
    #[test]
    fn the_script_does_not_depend_on_how_many_parts_render_it() {
        let mut checked = 0;
        for (path, text) in crate::test_fixtures::texts_in(&crate::test_fixtures::group("ok")) {
            let compilation = crate::compile::compile_source("infra.yml", &text, Default::default());
            let Some(plan) = compilation.plan else { continue };
            let whole = deploy_script_in_parts(&plan, 1, usize::MAX).ok().map(|(script, _)| script);
            assert!(whole.is_some(), "{}", path.display());
            for parts in [1, 2, 3, 7, plan.steps.len(), plan.steps.len() + 5] {
                for batch in [1, 2, 5, STEPS_PER_BATCH] {
                    assert_eq!(
                        deploy_script_in_parts(&plan, parts, batch).ok().map(|(script, _)| script),
                        whole,
                        "{} in {parts} parts, batches of {batch}",
                        path.display()
                    );
                }
            }
            checked += 1;
        }
        assert!(checked > 10, "only {checked} fixtures compiled");
    }

    /// The buffer a script is rendered into holds it: the script never grows it (a
    /// large script that did would need three times its size for a moment). Every
    /// fixture, and files whose projects, images, remote and path (control characters
    /// in it are escaped in the header, longer than they are) are most of the script.
    #[test]
    fn the_script_fits_the_buffer_reserved_for_it() {
        let mut inputs: Vec<(String, String)> = crate::test_fixtures::texts_in(&crate::test_fixtures::group("ok"))
            .into_iter()
            .map(|(path, text)| (path.display().to_string(), text))
            .collect();
        let path = format!("{}/infra.yml", "dir\u{1}with\tcontrols ".repeat(40));
        for domains in [1, 10, 150] {
            let mut text = String::from("project_name: p\nglobal:\n  addressing: {base_octet: 10, zone_base: 0}\n");
            text.push_str("  default_os_image: tiny\n  incus_remote: far-away-remote\ndomains:\n");
            for domain in 0..domains {
                text.push_str(&format!("  d{domain}-proj:\n    trust_level: trusted\n    machines:\n"));
                text.push_str(&format!("      m{domain}: {{os_image: 'images:a-long-image-name/{domain}'}}\n"));
            }
            let compilation = crate::compile::compile_source(&path, text.as_str(), Default::default());
            assert!(!compilation.has_errors(), "{domains} domains: {:#?}", compilation.diagnostics);
            inputs.push((path.clone(), text));
        }
        let mut checked = 0;
        for (path, text) in &inputs {
            let compilation = crate::compile::compile_source(path, text.as_str(), Default::default());
            let Some(plan) = compilation.plan else { continue };
            for parts in [1, 3] {
                let script = deploy_script_in_parts(&plan, parts, STEPS_PER_BATCH);
                let Ok((script, reserved)) = script else { panic!("{path}: {script:?}") };
                assert!(script.len() <= reserved, "{path}: {} > {reserved}", script.len());
                assert_eq!(script.capacity(), reserved, "{path}: the script outgrew its buffer");
            }
            checked += 1;
        }
        assert!(checked > 13, "only {checked} inputs compiled");
    }

    /// The runs cover the steps in order, one after the other, and share the cost
    /// evenly: the start and wait steps at a plan's end do not make a part of their own.
    #[test]
    fn parts_are_consecutive_runs_of_about_equal_cost() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/ok/anklume__infra.yml.example.yml"
        ));
        let plan = crate::compile::compile_source("infra.yml", text.unwrap_or_default(), Default::default()).plan;
        let Some(plan) = plan else { panic!("the example compiles") };
        let total: usize = plan.steps.iter().map(render_cost).sum();
        for parts in 1..=plan.steps.len() + 2 {
            let runs = crate::parallel::balanced(&plan.steps, parts, render_cost);
            assert!(!runs.is_empty() && runs.len() <= parts, "{} runs for {parts} parts", runs.len());
            let mut next = 0;
            for run in &runs {
                assert!(std::ptr::eq(run.as_ptr(), plan.steps[next..].as_ptr()), "runs follow each other");
                next += run.len();
            }
            assert_eq!(next, plan.steps.len(), "the runs cover every step");
            let heaviest = plan.steps.iter().map(render_cost).max().unwrap_or(0);
            for run in &runs[..runs.len() - 1] {
                let cost: usize = run.iter().map(render_cost).sum();
                assert!(cost < total.div_ceil(parts) + heaviest, "a run of cost {cost} in {parts} parts");
            }
        }
    }

    #[test]
    fn locations_read_as_displayed() {
        let mut quoter = Quoter::default();
        for (line, column) in [(1, 1), (10, 7), (60602, 15), (usize::MAX, 0)] {
            let origin = Location { file: "infra dir/infra.yml".into(), line, column };
            quoter.location(&origin);
            assert_eq!(quoter.raw, origin.to_string());
        }
    }

    #[test]
    fn comments_escape_control_characters_only() {
        assert_eq!(comment_safe("plain: text, é"), "plain: text, é");
        assert_eq!(comment_safe("a\nb\tc\u{7f}"), "a\\nb\\tc\\u{7f}");
    }
}
