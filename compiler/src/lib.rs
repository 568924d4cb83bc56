//! The nnc compiler: loads `.net` files and their imports, expands blocks and repeats,
//! infers and checks every shape, and produces one IR graph per network, with every problem
//! reported as a [`Diagnostic`]. Nothing here prints or links libtorch.
//!
//! ```
//! use nnc_compiler::{compile, Options, Root};
//! let src = "network tiny { input [N, 1, 8, 8]\n conv2d(4, 3, padding=1) -> relu }";
//! let out = compile(Root::Text { name: "tiny.net", text: src, dir: None }, &Options::default());
//! assert!(out.diagnostics.is_empty());
//! assert_eq!(out.graphs[0].node(out.graphs[0].output()).shape.to_string(), "[N, 4, 8, 8]");
//! ```

// Shape errors carry their message, notes and hint; they are made once per mistake, off the hot
// path, so their size costs nothing worth a box.
#![allow(clippy::result_large_err)]

pub mod back;
pub mod diagnostic;
pub mod explain;
pub mod free;
mod front;
pub mod input;
pub mod ir;
pub mod ops;
pub mod output;
pub mod rng;
mod shape;
pub mod size;
pub mod snapshot;
mod source;
pub mod trace;

use std::collections::HashMap;
use std::sync::Arc;

pub use diagnostic::{Code, Diagnostic, Severity};
pub use explain::Explanation;
pub use front::expand::Limits;
pub use front::load::{syntax_diagnostics, ParseCache, Root, MAX_FILE_BYTES, RESERVED, STD_MODULES};
pub use ir::Graph;
use nnc_grammar::Span;
pub use shape::{Batch, Shape, Window};
pub use source::{FileId, Loc, SourceMap};

use crate::diagnostic::did_you_mean;
use crate::front::expand::lints::apply_lint_levels;
use crate::front::expand::Expander;
use crate::front::value::Value;

/// How to compile.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Network parameters set from outside, as `(name, expression)`: `("size", "96")`.
    pub overrides: Vec<(String, String)>,
    /// Only the network of this name; all of the root file's networks if `None`.
    pub network: Option<String>,
    pub limits: Limits,
    /// `--deny warnings`: every warning is an error, and its network has no graph.
    pub deny_warnings: bool,
    /// `--allow W0001`: warnings of these codes are not reported.
    pub allow: Vec<Code>,
    /// Keep what each expression evaluated to ([`Compilation::expansions`]), for an editor.
    pub trace: bool,
    /// What diagnostics call the source of [`Options::overrides`]; [`OVERRIDES_SOURCE`] if
    /// `None`. `model!` names its arguments so.
    pub overrides_name: Option<String>,
}

/// The outcome of a compilation: the sources (for rendering), a graph for each network that
/// checked, and every diagnostic.
pub struct Compilation {
    pub sources: SourceMap,
    pub graphs: Vec<Graph>,
    pub diagnostics: Vec<Diagnostic>,
    /// How many networks the root file defines (selected or not).
    pub networks_defined: usize,
    /// With [`Options::trace`]: each selected network as far as it expanded, errors or not.
    pub expansions: Vec<trace::Expansion>,
    /// The syntax tree of each file, by `FileId`; `None` for a file that could not be read or
    /// is no `.net` file (the `--set` overrides).
    pub trees: Vec<Option<Arc<nnc_grammar::ast::File>>>,
    /// The names of [`Options::overrides`] that no selected network has (each also an error
    /// among the diagnostics), so that a caller checking several files can tell them apart.
    pub unknown_overrides: Vec<String>,
    /// Whether [`Options::network`] names no network of the file (also an error).
    pub network_missing: bool,
}

impl Compilation {
    /// Whether some diagnostic is an error (a warning is not, unless denied).
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// Whether some diagnostic is about the command-line arguments rather than the model.
    pub fn has_usage_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.code == Code::Usage)
    }
}

/// The name of the source that holds `--set` overrides, so that their errors render too.
pub const OVERRIDES_SOURCE: &str = "<--set>";

/// The layers one expanded network may have (`Limits::max_nodes` by default); a rule that would
/// make more at once (`split` into pieces of 1) refuses before it makes them.
pub const MAX_LAYERS: usize = 100_000;

/// Compiles a root file and everything it imports.
pub fn compile(root: Root, options: &Options) -> Compilation {
    compile_with(root, options, None)
}

