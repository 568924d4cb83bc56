//! What an editor shows beside the text: for each network expanded, checked or not, its nodes
//! and the tensor each expression evaluated to, with the tensor flowing into it. `nnc lsp`
//! asks for it (`Options::trace`) to answer hovers and inlay hints; nothing else pays for it.

use std::ops::Range;

use crate::ir::{Group, Node, NodeId};
use crate::source::Loc;

/// One network as far as it expanded: every node made before any error stopped it, so that
/// the shapes before a mistake are still there to show.
#[derive(Clone, Debug)]
pub struct Expansion {
    /// The network's name and where it is defined (its name).
    pub network: String,
    pub loc: Loc,
    pub nodes: Vec<Node>,
    pub groups: Vec<Group>,
    /// What each expression that gave a tensor gave, in the order evaluated: a block's body
    /// once per instance, a repeat's body once per iteration.
    pub values: Vec<Traced>,
    /// The network's free sizes, once it checked (see `crate::free`): its nodes' shapes are
    /// then those of a probe, and its multiply-adds depend on the sizes.
    pub free: Option<Box<crate::free::FreeSizes>>,
}

/// An expression (or a bound name) that evaluated to a tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Traced {
    /// The expression, or the name a statement binds (`b3` of `b3 = ...`).
    pub loc: Loc,
    /// The tensor flowing into it, if one did.
    pub input: Option<NodeId>,
    pub output: NodeId,
    /// The nodes its evaluation made (a block call's whole expansion), as indices of `nodes`.
    pub made: Range<usize>,
}

impl Expansion {
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.0]
    }

    /// Node `id`'s shape as an editor shows it, with the free sizes' expressions.
    pub fn shape_text(&self, id: NodeId) -> String {
        crate::free::shape_text(&self.nodes[id.0].shape, self.free.as_deref(), id)
    }

    /// The parameters and multiply-adds of the nodes a value made.
    pub fn totals(&self, traced: &Traced) -> (u64, u64) {
        let nodes = self.nodes.get(traced.made.clone()).unwrap_or(&[]);
        nodes.iter().fold((0u64, 0u64), |(p, m), n| (p.saturating_add(n.params), m.saturating_add(n.macs)))
    }
}
