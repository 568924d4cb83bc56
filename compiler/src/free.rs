//! Free sizes: a network checked for every input size at once (`input [N, 3, H, W]`).
//!
//! The expander checks the network twice, with each free name at one of two probe sizes
//! ([`PROBES`], highly divisible, so that a network that needs its sizes divisible by a power
//! of two, or by 3, 5 or 7, checks there; where a shape error stops the first, at the first of
//! [`probes`] that checks), and every layer must be the same at both: a layer whose attributes
//! or parameters depend on a free size (a `linear` after a `flatten` of one) cannot take every
//! size. No value may be read from a size that depends on a free one ([`SizeRead`]), and a
//! layer without a rule for free sizes refuses them, so nothing can make the layers differ at
//! sizes the probes do not show. Then each layer's sizes are computed again as expressions of
//! the free names ([`crate::size::Size`]), by its [`Layer::free_sizes`], which also states
//! what it needs of them (two sizes equal, a size that broadcasts); every size must be at
//! least 1. Each expression is checked against the sizes of both probes, so a rule that
//! disagrees with its layer's shape rule is an error, never a wrong table.
//!
//! The needs are then solved, for each name alone: every size is affine in `t` on each
//! residue class `x = b + M·t` of a period `M` of its floors, so each need holds on an
//! interval of `t`, on a point, everywhere or nowhere, and the valid set is exact: a modulus,
//! the residues allowed, a lower bound, and the few sizes below it that also work.
//!
//! [`Layer::free_sizes`]: crate::ops::Layer::free_sizes

use std::collections::{BTreeSet, HashSet};
use std::fmt;

use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{Graph, NodeId};
use crate::size::{lcm, Size};
use crate::source::Loc;

/// The sizes each free name takes in the two checks: highly divisible (2⁶·3²·5·7 and twice
/// that), and small enough that no count overflows.
pub const PROBES: [u64; 2] = [20_160, 40_320];

/// The probes tried where the first fails, each with the step to its second probe: the two
/// bases (the second is 2⁸·3²·5·7·11, for networks that need sizes divisible by 256 or 11)
/// plus an offset below 16, for networks that take one residue class other than 0
/// (`H % 16 == 12`, an unpadded U-Net's).
pub fn probes() -> impl Iterator<Item = (u64, u64)> {
    const BASES: [u64; 2] = [PROBES[0], 887_040];
    (0..16u64).flat_map(|r| BASES.iter().map(move |&b| (b + r, b))).skip(1)
}

/// The largest period the solver enumerates.
const MAX_PERIOD: u64 = 1 << 16;

/// A free size of an input declaration: `H` in `input [N, 3, H, W]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FreeName {
    pub name: String,
    /// The input node, and the position of the size after the batch.
    pub input: NodeId,
    pub axis: usize,
}

/// A size the network read into a value (`in.height`, `_.shape`): the node, the sizes'
/// positions after its batch, and where. None may depend on a free size, or the layers built
/// from the value could differ between sizes in ways two probes do not show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SizeRead {
    pub node: NodeId,
    pub axes: Vec<usize>,
    pub at: Loc,
}

/// What a layer needs of its sizes for some value of the free names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Need {
    /// Two sizes that must be equal (`cat`, a residual `+`).
    Equal(Size, Size),
    /// The first must equal the second, a known size, or be 1 (PyTorch's broadcasting).
    Broadcast(Size, Size),
    /// A size that must be at least 1.
    Positive(Size),
}

impl Need {
    /// The sizes of which one must be zero (`Positive` aside).
    fn zeros(&self) -> Option<Vec<Size>> {
        match self {
            Need::Equal(a, b) => Some(vec![a.sub(b)?]),
            Need::Broadcast(a, b) => Some(vec![a.sub(b)?, a.add_known(-1)?]),
            Need::Positive(_) => None,
        }
    }

    fn sizes(&self) -> Vec<&Size> {
        match self {
            Need::Equal(a, b) | Need::Broadcast(a, b) => vec![a, b],
            Need::Positive(a) => vec![a],
        }
    }

    /// Whether it holds with each name given by `value`.
    pub fn holds(&self, value: &dyn Fn(&str) -> Option<i64>) -> Option<bool> {
        Some(match self {
            Need::Equal(a, b) => a.eval(value)? == b.eval(value)?,
            Need::Broadcast(a, b) => {
                let a = a.eval(value)?;
                a == b.eval(value)? || a == 1
            }
            Need::Positive(a) => a.eval(value)? >= 1,
        })
    }
}

