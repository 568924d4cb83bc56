//! `nnc`: the command line. The only crate that prints; everything it shows is computed by the
//! libraries.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use nnc_compiler::render::{self, Style};
use nnc_compiler::report::{self, Report};
use nnc_compiler::{compile, Code, Compilation, Options, Root};

#[derive(Parser)]
#[command(name = "nnc", version, about = "A declarative model compiler for neural networks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and check models; print every layer's shape, parameters and multiply-adds.
    Check(CheckArgs),
}

#[derive(clap::Args)]
struct CheckArgs {
    /// The `.net` files to check.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Set a network parameter, e.g. `--set size=96` (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_override)]
    overrides: Vec<(String, String)>,
    /// Check only the network of this name.
    #[arg(long)]
    network: Option<String>,
    /// Collapse layers deeper than this many name segments (1 shows the top-level stages).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    depth: Option<u32>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// When to colour diagnostics.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

fn parse_override(s: &str) -> Result<(String, String), String> {
    let (name, value) = s.split_once('=').ok_or_else(|| format!("expected NAME=VALUE, got `{s}`"))?;
    let name = name.trim();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("`{name}` is not a parameter name"));
    }
    Ok((name.to_string(), value.trim().to_string()))
}

/// Exit codes: 0 checked, 1 model errors, 2 usage errors (as clap uses for its own).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Ok = 0,
    ModelError = 1,
    UsageError = 2,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(args) => check(&args),
    };
    match result {
        Ok(outcome) => ExitCode::from(outcome as u8),
        // A closed pipe (`nnc check ... | head`) is not an error worth a message.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(Outcome::ModelError as u8)
        }
    }
}

fn check(args: &CheckArgs) -> io::Result<Outcome> {
    let options =
        Options { overrides: args.overrides.clone(), network: args.network.clone(), ..Options::default() };
    let color = match args.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let style = if color { Style::Color } else { Style::Plain };
    let depth = args.depth.map(|d| d as usize);
    let mut stdout = io::stdout().lock();
    let mut outcome = Outcome::Ok;
    let mut json_files = Vec::new();
    for (i, path) in args.files.iter().enumerate() {
        let compilation = compile(Root::Path(path), &options);
        let reports: Vec<Report> = compilation.graphs.iter().map(|g| report::report(g, depth)).collect();
        let file_outcome = outcome_of(&compilation);
        outcome = outcome.max(file_outcome);
        match args.format {
            Format::Json => json_files.push(serde_json::json!({
                "file": path.display().to_string(),
                "ok": file_outcome == Outcome::Ok,
                "networks": reports,
                "diagnostics": render::to_json(&compilation.diagnostics, &compilation.sources),
            })),
            Format::Text => {
                if i > 0 {
                    writeln!(stdout)?;
                }
                for (j, r) in reports.iter().enumerate() {
                    if j > 0 {
                        writeln!(stdout)?;
                    }
                    write!(stdout, "{}", report::render_table(r))?;
                }
                if compilation.networks_defined == 0 && compilation.diagnostics.is_empty() {
                    writeln!(
                        stdout,
                        "{}: no network to check (the file defines only blocks)",
                        path.display()
                    )?;
                }
                let diags = &compilation.diagnostics;
                if !diags.is_empty() {
                    stdout.flush()?;
                    let mut stderr = io::stderr().lock();
                    write!(stderr, "{}", render::render(diags, &compilation.sources, style))?;
                    let plural = if diags.len() == 1 { "" } else { "s" };
                    writeln!(
                        stderr,
                        "error: could not check `{}` ({} error{plural})",
                        path.display(),
                        diags.len()
                    )?;
                }
            }
        }
    }
    if let Format::Json = args.format {
        serde_json::to_writer_pretty(&mut stdout, &json_files).map_err(io::Error::other)?;
        writeln!(stdout)?;
    }
    Ok(outcome)
}

fn outcome_of(compilation: &Compilation) -> Outcome {
    let diags = &compilation.diagnostics;
    // Arguments that do not parse, and a root file that cannot be read, are usage errors.
    let usage = diags.iter().any(|d| d.code == Code::Usage || (d.code == Code::Io && d.labels.is_empty()));
    if usage {
        Outcome::UsageError
    } else if diags.is_empty() {
        Outcome::Ok
    } else {
        Outcome::ModelError
    }
}
