//! The per-layer report of a checked network: rows (collapsible by depth), totals, and their
//! text table. All numbers come from the IR; nothing is run.

use serde::Serialize;

use super::render::printable;

use super::memory::BatchMemory;
use crate::ir::{Graph, Node};

/// Bytes of one f32, the element type the costs assume.
const F32_BYTES: u64 = 4;

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub network: String,
    pub params: Vec<(String, String)>,
    /// The first input's shape.
    pub input: String,
    /// Every input, in the order the network declares them.
    pub inputs: Vec<InputRow>,
    /// The main output's shape.
    pub output: String,
    /// Every output, the main one first.
    pub outputs: Vec<OutputRow>,
    pub rows: Vec<Row>,
    pub totals: Totals,
    /// The memory of training one batch, when a batch size was given (`nnc check --batch`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<BatchMemory>,
    /// With free sizes: each name's valid sizes, stated (`H % 16 == 0 and H ≥ 16`), or why
    /// they are not derived. Multiply-adds and activations then depend on the sizes, and
    /// are not given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub free: Option<Vec<(String, String)>>,
    /// The network's `where` conditions, each proved sufficient.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub declared: Vec<String>,
}

/// One input of the network: its name (`input` for the unnamed one) and shape, with its element
/// type where it is not float (`[N, 16] int`).
#[derive(Clone, Debug, Serialize)]
pub struct InputRow {
    pub name: String,
    pub shape: String,
}

