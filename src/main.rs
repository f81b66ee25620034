//! The anklumec command line. Only argument handling and I/O live here; every
//! decision is in the library.

use anklumec::compile::{Compilation, Options, SplitInput, compile_source, compile_split};
use anklumec::diagnostics::{Code, codes, render};
use anklumec::emit;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// mimalloc, not the system allocator: a large file's trees and plan are hundreds of
/// thousands of small allocations, made and freed on several threads, which glibc's
/// allocator serves about a quarter slower. Built without transparent huge pages, which
/// would add a fifth to the peak memory for no gain in speed here.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Compile anklume's infra.yml into a reviewable, idempotent Incus deployment.
///
/// `anklumec infra.yml -o deploy.sh` compiles to a bash script of incus commands.
#[derive(Parser, Debug)]
#[command(name = "anklumec", version, args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    compile: CompileArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Compile infra.yml to deploy.sh (the default action).
    Compile(CompileArgs),
    /// Check infra.yml and print its diagnostics; write nothing.
    Check(InputArgs),
    /// Print the deployment plan.
    Plan {
        #[command(flatten)]
        input: InputArgs,
        /// `text` for people, `json` for tools (versioned: see docs/plan-schema.md).
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
    },
    /// Apply infra.yml to the local Incus server directly, through its REST API (the
    /// same end state as deploy.sh; independent steps in parallel).
    Apply {
        #[command(flatten)]
        input: InputArgs,
        /// Print the requests that would change something; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// How many steps may send requests at once (boot and agent waits do not count).
        #[arg(short, long, value_name = "N", default_value_t = anklumec::run::DEFAULT_JOBS as u16,
              value_parser = clap::value_parser!(u16).range(1..))]
        jobs: u16,
    },
    /// Remove from the local Incus server what infra.yml declares, through its REST API
    /// (the runner's destroy.sh: protected instances are kept unless --force; nothing
    /// undeclared is touched).
    Destroy {
        #[command(flatten)]
        input: InputArgs,
        /// Also remove protected instances (security.protection.delete=true), clearing
        /// their protection first.
        #[arg(long)]
        force: bool,
        /// Say what a real run would do (`would remove ...`) and the requests it would
        /// send; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// How many removals may run at once.
        #[arg(short, long, value_name = "N", default_value_t = anklumec::run::DEFAULT_JOBS as u16,
              value_parser = clap::value_parser!(u16).range(1..))]
        jobs: u16,
    },
    /// Compare the local Incus server with infra.yml and print what differs (exit 0: no
    /// drift, 1: drift, 2: the state could not be read).
    Diff {
        #[command(flatten)]
        input: InputArgs,
        /// `text` for people, `json` for tools (versioned: `schema_version`).
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
    },
    /// Explain a diagnostic code, such as E0007.
    Explain {
        /// The code (E0001, W0001, N0001, ...).
        code: String,
    },
    /// Print a shell completion script (for example `anklumec completions bash > /etc/bash_completion.d/anklumec`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page, in roff (for example `anklumec man | man -l -`).
    Man,
    /// Print the JSON Schema of infra.yml, for editors (for example `anklumec schema > infra.schema.json`).
    Schema,
}

#[derive(Args, Debug, Clone)]
struct InputArgs {
    /// The infra.yml to read.
    #[arg(value_name = "INFRA_YML")]
    file: Option<PathBuf>,
    /// Treat warnings as errors.
    #[arg(long)]
    deny_warnings: bool,
    /// How diagnostics are printed on standard error.
    #[arg(long, value_enum, default_value_t = MessageFormat::Human)]
    message_format: MessageFormat,
    /// Colour in diagnostics.
    #[arg(long, value_enum, default_value_t = ColourChoice::Auto)]
    color: ColourChoice,
}

