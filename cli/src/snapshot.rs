//! `nnc snapshot`: pins each model's inferred shapes, parameters and multiply-adds in an
//! insta-compatible snapshot file (`snapshots/<model>.snap` beside the model), so that a
//! change of shape fails CI. `--check` compares instead of writing: a model whose table
//! changed gets a pending `.snap.new` beside its snapshot (which `cargo insta review` shows and
//! accepts, or `nnc snapshot` without `--check` accepts) and a diff, and the command exits 1.
//! No libtorch: the table is the checker's (`nnc_compiler::snapshot`).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use nnc_compiler::back::render;
use nnc_compiler::{compile, snapshot, Root};

use crate::{net_files, stderr_style, write_output, ColorChoice, LintArgs, Outcome};

#[derive(clap::Args)]
pub struct SnapshotArgs {
    /// The `.net` files, or folders (every `.net` file under them).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Write nothing but pending `.snap.new` files: exit 1 if any model's table differs from
    /// its snapshot, or has none (for CI).
    #[arg(long)]
    pub check: bool,
    /// Set a network parameter, e.g. `--set size=96` (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = crate::parse_override)]
    pub overrides: Vec<(String, String)>,
    #[command(flatten)]
    pub lints: LintArgs,
    /// When to colour diagnostics: `auto` (when stderr is a terminal and NO_COLOR is unset),
    /// `always`, `never`.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

/// The snapshot file of a model: `models/lenet.net` → `models/snapshots/lenet.snap`.
pub fn snapshot_path(model: &Path) -> PathBuf {
    let stem = model.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    model.with_file_name("snapshots").join(format!("{stem}.snap"))
}

/// The file insta writes: a header of metadata between `---` lines, then the contents.
fn insta_file(model: &Path, contents: &str) -> String {
    format!("---\nsource: {}\nexpression: nnc snapshot\n---\n{}\n", model.display(), contents.trim_end())
}

/// The contents of an insta snapshot file, after its header.
fn insta_contents(file: &str) -> Option<&str> {
    let rest = file.strip_prefix("---\n")?;
    let end = rest.find("\n---\n")?;
    Some(rest[end + 5..].trim_end())
}

pub fn snapshot(args: &SnapshotArgs) -> io::Result<Outcome> {
    let options = args.lints.options(&args.overrides, &None);
    let mut models = Vec::new();
    let mut outcome = Outcome::Ok;
    for path in &args.paths {
        match path.is_dir() {
            true => {
                if let Err(e) = net_files(path, &mut models) {
                    eprintln!("error: cannot list `{}`: {e}", path.display());
                    outcome = Outcome::ModelError;
                }
            }
            false => models.push(path.clone()),
        }
    }
    let mut out = io::stdout().lock();
    let (mut changed, mut missing, mut written) = (0, 0, 0);
    for model in &models {
        let compilation = compile(Root::Path(model), &options);
        let contents = match snapshot::of(&compilation) {
            Ok(contents) => contents,
            Err(_) => {
                // The snapshot records diagnostics plain; the terminal gets them as asked.
                let style = stderr_style(args.color);
                eprint!("{}", render::render(&compilation.diagnostics, &compilation.sources, style));
                eprintln!("error: `{}` does not check, so it has no snapshot", model.display());
                outcome = Outcome::ModelError;
                continue;
            }
        };
        let file = snapshot_path(model);
        let pending = file.with_extension("snap.new");
        let old = fs::read_to_string(&file).ok();
        let same = old.as_deref().and_then(insta_contents) == Some(contents.trim_end());
        if args.check {
            if same {
                remove_stale(&pending)?;
                continue;
            }
            write_file(&pending, &insta_file(model, &contents))?;
            match old.as_deref().and_then(insta_contents) {
                Some(before) => {
                    changed += 1;
                    writeln!(out, "{} changed (pending: {})", model.display(), pending.display())?;
                    let (before, after) = (format!("{before}\n"), format!("{}\n", contents.trim_end()));
                    let diff = similar::TextDiff::from_lines(&before, &after);
                    write!(
                        out,
                        "{}",
                        diff.unified_diff().context_radius(2).header(&file.display().to_string(), "new")
                    )?;
                }
                None => {
                    missing += 1;
                    writeln!(out, "{} has no snapshot (pending: {})", model.display(), pending.display())?
                }
            }
        } else if !same {
            write_file(&file, &insta_file(model, &contents))?;
            remove_stale(&pending)?;
            written += 1;
            writeln!(out, "wrote {}", file.display())?;
        } else {
            remove_stale(&pending)?;
        }
    }
    if args.check && changed + missing > 0 {
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        let what = match (changed, missing) {
            (c, 0) => format!("{c} snapshot{} changed", plural(c)),
            (0, m) => format!("{m} model{} without a snapshot", plural(m)),
            (c, m) => format!("{c} snapshot{} changed and {m} model{} without one", plural(c), plural(m)),
        };
        eprintln!(
            "error: {what}; review with `cargo insta review`, or accept all with `nnc snapshot` (without --check)"
        );
        outcome = outcome.max(Outcome::ModelError);
    } else if !args.check && written == 0 && outcome == Outcome::Ok {
        writeln!(out, "every snapshot is up to date")?;
    }
    Ok(outcome)
}

/// Writes a snapshot atomically ([`write_output`]), creating the `snapshots` folder.
fn write_file(path: &Path, text: &str) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot make the folder `{}`: {e}", dir.display()))
        })?;
    }
    write_output(path, text.as_bytes())
}

/// Removes a pending snapshot that no longer differs.
fn remove_stale(pending: &Path) -> io::Result<()> {
    match fs::remove_file(pending) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