/// One output of the network: its name, shape, and whether it is one of training alone.
#[derive(Clone, Debug, Serialize)]
pub struct OutputRow {
    pub name: String,
    pub shape: String,
    pub training_only: bool,
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
    /// The last node the row stands for, whose output the row shows (for the JSON interface).
    #[serde(skip)]
    pub last: usize,
    /// Whether the row stands for the layers under a name (`--depth`) rather than one layer.
    #[serde(skip)]
    pub collapsed: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Totals {
    pub layers: usize,
    /// Every parameter, as torchinfo's "Total params" (buffers are not parameters).
    pub params: u64,
    /// Those the optimiser trains, torchinfo's and Keras's "Trainable params": all of them, as
    /// nnc freezes none.
    pub trainable_params: u64,
    /// torchinfo's "Non-trainable params" (parameters with `requires_grad=False`): none.
    pub non_trainable_params: u64,
    /// Elements of the buffers (batch norm's running statistics and batch counter): in the
    /// `state_dict`, but not parameters, so in no torchinfo total. Keras counts the running
    /// means and variances among its "Non-trainable params".
    pub buffers: u64,
    pub param_bytes: u64,
    /// Multiply-adds of one example (convolutions, linear layers and normalisations).
    pub macs: u64,
    /// Elements of every layer output for one example; what training keeps for backward.
    pub activations: u64,
    pub activation_bytes: u64,
}

/// A layer's op as the table shows it, saying where its tensors are another layer's: a shared
/// layer applied again, as torchinfo marks a module called again "(recursive)"; a tied tensor.
fn op_text(graph: &Graph, node: &Node) -> String {
    let mut text = node.op.to_string();
    if node.shares.is_some() {
        text += " (shared)";
    }
    for tie in &node.ties {
        let owner = &graph.nodes[tie.to.0].name;
        text += &format!(" ({} tied to {owner}.{})", tie.tensor, tie.to_tensor);
    }
    text
}

/// Builds the report; with `depth`, layers deeper than `depth` name segments are summed into
/// their ancestor at that depth.
pub fn report(graph: &Graph, depth: Option<usize>) -> Report {
    let mut rows: Vec<Row> = Vec::new();
    // For each row: whether it stands for a collapsed prefix, and its first layer's op.
    let mut collapsed_rows: Vec<(bool, String)> = Vec::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        let segments: Vec<&str> = node.name.split('.').collect();
        let cut = depth.map_or(segments.len(), |d| d.max(1).min(segments.len()));
        let key = segments[..cut].join(".");
        let collapsed = cut < segments.len();
        // A block's closing join carries the block's own name: it belongs to the block's row.
        let joins_row = |row: &Row, was_collapsed: bool| row.name == key && (collapsed || was_collapsed);
        match (rows.last_mut(), collapsed_rows.last()) {
            (Some(row), Some(&(was_collapsed, _))) if joins_row(row, was_collapsed) => {
                row.shape = graph.shape_text(crate::ir::NodeId(i));
                row.params += node.params;
                row.macs += node.macs;
                row.layers += 1;
                row.last = i;
                row.collapsed = true;
            }
            _ => {
                let op = if collapsed {
                    graph.groups.iter().find(|g| g.name == key).map_or_else(String::new, |g| g.label.clone())
                } else {
                    op_text(graph, node)
                };
                collapsed_rows.push((collapsed, op_text(graph, node)));
                rows.push(Row {
                    name: key,
                    op,
                    shape: graph.shape_text(crate::ir::NodeId(i)),
                    params: node.params,
                    macs: node.macs,
                    layers: 1,
                    last: i,
                    collapsed,
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
        .enumerate()
        .filter(|&(i, _)| !graph.is_input(i))
        .map(|(_, n)| n.shape.elements_per_example().unwrap_or(u64::MAX))
        .fold(0u64, u64::saturating_add);
    let params = graph.total_params();
    let buffers = graph
        .nodes
        .iter()
        .flat_map(|n| n.own_tensors())
        .filter(|t| !t.trained)
        .map(|t| t.elements().unwrap_or(u64::MAX))
        .fold(0u64, u64::saturating_add);
    let totals = Totals {
        layers: graph.nodes.len() - graph.inputs.len(),
        params,
        trainable_params: params,
        non_trainable_params: 0,
        buffers,
        param_bytes: params.saturating_mul(F32_BYTES),
        macs: graph.total_macs(),
        activations,
        activation_bytes: activations.saturating_mul(F32_BYTES),
    };
    Report {
        network: graph.name.clone(),
        params: graph.params.clone(),
        input: graph.shape_text(graph.input()),
        inputs: graph
            .inputs
            .iter()
            .map(|&id| InputRow { name: graph.node(id).name.clone(), shape: graph.shape_text(id) })
            .collect(),
        output: graph.shape_text(graph.output()),
        outputs: graph
            .outputs
            .iter()
            .map(|o| OutputRow {
                name: o.name.clone(),
                shape: graph.shape_text(o.node),
                training_only: o.training_only,
            })
            .collect(),
        rows,
        totals,
        memory: None,
        declared: graph.free.as_ref().map_or_else(Vec::new, |f| f.declared.clone()),
        free: graph.free.as_ref().map(|f| f.sets().map(|(name, text)| (name.to_string(), text)).collect()),
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

/// A number of bytes for people, in decimal units (`80.00 GB`, `175.51 kB`, `999 bytes`), as
/// torchinfo's MB, `free --si` and libtorch's byte counts read. The one spelling of a size in
/// bytes, for the report and the runtime's memory messages alike.
pub fn bytes(n: u128) -> String {
    const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 1000 {
        return format!("{n} bytes");
    }
    let mut value = n as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.2} {}", UNITS[unit])
}

/// The report as an aligned text table followed by its totals.
pub fn render_table(report: &Report) -> String {
    let header = ["layer", "op", "output", "params", "mult-adds"];
    let cells: Vec<[String; 5]> = report
        .rows
        .iter()
        .map(|r| {
            let macs = if report.free.is_some() { "—".to_string() } else { thousands(r.macs) };
            // Names and labels may hold any text: none of it may act on the terminal.
            let (name, op) = (printable(&r.name).into_owned(), printable(&r.op).into_owned());
            [name, op, r.shape.clone(), thousands(r.params), macs]
        })
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
    let output = match &report.outputs[..] {
        [_] => report.output.clone(),
        outputs => {
            let each = outputs.iter().map(|o| {
                let training = if o.training_only { " (training only)" } else { "" };
                format!("{} {}{training}", o.name, o.shape)
            });
            each.collect::<Vec<_>>().join(", ")
        }
    };
    let input = match &report.inputs[..] {
        [_] => report.input.clone(),
        inputs => inputs.iter().map(|i| format!("{} {}", i.name, i.shape)).collect::<Vec<_>>().join(", "),
    };
    let title = format!("network {}({}): {input} → {output}\n\n", report.network, params.join(", "));
    let mut out = printable(&title).into_owned();
    out += &line(header);
    out += &line(widths.map(|w| "─".repeat(w)).each_ref().map(String::as_str));
    for row in &cells {
        out += &line(row.each_ref().map(String::as_str));
    }
    let t = &report.totals;
    out += "\n";
    let mut total = |label: &str, value: String| out += &format!("{:25}{value}\n", format!("{label}:"));
    total("layers", thousands(t.layers as u64));
    total("parameters", format!("{} ({} as f32)", thousands(t.params), bytes(u128::from(t.param_bytes))));
    total("  trainable", thousands(t.trainable_params));
    total("  non-trainable", thousands(t.non_trainable_params));
    total("buffers", format!("{} (running statistics; not parameters)", thousands(t.buffers)));
    match &report.free {
        Some(valid) => {
            let names: Vec<&str> = valid.iter().map(|(n, _)| n.as_str()).collect();
            let depends = format!("depend on {} (`--set` a size to count them)", names.join(", "));
            total("mult-adds, activations", depends);
            for (name, set) in valid {
                total(&format!("valid {name}"), set.clone());
            }
            for condition in &report.declared {
                total("declared", format!("where {condition} (proved sufficient)"));
            }
        }
        None => {
            total("mult-adds per example", format!("{} ({})", thousands(t.macs), metric(t.macs)));
            let activations =
                format!("{} ({} as f32)", thousands(t.activations), bytes(u128::from(t.activation_bytes)));
            total("activations per example", activations);
        }
    }
    if let Some(m) = &report.memory {
        out += &render_memory(m);
    }
    out
}

/// The memory of training one batch: torchinfo's four rows, in its MB (10⁶ bytes) with two
/// decimals so that they read as its summary does, then nnc's own estimate.
fn render_memory(m: &BatchMemory) -> String {
    let mb = |n: u128| format!("{:.2}", n as f64 / 1e6);
    let ti = &m.torchinfo;
    let tr = &m.training;
    let mut out = format!("\nmemory at batch {}, as torchinfo estimates it:\n", m.batch);
    for (label, n) in [
        ("Input size (MB)", ti.input_bytes),
        ("Forward/backward pass size (MB)", ti.forward_backward_bytes),
        ("Params size (MB)", ti.params_bytes),
        ("Estimated Total Size (MB)", ti.total_bytes),
    ] {
        out += &format!("  {:33}{:>10}\n", format!("{label}:"), mb(n));
    }
    out += &format!("memory of one training step, as nnc estimates it ({}):\n", tr.optimizer);
    for (label, n) in [
        ("parameters", tr.params_bytes),
        ("gradients", tr.gradient_bytes),
        ("optimiser state", tr.optimizer_bytes),
        ("buffers", tr.buffer_bytes),
        ("activations at their peak", tr.activation_bytes),
        ("total (a floor)", tr.total_bytes),
    ] {
        out += &format!("  {:33}{:>10}\n", format!("{label}:"), bytes(n));
    }
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
        assert_eq!(bytes(999), "999 bytes");
        assert_eq!(bytes(1500), "1.50 kB");
        assert_eq!(bytes(44_713_512), "44.71 MB");
        assert_eq!(bytes(80_000_000_000), "80.00 GB");
        assert_eq!(bytes(1_500_000_000_000_000_000), "1.50 EB");
    }
}
