//! The graph picture: an IR graph in Graphviz's DOT language, each node with its name, op and
//! output shape, each block instance a cluster (nested as the blocks are), so that a residual
//! or Inception network can be read at a glance. With a depth, the layers under a name of that
//! many segments are drawn as one box (a ResNet's stages, a block instance), as the report's
//! `--depth` collapses its rows; branches are drawn in the order the source writes them.

use std::collections::{HashMap, HashSet};
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
    // A name lies in the groups whose names are its prefixes at a dot: the innermost is found
    // by cutting segments off the end, one look-up each (scanning every group for every box
    // and group made the picture cubic in the number of block instances).
    let index: HashMap<&str, usize> = groups.iter().enumerate().map(|(i, g)| (g.name.as_str(), i)).collect();
    let enclosing = |mut name: &str| loop {
        match name.rfind('.') {
            Some(dot) => name = &name[..dot],
            None => return None,
        }
        if let Some(&i) = index.get(name) {
            return Some(i);
        }
    };
    let innermost = |name: &str| index.get(name).copied().or_else(|| enclosing(name));
    let mut edges: Vec<(usize, usize)> = Vec::new();
    let mut seen = HashSet::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        for input in &node.inputs {
            let edge = (unit_of[input.0], unit_of[i]);
            if edge.0 != edge.1 && seen.insert(edge) {
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
    let homes: Vec<Option<usize>> = units.iter().map(|u| innermost(&u.name)).collect();
    // A row stands in its boxes' cluster; one whose boxes lie in different clusters is dropped.
    let rows: Vec<Vec<usize>> =
        rows.into_iter().filter(|row| row.iter().all(|&u| homes[u] == homes[row[0]])).collect();
    // What each cluster (or the top, `None`) holds directly: clusters, boxes, rows.
    let mut inside: HashMap<Option<usize>, Contents> = HashMap::new();
    for (g, group) in groups.iter().enumerate() {
        inside.entry(enclosing(&group.name)).or_default().groups.push(g);
    }
    for (u, home) in homes.iter().enumerate() {
        inside.entry(*home).or_default().units.push(u);
    }
    for (r, row) in rows.iter().enumerate() {
        inside.entry(homes[row[0]]).or_default().rows.push(r);
    }
    let mut calls: HashMap<&str, &str> = HashMap::new();
    for g in &graph.groups {
        calls.entry(g.name.as_str()).or_insert(g.label.as_str());
    }
    let picture =
        Picture { graph, units: &units, groups: &groups, rows: &rows, inside: &inside, calls: &calls };
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

/// What one cluster (or the top) holds directly, by index: clusters, boxes and rows of siblings.
#[derive(Default)]
struct Contents {
    groups: Vec<usize>,
    units: Vec<usize>,
    rows: Vec<usize>,
}

/// What the picture is drawn from: the boxes, the clusters, the rows of siblings, what each
/// cluster holds, and each block instance's call.
struct Picture<'a> {
    graph: &'a Graph,
    units: &'a [Unit],
    groups: &'a [&'a crate::ir::Group],
    rows: &'a [Vec<usize>],
    inside: &'a HashMap<Option<usize>, Contents>,
    calls: &'a HashMap<&'a str, &'a str>,
}

impl Picture<'_> {
    /// Writes the clusters directly inside `parent` (or at the top), the boxes that belong there,
    /// and the rows of siblings among them.
    fn level(&self, w: &mut String, parent: Option<usize>, depth: usize) {
        let (graph, units, groups) = (self.graph, self.units, self.groups);
        let Some(contents) = self.inside.get(&parent) else { return };
        let pad = "  ".repeat(depth);
        for &index in &contents.groups {
            let group = groups[index];
            // Numbered, as names that differ only in punctuation (`a-b`, `a_b`) are two clusters.
            let id: String = group.name.chars().filter(char::is_ascii_alphanumeric).collect();
            let id = format!("{index}_{id}");
            let _ = writeln!(w, "{pad}subgraph cluster_{id} {{");
            let _ = writeln!(
                w,
                "{pad}  label=\"{}: {}\"; style=\"rounded\"; color=\"#8e9aaf\";",
                escape(&group.name),
                escape(&group.label)
            );
            self.level(w, Some(index), depth + 1);
            let _ = writeln!(w, "{pad}}}");
        }
        for &i in &contents.units {
            let unit = &units[i];
            let last = &graph.nodes[*unit.nodes.last().expect("a box holds a layer")];
            let (what, fill) = match &unit.nodes[..] {
                [one] => (graph.nodes[*one].op.to_string(), colour(&graph.nodes[*one].op)),
                many => {
                    // A block instance shows its call (`residual(c=128, stride=2)`).
                    let call = self.calls.get(unit.name.as_str()).map(|label| label.to_string());
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
        for &r in &contents.rows {
            let chain: Vec<String> = self.rows[r].iter().map(|u| format!("n{u}")).collect();
            let _ = writeln!(w, "{pad}{{ rank=same; {} [style=invis]; }}", chain.join(" -> "));
        }
    }
}