impl Need {
    /// The Rust expression that is true where the need holds, each name given by `var`.
    pub fn to_rust(&self, var: &dyn Fn(&str) -> proc_macro2::TokenStream) -> proc_macro2::TokenStream {
        match self {
            Need::Equal(a, b) => {
                let (a, b) = (a.to_rust(var), b.to_rust(var));
                quote::quote! { #a == #b }
            }
            Need::Broadcast(a, b) => {
                let (a, b) = (a.to_rust(var), b.to_rust(var));
                quote::quote! { { let a: i64 = #a; a == #b || a == 1 } }
            }
            Need::Positive(a) => {
                let a = a.to_rust(var);
                quote::quote! { #a >= 1 }
            }
        }
    }
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Need::Equal(a, b) => write!(f, "{a} = {b}"),
            Need::Broadcast(a, b) => write!(f, "{a} = {b}, or 1"),
            Need::Positive(a) => write!(f, "{a} ≥ 1"),
        }
    }
}

/// Collects what one layer's rule needs.
#[derive(Default)]
pub struct Needs {
    list: Vec<Need>,
    /// Sizes at least 1 whenever the inputs' are: no need of their own.
    implied: Vec<Size>,
}

impl Needs {
    /// `a` and `b` must be equal; nothing is recorded where they are the same expression.
    pub fn equal(&mut self, a: &Size, b: &Size) {
        if a != b {
            self.list.push(Need::Equal(a.clone(), b.clone()));
        }
    }

    /// `a` must broadcast against the known size `b`: equal to it, or 1.
    pub fn broadcast(&mut self, a: &Size, b: &Size) {
        if a != b {
            self.list.push(Need::Broadcast(a.clone(), b.clone()));
        }
    }

    /// `a` is at least 1 wherever the layer's inputs' sizes are (a product of them).
    pub fn implied(&mut self, a: &Size) {
        self.implied.push(a.clone());
    }

    /// `a` must be at least 1.
    pub fn positive(&mut self, a: &Size) {
        if a.as_known().is_none() {
            self.list.push(Need::Positive(a.clone()));
        }
    }
}

/// A need, and the layer that has it.
#[derive(Clone, Debug)]
pub struct Constraint {
    pub need: Need,
    pub node: NodeId,
}

/// A network's free sizes: each node's sizes as expressions of them, what the layers need,
/// and the set of values that satisfies it, for each name.
#[derive(Clone, Debug, Default)]
pub struct FreeSizes {
    pub names: Vec<FreeName>,
    /// The sizes read into values while the network expanded.
    pub reads: Vec<SizeRead>,
    /// Each node's sizes after the batch.
    pub dims: Vec<Vec<Size>>,
    pub constraints: Vec<Constraint>,
    /// For each free name (in the order of first declaration), its valid sizes, or why they
    /// are not derived.
    pub valid: Vec<(String, Result<ValidSet, String>)>,
    /// The network's `where` conditions, as written, each proved sufficient.
    pub declared: Vec<String>,
}

impl FreeSizes {
    /// The distinct names, in the order they are declared.
    pub fn distinct_names(&self) -> Vec<&str> {
        let mut seen = Vec::new();
        for n in &self.names {
            if !seen.contains(&n.name.as_str()) {
                seen.push(&n.name);
            }
        }
        seen
    }

    /// Why a command that needs fixed sizes cannot take this network, with each name's valid
    /// sizes, as `nnc run` and `model!` say it.
    pub fn needs_fixing(&self) -> String {
        let names = self.distinct_names();
        format!(
            "the network's input has free sizes ({}), which this needs fixed: give each a value with \
             `--set` ({}); the valid sizes are {}",
            names.join(", "),
            names.iter().map(|n| format!("{n}=…")).collect::<Vec<_>>().join(" "),
            self.valid_text()
        )
    }

    /// Each name with its valid sizes in words (`H % 16 == 0 and H ≥ 16`), or why they are
    /// not derived, as the report, generated code and the emitted module list them.
    pub fn sets(&self) -> impl Iterator<Item = (&str, String)> + '_ {
        self.valid.iter().map(|(name, set)| {
            (
                name.as_str(),
                set.as_ref().map_or_else(|why| format!("not derived: {why}"), ToString::to_string),
            )
        })
    }

    /// A size as the table shows it. Where the one name it depends on takes a single residue
    /// class of a modulus that the size's period divides (`H % 16 == 0`), the size is affine
    /// on every valid value, and shows so: `H/2` rather than `⌊H/2⌋`. Else its canonical form.
    pub fn shown(&self, size: &Size) -> String {
        self.affine(size).unwrap_or_else(|| size.to_string())
    }

    fn affine(&self, size: &Size) -> Option<String> {
        let names = size.names();
        let [name] = names.iter().collect::<Vec<_>>()[..] else { return None };
        let set = self.valid.iter().find(|(n, _)| n == name)?.1.as_ref().ok()?;
        let (&[r], true) = (&set.residues[..], set.extra.is_empty()) else { return None };
        let m = set.modulus;
        if size.is_nonlinear() || m < 2 || !m.is_multiple_of(size.period(MAX_PERIOD)?) {
            return None;
        }
        let (m, b) = (m as i64, if r == 0 { m as i64 } else { r as i64 });
        let v0 = size.eval(&|_| Some(b))?;
        // The value at x is ((v1 − v0)·x + v0·m − (v1 − v0)·b) / m.
        let p = size.eval(&|_| Some(b + m))?.checked_sub(v0)?;
        let q = v0.checked_mul(m)?.checked_sub(p.checked_mul(b)?)?;
        let g = [p, q].iter().fold(m.unsigned_abs(), |g, v| crate::size::gcd(g, v.unsigned_abs())) as i64;
        let (p, q, d) = (p / g, q / g, m / g);
        let term = match p {
            0 => return None,
            1 => name.clone(),
            -1 => format!("−{name}"),
            p if p < 0 => format!("−{}·{name}", -p),
            p => format!("{p}·{name}"),
        };
        let numerator = match q {
            0 => term,
            q if q < 0 => format!("{term} − {}", -q),
            q => format!("{term} + {q}"),
        };
        Some(match (d, q) {
            (1, _) => numerator,
            (_, 0) => format!("{numerator}/{d}"),
            _ => format!("({numerator})/{d}"),
        })
    }

    /// The smallest valid size of `name` from which no size that depends on it alone is 1, for
    /// every valid size after it up to `limit`: where `torch.export`'s range for it may start,
    /// as it takes a size of 1 for a constant. `None` if there is none up to `limit`.
    pub fn no_ones_from(&self, name: &str, limit: u64) -> Option<u64> {
        let set = self.valid.iter().find(|(n, _)| n == name)?.1.as_ref().ok()?;
        let mine: Vec<&Size> = self
            .dims
            .iter()
            .flatten()
            .filter(|d| d.as_known().is_none() && d.names().iter().all(|n| n == name))
            .collect();
        let ok = |x: u64| mine.iter().all(|d| d.eval(&|_| Some(x as i64)).is_some_and(|v| v >= 2));
        let valid: Vec<u64> = (set.from..=limit).filter(|&x| set.contains(x)).collect();
        (0..valid.len()).find(|&i| valid[i..].iter().all(|&x| ok(x))).map(|i| valid[i])
    }

    /// Every name's valid sizes in one phrase, as errors state them (`H % 16 == 0 and H ≥ 16
    /// and W % 16 == 0 and W ≥ 16`).
    pub fn valid_text(&self) -> String {
        let sets =
            self.sets().map(|(name, text)| match self.valid.iter().any(|(n, v)| n == name && v.is_err()) {
                true => format!("{name} ({text})"),
                false => text,
            });
        sets.collect::<Vec<_>>().join(" and ")
    }

    /// The first need that a choice of sizes breaks, if any.
    pub fn violation(&self, value: &dyn Fn(&str) -> Option<i64>) -> Option<&Constraint> {
        self.constraints.iter().find(|c| c.need.holds(value) != Some(true))
    }
}

/// The free names a network's input declarations use: names of sizes after the batch that
/// are not the network's parameters (`H` and `W` in `input [N, 3, H, W]`), in order.
pub fn declared_names(def: &nnc_grammar::ast::Definition) -> Vec<String> {
    use nnc_grammar::ast::{ExprKind, Stmt};
    let mut names = Vec::new();
    // The names bound before each statement, as the expander sees them there.
    let mut bound: Vec<&str> = def.params.iter().map(|p| p.name.name.as_str()).collect();
    for stmt in &def.body {
        match stmt {
            Stmt::Input { name, dims, .. } => {
                for dim in dims.iter().skip(1) {
                    if let ExprKind::Name(n) = &dim.kind {
                        if !bound.contains(&n.as_str()) && !names.contains(n) {
                            names.push(n.clone());
                        }
                    }
                }
                bound.extend(name.as_ref().map(|n| n.name.as_str()));
            }
            Stmt::Bind { name, .. } | Stmt::Shared { name, .. } | Stmt::Param { name, .. } => {
                bound.push(&name.name)
            }
            Stmt::Destructure { names: each, .. } => bound.extend(each.iter().map(|n| n.name.as_str())),
            Stmt::Output { .. } | Stmt::Tie { .. } | Stmt::Where { .. } | Stmt::Expr(_) => {}
        }
    }
    names
}

/// Node `id`'s shape as the report and an editor show it: with free sizes, their expressions
/// (`[N, 64, ⌊(H + 1)/2⌋, ⌊(W + 1)/2⌋]`, `H/2` where it is affine on the valid sizes).
pub fn shape_text(shape: &crate::shape::Shape, free: Option<&FreeSizes>, id: NodeId) -> String {
    match free.and_then(|f| Some((f, f.dims.get(id.0)?))) {
        Some((free, dims)) => {
            let sizes = dims.iter().map(|d| free.shown(d));
            let all: Vec<String> = shape.batch_text().into_iter().chain(sizes).collect();
            let dtype = match shape.dtype {
                crate::shape::DType::Float => String::new(),
                other => format!(" {other}"),
            };
            format!("[{}]{dtype}", all.join(", "))
        }
        None => shape.to_string(),
    }
}

/// The exact set of sizes a free name may take: `x ≥ from` with `x % modulus` among
/// `residues`, and the sizes in `extra`, all below `from`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidSet {
    pub name: String,
    pub modulus: u64,
    pub residues: Vec<u64>,
    pub from: u64,
    pub extra: Vec<u64>,
}