#[derive(Args, Debug, Clone)]
struct CompileArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Where to write the output: for `deploy` and `destroy`, a file, `-` for standard
    /// output (the default); for `inventory`, a directory (created if missing).
    #[arg(short, long, value_name = "PATH")]
    output: Option<PathBuf>,
    /// What to generate from the plan.
    #[arg(long, value_enum, default_value_t = Emit::Deploy)]
    emit: Emit,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Emit {
    /// deploy.sh, the reviewable bash script that converges Incus.
    Deploy,
    /// An Ansible inventory (inventory.yml) and playbook (site.yml) for provisioning.
    Inventory,
    /// destroy.sh, the reviewable bash script that removes what infra.yml declares.
    Destroy,
    /// The domains' isolation as a host nftables ruleset (anklume's `inet anklume`
    /// table), a backstop beside the Incus ACLs: load it with `nft -f`.
    Nftables,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum PlanFormat {
    Text,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum MessageFormat {
    Human,
    Json,
    /// SARIF 2.1.0, for code scanning (one document on standard error).
    Sarif,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ColourChoice {
    Auto,
    Always,
    Never,
}

/// Exit statuses: 0 success (warnings allowed), 1 the input has errors, 2 usage or I/O.
const EXIT_INPUT: u8 = 1;
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Compile(args)) => run_compile(&args),
        None => run_compile(&cli.compile),
        Some(Command::Check(input)) => match load_and_compile(&input) {
            Ok(compilation) => exit_for(&compilation),
            Err(code) => code,
        },
        Some(Command::Plan { input, format }) => run_plan(&input, format),
        Some(Command::Apply { input, dry_run, jobs }) => run_apply(&input, dry_run, usize::from(jobs)),
        Some(Command::Destroy { input, force, dry_run, jobs }) => {
            run_destroy(&input, force, dry_run, usize::from(jobs))
        }
        Some(Command::Diff { input, format }) => run_diff(&input, format),
        Some(Command::Explain { code }) => explain(&code),
        Some(Command::Completions { shell }) => {
            let mut buffer = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "anklumec", &mut buffer);
            write_stdout(&String::from_utf8_lossy(&buffer))
        }
        Some(Command::Man) => {
            let mut buffer = Vec::new();
            match clap_mangen::Man::new(Cli::command()).render(&mut buffer) {
                Ok(()) => write_stdout(&String::from_utf8_lossy(&buffer)),
                Err(error) => usage_error(&format!("cannot render the manual page: {error}")),
            }
        }
        Some(Command::Schema) => write_stdout(&anklumec::schema::to_json_string()),
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("anklumec: error: {message}");
    ExitCode::from(EXIT_USAGE)
}

/// Read the input, compile it, print the diagnostics.
fn load_and_compile(input: &InputArgs) -> Result<Compilation, ExitCode> {
    let Some(path) = &input.file else {
        return Err(usage_error("no input file: give the path of an infra.yml or an infra/ directory (see --help)"));
    };
    let options = Options { deny_warnings: input.deny_warnings };
    let compilation = if path.is_dir() {
        compile_split(read_split(path)?, options)
    } else {
        compile_source(&path.display().to_string(), read_text(path)?, options)
    };
    print_diagnostics(input, &compilation);
    Ok(compilation)
}

fn read_text(path: &Path) -> Result<String, ExitCode> {
    use std::io::Read;
    let cannot_read = |error: std::io::Error| usage_error(&format!("cannot read {}: {error}", path.display()));
    // Read at most one byte past the parser's limit: a larger input (a 2 GiB file,
    // /dev/zero) is refused by the parser's E0006 without sitting in memory whole.
    let limit = anklumec::syntax::yaml::Limits::default().max_bytes;
    let file = std::fs::File::open(path).map_err(cannot_read)?;
    // A buffer of the file's size from the start: grown by doubling, a 60 MB file
    // would take 128 MB for a moment. (A pipe or a device says 0 and grows.)
    let expected = file.metadata().map_or(0, |metadata| metadata.len()).min(limit as u64 + 1) as usize;
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(expected).map_err(|_| cannot_read(std::io::ErrorKind::OutOfMemory.into()))?;
    file.take(limit as u64 + 1).read_to_end(&mut bytes).map_err(cannot_read)?;
    let over_limit = bytes.len() > limit;
    String::from_utf8(bytes).or_else(|error| {
        if over_limit {
            // Only its size matters now, and the cut may fall inside a character.
            return Ok(String::from_utf8_lossy(error.as_bytes()).into_owned());
        }
        Err(usage_error(&format!(
            "{} is not UTF-8 text (invalid byte at offset {})",
            path.display(),
            error.utf8_error().valid_up_to()
        )))
    })
}

