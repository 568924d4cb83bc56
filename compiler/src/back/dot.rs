//! The graph picture: an IR graph in Graphviz's DOT language, each node with its name, op and
//! output shape, each block instance a cluster (nested as the blocks are), so that a residual
//! or Inception network can be read at a glance. With a depth, the layers under a name of that
//! many segments are drawn as one box (a ResNet's stages, a block instance), as the report's
//! `--depth` collapses its rows; branches are drawn in the order the source writes them.

use std::fmt::Write;

use crate::ir::{Graph, Op};
use crate::ops::Family;

/// Fill colours by kind of layer, light enough for black text.
fn colour(op: &Op) -> &'static str {
    match op.layer().family() {
        Family::Input => "#d9d9d9",
        Family::Convolution => "#cfe2f3",
        Family::Linear => "#fce5cd",
        Family::Normalisation => "#fff2cc",
        Family::Pooling => "#d9ead3",
        Family::Recurrent => "#d0e0e3",
        Family::Join => "#ead1dc",
        Family::Other => "#f3f3f3",
    }
}

/// The fill of a box that stands for several layers.
const BLOCK: &str = "#e4dcf1";

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Whether the layer `name` belongs to the group `group`.
fn inside(name: &str, group: &str) -> bool {
    name == group || name.strip_prefix(group).is_some_and(|rest| rest.starts_with('.'))
}

/// How to draw a graph.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Draw the layers under each name of this many segments as one box (1: the top-level
    /// stages), as `nnc check --depth` collapses the table; `None` draws every layer.
    pub depth: Option<usize>,
    /// Lay the graph out from left to right instead of top to bottom.
    pub left_to_right: bool,
}

/// What one box of the picture stands for: a layer, or the layers under one name.
struct Unit {
    name: String,
    nodes: Vec<usize>,
}

/// The boxes of the picture, in the order of their first layer, and each node's box.
fn units(graph: &Graph, depth: Option<usize>) -> (Vec<Unit>, Vec<usize>) {
    let mut units: Vec<Unit> = Vec::new();
    let mut unit_of = Vec::with_capacity(graph.nodes.len());
    let mut by_name: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        let Some(depth) = depth else {
            // Every node its own box: a shared layer applied again has its first's name.
            units.push(Unit { name: node.name.clone(), nodes: vec![i] });
            unit_of.push(i);
            continue;
        };
        let segments: Vec<&str> = node.name.split('.').collect();
        let key = segments[..depth.max(1).min(segments.len())].join(".");
        let at = *by_name.entry(key.clone()).or_insert_with(|| {
            units.push(Unit { name: key, nodes: Vec::new() });
            units.len() - 1
        });
        units[at].nodes.push(i);
        unit_of.push(at);
    }
    (units, unit_of)
}

/// The DOT text of the graph.
pub fn dot(graph: &Graph, options: Options) -> String {
    let mut out = String::new();
    let w = &mut out;
    let rankdir = if options.left_to_right { "LR" } else { "TB" };
    let _ = writeln!(w, "digraph \"{}\" {{", escape(&graph.name));
    // `ordering=out` keeps each tensor's readers in the order the graph lists them, which is
    // the source's: Inception's branches come out p1, p2, p3, p4.
    let _ = writeln!(
        w,
        "  graph [rankdir={rankdir}, ordering=out, fontname=\"Helvetica\", fontsize=11, nodesep=0.25, ranksep=0.3];"
    );
    let _ = writeln!(w, "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=10];");
    let _ = writeln!(w, "  edge [arrowsize=0.6];");
    let (units, unit_of) = units(graph, options.depth);
    // Groups (block instances) nest by name; each box goes into the innermost one holding it.
    // Groups that a depth collapses into one box are no clusters.
    let segments = |name: &str| name.split('.').count();
    let mut groups: Vec<&crate::ir::Group> = graph
        .groups
        .iter()
        .filter(|g| !g.name.is_empty() && options.depth.is_none_or(|d| segments(&g.name) < d))
        .collect();
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    groups.dedup_by(|a, b| a.name == b.name);
    let innermost = |name: &str| {
        groups.iter().filter(|g| inside(name, &g.name)).max_by_key(|g| g.name.len()).map(|g| g.name.clone())
    };
    let mut edges: Vec<(usize, usize)> = Vec::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        for input in &node.inputs {
            let edge = (unit_of[input.0], unit_of[i]);
            if edge.0 != edge.1 && !edges.contains(&edge) {
                edges.push(edge);
            }
        }
    }
    // Grouped by source, in the order each source's readers appear, for `ordering=out`.
    edges.sort_by_key(|&(from, _)| from);
    // Graphviz does not keep `ordering=out` inside clusters; branches that can share a rank are
    // put in one, left to right, by an invisible chain (only where every box is one node, whose
    // order is the graph's topological one, so that the check below is exact).
    let rows = match options.depth {
        None => sibling_rows(units.len(), &edges),
        Some(_) => Vec::new(),
    };
    let homes: Vec<Option<String>> = units.iter().map(|u| innermost(&u.name)).collect();
    // A row stands in its boxes' cluster; one whose boxes lie in different clusters is dropped.
    let rows: Vec<Vec<usize>> =
        rows.into_iter().filter(|row| row.iter().all(|&u| homes[u] == homes[row[0]])).collect();
    let picture = Picture { graph, units: &units, homes: &homes, groups: &groups, rows: &rows };
    picture.level(w, None, 1);
    for (from, to) in edges {
        let _ = writeln!(w, "  n{from} -> n{to};");
    }
    let _ = writeln!(w, "}}");
    out
}