/// [`compile`], taking the parse of each file whose text `cache` has seen from it, and
/// keeping the others' there: for a caller that compiles again after each edit.
pub fn compile_cached(root: Root, options: &Options, cache: &mut ParseCache) -> Compilation {
    compile_with(root, options, Some(cache))
}

fn compile_with(root: Root, options: &Options, cache: Option<&mut ParseCache>) -> Compilation {
    let mut sources = SourceMap::new();
    let (program, mut diagnostics) = front::load::load(&mut sources, root, cache);
    let networks_defined = program.networks.len();
    let load_failed = !diagnostics.is_empty();

    let overrides_name = options.overrides_name.as_deref().unwrap_or(OVERRIDES_SOURCE);
    let overrides =
        parse_overrides(&options.overrides, overrides_name, &mut sources, &program, &mut diagnostics);
    let selected: Vec<_> = program
        .networks
        .iter()
        .copied()
        .filter(|&n| options.network.as_ref().is_none_or(|want| program.definition(n).name.name == *want))
        .collect();
    let network_missing = options.network.is_some() && selected.is_empty();
    let mut unknown_overrides = Vec::new();
    if let Some(want) = &options.network {
        if selected.is_empty() {
            let names: Vec<&str> =
                program.networks.iter().map(|&n| program.definition(n).name.name.as_str()).collect();
            let d = Diagnostic::error(Code::Usage, format!("no network named `{want}`"))
                .maybe_hint(did_you_mean(want, names.iter().copied()))
                .note(format!(
                    "the file defines {}",
                    if names.is_empty() { "no network".into() } else { names.join(", ") }
                ));
            diagnostics.push(d);
        }
    }
    for (name, (_, loc)) in &overrides {
        let known = selected.iter().any(|&n| {
            let def = program.definition(n);
            def.params.iter().any(|p| p.name.name == *name) || free::declared_names(def).contains(name)
        });
        if !known && !selected.is_empty() {
            unknown_overrides.push(name.clone());
            // Each name once, in the order the networks declare them.
            let (mut params, mut sizes) = (Vec::<String>::new(), Vec::<String>::new());
            for &n in &selected {
                let def = program.definition(n);
                for p in &def.params {
                    if !params.contains(&p.name.name) {
                        params.push(p.name.name.clone());
                    }
                }
                for size in free::declared_names(def) {
                    if !sizes.contains(&size) {
                        sizes.push(size);
                    }
                }
            }
            let shown = |names: &[String]| if names.is_empty() { "none".into() } else { names.join(", ") };
            let d = Diagnostic::error(
                Code::Usage,
                format!("no network here has a parameter or free size `{name}`"),
            )
            .primary(*loc, "unknown parameter")
            .maybe_hint(did_you_mean(name, params.iter().chain(&sizes).map(String::as_str)))
            .note(match sizes.is_empty() {
                true => format!("the parameters are: {}", shown(&params)),
                false => {
                    format!("the parameters are: {}; the free sizes: {}", shown(&params), sizes.join(", "))
                }
            });
            diagnostics.push(d);
        }
    }

    let mut graphs = Vec::new();
    let mut expansions = Vec::new();
    // Overrides that did not parse leave no graph worth building.
    if !diagnostics.iter().any(|d| d.code == Code::Usage) {
        for (file, index) in selected {
            let def = program.definition((file, index));
            let given: HashMap<&str, Value> =
                overrides.iter().map(|(k, (v, _))| (k.as_str(), v.clone())).collect();
            let (set, mut diags) = free_values(def, &overrides);
            let expand = |probe: u64, traced: bool| {
                Expander::new(&program, options.limits)
                    .traced(traced)
                    .free_sizes(set.clone(), probe)
                    .network(file, def, &given)
            };
            let (mut graph, mut more, mut expansion) = expand(free::PROBES[0], options.trace);
            let unset: Vec<String> =
                free::declared_names(def).into_iter().filter(|n| !set.contains_key(n)).collect();
            // A network that takes only sizes of another residue class than the first probe's
            // (`H % 256 == 0`, `H % 16 == 12`) is expanded at the next probe that fits.
            let (mut probe, mut step) = (free::PROBES[0], free::PROBES[1] - free::PROBES[0]);
            if graph.is_none() && !unset.is_empty() && more.iter().any(probe_dependent) {
                let fits = |(p, base)| {
                    let found = expand(p, false);
                    found.0.is_some().then_some((p, base, found))
                };
                if let Some((p, base, found)) = free::probes().find_map(fits) {
                    // Traced for an editor, the expansion that checked is run again to keep its values.
                    (graph, more, expansion) = if options.trace { expand(p, true) } else { found };
                    (probe, step) = (p, base);
                }
            }
            diags.extend(more);
            expansions.extend(expansion);
            let graph = match graph {
                Some(mut graph) if graph.free.is_some() => {
                    // The same network at the second probe, in the first's residue class.
                    let (other, other_diags, _) = expand(probe + step, false);
                    let (names, reads) = graph.free.take().map(|f| (f.names, f.reads)).unwrap_or_default();
                    let declared = declared(&program, &sources, file, def, options.limits, &set);
                    match other.ok_or(other_diags).and_then(|other| {
                        let mut sizes = free::analyse(&graph, &other, names, reads, [probe, probe + step])
                            .map_err(|d| vec![d])?;
                        free::check_declared(&graph, &mut sizes, &declared).map_err(|d| vec![d])?;
                        Ok(sizes)
                    }) {
                        Ok(sizes) => {
                            let sizes = Box::new(sizes);
                            if let Some(expansion) =
                                expansions.last_mut().filter(|e| e.network == def.name.name)
                            {
                                expansion.free = Some(sizes.clone());
                            }
                            graph.free = Some(sizes);
                            Some(graph)
                        }
                        Err(errors) => {
                            let errors = errors.into_iter().filter(Diagnostic::is_error);
                            diags.extend(errors.map(|d| {
                                if probe_dependent(&d) {
                                    probed(d, &unset, probe + step)
                                } else {
                                    d
                                }
                            }));
                            None
                        }
                    }
                }
                // Sizes given with `--set` must meet the network's `where`.
                Some(graph) if unset.is_empty() && !set.is_empty() => {
                    let values: Vec<(String, i64)> =
                        set.iter().map(|(k, &v)| (k.clone(), v as i64)).collect();
                    let unmet = declared(&program, &sources, file, def, options.limits, &set)
                        .into_iter()
                        .find(|d| (d.holds)(&values) != Ok(true));
                    match unmet {
                        Some(d) => {
                            let mut shown: Vec<String> =
                                values.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                            shown.sort();
                            diags.push(
                                Diagnostic::error(
                                    Code::FreeSize,
                                    format!("{} does not meet `where {}`", shown.join(", "), d.text),
                                )
                                .primary(d.loc, "the sizes the network is meant for"),
                            );
                            None
                        }
                        None => Some(graph),
                    }
                }
                graph => graph,
            };
            if !unset.is_empty() && graph.is_none() {
                diags = diags
                    .into_iter()
                    .map(|d| if probe_dependent(&d) { probed(d, &unset, probe) } else { d })
                    .collect();
            }
            let set_here: Vec<(&str, Loc)> = def
                .params
                .iter()
                .filter_map(|p| overrides.get(&p.name.name).map(|(_, loc)| (p.name.name.as_str(), *loc)))
                .collect();
            diags = diags.into_iter().map(|d| blame_overrides(d, &sources, &set_here)).collect();
            apply_lint_levels(&mut diags, options.deny_warnings, &options.allow);
            if !diags.iter().any(Diagnostic::is_error) {
                graphs.extend(graph);
            }
            diagnostics.extend(diags);
        }
    }
    // A file-level error (syntax, imports) may hide blocks a network would use: no graph is
    // trustworthy then, even if its network expanded.
    if load_failed {
        graphs.clear();
    }
    let trees = program.into_trees();
    Compilation {
        sources,
        graphs,
        diagnostics,
        networks_defined,
        expansions,
        trees,
        unknown_overrides,
        network_missing,
    }
}