/// anklume's split layout: `base.yml`, `domains/*.yml` (in file-name order) and an
/// optional `policies.yml`.
fn read_split(directory: &Path) -> Result<SplitInput, ExitCode> {
    let named =
        |path: PathBuf| -> Result<(String, String), ExitCode> { Ok((path.display().to_string(), read_text(&path)?)) };
    let base = directory.join("base.yml");
    if !base.is_file() {
        return Err(usage_error(&format!(
            "{} is a directory without base.yml: an infra/ directory holds base.yml, domains/*.yml and policies.yml",
            directory.display()
        )));
    }
    let domain_paths: Vec<PathBuf> = match std::fs::read_dir(directory.join("domains")) {
        Ok(entries) => {
            let mut paths: Vec<PathBuf> = entries.flatten().map(|entry| entry.path()).collect();
            paths.sort();
            // A file that looks meant to be read but is not says so (on standard error,
            // like the diagnostics), rather than leaving a domain out without a word.
            for path in &paths {
                let extension = path.extension().and_then(|e| e.to_str());
                if extension == Some("yaml") {
                    eprintln!(
                        "anklumec: warning: {} is not read: domain files end in .yml (rename it to read it)",
                        path.display()
                    );
                } else if extension == Some("yml") && !path.is_file() {
                    eprintln!("anklumec: warning: {} is not read: it is not a file (a dangling link?)", path.display());
                }
            }
            paths.into_iter().filter(|path| path.is_file() && path.extension().is_some_and(|e| e == "yml")).collect()
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(error) => return Err(usage_error(&format!("cannot read {}/domains: {error}", directory.display()))),
    };
    let policies = directory.join("policies.yml");
    Ok(SplitInput {
        directory: directory.display().to_string(),
        base: named(base)?,
        domains: domain_paths.into_iter().map(named).collect::<Result<_, _>>()?,
        policies: if policies.is_file() { Some(named(policies)?) } else { None },
    })
}

fn print_diagnostics(input: &InputArgs, compilation: &Compilation) {
    let text = match input.message_format {
        MessageFormat::Json => render::to_json_lines(&compilation.sources, &compilation.diagnostics),
        MessageFormat::Sarif => render::to_sarif(&compilation.sources, &compilation.diagnostics),
        MessageFormat::Human => {
            let colour = match input.color {
                ColourChoice::Always => true,
                ColourChoice::Never => false,
                ColourChoice::Auto => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
            };
            let mut text = render::to_text(&compilation.sources, &compilation.diagnostics, colour);
            let errors = compilation.diagnostics.iter().filter(|d| d.is_error()).count();
            let warnings = compilation
                .diagnostics
                .iter()
                .filter(|d| d.severity == anklumec::diagnostics::Severity::Warning)
                .count();
            if errors > 0 || warnings > 0 {
                text.push_str(&format!("{errors} error(s), {warnings} warning(s)\n"));
            }
            text
        }
    };
    let _ = std::io::stderr().write_all(text.as_bytes());
}

fn exit_for(compilation: &Compilation) -> ExitCode {
    if compilation.has_errors() { ExitCode::from(EXIT_INPUT) } else { ExitCode::SUCCESS }
}

fn run_compile(args: &CompileArgs) -> ExitCode {
    if let (Some(input), Some(output)) = (&args.input.file, &args.output)
        && args.emit != Emit::Inventory
        && let Some(source) = source_at(input, output)
    {
        return usage_error(&format!(
            "-o {} names the source {}: the script would replace it; write it elsewhere (-o deploy.sh)",
            output.display(),
            source.display()
        ));
    }
    let compilation = match load_and_compile(&args.input) {
        Ok(compilation) => compilation,
        Err(code) => return code,
    };
    let Some(plan) = &compilation.plan else { return ExitCode::from(EXIT_INPUT) };
    if args.emit == Emit::Inventory {
        return write_inventory(plan, args.output.as_deref());
    }
    let rendered = match args.emit {
        Emit::Destroy => emit::destroy_script(plan),
        Emit::Nftables => Ok(emit::nftables_ruleset(plan)),
        _ => emit::deploy_script(plan),
    };
    let script = match rendered {
        Ok(script) => script,
        Err(error) => return usage_error(&error.to_string()),
    };
    let written = match args.output.as_deref() {
        None => write_stdout(&script),
        Some(path) if path == Path::new("-") => write_stdout(&script),
        Some(path) => match write_atomically(path, script.as_bytes(), true) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => usage_error(&format!("cannot write {}: {error}", path.display())),
        },
    };
    let source_bytes = compilation.sources.total_bytes();
    anklumec::compile::drop_soon((compilation, script), source_bytes);
    written
}