/// For each box read by several, the readers that can stand side by side: those of which none
/// depends on another. `edges` go from earlier boxes to later ones (a topological order), so a
/// path between two readers passes only boxes between them.
fn sibling_rows(count: usize, edges: &[(usize, usize)]) -> Vec<Vec<usize>> {
    let mut out_edges: Vec<Vec<usize>> = vec![Vec::new(); count];
    for &(from, to) in edges {
        out_edges[from].push(to);
    }
    let reaches = |from: usize, to: usize| {
        let mut stack = vec![from];
        let mut seen = std::collections::HashSet::new();
        while let Some(at) = stack.pop() {
            for &next in &out_edges[at] {
                if next == to {
                    return true;
                }
                if next < to && seen.insert(next) {
                    stack.push(next);
                }
            }
        }
        false
    };
    out_edges
        .iter()
        .filter(|readers| readers.len() > 1)
        .filter(|readers| readers.windows(2).all(|w| w[0] < w[1]))
        .filter(|readers| {
            readers.iter().enumerate().all(|(k, &a)| readers[k + 1..].iter().all(|&b| !reaches(a, b)))
        })
        .cloned()
        .collect()
}

/// What the picture is drawn from: the boxes, the cluster each lies in directly (`None` at the
/// top), the clusters, and the rows of siblings.
struct Picture<'a> {
    graph: &'a Graph,
    units: &'a [Unit],
    homes: &'a [Option<String>],
    groups: &'a [&'a crate::ir::Group],
    rows: &'a [Vec<usize>],
}

impl Picture<'_> {
    /// Writes the clusters directly inside `parent` (or at the top), the boxes that belong there,
    /// and the rows of siblings among them.
    fn level(&self, w: &mut String, parent: Option<&str>, depth: usize) {
        let (graph, units, groups) = (self.graph, self.units, self.groups);
        let pad = "  ".repeat(depth);
        let children = groups.iter().filter(|g| {
            let enclosing = groups
                .iter()
                .filter(|o| o.name != g.name && inside(&g.name, &o.name))
                .max_by_key(|o| o.name.len());
            enclosing.map(|o| o.name.as_str()) == parent
        });
        for group in children {
            // Numbered, as names that differ only in punctuation (`a-b`, `a_b`) are two clusters.
            let index = groups.iter().position(|g| g.name == group.name).unwrap_or_default();
            let id: String = group.name.chars().filter(char::is_ascii_alphanumeric).collect();
            let id = format!("{index}_{id}");
            let _ = writeln!(w, "{pad}subgraph cluster_{id} {{");
            let _ = writeln!(
                w,
                "{pad}  label=\"{}: {}\"; style=\"rounded\"; color=\"#8e9aaf\";",
                escape(&group.name),
                escape(&group.label)
            );
            self.level(w, Some(&group.name), depth + 1);
            let _ = writeln!(w, "{pad}}}");
        }
        for (i, unit) in units.iter().enumerate() {
            if self.homes[i].as_deref() != parent {
                continue;
            }
            let last = &graph.nodes[*unit.nodes.last().expect("a box holds a layer")];
            let (what, fill) = match &unit.nodes[..] {
                [one] => (graph.nodes[*one].op.to_string(), colour(&graph.nodes[*one].op)),
                many => {
                    // A block instance shows its call (`residual(c=128, stride=2)`).
                    let call = graph.groups.iter().find(|g| g.name == unit.name).map(|g| g.label.clone());
                    (call.unwrap_or_else(|| format!("{} layers", many.len())), BLOCK)
                }
            };
            let label = if what == unit.name {
                format!("{}\\n{}", escape(&unit.name), last.shape)
            } else {
                format!("{}\\n{}\\n{}", escape(&unit.name), escape(&what), last.shape)
            };
            let _ = writeln!(w, "{pad}n{i} [label=\"{label}\", fillcolor=\"{fill}\"];");
        }
        for row in self.rows.iter().filter(|row| self.homes[row[0]].as_deref() == parent) {
            let chain: Vec<String> = row.iter().map(|u| format!("n{u}")).collect();
            let _ = writeln!(w, "{pad}{{ rank=same; {} [style=invis]; }}", chain.join(" -> "));
        }
    }
}