impl ValidSet {
    pub fn contains(&self, x: u64) -> bool {
        if x >= self.from {
            self.residues.contains(&(x % self.modulus))
        } else {
            self.extra.contains(&x)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.residues.is_empty() && self.extra.is_empty()
    }

    /// The size the analysis takes as typical: the first of the periodic part.
    pub fn smallest(&self) -> Option<u64> {
        self.extra
            .first()
            .copied()
            .or_else(|| (self.from..self.from + self.modulus).find(|&x| self.contains(x)))
    }
}

impl fmt::Display for ValidSet {
    /// `H % 16 == 0 and H ≥ 16`, `every H ≥ 1`, `H ∈ {3, 5}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = &self.name;
        let list = |xs: &[u64]| xs.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
        if self.residues.is_empty() {
            return match self.extra.is_empty() {
                true => write!(f, "no {n} at all"),
                false => write!(f, "{n} ∈ {{{}}}", list(&self.extra)),
            };
        }
        let mut parts = Vec::new();
        match self.residues.as_slice() {
            _ if self.modulus == 1 => {}
            [r] => parts.push(format!("{n} % {} == {r}", self.modulus)),
            rs => parts.push(format!("{n} % {} ∈ {{{}}}", self.modulus, list(rs))),
        }
        if self.from > 1 {
            parts.push(format!("{n} ≥ {}", self.from));
        }
        if parts.is_empty() {
            write!(f, "every {n} ≥ 1")?;
        } else {
            f.write_str(&parts.join(" and "))?;
        }
        if !self.extra.is_empty() {
            write!(f, ", or {n} ∈ {{{}}}", list(&self.extra))?;
        }
        Ok(())
    }
}