/// A network's `where` conditions, each evaluated with the free sizes bound, those `--set`
/// gave (`set`) among them.
fn declared<'a>(
    program: &'a front::load::Program,
    sources: &SourceMap,
    file: FileId,
    def: &'a nnc_grammar::ast::Definition,
    limits: Limits,
    set: &HashMap<String, u64>,
) -> Vec<free::Declared<'a>> {
    let fixed: Vec<(String, Value)> = set.iter().map(|(k, &v)| (k.clone(), Value::Int(v as i64))).collect();
    def.body
        .iter()
        .filter_map(|stmt| match stmt {
            nnc_grammar::ast::Stmt::Where { condition, .. } => {
                let loc = Loc::new(file, condition.span);
                let fixed = fixed.clone();
                let holds = move |values: &[(String, i64)]| {
                    let given = values.iter().map(|(k, v)| (k.clone(), Value::Int(*v)));
                    let vars: Vec<(String, Value)> = fixed.iter().cloned().chain(given).collect();
                    Expander::new(program, limits).condition(file, condition, &vars)
                };
                Some(free::Declared { text: sources.snippet(loc).to_string(), loc, holds: Box::new(holds) })
            }
            _ => None,
        })
        .collect()
}

/// The `--set` values of a network's free sizes (`--set H=64`), each a positive integer.
fn free_values(
    def: &nnc_grammar::ast::Definition,
    overrides: &HashMap<String, (Value, Loc)>,
) -> (HashMap<String, u64>, Vec<Diagnostic>) {
    let mut values = HashMap::new();
    let mut diags = Vec::new();
    for name in free::declared_names(def) {
        match overrides.get(&name) {
            Some((Value::Int(v), _)) if *v >= 1 => {
                values.insert(name, *v as u64);
            }
            Some((v, loc)) => diags.push(
                Diagnostic::error(Code::Usage, format!("`--set {name}=` needs a positive integer, not {v}"))
                    .primary(*loc, "a free size of an input"),
            ),
            None => {}
        }
    }
    (values, diags)
}

