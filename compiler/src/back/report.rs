//! The per-layer report of a checked network: rows (collapsible by depth), totals, and their
//! text table. All numbers come from the IR; nothing is run.

use serde::Serialize;

use crate::ir::{Graph, Op};

/// Bytes of one f32, the element type the costs assume.
const F32_BYTES: u64 = 4;

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub network: String,
    pub params: Vec<(String, String)>,
    pub input: String,
    pub output: String,
    pub rows: Vec<Row>,
    pub totals: Totals,
}

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Hierarchical name, cut to the requested depth.
    pub name: String,
    pub op: String,
    pub shape: String,
    pub params: u64,
    pub macs: u64,
    /// How many layers the row stands for (more than one when collapsed).
    pub layers: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Totals {
    pub layers: usize,
    pub params: u64,
    pub param_bytes: u64,
    /// Multiply-adds of one example (convolutions, linear layers and normalisations).
    pub macs: u64,
    /// Elements of every layer output for one example; what training keeps for backward.
    pub activations: u64,
    pub activation_bytes: u64,
}

/// Builds the report; with `depth`, layers deeper than `depth` name segments are summed into
/// their ancestor at that depth.
pub fn report(graph: &Graph, depth: Option<usize>) -> Report {
    let mut rows: Vec<Row> = Vec::new();
    // For each row: whether it stands for a collapsed prefix, and its first layer's op.
    let mut collapsed_rows: Vec<(bool, String)> = Vec::new();
    for node in &graph.nodes {
        let segments: Vec<&str> = node.name.split('.').collect();
        let cut = depth.map_or(segments.len(), |d| d.max(1).min(segments.len()));
        let key = segments[..cut].join(".");
        let collapsed = cut < segments.len();
        // A block's closing join carries the block's own name: it belongs to the block's row.
        let joins_row = |row: &Row, was_collapsed: bool| row.name == key && (collapsed || was_collapsed);
        match (rows.last_mut(), collapsed_rows.last()) {
            (Some(row), Some(&(was_collapsed, _))) if joins_row(row, was_collapsed) => {
                row.shape = node.shape.to_string();
                row.params += node.params;
                row.macs += node.macs;
                row.layers += 1;
            }
            _ => {
                let op = if collapsed {
                    graph.groups.iter().find(|g| g.name == key).map_or_else(String::new, |g| g.label.clone())
                } else {
                    node.op.to_string()
                };
                collapsed_rows.push((collapsed, node.op.to_string()));
                rows.push(Row {
                    name: key,
                    op,
                    shape: node.shape.to_string(),
                    params: node.params,
                    macs: node.macs,
                    layers: 1,
                });
            }
        }
    }
    // Collapsed rows that are no block instance show their one layer's op, or how many layers
    // they stand for.
    for (row, (_, first_op)) in rows.iter_mut().zip(collapsed_rows).filter(|(r, _)| r.op.is_empty()) {
        row.op = if row.layers == 1 { first_op } else { format!("{} layers", row.layers) };
    }
    // `compile` refuses (E0107) any tensor too large for libtorch and any network whose totals,
    // or their bytes as f32, overflow 64 bits, so on a compiled graph nothing below saturates;
    // saturating only keeps a graph built by hand from panicking.
    let activations: u64 = graph
        .nodes
        .iter()
        .filter(|n| !matches!(n.op, Op::Input(_)))
        .map(|n| n.shape.elements_per_example().unwrap_or(u64::MAX))
        .fold(0u64, u64::saturating_add);
    let params = graph.total_params();
    let totals = Totals {
        layers: graph.nodes.len() - 1,
        params,
        param_bytes: params.saturating_mul(F32_BYTES),
        macs: graph.total_macs(),
        activations,
        activation_bytes: activations.saturating_mul(F32_BYTES),
    };
    Report {
        network: graph.name.clone(),
        params: graph.params.clone(),
        input: graph.node(graph.input).shape.to_string(),
        output: graph.node(graph.output).shape.to_string(),
        rows,
        totals,
    }
}

/// `11178378` → `11,178,378`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1741654016` → `1.74 G`.
pub fn metric(n: u64) -> String {
    let units = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")];
    let x = n as f64;
    units
        .iter()
        .find(|(scale, _)| x >= *scale)
        .map_or_else(|| n.to_string(), |(scale, unit)| format!("{:.2} {unit}", x / scale))
}

/// `46_000_000` → `43.87 MiB`.
pub fn bytes(n: u64) -> String {
    let units = [(1u64 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    units
        .iter()
        .find(|(scale, _)| n >= *scale)
        .map_or_else(|| format!("{n} B"), |(scale, unit)| format!("{:.2} {unit}", n as f64 / *scale as f64))
}

/// The report as an aligned text table followed by its totals.
pub fn render_table(report: &Report) -> String {
    let header = ["layer", "op", "output", "params", "mult-adds"];
    let cells: Vec<[String; 5]> = report
        .rows
        .iter()
        .map(|r| [r.name.clone(), r.op.clone(), r.shape.clone(), thousands(r.params), thousands(r.macs)])
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cols: [&str; 5]| {
        let mut s = String::new();
        for (i, (cell, w)) in cols.iter().zip(widths).enumerate() {
            let pad = w - cell.chars().count();
            if i >= 3 {
                s.push_str(&" ".repeat(pad));
                s.push_str(cell);
            } else {
                s.push_str(cell);
                s.push_str(&" ".repeat(pad));
            }
            if i < 4 {
                s.push_str("  ");
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let params: Vec<String> = report.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut out = format!(
        "network {}({}): {} → {}\n\n",
        report.network,
        params.join(", "),
        report.input,
        report.output
    );
    out += &line(header);
    out += &line(widths.map(|w| "─".repeat(w)).each_ref().map(String::as_str));
    for row in &cells {
        out += &line(row.each_ref().map(String::as_str));
    }
    let t = &report.totals;
    out += &format!(
        "\nlayers:                  {}\nparameters:              {} ({} as f32)\nmult-adds per example:   {} ({})\nactivations per example: {} ({} as f32)\n",
        thousands(t.layers as u64),
        thousands(t.params),
        bytes(t.param_bytes),
        thousands(t.macs),
        metric(t.macs),
        thousands(t.activations),
        bytes(t.activation_bytes),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_readable() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(11_178_378), "11,178,378");
        assert_eq!(metric(1_741_654_016), "1.74 G");
        assert_eq!(metric(512), "512");
        assert_eq!(bytes(44_713_512), "42.64 MiB");
    }
}