/// The set of `t ≥ 0` a residue class allows: an interval, perhaps narrowed to points.
#[derive(Clone, Debug)]
struct Allowed {
    lo: i64,
    hi: Option<i64>,
    points: Option<BTreeSet<i64>>,
}

impl Allowed {
    fn contains(&self, t: i64) -> bool {
        t >= self.lo
            && self.hi.is_none_or(|hi| t <= hi)
            && self.points.as_ref().is_none_or(|p| p.contains(&t))
    }

    /// Whether it holds every `t` from some point on.
    fn has_tail(&self) -> bool {
        self.hi.is_none() && self.points.is_none()
    }

    /// The first `t` from which it is periodic: past its bounds and points.
    fn settled(&self) -> i64 {
        let last = match (&self.points, self.hi) {
            (Some(p), _) => p.last().copied().unwrap_or(0),
            (None, Some(hi)) => hi,
            (None, None) => self.lo,
        };
        last.max(self.lo) + 1
    }
}

/// Solves the needs that mention only `name`: the exact set of its valid sizes, or why
/// there is none to state (a need that couples it with another name, or is not affine).
pub fn solve(name: &str, needs: &[&Need]) -> Result<ValidSet, String> {
    let mut period = 1u64;
    for need in needs {
        for size in need.sizes() {
            if size.is_nonlinear() {
                return Err(format!("a need is not affine in {name}: {need}"));
            }
            period = size
                .period(MAX_PERIOD)
                .and_then(|p| lcm(period, p))
                .filter(|&p| p <= MAX_PERIOD)
                .ok_or_else(|| {
                    format!("the strides and divisions of {name} have a period beyond {MAX_PERIOD}")
                })?;
        }
    }
    let m = period as i64;
    // With x = b + m·t, each size is α + β·t exactly.
    let affine = |size: &Size, b: i64| -> Option<(i64, i64)> {
        let at = |x: i64| size.eval(&|_| Some(x));
        let alpha = at(b)?;
        Some((alpha, at(b.checked_add(m)?)?.checked_sub(alpha)?))
    };
    let overflow = || format!("the sizes of {name} overflow 64 bits");
    let mut classes = Vec::with_capacity(period as usize);
    for b in 1..=m {
        let mut allowed = Allowed { lo: 0, hi: None, points: None };
        for need in needs {
            match (need, need.zeros()) {
                (Need::Positive(size), _) => {
                    let (alpha, beta) = affine(size, b).ok_or_else(overflow)?;
                    // α + β·t ≥ 1.
                    match beta.signum() {
                        1 => {
                            allowed.lo = allowed.lo.max(
                                (1 - alpha).div_euclid(beta) + i64::from((1 - alpha).rem_euclid(beta) != 0),
                            )
                        }
                        0 if alpha >= 1 => {}
                        0 => allowed.hi = Some(-1),
                        _ => {
                            let hi = (alpha - 1).div_euclid(-beta);
                            allowed.hi = Some(allowed.hi.map_or(hi, |h| h.min(hi)));
                        }
                    }
                }
                (_, None) => return Err(overflow()),
                (_, Some(zeros)) => {
                    // One of the sizes is zero: each holds everywhere, nowhere, or at one t.
                    let mut points = BTreeSet::new();
                    let mut everywhere = false;
                    for size in zeros.iter() {
                        let (alpha, beta) = affine(size, b).ok_or_else(overflow)?;
                        match (alpha, beta) {
                            (0, 0) => everywhere = true,
                            (_, 0) => {}
                            _ if alpha % beta == 0 && -alpha / beta >= 0 => {
                                points.insert(-alpha / beta);
                            }
                            _ => {}
                        }
                    }
                    if !everywhere {
                        allowed.points = Some(match allowed.points.take() {
                            Some(p) => p.intersection(&points).copied().collect(),
                            None => points,
                        });
                    }
                }
            }
        }
        classes.push(allowed);
    }
    let contains = |x: i64| {
        let b = (x - 1).rem_euclid(m) + 1;
        classes[(b - 1) as usize].contains((x - b) / m)
    };
    // The smallest modulus that divides the period and keeps the residues with a tail.
    let tail: Vec<bool> = classes.iter().map(Allowed::has_tail).collect();
    let modulus = (1..=period)
        .filter(|&d| period.is_multiple_of(d))
        .find(|&d| (0..period as usize).all(|i| tail[i] == tail[(i + d as usize) % period as usize]))
        .unwrap_or(period);
    // Residue of x (from 1) mod `modulus` lies at index (x − 1) mod period of `tail`.
    let periodic = |x: i64| tail[((x - 1).rem_euclid(m)) as usize];
    let settled = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (i as i64 + 1).saturating_add(m.saturating_mul(c.settled())))
        .max()
        .unwrap_or(1);
    let mut from = settled;
    while from > 1 && contains(from - 1) == periodic(from - 1) {
        from -= 1;
    }
    // The bound reads best as the first size of the periodic part: `H % 2 == 0 and H ≥ 6`.
    if tail.iter().any(|&t| t) {
        while !periodic(from) {
            from += 1;
        }
    }
    let extra: Vec<u64> = (1..from).filter(|&x| contains(x)).map(|x| x as u64).collect();
    let residues: Vec<u64> =
        (0..modulus).filter(|&r| periodic(if r == 0 { modulus as i64 } else { r as i64 })).collect();
    Ok(ValidSet { name: name.to_string(), modulus, residues, from: from as u64, extra })
}