/// The source file `output` is, if it is one: the input file itself, or a `.yml` file of
/// an input directory (the same file, through any link or path).
fn source_at(input: &Path, output: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let target = std::fs::metadata(output).ok()?;
    let same = |path: &Path| std::fs::metadata(path).is_ok_and(|m| m.dev() == target.dev() && m.ino() == target.ino());
    if !input.is_dir() {
        return same(input).then(|| input.to_path_buf());
    }
    let mut candidates = vec![input.join("base.yml"), input.join("policies.yml")];
    if let Ok(entries) = std::fs::read_dir(input.join("domains")) {
        candidates.extend(entries.flatten().map(|entry| entry.path()));
    }
    candidates.into_iter().find(|path| same(path))
}

/// Write inventory.yml and site.yml into `directory`, each file complete or not at all.
fn write_inventory(plan: &anklumec::plan::Plan, directory: Option<&Path>) -> ExitCode {
    let Some(directory) = directory.filter(|d| *d != Path::new("-")) else {
        return usage_error("--emit inventory writes a directory: give it with -o DIR");
    };
    let files = match emit::inventory_files(plan) {
        Ok(files) => files,
        Err(error) => return usage_error(&error.to_string()),
    };
    if let Err(error) = std::fs::create_dir_all(directory) {
        return usage_error(&format!("cannot create {}: {error}", directory.display()));
    }
    for (name, text) in files {
        let path = directory.join(name);
        if let Err(error) = write_atomically(&path, text.as_bytes(), false) {
            return usage_error(&format!("cannot write {}: {error}", path.display()));
        }
    }
    ExitCode::SUCCESS
}

fn run_plan(input: &InputArgs, format: PlanFormat) -> ExitCode {
    let compilation = match load_and_compile(input) {
        Ok(compilation) => compilation,
        Err(code) => return code,
    };
    let Some(plan) = &compilation.plan else { return ExitCode::from(EXIT_INPUT) };
    let text = match format {
        PlanFormat::Text => emit::plan_text(plan),
        PlanFormat::Json => match serde_json::to_string_pretty(plan) {
            Ok(json) => json + "\n",
            Err(error) => return usage_error(&format!("cannot serialise the plan: {error}")),
        },
    };
    write_stdout(&text)
}

