//! The graph picture: an IR graph in Graphviz's DOT language, each node with its name, op and
//! output shape, each block instance a cluster (nested as the blocks are), so that a residual
//! or Inception network can be read at a glance.

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

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Whether the layer `name` belongs to the group `group`.
fn inside(name: &str, group: &str) -> bool {
    name == group || name.strip_prefix(group).is_some_and(|rest| rest.starts_with('.'))
}

/// The DOT text of the graph.
pub fn dot(graph: &Graph) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "digraph \"{}\" {{", escape(&graph.name));
    let _ =
        writeln!(w, "  graph [rankdir=TB, fontname=\"Helvetica\", fontsize=11, nodesep=0.25, ranksep=0.3];");
    let _ = writeln!(w, "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=10];");
    let _ = writeln!(w, "  edge [arrowsize=0.6];");
    // Groups (block instances) nest by name; each node goes into the innermost one holding it.
    let mut groups: Vec<&crate::ir::Group> = graph.groups.iter().filter(|g| !g.name.is_empty()).collect();
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    groups.dedup_by(|a, b| a.name == b.name);
    let innermost = |name: &str| {
        groups.iter().filter(|g| inside(name, &g.name)).max_by_key(|g| g.name.len()).map(|g| g.name.clone())
    };
    emit_level(w, graph, &groups, None, &innermost, 1);
    for (i, node) in graph.nodes.iter().enumerate() {
        for input in &node.inputs {
            let _ = writeln!(w, "  n{} -> n{i};", input.0);
        }
    }
    let _ = writeln!(w, "}}");
    out
}

/// Writes the clusters directly inside `parent` (or at the top), and the nodes that belong
/// there.
fn emit_level(
    w: &mut String,
    graph: &Graph,
    groups: &[&crate::ir::Group],
    parent: Option<&str>,
    innermost: &dyn Fn(&str) -> Option<String>,
    depth: usize,
) {
    let pad = "  ".repeat(depth);
    let children = groups.iter().filter(|g| {
        let enclosing = groups
            .iter()
            .filter(|o| o.name != g.name && inside(&g.name, &o.name))
            .max_by_key(|o| o.name.len());
        enclosing.map(|o| o.name.as_str()) == parent
    });
    for group in children {
        let id: String =
            group.name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        let _ = writeln!(w, "{pad}subgraph cluster_{id} {{");
        let _ = writeln!(
            w,
            "{pad}  label=\"{}: {}\"; style=\"rounded\"; color=\"#8e9aaf\";",
            escape(&group.name),
            escape(&group.label)
        );
        emit_level(w, graph, groups, Some(&group.name), innermost, depth + 1);
        let _ = writeln!(w, "{pad}}}");
    }
    for (i, node) in graph.nodes.iter().enumerate() {
        if innermost(&node.name).as_deref() == parent {
            let op = node.op.to_string();
            let label = if op == node.name {
                format!("{}\\n{}", escape(&node.name), node.shape)
            } else {
                format!("{}\\n{}\\n{}", escape(&node.name), escape(&op), node.shape)
            };
            let _ = writeln!(w, "{pad}n{i} [label=\"{label}\", fillcolor=\"{}\"];", colour(&node.op));
        }
    }
}