/// A condition's value with each free size given, or why it has none.
pub type Condition<'a> = Box<dyn Fn(&[(String, i64)]) -> Result<bool, String> + 'a>;

/// The most combinations of sizes a `where` proof checks; past it nnc says it cannot prove.
const MAX_COMBINATIONS: u64 = 1 << 18;

/// A network's `where` condition: its text, where it is, and its value.
pub struct Declared<'a> {
    pub text: String,
    pub loc: Loc,
    pub holds: Condition<'a>,
}

/// Proves the `where` conditions sufficient, or refutes them with the first sizes that meet
/// them and break a layer's need. The proof enumerates: a condition of `%`, `//` and
/// comparisons with numbers is periodic in each size, with a period dividing the lcm of its
/// numbers, past the largest of them; the needs are periodic past each set's lower bound; so
/// every size up to both bounds plus two common periods covers every case.
pub fn check_declared(graph: &Graph, free: &mut FreeSizes, declared: &[Declared]) -> Result<(), Diagnostic> {
    if declared.is_empty() {
        return Ok(());
    }
    let numbers: Vec<u64> = declared
        .iter()
        .flat_map(|d| d.text.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse::<u64>().ok()))
        .collect();
    let period =
        numbers.iter().filter(|&&n| n >= 1).try_fold(1u64, |m, &n| lcm(m, n)).filter(|&m| m <= MAX_PERIOD);
    let largest = numbers.iter().copied().max().unwrap_or(0);
    let names: Vec<String> = free.distinct_names().into_iter().map(String::from).collect();
    let unproved = |why: String| {
        let d = &declared[0];
        Diagnostic::error(Code::FreeSize, format!("nnc cannot prove `where {}`", d.text))
            .primary(d.loc, "not proved")
            .note(why)
            .hint("state it with `%`, `//` and comparisons with smaller numbers, or check sizes with `--set`")
    };
    let mut bounds = Vec::with_capacity(names.len());
    for name in &names {
        let set = match free.valid.iter().find(|(n, _)| n == name).map(|(_, v)| v) {
            Some(Ok(set)) => set,
            Some(Err(why)) => return Err(unproved(format!("the sizes {name} takes are not derived: {why}"))),
            None => return Err(unproved(format!("{name} has no valid set"))),
        };
        let common =
            period.and_then(|p| lcm(p, set.modulus)).filter(|&c| c <= MAX_PERIOD).ok_or_else(|| {
                unproved(format!("the period of its numbers and of {name}'s sizes passes {MAX_PERIOD}"))
            })?;
        bounds.push(set.from.max(largest).saturating_add(common.saturating_mul(2)));
    }
    let total = bounds.iter().try_fold(1u64, |t, &b| t.checked_mul(b)).filter(|&t| t <= MAX_COMBINATIONS);
    let Some(total) = total else {
        let each: Vec<String> = names.iter().zip(&bounds).map(|(n, b)| format!("{n} up to {b}")).collect();
        return Err(unproved(format!(
            "a proof checks every size {}: more than {MAX_COMBINATIONS} combinations",
            each.join(" with ")
        )));
    };
    let shown = |values: &[(String, i64)]| {
        values.iter().map(|(n, v)| format!("{n} = {v}")).collect::<Vec<_>>().join(", ")
    };
    // Every combination of sizes up to the bounds, the first name's slowest.
    let mut met = false;
    for index in 0..total {
        let mut rest = index;
        let mut values = Vec::with_capacity(names.len());
        for (name, &bound) in names.iter().zip(&bounds).rev() {
            values.push((name.clone(), (rest % bound) as i64 + 1));
            rest /= bound;
        }
        values.reverse();
        let mut meets = true;
        for d in declared {
            match (d.holds)(&values) {
                Ok(true) => {}
                Ok(false) => meets = false,
                Err(why) => {
                    return Err(Diagnostic::error(
                        Code::FreeSize,
                        "a `where` condition must be true or false for every size",
                    )
                    .primary(d.loc, format!("at {}: {why}", shown(&values))))
                }
            }
        }
        if !meets {
            continue;
        }
        met = true;
        let value = |n: &str| values.iter().find(|(name, _)| name == n).map(|&(_, v)| v);
        if let Some(broken) = free.violation(&value) {
            let node = graph.node(broken.node);
            let sizes: Vec<String> =
                broken.need.sizes().iter().filter_map(|s| s.eval(&value)).map(|v| v.to_string()).collect();
            let d = &declared[0];
            let mut diag = Diagnostic::error(
                Code::FreeSize,
                format!("`where {}` lets through sizes the network cannot take", d.text),
            )
            .primary(d.loc, format!("{} meets it", shown(&values)))
            .secondary(
                node.loc,
                format!("but `{}` needs {} ({} there)", node.name, broken.need, sizes.join(" and ")),
            )
            .note(format!("the sizes the network takes: {}", free.valid_text()));
            if declared.len() > 1 {
                diag = diag.note("the network's `where` conditions are taken together");
            }
            return Err(diag);
        }
    }
    if !met {
        let d = &declared[0];
        return Err(Diagnostic::error(Code::FreeSize, format!("`where {}` admits no size", d.text))
            .primary(d.loc, "no size meets it"));
    }
    free.declared = declared.iter().map(|d| d.text.clone()).collect();
    Ok(())
}