/// `anklumec apply`: exit 0 when everything converged, 1 when a step failed (or the
/// input has errors), 2 when the run could not begin, 130 when interrupted.
fn run_apply(input: &InputArgs, dry_run: bool, jobs: usize) -> ExitCode {
    use anklumec::run;
    let compilation = match load_and_compile(input) {
        Ok(compilation) => compilation,
        Err(code) => return code,
    };
    let Some(plan) = &compilation.plan else { return ExitCode::from(EXIT_INPUT) };
    let options = run::Options { jobs, dry_run, ..run::Options::default() };
    if let Err(error) = run::install_interrupt_handler(options.interrupt.clone()) {
        eprintln!("anklumec: warning: {error}");
    }
    let live;
    let reporter: &dyn run::progress::Reporter = if std::io::stderr().is_terminal() {
        live = run::progress::Live::new();
        &live
    } else {
        &run::progress::Plain
    };
    match run::apply(plan, &options, reporter) {
        Ok(report) if report.was_interrupted() => ExitCode::from(130),
        Ok(report) if report.ok() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(error) => usage_error(&error.to_string()),
    }
}

/// `anklumec destroy`: exit 0 when everything declared is gone or deliberately kept
/// (protected, still used: destroy.sh's rule), 1 when a removal failed (or the input has
/// errors), 2 when the run could not begin, 130 when interrupted.
fn run_destroy(input: &InputArgs, force: bool, dry_run: bool, jobs: usize) -> ExitCode {
    use anklumec::run;
    let compilation = match load_and_compile(input) {
        Ok(compilation) => compilation,
        Err(code) => return code,
    };
    let Some(plan) = &compilation.plan else { return ExitCode::from(EXIT_INPUT) };
    let options = run::destroy::DestroyOptions { force, dry_run, jobs, ..Default::default() };
    if let Err(error) = run::install_interrupt_handler(options.interrupt.clone()) {
        eprintln!("anklumec: warning: {error}");
    }
    match run::destroy::destroy(plan, &options, &run::progress::Plain) {
        Ok(report) if report.was_interrupted() => ExitCode::from(130),
        Ok(report) if report.ok() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(error) => usage_error(&error.to_string()),
    }
}

/// `anklumec diff`: exit 0 when the server matches the plan (what it holds and infra.yml
/// does not declare is listed, not counted), 1 when it drifts, 2 when the input has
/// errors or the state cannot be read.
fn run_diff(input: &InputArgs, format: PlanFormat) -> ExitCode {
    use anklumec::run::diff;
    let compilation = match load_and_compile(input) {
        Ok(compilation) => compilation,
        Err(_) => return ExitCode::from(EXIT_USAGE),
    };
    let Some(plan) = &compilation.plan else { return ExitCode::from(EXIT_USAGE) };
    let drift = match diff::diff(plan, None) {
        Ok(drift) => drift,
        Err(error) => return usage_error(&error.to_string()),
    };
    let text = match format {
        PlanFormat::Text => diff::render_text(&drift),
        PlanFormat::Json => diff::render_json(&drift),
    };
    let written = write_stdout(&text);
    if written != ExitCode::SUCCESS || !drift.iter().any(diff::Drift::is_managed) { written } else { ExitCode::from(1) }
}

fn write_stdout(text: &str) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`anklumec ... | head`) is not worth a message.
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => usage_error(&format!("cannot write to standard output: {error}")),
    }
}

/// Write `bytes` to `path` so that the file appears complete or not at all: write a
/// temporary file in the same directory, flush it to disk, then rename it over.
fn write_atomically(path: &Path, bytes: &[u8], executable: bool) -> std::io::Result<()> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path names no file"))?;
    let temporary = directory.join(format!(".{}.anklumec-{}.tmp", file_name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        if executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o755))?;
        }
        std::fs::rename(&temporary, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

fn explain(code: &str) -> ExitCode {
    match Code::lookup(code) {
        Some(code) => {
            write_stdout(&format!("{} ({}): {}\n\n{}\n", code.id, code.severity(), code.summary, code.explanation))
        }
        None => {
            let known: Vec<&str> = codes::ALL.iter().map(|code| code.id).collect();
            usage_error(&format!("unknown diagnostic code `{code}`; known codes: {}", known.join(", ")))
        }
    }
}