/// An error at an expression that names a parameter given with `--set` (or as an argument of
/// `model!`) also points at the setting: the value at fault came from there, and the error's
/// place in the file alone does not say so (`--set size=3.5` is "expected an integer" at
/// `size` in `input`).
fn blame_overrides(d: Diagnostic, sources: &SourceMap, set: &[(&str, Loc)]) -> Diagnostic {
    let Some(at) = d.primary_loc() else { return d };
    let text = sources.snippet(at);
    let names = |name: &str| {
        text.match_indices(name).any(|(i, _)| {
            let word = |c: char| c.is_alphanumeric() || c == '_';
            !text[..i].ends_with(word) && !text[i + name.len()..].starts_with(word)
        })
    };
    set.iter()
        .filter(|(name, _)| names(name))
        .fold(d, |d, (name, loc)| d.secondary(*loc, format!("`{name}` is set here")))
}

/// Whether an error may come from the free sizes' probe values: a shape error.
fn probe_dependent(d: &Diagnostic) -> bool {
    d.is_error()
        && matches!(
            d.code,
            Code::SizeTooSmall
                | Code::AddMismatch
                | Code::ConcatMismatch
                | Code::ShapeMismatch
                | Code::Arithmetic
        )
}

/// An error met with the free sizes at a probe, which says so: the size it failed at is
/// the probe's, not one the user chose.
fn probed(d: Diagnostic, names: &[String], probe: u64) -> Diagnostic {
    d.note(format!(
        "nnc checks a network with free sizes ({}) at {} = {probe} first (and at other sizes, \
         where that fails); `--set` checks another size",
        names.join(", "),
        names.join(" = "),
    ))
}

/// Parses and evaluates `name=expr` overrides into constant values.
fn parse_overrides(
    raw: &[(String, String)],
    source: &str,
    sources: &mut SourceMap,
    program: &front::load::Program,
    diagnostics: &mut Vec<Diagnostic>,
) -> HashMap<String, (Value, Loc)> {
    let mut out = HashMap::new();
    if raw.is_empty() {
        return out;
    }
    let text: String = raw.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    let file = sources.add(source, None, text);
    // `--set size=9 6` on the command line; `size = 9 6` in `model!`.
    let flag = if source == OVERRIDES_SOURCE { "--set " } else { "" };
    let mut offset = 0;
    for (name, expr) in raw {
        let name_span = Span::new(offset, offset + name.len());
        let expr_start = offset + name.len() + 1;
        offset = expr_start + expr.len() + 1;
        let loc = Loc::new(file, name_span);
        // Parsed at its offset in the overrides source, so that spans point into it.
        match nnc_grammar::parse_expr(&format!("{}{expr}", " ".repeat(expr_start))) {
            Ok(e) => match Expander::new(program, Limits::default()).constant(file, &e) {
                Ok(v) => {
                    out.insert(name.clone(), (v, loc));
                }
                Err(ds) => diagnostics.extend(ds.into_iter().map(|mut d| {
                    d.code = Code::Usage;
                    d
                })),
            },
            Err(e) => {
                diagnostics.push(
                    Diagnostic::error(
                        Code::Usage,
                        format!("cannot read `{flag}{name}={expr}`: {}", e.message),
                    )
                    .primary(Loc::new(file, e.span), e.label),
                );
            }
        }
    }
    out
}