/// The sizes of `node`, the graph's node `id`, as expressions of the free `names`, from its
/// inputs' `xs`: an input's own, with its free names; a layer's by its rule, which adds what
/// it needs to `needs`; `None` for a layer without a rule for free sizes.
fn node_sizes(
    node: &crate::ir::Node,
    id: NodeId,
    names: &[FreeName],
    xs: &[&[Size]],
    needs: &mut Needs,
) -> Option<Vec<Size>> {
    match &node.op {
        crate::ir::Op::Input(_) => Some(
            (node.shape.dims.iter().enumerate())
                .map(|(axis, &d)| {
                    let free = names.iter().find(|n| n.input == id && n.axis == axis);
                    free.map_or(Size::from(d), |n| Size::name(&n.name))
                })
                .collect(),
        ),
        op => op.layer().free_sizes(xs, &node.shape.dims, needs),
    }
}

/// Node `id`'s shape, of the nodes made so far at the probe size `probe`, with its sizes as
/// expressions of the free `names` (`[N, T, 8]`), for an error met while expanding, which
/// would otherwise show the probe (`[N, 20160, 8]`); `None` where a layer on the way has no
/// rule for free sizes, or the expressions do not give the probe's sizes. `known` holds the
/// nodes' sizes computed for earlier errors (nodes are only ever added), and is extended.
pub fn shown_shape(
    nodes: &[crate::ir::Node],
    names: &[FreeName],
    id: NodeId,
    probe: u64,
    known: &mut Vec<Option<Vec<Size>>>,
) -> Option<String> {
    for (i, node) in nodes.get(..=id.0)?.iter().enumerate().skip(known.len()) {
        let xs: Option<Vec<&[Size]>> = node.inputs.iter().map(|x| known.get(x.0)?.as_deref()).collect();
        let sizes = xs.and_then(|xs| node_sizes(node, NodeId(i), names, &xs, &mut Needs::default()));
        known.push(sizes);
    }
    let sizes = known.get(id.0)?.as_ref()?;
    let shape = &nodes[id.0].shape;
    let value = |n: &str| names.iter().any(|f| f.name == n).then_some(probe as i64);
    let at_probe: Option<Vec<u64>> = sizes.iter().map(|d| u64::try_from(d.eval(&value)?).ok()).collect();
    (at_probe.as_deref() == Some(&shape.dims[..])).then(|| shape.show_sizes(sizes))
}

