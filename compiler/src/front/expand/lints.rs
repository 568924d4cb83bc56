//! The wiring lints: warnings for models that check but are most likely wired wrong. A tensor
//! that never reaches the output (W0001), a chain stage that ignores the tensor flowing into
//! it (W0002), a block parameter no instance reads (W0003), a repeat index that hides a name
//! (W0004), an input nothing reads (W0005), an input's later size named as a batch (W0006, warned
//! where the input is declared, in `mod.rs`). Each is reported once per place in the source,
//! however many block instances or repeat iterations repeat it.

use std::collections::{HashMap, HashSet};

use super::Expander;
use crate::diagnostic::{Code, Diagnostic};
use crate::front::messages::{expanded_from, Lint};
use crate::ir::{NodeId, Op, Output};
use crate::source::Loc;

/// What expansion gathers for the lints that need the whole network.
#[derive(Default)]
pub(super) struct Gathered {
    /// Block parameters, by where they are declared, in order of first expansion: the block,
    /// the name, and whether any instance read it.
    params: Vec<(Loc, String, String, bool)>,
    /// Tensors that a stage ignored: already warned about, so not reported as dead too.
    ignored: HashSet<usize>,
}

impl Gathered {
    /// A tensor discarded on purpose (`a, _ = chunk(x, 2)`): not reported as dead.
    pub(super) fn discarded(&mut self, id: usize) {
        self.ignored.insert(id);
    }

    /// Records one instance's use of a block parameter.
    pub(super) fn param(&mut self, block: &str, name: &str, at: Loc, read: bool) {
        // Few blocks and parameters: a list beats hashing a location per instance.
        match self.params.iter_mut().find(|p| p.0 == at) {
            Some(param) => param.3 |= read,
            None => self.params.push((at, block.to_string(), name.to_string(), read)),
        }
    }
}

impl Expander<'_> {
    pub(super) fn warn(&mut self, lint: Lint) {
        let d = expanded_from(lint.into(), &self.frames);
        self.diags.push(d);
    }

    /// Warns when the stage at `at`, fed `from`, computed `to` without it.
    pub(super) fn check_stage_uses_input(&mut self, from: NodeId, to: NodeId, at: Loc) {
        if self.depends_on(to, from) {
            return;
        }
        self.lints.ignored.insert(from.0);
        let dropped = &self.nodes[from.0];
        let (name, shape) = (dropped.name.clone(), dropped.shape.clone());
        self.warn(Lint::IgnoredInput { dropped: &name, shape: &shape, at });
    }

    /// Whether `node` is computed from `ancestor`. Ids are topological, so the search never
    /// goes below the ancestor's id.
    fn depends_on(&self, node: NodeId, ancestor: NodeId) -> bool {
        // Almost every stage reads the tensor flowing in directly: no search, no allocation.
        if node == ancestor || self.nodes[node.0].inputs.contains(&ancestor) {
            return true;
        }
        let mut stack = vec![node.0];
        let mut seen = HashSet::new();
        while let Some(i) = stack.pop() {
            if i == ancestor.0 {
                return true;
            }
            if i > ancestor.0 && seen.insert(i) {
                stack.extend(self.nodes[i].inputs.iter().map(|id| id.0));
            }
        }
        false
    }

    /// The lints that need the finished network, then one report per place for each warning
    /// that instances repeated.
    pub(super) fn lint(&mut self, outputs: &[Output]) {
        self.dead_tensors(outputs);
        let params = std::mem::take(&mut self.lints.params);
        for (at, block, name, read) in params {
            if !read {
                self.diags.push(Lint::UnusedParameter { block: &block, name: &name, at }.into());
            }
        }
    }

    /// W0001: every tensor from which no output can be reached. Each dead path is reported
    /// where it ends (a tensor nothing reads), grouped by that place in the source. W0005:
    /// every input nothing reads.
    fn dead_tensors(&mut self, outputs: &[Output]) {
        let n = self.nodes.len();
        let mut live = vec![false; n];
        for output in outputs {
            live[output.node.0] = true;
        }
        for i in (0..n).rev() {
            if live[i] {
                for input in &self.nodes[i].inputs {
                    live[input.0] = true;
                }
            }
        }
        let mut read = vec![false; n];
        for node in &self.nodes {
            for input in &node.inputs {
                read[input.0] = true;
            }
        }
        // Each dead tensor is counted once, in the group of the first dead end it leads to.
        let mut counted = vec![false; n];
        let mut groups: Vec<(Loc, String, u64, usize)> = Vec::new();
        // The inputs are given, not computed: an input nothing reads is no dead tensor.
        let is_input = |i: usize| matches!(self.nodes[i].op, Op::Input(_));
        for end in (0..n).filter(|&i| !live[i] && !read[i] && !is_input(i)) {
            let mut params = 0;
            let mut stack = vec![end];
            while let Some(i) = stack.pop() {
                if !live[i] && !counted[i] {
                    counted[i] = true;
                    params += self.nodes[i].params;
                    stack.extend(self.nodes[i].inputs.iter().map(|id| id.0));
                }
            }
            if self.lints.ignored.contains(&end) {
                continue;
            }
            let node = &self.nodes[end];
            match groups.iter_mut().find(|g| g.0 == node.loc) {
                Some(group) => {
                    group.2 += params;
                    group.3 += 1;
                }
                None => groups.push((node.loc, node.name.clone(), params, 1)),
            }
        }
        for (at, name, params, times) in groups {
            self.diags.push(Lint::Dead { name: &name, params, times, at }.into());
        }
        // An input nothing reads is data the network is given and ignores (one read only by a
        // dead path is that path's W0001).
        let first = (0..n).find(|&i| is_input(i));
        for i in (0..n).filter(|&i| is_input(i) && !live[i] && !read[i]) {
            let (name, at, later) = (self.nodes[i].name.clone(), self.nodes[i].loc, Some(i) != first);
            self.diags.push(Lint::UnusedInput { name: &name, later, at }.into());
        }
    }
}

/// Merges diagnostics that say the same thing at the same place (the same mistake met in
/// several block instances or repeat iterations) into the first, which notes how many times
/// it happened.
pub(super) fn group_repeated(diagnostics: Vec<Diagnostic>) -> Vec<Diagnostic> {
    let mut out: Vec<(Diagnostic, usize)> = Vec::new();
    let mut index: HashMap<(Code, Option<Loc>, String), usize> = HashMap::new();
    for d in diagnostics {
        let key = (d.code, d.primary_loc(), d.message.clone());
        match index.get(&key) {
            Some(&i) => out[i].1 += 1,
            None => {
                index.insert(key, out.len());
                out.push((d, 1));
            }
        }
    }
    out.into_iter()
        .map(|(d, times)| {
            if times == 1 {
                d
            } else {
                d.note(format!(
                    "the same in {} more places this code is expanded; fixing it here fixes them all",
                    times - 1
                ))
            }
        })
        .collect()
}

/// Applies `--deny warnings` and `--allow`: allowed warnings are dropped, denied ones become
/// errors that say why.
pub(crate) fn apply_lint_levels(diagnostics: &mut Vec<Diagnostic>, deny_warnings: bool, allow: &[Code]) {
    diagnostics.retain(|d| d.is_error() || !allow.contains(&d.code));
    if deny_warnings {
        for d in diagnostics.iter_mut().filter(|d| !d.is_error()) {
            d.deny();
        }
    }
}
