//! `nnc fmt`: files, folders (their `.net` files) or standard input in the canonical layout of
//! `nnc_grammar::format`. A file is rewritten atomically (a temporary file in its folder, then a
//! rename), and only if its layout changes; `--check` writes nothing and prints, for each file
//! that would change, a unified diff. A file that does not parse is reported as `nnc check`
//! reports it and left as it is.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use nnc_compiler::back::render::{self, Style};
use nnc_compiler::input::{self, InputError};
use nnc_compiler::{syntax_diagnostics, SourceMap, MAX_FILE_BYTES};
use nnc_grammar::format::{format, FormatError};

use crate::{net_files, read_stdin, stderr_style, write_output, ColorChoice, Outcome};

#[derive(clap::Args)]
pub struct FmtArgs {
    /// The `.net` files to format, folders (every `.net` file under them), or `-` for standard
    /// input, written formatted to standard output.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Write nothing: print a diff for each file whose layout would change, and exit with 1 if
    /// any would (for CI).
    #[arg(long)]
    pub check: bool,
    /// Colour diagnostics: `auto` (when stderr is a terminal and NO_COLOR is unset), `always`, `never`.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

/// What happened to one file.
enum Done {
    Unchanged,
    Changed,
    /// It does not parse, or is not UTF-8: a model error (exit 1), as `nnc check` has it.
    Failed,
    /// It cannot be read (missing, a FIFO, over the limit): a usage error (exit 2),
    /// as `nnc check` has it, which `--check` in CI must not take for "needs formatting".
    Unreadable,
}

pub fn fmt(args: &FmtArgs) -> io::Result<Outcome> {
    let style = stderr_style(args.color);
    let mut files = Vec::new();
    let mut outcome = Outcome::Ok;
    for path in &args.files {
        if path.as_os_str() == "-" {
            files.push(path.clone());
        } else if path.is_dir() {
            if let Err(e) = net_files(path, &mut files) {
                eprintln!("error: cannot list `{}`: {e}", path.display());
                outcome = outcome.max(Outcome::UsageError);
            }
        } else {
            files.push(path.clone());
        }
    }
    let mut changed = Vec::new();
    for path in &files {
        let done =
            if path.as_os_str() == "-" { stdin(args.check, style)? } else { file(path, args.check, style)? };
        match done {
            Done::Unchanged => {}
            Done::Changed => changed.push(path.display().to_string()),
            Done::Failed => outcome = outcome.max(Outcome::ModelError),
            Done::Unreadable => outcome = outcome.max(Outcome::UsageError),
        }
    }
    if args.check && !changed.is_empty() {
        let count = changed.len();
        eprintln!(
            "error: {count} file{} not formatted (`nnc fmt` would change {})",
            if count == 1 { " is" } else { "s are" },
            changed.join(", ")
        );
        outcome = outcome.max(Outcome::ModelError);
    }
    Ok(outcome)
}

fn stdin(check: bool, style: Style) -> io::Result<Done> {
    // Over the limit or not UTF-8: refused before it is read as a model, as `check -` does.
    let Some(text) = read_stdin()? else {
        return Ok(Done::Unreadable);
    };
    let Some(formatted) = formatted("<stdin>", None, &text, style) else {
        return Ok(Done::Failed);
    };
    if check {
        if formatted == text {
            return Ok(Done::Unchanged);
        }
        print_diff("<stdin>", &text, &formatted)?;
        return Ok(Done::Changed);
    }
    io::stdout().lock().write_all(formatted.as_bytes())?;
    Ok(if formatted == text { Done::Unchanged } else { Done::Changed })
}

fn file(path: &Path, check: bool, style: Style) -> io::Result<Done> {
    let name = path.display().to_string();
    let bytes = match input::read_regular(path, MAX_FILE_BYTES) {
        // A byte-order mark first is dropped: the canonical layout has none.
        Ok(bytes) => input::without_bom(bytes),
        Err(InputError::Io(e)) => {
            eprintln!("error: `{name}` cannot be read: {e}");
            return Ok(Done::Unreadable);
        }
        Err(e) => {
            eprintln!("error: `{name}` {e}");
            return Ok(Done::Unreadable);
        }
    };
    let Ok(text) = String::from_utf8(bytes) else {
        eprintln!("error: `{name}` is not UTF-8; `nnc check` shows where");
        return Ok(Done::Failed);
    };
    let Some(formatted) = formatted(&name, Some(path), &text, style) else {
        return Ok(Done::Failed);
    };
    if formatted == text {
        return Ok(Done::Unchanged);
    }
    if check {
        print_diff(&name, &text, &formatted)?;
    } else {
        write_output(path, formatted.as_bytes())?;
    }
    Ok(Done::Changed)
}

/// The formatted text, or `None` after reporting why there is none.
fn formatted(name: &str, path: Option<&Path>, text: &str, style: Style) -> Option<String> {
    match format(text) {
        Ok(formatted) => Some(formatted),
        Err(FormatError::Syntax(errors)) => {
            let mut sources = SourceMap::new();
            let id = sources.add(name, path.map(Path::to_path_buf), text.to_string());
            let diags = syntax_diagnostics(id, errors);
            let count = diags.len();
            eprint!("{}", render::render(&diags, &sources, style));
            eprintln!(
                "error: could not format `{name}` ({count} syntax error{}); it is left as it is",
                if count == 1 { "" } else { "s" }
            );
            None
        }
        Err(FormatError::Internal(why)) => {
            eprintln!("error: `{name}` is left as it is: {why} (a bug of `nnc fmt`; please report it)");
            None
        }
    }
}

/// The unified diff of a file and its layout, shown as diagnostics show a file: nothing of it
/// that would act on a terminal (an escape sequence in a comment) is written as it is. A file of
/// lone `\r` line ends is split into the lines an editor shows first, as `similar` would split
/// it too, but then each line's `\r` would send the cursor back over the line before it.
fn print_diff(name: &str, old: &str, new: &str) -> io::Result<()> {
    let (old, new) = (nnc_grammar::unify_line_ends(old), nnc_grammar::unify_line_ends(new));
    let diff = similar::TextDiff::from_lines(&*old, &*new);
    let header = format!("{name} (formatted)");
    let shown = diff.unified_diff().context_radius(3).header(name, &header).to_string();
    write!(io::stdout().lock(), "{}", render::printable(&shown))
}