/// The free-size analysis of `graph`, checked at the first of `probes`, against `other`, the
/// same network checked at the second: each node's sizes, what the layers need, and each name's
/// valid set; or the diagnostic of the first layer that cannot take free sizes.
pub fn analyse(
    graph: &Graph,
    other: &Graph,
    names: Vec<FreeName>,
    reads: Vec<SizeRead>,
    probes: [u64; 2],
) -> Result<FreeSizes, Diagnostic> {
    let distinct: HashSet<String> = names.iter().map(|n| n.name.clone()).collect();
    let mut free = FreeSizes { names, reads, ..FreeSizes::default() };
    let mut positive = HashSet::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        let twin = other.nodes.get(i);
        let same = twin.is_some_and(|t| {
            t.name == node.name
                && t.inputs == node.inputs
                && t.params == node.params
                && format!("{:?}", t.op) == format!("{:?}", node.op)
        });
        let xs: Vec<&[Size]> = node.inputs.iter().map(|id| free.dims[id.0].as_slice()).collect();
        // Each input as the report shows it, its batch first (`[N, 3, H, W]`).
        let shown = |xs: &[&[Size]]| {
            xs.iter()
                .zip(&node.inputs)
                .map(|(d, id)| graph.node(*id).shape.show_sizes(d))
                .collect::<Vec<_>>()
                .join(" and ")
        };
        if !same {
            let names = free.distinct_names().join(", ");
            let (op, other_op) = (node.op.to_string(), twin.map_or(String::new(), |t| t.op.to_string()));
            // The report's text may not show what differs (`upsample ×2` holds the output size
            // it computes).
            let note = match op == other_op {
                false => format!(
                    "its attributes or parameters depend on {names}: with them at {} it is `{op}`, at {} `{other_op}`",
                    probes[0], probes[1]
                ),
                true => format!(
                    "it holds sizes computed from {names}, which nnc cannot yet write for every size"
                ),
            };
            // Parameters that depend on the sizes come from a `flatten` before a layer.
            let hint = match twin.is_some_and(|t| t.params != node.params) {
                true => "give it an input of a fixed size (adaptive pooling before `flatten`), or fix the size with `--set`",
                false => "fix the size with `--set`",
            };
            return Err(Diagnostic::error(
                Code::FreeSize,
                format!(
                    "this `{}` would be a different layer for each input size",
                    op.split_whitespace().next().unwrap_or_default()
                ),
            )
            .primary(node.loc, format!("its input is {}", shown(&xs)))
            .note(note)
            .hint(hint));
        }
        let mut needs = Needs::default();
        let Some(dims) = node_sizes(node, NodeId(i), &free.names, &xs, &mut needs) else {
            return Err(Diagnostic::error(
                Code::FreeSize,
                format!("`{}` does not take free sizes yet", node.op),
            )
            .primary(node.loc, format!("its input is {}", shown(&xs)))
            .hint("fix the sizes with `--set`, or make them fixed before this layer (adaptive pooling)"));
        };
        // The expressions must give the sizes both checks computed.
        for (g, at) in [(graph, 0), (other, 1)] {
            let value = |n: &str| distinct.contains(n).then_some(probes[at] as i64);
            let computed: Option<Vec<u64>> =
                dims.iter().map(|d: &Size| d.eval(&value).and_then(|v| u64::try_from(v).ok())).collect();
            if computed.as_deref() != Some(&g.nodes[i].shape.dims[..]) {
                return Err(Diagnostic::error(
                    Code::FreeSize,
                    format!("nnc's free-size rule for `{}` disagrees with its shape rule", node.name),
                )
                .primary(node.loc, "here")
                .note(format!(
                    "at {} it gives {:?}, the shape rule {:?}; this is a bug in nnc, please report it",
                    probes[at], computed, g.nodes[i].shape.dims
                )));
            }
        }
        positive.extend(needs.implied.drain(..));
        for d in &dims {
            if d.as_known().is_none() && positive.insert(d.clone()) {
                needs.positive(d);
            }
        }
        free.constraints.extend(needs.list.into_iter().map(|need| Constraint { need, node: NodeId(i) }));
        free.dims.push(dims);
    }
    // A value read from a size that depends on a free one could shape the layers differently
    // at other sizes than the probes'.
    for read in &free.reads {
        let dims = free.dims.get(read.node.0).map_or(&[][..], Vec::as_slice);
        if let Some(size) = read.axes.iter().filter_map(|&a| dims.get(a)).find(|d| d.as_known().is_none()) {
            return Err(Diagnostic::error(Code::FreeSize, "a value here depends on a free size")
                .primary(read.at, format!("this reads `{size}`"))
                .note("a layer's arguments, a repeat's count or a condition built from it could differ from one size to the next")
                .hint("read a size that does not depend on the free ones, or fix them with `--set`"));
        }
    }
    let all: Vec<String> = free.distinct_names().into_iter().map(String::from).collect();
    for name in all {
        let mine: Vec<&Need> = free
            .constraints
            .iter()
            .map(|c| &c.need)
            .filter(|need| need.sizes().iter().all(|s| s.names().iter().all(|n| n == &name)))
            .collect();
        let coupled = free.constraints.iter().find(|c| {
            let names: BTreeSet<String> = c.need.sizes().iter().flat_map(|s| s.names()).collect();
            names.contains(&name) && names.len() > 1
        });
        let valid = match coupled {
            Some(c) => {
                Err(format!("`{}` couples {name} with another size: {}", graph.node(c.node).name, c.need))
            }
            None => solve(&name, &mine),
        };
        free.valid.push((name, valid));
    }
    Ok(free)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h() -> Size {
        Size::name("H")
    }

    /// The stated set equals the needs, size by size.
    fn exact(needs: &[Need]) -> ValidSet {
        let set = solve("H", &needs.iter().collect::<Vec<_>>()).unwrap();
        for x in 1..600i64 {
            let holds = needs.iter().all(|n| n.holds(&|_| Some(x)) == Some(true));
            assert_eq!(set.contains(x as u64), holds, "{set} at H = {x}, needs {needs:?}");
        }
        set
    }

    #[test]
    fn valid_sets_are_exact_and_plain() {
        let even = Need::Equal(h().floor_div(2).unwrap().scale(2).unwrap(), h());
        let at_least_6 = Need::Positive(h().add_known(-5).unwrap());
        assert_eq!(exact(&[even.clone(), at_least_6]).to_string(), "H % 2 == 0 and H ≥ 6");
        assert_eq!(exact(&[Need::Equal(h(), Size::known(7))]).to_string(), "H ∈ {7}");
        // ⌊H/4⌋ broadcasts against 3: it is 3, or 1.
        let quarter = Need::Broadcast(h().floor_div(4).unwrap(), Size::known(3));
        assert_eq!(exact(&[quarter]).to_string(), "H ∈ {4, 5, 6, 7, 12, 13, 14, 15}");
        // ResNet's stem, then a 5-wide window: ⌊(H + 3)/4⌋ ≥ 5.
        let stem = h().add_known(3).unwrap().floor_div(4).unwrap();
        let window = Need::Positive(stem.add_known(-4).unwrap());
        assert_eq!(exact(&[window]).to_string(), "H ≥ 17");
        let odd = Need::Equal(h().floor_div(2).unwrap().scale(2).unwrap().add_known(1).unwrap(), h());
        let small = Need::Positive(h().scale(-1).unwrap().add_known(4).unwrap());
        assert_eq!(exact(&[odd.clone(), small]).to_string(), "H ∈ {1, 3}");
        let big = Need::Positive(h().add_known(-20).unwrap());
        assert_eq!(exact(&[odd, big, Need::Positive(h())]).to_string(), "H % 2 == 1 and H ≥ 21");
        assert_eq!(exact(&[even, Need::Equal(h(), Size::known(5))]).to_string(), "no H at all");
    }

    #[test]
    fn sizes_show_affine_on_a_single_class() {
        let set = ValidSet { name: "H".into(), modulus: 16, residues: vec![0], from: 1, extra: vec![] };
        let free = FreeSizes { valid: vec![("H".into(), Ok(set))], ..FreeSizes::default() };
        assert_eq!(free.shown(&h().floor_div(2).unwrap()), "H/2");
        assert_eq!(free.shown(&h().floor_div(16).unwrap().scale(2).unwrap()), "H/8");
        assert_eq!(free.shown(&h().add_known(-4).unwrap().floor_div(4).unwrap()), "(H − 4)/4");
        assert_eq!(
            free.shown(&h().add_known(3).unwrap().scale(3).unwrap().floor_div(4).unwrap()),
            "(3·H + 8)/4"
        );
        // A period the modulus does not cover keeps its floor.
        assert_eq!(free.shown(&h().floor_div(32).unwrap()), "⌊H/32⌋");
    }
}
