//! The PyTorch back end: an IR graph as PyTorch source written as a PyTorch user writes it.
//! Every layer is a `torch.nn` module registered under its nnc name, so `state_dict` keys are
//! nnc's parameter names and an nnc checkpoint loads with `load_state_dict(strict=True)`. The
//! name hierarchy becomes the module tree: a prefix whose layers form a plain chain
//! (`b1.0`, `b1.1`, ...) is an `nn.Sequential`; any other prefix (a block instance such as
//! `b3.0`) is a class of its own, one per distinct configuration and named after its block,
//! whose `forward` calls its submodules through their attributes. Tools that work by swapping
//! or inspecting modules (`convert_sync_batchnorm`, quantisation, FSDP, `torch.jit.script`,
//! `torch.fx`, torchinfo) then see and change what `forward` runs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write;

use super::codegen::type_name;
use crate::ir::{Graph, NodeId};
use crate::ops::PyTorch;
use crate::shape::{Batch, DType};

/// A prefix of layer names and what lies under it, in graph order.
#[derive(Default)]
struct Tree {
    /// Full dotted path; empty for the network.
    path: String,
    /// Children by name segment, in the order of their first node.
    children: Vec<(String, Child)>,
    /// The index in `children` of each subtree, by its segment, and of each layer, by its node:
    /// a node's child is looked up, not searched for (a network of 40,000 layers took 10 s).
    trees: HashMap<String, usize>,
    layers: HashMap<usize, usize>,
}

enum Child {
    /// A layer: its node and its module's constructor.
    Layer(NodeId, String),
    Tree(Tree),
}

impl Tree {
    fn child(&mut self, segment: &str) -> &mut Tree {
        let at = match self.trees.get(segment) {
            Some(&at) => at,
            None => {
                let path = if self.path.is_empty() {
                    segment.to_string()
                } else {
                    format!("{}.{segment}", self.path)
                };
                self.children.push((segment.to_string(), Child::Tree(Tree { path, ..Tree::default() })));
                self.trees.insert(segment.to_string(), self.children.len() - 1);
                self.children.len() - 1
            }
        };
        match &mut self.children[at].1 {
            Child::Tree(tree) => tree,
            Child::Layer(..) => unreachable!("found as a tree"),
        }
    }

    fn push_layer(&mut self, segment: &str, node: NodeId, ctor: String) {
        self.layers.insert(node.0, self.children.len());
        self.children.push((segment.to_string(), Child::Layer(node, ctor)));
    }

    /// The first child that holds node `i`, whose layer is computed at `home`: the layer itself
    /// (or the one it applies again, `shares`), or the subtree `home` lies in.
    fn holding(&self, i: usize, shares: Option<NodeId>, home: &str) -> Option<usize> {
        let layer = self.layers.get(&i).or_else(|| self.layers.get(&shares?.0)).copied();
        let below = match self.path.is_empty() {
            true => Some(home),
            false => home.strip_prefix(self.path.as_str()).and_then(|rest| rest.strip_prefix('.')),
        };
        let tree = below.and_then(|rest| self.trees.get(rest.split('.').next()?)).copied();
        match (layer, tree) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// What the emitter knows of the graph: which container each node is computed in.
struct Layout<'g> {
    graph: &'g Graph,
    /// For each node, the path of the tree whose `forward` computes it (a layer is computed by
    /// its parent's forward, as a call of its module).
    home: Vec<String>,
    /// For each node, the nodes that read it.
    readers: Vec<Vec<usize>>,
    /// For each node, whether it is a join, which its container's forward spells out.
    join: Vec<bool>,
    /// For each node, whether it is a declared `param`, an `nn.Parameter` attribute.
    parameter: Vec<bool>,
    /// For each node, whether it is an output of the network.
    is_output: Vec<bool>,
    /// For each node, whether evaluation mode computes it (see [`Graph::computed`]).
    in_eval: Vec<bool>,
    /// The nodes (the input aside) by their home.
    by_home: HashMap<String, Vec<usize>>,
}

impl Layout<'_> {
    /// The nodes computed inside `tree` (at any depth): its own, and its subtrees', so that
    /// finding them costs the subtree's size, not the graph's.
    fn members(&self, tree: &Tree) -> BTreeSet<usize> {
        let mut out: BTreeSet<usize> = self.by_home.get(&tree.path).into_iter().flatten().copied().collect();
        for (_, child) in &tree.children {
            if let Child::Tree(sub) = child {
                out.extend(self.members(sub));
            }
        }
        out
    }

    /// The tensors `members` read from outside, and the ones it gives to the outside (or to
    /// the network's output), in graph order.
    fn boundary(&self, members: &BTreeSet<usize>) -> (Vec<usize>, Vec<usize>) {
        let inputs: BTreeSet<usize> = members
            .iter()
            .flat_map(|&i| self.graph.nodes[i].inputs.iter().map(|id| id.0))
            .filter(|i| !members.contains(i))
            .collect();
        let mut outputs: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&i| self.is_output[i] || self.readers[i].iter().any(|r| !members.contains(r)))
            .collect();
        if outputs.is_empty() {
            // Computed and read by nothing: still computed, as nnc does, and returned.
            outputs.extend(members.last());
        }
        (inputs.into_iter().collect(), outputs)
    }
}

/// Whether the node home `home` lies inside the tree at `path`.
fn inside(home: &str, path: &str) -> bool {
    path.is_empty() || home == path || home.strip_prefix(path).is_some_and(|rest| rest.starts_with('.'))
}

fn parent(path: &str) -> &str {
    path.rsplit_once('.').map_or("", |(parent, _)| parent)
}

/// A layer's tensor as the network's class reaches it: `self.wte.weight`, or through
/// `get_submodule` below the top (`self.get_submodule("h.0.attn.out_proj").weight`).
fn tensor_attribute(layer: &str, tensor: &str) -> String {
    let full = format!("{layer}.{tensor}");
    let (module, last) = full.rsplit_once('.').expect("a layer's tensor has a dot");
    match module.contains('.') || !attribute(module).starts_with("self.") {
        true => format!("self.get_submodule({module:?}).{last}"),
        false => format!("self.{module}.{last}"),
    }
}

/// Python's keywords, which no attribute can be spelt as (`self.lambda`).
const PYTHON_KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue", "def",
    "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is",
    "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while", "with", "yield",
];

/// The attributes of `nn.Module` (torch 2.13's `dir()`, the `__dunder__` names aside): a module
/// or parameter of one of these names is refused by `add_module` ("attribute already exists"),
/// and `self.forward` would reach the method.
const MODULE_ATTRIBUTES: &[&str] = &[
    "T_destination",
    "_apply",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_buffers",
    "_call_impl",
    "_compiled_call_impl",
    "_forward_hooks",
    "_forward_hooks_always_called",
    "_forward_hooks_with_kwargs",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_get_backward_hooks",
    "_get_backward_pre_hooks",
    "_get_name",
    "_is_full_backward_hook",
    "_load_from_state_dict",
    "_load_state_dict_post_hooks",
    "_load_state_dict_pre_hooks",
    "_maybe_warn_non_full_backward_hook",
    "_modules",
    "_named_members",
    "_non_persistent_buffers_set",
    "_parameters",
    "_register_load_state_dict_pre_hook",
    "_register_state_dict_hook",
    "_replicate_for_data_parallel",
    "_save_to_state_dict",
    "_slow_forward",
    "_state_dict_hooks",
    "_state_dict_pre_hooks",
    "_version",
    "_wrapped_call_impl",
    "add_module",
    "apply",
    "bfloat16",
    "buffers",
    "call_super_init",
    "children",
    "compile",
    "cpu",
    "cuda",
    "double",
    "dump_patches",
    "eval",
    "extra_repr",
    "float",
    "forward",
    "get_buffer",
    "get_extra_state",
    "get_parameter",
    "get_submodule",
    "half",
    "ipu",
    "load_state_dict",
    "modules",
    "mtia",
    "named_buffers",
    "named_children",
    "named_modules",
    "named_parameters",
    "parameters",
    "register_backward_hook",
    "register_buffer",
    "register_forward_hook",
    "register_forward_pre_hook",
    "register_full_backward_hook",
    "register_full_backward_pre_hook",
    "register_load_state_dict_post_hook",
    "register_load_state_dict_pre_hook",
    "register_module",
    "register_parameter",
    "register_state_dict_post_hook",
    "register_state_dict_pre_hook",
    "requires_grad_",
    "set_extra_state",
    "set_submodule",
    "share_memory",
    "state_dict",
    "to",
    "to_empty",
    "train",
    "training",
    "type",
    "xpu",
    "zero_grad",
];

/// What `nn.ModuleDict` adds to them, which its keys cannot be either.
const MODULE_DICT_ATTRIBUTES: &[&str] = &["clear", "items", "keys", "pop", "update", "values"];

/// Why a graph has no PyTorch module: a module PyTorch cannot hold under its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unspellable {
    /// The module's full name (a layer's, or a block instance's), the piece of it that is an
    /// attribute of its container, and the container's class.
    pub module: String,
    pub segment: String,
    pub container: &'static str,
}

impl std::fmt::Display for Unspellable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PyTorch cannot name a module `{}` (`{}`): `{}` has an attribute of that name, which \
             `add_module` refuses; give it another label",
            self.segment, self.module, self.container
        )
    }
}

impl std::error::Error for Unspellable {}

/// The first module of `tree` whose name its container cannot hold: the generated class holds
/// its children as attributes, an `nn.ModuleDict` as keys; an `nn.Sequential` numbers them.
/// The network (`root`) is always a class of its own.
fn unspellable(layout: &Layout, tree: &Tree, root: bool) -> Option<Unspellable> {
    let container = match (root, callable(layout, tree), sequential(layout, tree).is_some()) {
        (true, ..) => Some("nn.Module"),
        (false, false, _) => Some("nn.ModuleDict"),
        (false, true, false) => Some("nn.Module"),
        (false, true, true) => None,
    };
    let taken = |s: &str| {
        (s.starts_with("__") && s.ends_with("__"))
            || MODULE_ATTRIBUTES.contains(&s)
            || (container == Some("nn.ModuleDict") && MODULE_DICT_ATTRIBUTES.contains(&s))
    };
    tree.children.iter().find_map(|(segment, child)| {
        let module = match child {
            Child::Layer(id, _) => layout.graph.nodes[id.0].name.clone(),
            Child::Tree(sub) => sub.path.clone(),
        };
        match (container, child) {
            (Some(container), _) if taken(segment) => {
                Some(Unspellable { module, segment: segment.clone(), container })
            }
            (_, Child::Tree(sub)) => unspellable(layout, sub, false),
            _ => None,
        }
    })
}

/// A module attribute in Python: `self.conv1`, or `getattr(self, "0")` for a name that is no
/// identifier or is a keyword (TorchScript accepts both).
fn attribute(segment: &str) -> String {
    let identifier = segment.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && segment.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !PYTHON_KEYWORDS.contains(&segment);
    if identifier {
        format!("self.{segment}")
    } else {
        format!("getattr(self, {segment:?})")
    }
}

/// The classes written so far, keyed by their body, so that block instances with the same
/// configuration share one class.
#[derive(Default)]
struct Classes {
    by_body: BTreeMap<String, String>,
    names: BTreeSet<String>,
    source: String,
}

impl Classes {
    /// The name of a class with this body, writing it the first time.
    fn class(&mut self, base: &str, body: &str, doc: &str) -> String {
        if let Some(name) = self.by_body.get(body) {
            return name.clone();
        }
        let name = (1..)
            .map(|i| if i == 1 { base.to_string() } else { format!("{base}{i}") })
            .find(|n| !self.names.contains(n))
            .expect("a free name");
        let _ = write!(self.source, "\n\nclass {name}(nn.Module):\n    \"\"\"{doc}\"\"\"\n\n{body}");
        self.names.insert(name.clone());
        self.by_body.insert(body.to_string(), name.clone());
        name
    }
}

/// The constructor of each child of `tree`, by name segment: a layer's module, or a subtree's
/// (writing the classes it needs into `classes`).
fn children(layout: &Layout, tree: &Tree, classes: &mut Classes) -> Vec<(String, String)> {
    tree.children
        .iter()
        .map(|(segment, child)| {
            let ctor = match child {
                Child::Layer(_, ctor) => ctor.clone(),
                Child::Tree(sub) => module(layout, sub, classes),
            };
            (segment.clone(), ctor)
        })
        .collect()
}

/// Writes the module of `tree`: a constructor expression (a class's call or an
/// `nn.Sequential`), writing the classes it needs into `classes`.
fn module(layout: &Layout, tree: &Tree, classes: &mut Classes) -> String {
    let built = children(layout, tree, classes);
    if !callable(layout, tree) {
        let items: Vec<String> =
            built.iter().map(|(segment, ctor)| format!("    {segment:?}: {},\n", indent(ctor))).collect();
        return format!("nn.ModuleDict({{\n{}}})", items.concat());
    }
    if let Some(chain) = sequential(layout, tree) {
        let items: Vec<String> = chain.iter().map(|&i| format!("    {},\n", indent(&built[i].1))).collect();
        return format!("nn.Sequential(\n{})", items.concat());
    }
    let (body, _) = class_body(layout, tree, &built);
    let group = layout.graph.groups.iter().find(|g| g.name == tree.path);
    let block = group.and_then(|g| g.label.split_once('(')).map(|(name, _)| name);
    let base =
        type_name(block.unwrap_or_else(|| tree.path.rsplit('.').next().unwrap_or("block"))).to_string();
    let doc = match group {
        Some(g) => format!("`{}` in nnc.", g.label),
        None => format!("`{}` in nnc.", tree.path),
    };
    format!("{}()", classes.class(&base, &body, &doc))
}

/// `text` with every line after the first indented by four more spaces.
fn indent(text: &str) -> String {
    text.replace('\n', "\n    ")
}

/// The children of `tree` in `nn.Sequential` order, if its children are numbered `0, 1, ...`
/// and each feeds the next alone, so that the container is a plain chain.
fn sequential(layout: &Layout, tree: &Tree) -> Option<Vec<usize>> {
    let members = layout.members(tree);
    // Joins computed by this container itself need a forward of their own.
    if members.iter().any(|&i| layout.join[i] && layout.home[i] == tree.path) {
        return None;
    }
    let (inputs, outputs) = layout.boundary(&members);
    let mut flowing = match inputs[..] {
        [input] => input,
        _ => return None,
    };
    for (k, (segment, child)) in tree.children.iter().enumerate() {
        if *segment != k.to_string() {
            return None;
        }
        let child_members = match child {
            // `nn.Sequential` passes on what each module returns: a module called otherwise
            // (`nn.LSTM`, whose tuple the layer indexes or unpacks) needs a forward.
            Child::Layer(id, _) if !plain_call(layout.graph.nodes[id.0].op.layer()) => return None,
            Child::Layer(id, _) => BTreeSet::from([id.0]),
            Child::Tree(sub) if callable(layout, sub) => layout.members(sub),
            Child::Tree(_) => return None,
        };
        let (child_inputs, child_outputs) = layout.boundary(&child_members);
        if child_inputs != [flowing] || child_outputs.len() != 1 {
            return None;
        }
        flowing = child_outputs[0];
    }
    (outputs == [flowing]).then(|| (0..tree.children.len()).collect())
}

/// Whether the layer's module is called on its input alone and returns its output, as
/// `nn.Sequential` calls its modules.
fn plain_call(layer: &dyn crate::ops::Layer) -> bool {
    layer.states().is_empty() && layer.pytorch_call("m", &["x".to_string()]) == "m(x)"
}

/// Where a class's forward computes one of its tree's nodes.
enum Site<'t> {
    /// A join, spelled out in place.
    Join,
    /// A layer: the expression that reaches its module.
    Layer(String),
    /// A subtree that is called as one module, computing all its nodes.
    Unit(String, &'t Tree),
}

/// Where node `i`, which lies in `tree`, is computed by `tree`'s forward. Subtrees that cannot
/// be called as one module (their nodes interleave with others, as when a label lifts a layer
/// out of its chain) are `nn.ModuleDict`s whose layers the forward reaches one by one.
fn locate<'t>(layout: &Layout, tree: &'t Tree, access: Option<&str>, i: usize) -> Site<'t> {
    if layout.join[i] && layout.home[i] == tree.path {
        return Site::Join;
    }
    let at = tree
        .holding(i, layout.graph.nodes[i].shares, &layout.home[i])
        .expect("each node of a tree is a join of it, a layer of it, or in a subtree");
    let (segment, child) = &tree.children[at];
    let module = match access {
        None => attribute(segment),
        Some(dict) => format!("{dict}[{segment:?}]"),
    };
    match child {
        Child::Layer(..) => Site::Layer(module),
        Child::Tree(sub) if callable(layout, sub) => Site::Unit(module, sub),
        Child::Tree(sub) => locate(layout, sub, Some(&module), i),
    }
}

/// Whether `tree`'s nodes come one after another in the graph, so that calling it as one
/// module computes them in an order the graph allows.
fn callable(layout: &Layout, tree: &Tree) -> bool {
    let members = layout.members(tree);
    match (members.first(), members.last()) {
        (Some(first), Some(last)) => last - first + 1 == members.len(),
        _ => false,
    }
}

/// The `__init__` and `forward` of `tree`'s class, with tensors renumbered locally so that
/// equal configurations give equal text; and the boundary it was written for.
fn class_body(
    layout: &Layout,
    tree: &Tree,
    built: &[(String, String)],
) -> (String, (Vec<usize>, Vec<usize>)) {
    let graph = layout.graph;
    let members = layout.members(tree);
    let (inputs, outputs) = if tree.path.is_empty() {
        (graph.inputs.iter().map(|id| id.0).collect(), graph.outputs.iter().map(|o| o.node.0).collect())
    } else {
        layout.boundary(&members)
    };
    // The network's forward takes its inputs by their names (`forward(self, tokens, mask)`);
    // everything else is numbered locally.
    let mut local: BTreeMap<usize, String> = match tree.path.is_empty() {
        true => python_inputs(graph).into_iter().collect(),
        false => BTreeMap::new(),
    };
    let name = |id: usize, local: &mut BTreeMap<usize, String>| -> String {
        let next = format!("x{}", local.len());
        local.entry(id).or_insert(next).clone()
    };
    let args: Vec<String> = inputs.iter().map(|&i| name(i, &mut local)).collect();

    let mut body = String::from("    def __init__(self):\n        super().__init__()\n");
    for ((segment, ctor), (_, child)) in built.iter().zip(&tree.children) {
        let ctor = indent(&indent(ctor));
        let _ = if attribute(segment).starts_with("self.") {
            writeln!(body, "        self.{segment} = {ctor}")
        } else if matches!(child, Child::Layer(id, _) if layout.parameter[id.0]) {
            writeln!(body, "        self.register_parameter({segment:?}, {ctor})")
        } else {
            writeln!(body, "        self.add_module({segment:?}, {ctor})")
        };
    }
    if tree.path.is_empty() {
        // PyTorch's weight tying: the attribute assigned is the other module's parameter.
        for node in &graph.nodes {
            for tie in &node.ties {
                let owner = &graph.nodes[tie.to.0].name;
                let (a, b) =
                    (tensor_attribute(&node.name, &tie.tensor), tensor_attribute(owner, &tie.to_tensor));
                let _ = writeln!(body, "        {a} = {b}");
            }
        }
    }
    let _ = writeln!(body, "\n    def forward(self, {}):", args.join(", "));
    let mut done: BTreeSet<usize> = inputs.iter().copied().collect();
    // The network's own class returns its outputs, and computes those of training only in
    // training mode; a block's class is called only where its outputs are needed.
    let root = tree.path.is_empty();
    // The statements only outputs of training need, written before those outputs return.
    let mut training: Vec<String> = Vec::new();
    for &i in &members {
        if done.contains(&i) {
            continue;
        }
        let node = &graph.nodes[i];
        let xs: Vec<String> = node.inputs.iter().map(|id| name(id.0, &mut local)).collect();
        // A layer's state k (a recurrent layer's `h_n`) is `x5_k` beside its output `x5`.
        let xs = match node.op.layer().reads() {
            0 => xs,
            k => xs.into_iter().map(|x| format!("{x}_{k}")).collect(),
        };
        let note = comment(tree, &node.name, &node.op.to_string(), &graph.shape_text(NodeId(i)));
        if layout.join[i]
            && inside(&layout.home[i], &tree.path)
            && matches!(locate(layout, tree, None, i), Site::Join)
        {
            if let PyTorch::Expr(expr) = node.op.layer().pytorch(&xs) {
                let line = format!("{} = {expr}{note}", name(i, &mut local));
                statement(&mut body, &mut training, root && !layout.in_eval[i], line);
                done.insert(i);
                continue;
            }
        }
        match locate(layout, tree, None, i) {
            Site::Join => unreachable!("joins of this container are written above"),
            Site::Layer(module) => {
                let layer = node.op.layer();
                let value = match layout.parameter[i] {
                    true => module,
                    false => layer.pytorch_call(&module, &xs),
                };
                let y = name(i, &mut local);
                let states = layer.states().len();
                let target = match states {
                    0 => y,
                    _ => {
                        // Each state by its name where a node reads it, else `_`.
                        let ys: Vec<String> = std::iter::once(y.clone())
                            .chain((1..=states).map(|k| {
                                let read =
                                    layout.readers[i].iter().any(|&r| graph.nodes[r].op.layer().reads() == k);
                                if read {
                                    format!("{y}_{k}")
                                } else {
                                    "_".to_string()
                                }
                            }))
                            .collect();
                        layer.pytorch_targets(&ys)
                    }
                };
                let line = format!("{target} = {value}{note}");
                statement(&mut body, &mut training, root && !layout.in_eval[i], line);
                done.insert(i);
            }
            Site::Unit(module, sub) => {
                let sub_members = layout.members(sub);
                let (sub_inputs, sub_outputs) = layout.boundary(&sub_members);
                let args: Vec<String> = sub_inputs.iter().map(|&j| name(j, &mut local)).collect();
                let results: Vec<String> = sub_outputs.iter().map(|&j| name(j, &mut local)).collect();
                let last = &graph.nodes[*sub_outputs.last().expect("an output")];
                let note = comment(tree, &sub.path, "", &last.shape.to_string());
                let line = format!("{} = {module}({}){note}", results.join(", "), args.join(", "));
                statement(
                    &mut body,
                    &mut training,
                    root && sub_members.iter().all(|&j| !layout.in_eval[j]),
                    line,
                );
                done.extend(sub_members);
            }
        }
    }
    let results: Vec<String> = outputs.iter().map(|&i| name(i, &mut local)).collect();
    let in_eval: Vec<&String> =
        outputs.iter().zip(&results).filter(|(&i, _)| layout.in_eval[i]).map(|(_, r)| r).collect();
    if root && in_eval.len() < results.len() {
        // The outputs of training alone, as torchvision's Inception-v3 returns them, computed
        // only then (nothing else reads them, so they may come last).
        let _ = writeln!(body, "        if self.training:");
        for line in &training {
            let _ = writeln!(body, "            {line}");
        }
        let _ = writeln!(body, "            return {}", results.join(", "));
        let eval: Vec<&str> = in_eval.iter().map(|r| r.as_str()).collect();
        let _ = writeln!(body, "        return {}", eval.join(", "));
    } else {
        let _ = writeln!(body, "        return {}", results.join(", "));
    }
    (body, (inputs, outputs))
}

/// Writes one statement of a forward, or keeps it in `training` where `training_only` (the
/// layers only outputs of training read), for the branch that returns those outputs.
fn statement(body: &mut String, training: &mut Vec<String>, training_only: bool, line: String) {
    match training_only {
        true => training.push(line),
        false => {
            let _ = writeln!(body, "        {line}");
        }
    }
}

/// A line's comment: the layer's name relative to the class and its op; in the network's
/// class, which is written once, also its shape. Block classes leave shapes out, so that one
/// class serves every instance of a configuration, whatever the sizes flowing through.
fn comment(tree: &Tree, name: &str, op: &str, shape: &str) -> String {
    // A block's closing join carries the block's own name; it shows as its last segment.
    let relative = name
        .strip_prefix(tree.path.as_str())
        .and_then(|rest| rest.strip_prefix('.'))
        .unwrap_or_else(|| name.rsplit('.').next().unwrap_or(name));
    match (tree.path.is_empty(), op.is_empty()) {
        (true, true) => format!("  # {relative}: {shape}"),
        (true, false) => format!("  # {relative}: {op}, {shape}"),
        (false, true) => String::new(),
        (false, false) => format!("  # {relative}: {op}"),
    }
}

/// The Python source of the module; an error for a network with a layer PyTorch cannot name.
pub fn emit(graph: &Graph, source: &str) -> Result<String, Unspellable> {
    let n = graph.nodes.len();
    let mut readers = vec![Vec::new(); n];
    for (i, node) in graph.nodes.iter().enumerate() {
        for input in &node.inputs {
            readers[input.0].push(i);
        }
    }
    // A layer's module sits at its name; a join is computed by the container at its name if
    // other layers lie under that name (a block's closing `y + skip`), else by its parent's.
    let mut tree = Tree::default();
    let mut home = vec![String::new(); n];
    let mut joins = Vec::new();
    let mut join = vec![false; n];
    let mut parameter = vec![false; n];
    for (i, node) in graph.nodes.iter().enumerate().filter(|&(i, _)| !graph.is_input(i)) {
        let inputs: Vec<String> = node.inputs.iter().map(|id| format!("x{}", id.0)).collect();
        let spelled = node.op.layer().pytorch(&inputs);
        parameter[i] = matches!(spelled, PyTorch::Parameter(_));
        match spelled {
            // A shared layer applied again calls its first application's module, which its
            // parent holds (both have one name).
            PyTorch::Module(_) if node.shares.is_some() => home[i] = parent(&node.name).to_string(),
            // A parameter is an attribute as a module is, read where a module is called.
            PyTorch::Module(ctor) | PyTorch::Parameter(ctor) => {
                let mut at = &mut tree;
                let segments: Vec<&str> = node.name.split('.').collect();
                for segment in &segments[..segments.len() - 1] {
                    at = at.child(segment);
                }
                at.push_layer(segments[segments.len() - 1], NodeId(i), ctor);
                home[i] = parent(&node.name).to_string();
            }
            PyTorch::Expr(_) => {
                joins.push(i);
                join[i] = true;
            }
        }
    }
    for i in joins {
        // A layer's state is read where the layer is called.
        if graph.nodes[i].op.layer().reads() > 0 {
            home[i] = home[graph.nodes[i].inputs[0].0].clone();
            continue;
        }
        let name = &graph.nodes[i].name;
        let prefix = format!("{name}.");
        let holds_layers = graph.nodes.iter().any(|other| other.name.starts_with(&prefix));
        let mut at = if holds_layers { name.as_str() } else { parent(name) };
        // The nearest prefix that is a container (or the network).
        while !at.is_empty() && !has_tree(&tree, at) {
            at = parent(at);
        }
        home[i] = at.to_string();
    }
    let mut by_home: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, at) in home.iter().enumerate().filter(|&(i, _)| !graph.is_input(i)) {
        by_home.entry(at.clone()).or_default().push(i);
    }
    let mut is_output = vec![false; n];
    for output in &graph.outputs {
        is_output[output.node.0] = true;
    }
    let in_eval = graph.computed(false);
    let layout = Layout { graph, home, readers, join, parameter, is_output, in_eval, by_home };
    if let Some(refused) = unspellable(&layout, &tree, true) {
        return Err(refused);
    }

    let class = type_name(&graph.name).to_string();
    // The network's class takes its name first: a block of the same name (a network
    // `channel_shuffle` calling std's block) gets another, rather than the two classes one.
    let mut classes = Classes::default();
    classes.names.insert(class.clone());
    let built = children(&layout, &tree, &mut classes);
    let (body, _) = class_body(&layout, &tree, &built);
    let params: Vec<String> = graph.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    // A free size shows as an example of the sizes it may take (the smallest of 32 or more).
    let example = |id: NodeId, axis: usize| {
        let free = graph.free.as_ref()?;
        let name = &free.names.iter().find(|n| n.input == id && n.axis == axis)?.name;
        let set = free.valid.iter().find(|(n, _)| n == name)?.1.as_ref().ok()?;
        (32..=4096).find(|&x| set.contains(x)).or_else(|| set.smallest())
    };
    let shape_of = |id: NodeId| {
        let shape = &graph.node(id).shape;
        let batch = match shape.batch {
            Batch::Symbolic(_) | Batch::None => "-1".to_string(),
            Batch::Fixed(n) => n.to_string(),
        };
        let sizes =
            shape.dims.iter().enumerate().map(|(axis, &d)| example(id, axis).unwrap_or(d).to_string());
        let dims: Vec<String> = std::iter::once(batch).chain(sizes).collect();
        dims.join(", ")
    };
    let names = python_inputs(graph);
    // One input keeps the constants every model has always had; a non-float one adds its
    // dtype. Several are listed by their `forward` argument names.
    let constants = match &graph.inputs[..] {
        [one] => {
            let free = match graph.free {
                Some(_) => ", free sizes at an example (`dynamic_shapes()`)",
                None => " (`dynamic_shapes()`)",
            };
            let mut text = format!("INPUT_SHAPE = ({})  # -1 is the batch{free}", shape_of(*one));
            if graph.node(*one).shape.dtype != DType::Float {
                text += &format!("\nINPUT_DTYPE = {}", torch_dtype(graph.node(*one).shape.dtype));
            }
            text
        }
        inputs => {
            let shapes: Vec<String> =
                inputs.iter().zip(&names).map(|(&id, (_, n))| format!("{n:?}: ({})", shape_of(id))).collect();
            let dtypes: Vec<String> = inputs
                .iter()
                .zip(&names)
                .map(|(&id, (_, n))| format!("{n:?}: {}", torch_dtype(graph.node(id).shape.dtype)))
                .collect();
            format!(
                "INPUT_SHAPES = {{{}}}  # -1 is the batch, which the inputs share\nINPUT_DTYPES = {{{}}}",
                shapes.join(", "),
                dtypes.join(", ")
            )
        }
    };
    let mut py = format!(
        r#""""The network `{}` ({}) from {source}, as a PyTorch module.

Written by `nnc emit --target pytorch`. Its state_dict keys and shapes are nnc's parameter
names, so a checkpoint of `nnc train` loads with `load_nnc_checkpoint`, and the
`save_file(model.state_dict(), ...)` of a model trained here loads into nnc (`--weights`).
"""

import torch
from torch import nn

{constants}
PARAMETERS = {}"#,
        graph.name,
        params.join(", "),
        graph.total_params()
    );
    py += &dynamic_shapes(graph, graph.free.as_deref(), &names);
    // The classes that layers' spellings use and `torch.nn` lacks, each once.
    let mut helpers: Vec<&str> = graph.nodes.iter().filter_map(|n| n.op.layer().pytorch_class()).collect();
    helpers.sort_unstable();
    helpers.dedup();
    for helper in helpers {
        let _ = write!(py, "\n\n\n{helper}");
    }
    py.push_str(&classes.source);
    let _ =
        write!(py, "\n\nclass {class}(nn.Module):\n    \"\"\"The network `{}`.\"\"\"\n\n{body}", graph.name);
    let _ = write!(
        py,
        r#"

def load_nnc_checkpoint(model, path):
    """Loads weights or a training checkpoint written by nnc (safetensors), strictly."""
    from safetensors.torch import load_file

    state = {{k: v for k, v in load_file(path).items() if not k.startswith(("optim.", "nnc."))}}
    model.load_state_dict(state, strict=True)
    return model


if __name__ == "__main__":
    net = {class}()
    count = sum(p.numel() for p in net.parameters())
    assert count == PARAMETERS, f"{{count}} parameters, nnc counted {{PARAMETERS}}"
{smoke}"#,
        smoke = smoke_test(graph, &class, &names),
    );
    Ok(py)
}

/// `dynamic_shapes()`, `torch.export`'s spelling of the sizes the network takes: the batch
/// the inputs share, a `Dim` from 1, and the free sizes with their valid sets. A set of one
/// residue class from a bound is a derived `Dim` (`16 * k_H` for `H % 16 == 0 and H ≥ 16`),
/// every size from a bound a `Dim` with that minimum; a set of several residues has no spelling
/// there, and raises, naming it. The variables are prefixed (`size_H`), so that no free name is
/// read as a Python keyword or as `Dim`.
fn dynamic_shapes(graph: &Graph, free: Option<&crate::free::FreeSizes>, names: &[(usize, String)]) -> String {
    let mut sets = String::new();
    let mut dims = String::new();
    let mut unsaid = Vec::new();
    let batch = graph.inputs.iter().find_map(|&id| match &graph.node(id).shape.batch {
        Batch::Symbolic(name) => Some(name.clone()),
        _ => None,
    });
    if let Some(name) = &batch {
        let _ = write!(dims, "\n    batch = Dim({name:?}, min=1)");
    }
    let no_free = crate::free::FreeSizes::default();
    let free = free.unwrap_or(&no_free);
    for ((name, text), (_, valid)) in free.sets().zip(&free.valid) {
        let _ = write!(sets, "\n    {name:?}: {text:?},");
        // torch.export takes a size of 1 for a constant: its range starts where none is.
        let from = free.no_ones_from(name, 4096);
        match (valid, from) {
            (Ok(set), Some(from)) if set.extra.is_empty() && set.modulus == 1 => {
                let _ = write!(dims, "\n    size_{name} = Dim({name:?}, min={from})");
            }
            (Ok(set), Some(from)) if set.extra.is_empty() && set.residues.len() == 1 => {
                let (m, r) = (set.modulus, set.residues[0]);
                // The smallest k with m·k + r from `from` on.
                let k = (from.saturating_sub(r)).div_ceil(m).max(1);
                let shifted = if r == 0 { String::new() } else { format!(" + {r}") };
                let _ = write!(
                    dims,
                    "\n    k_{name} = Dim(\"k_{name}\", min={k})\n    size_{name} = {m} * k_{name}{shifted}"
                );
            }
            _ => unsaid.push(format!("{name}: {text}")),
        }
    }
    let mut spec = Vec::new();
    for (&id, (_, arg)) in graph.inputs.iter().zip(names) {
        let batched = matches!(graph.node(id).shape.batch, Batch::Symbolic(_));
        let first = batched.then(|| "0: batch".to_string());
        let axes: Vec<String> = first
            .into_iter()
            .chain(free.names.iter().filter(|n| n.input == id).map(|n| {
                format!(
                    "{}: size_{}",
                    n.axis + usize::from(graph.node(id).shape.batch != Batch::None),
                    n.name
                )
            }))
            .collect();
        spec.push(format!("{arg:?}: {{{}}}", axes.join(", ")));
    }
    let body = match unsaid.is_empty() {
        true => format!("    from torch.export import Dim\n{dims}\n    return {{{}}}", spec.join(", ")),
        false => format!(
            "    raise NotImplementedError({:?})",
            format!("torch.export cannot state these sizes: {}", unsaid.join("; "))
        ),
    };
    let sets = match graph.free {
        Some(_) => format!(
            "\n\n# The network's free sizes, and the sizes it takes, as nnc derived them (`nnc check`).\nFREE_SIZES = {{{sets}\n}}\n"
        ),
        None => String::new(),
    };
    format!(
        r#"
{sets}

def dynamic_shapes():
    """torch.export's `dynamic_shapes` for the batch and the free sizes: `torch.export.export(net,
    (x,), dynamic_shapes=dynamic_shapes())` exports the module for every batch and every size it
    takes from where no size inside it is 1 (torch.export takes a size of 1 for a constant)."""
{body}"#
    )
}

/// The end of the emitted `__main__`: the module run on a random batch of right-typed inputs
/// (ids within the embedding that reads them, random masks), printing the output's shapes.
fn smoke_test(graph: &Graph, class: &str, names: &[(usize, String)]) -> String {
    let random = |id: NodeId, shape: &str| match graph.node(id).shape.dtype {
        DType::Float => format!("torch.randn(2, *{shape}[1:])"),
        DType::Int => format!("torch.randint(0, {}, (2, *{shape}[1:]))", graph.id_bound(id)),
        DType::Bool => format!("torch.rand(2, *{shape}[1:]) < 0.5"),
    };
    let shapes =
        "    shapes = \", \".join(str(tuple(t.shape)) for t in (y if isinstance(y, tuple) else (y,)))\n";
    match &graph.inputs[..] {
        [one] => format!(
            "    x = {}\n    y = net.eval()(x)\n{shapes}    print(f\"{class}: {{count}} parameters, output {{shapes}} for input {{tuple(x.shape)}}\")\n",
            random(*one, "INPUT_SHAPE")
        ),
        inputs => {
            let each: Vec<String> = inputs
                .iter()
                .zip(names)
                .map(|(&id, (_, n))| format!("        {n:?}: {},\n", random(id, &format!("INPUT_SHAPES[{n:?}]"))))
                .collect();
            format!(
                "    xs = {{\n{}    }}\n    y = net.eval()(**xs)\n{shapes}    inputs = \", \".join(f\"{{k}} {{tuple(v.shape)}}\" for k, v in xs.items())\n    print(f\"{class}: {{count}} parameters, output {{shapes}} for inputs {{inputs}}\")\n",
                each.concat()
            )
        }
    }
}

/// The network's inputs with the names its `forward` takes them by: a lone unnamed input is
/// `x0`, as it always was; any other is its own name, with `_` added where Python or the
/// emitted code would read it otherwise (`lambda_`, `torch_`, `x1_`).
fn python_inputs(graph: &Graph) -> Vec<(usize, String)> {
    if let [one] = graph.inputs[..] {
        if graph.node(one).name == "input" {
            return vec![(one.0, "x0".to_string())];
        }
    }
    graph
        .inputs
        .iter()
        .map(|id| {
            let name = &graph.node(*id).name;
            // `x3`, and `x3_1`, the name of a layer's state.
            let numbered =
                name.strip_prefix('x').is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
            let taken = PYTHON_KEYWORDS.contains(&name.as_str())
                || ["self", "torch", "nn", "super"].contains(&name.as_str())
                || numbered;
            (id.0, if taken { format!("{name}_") } else { name.clone() })
        })
        .collect()
}

/// The torch dtype of an element type.
fn torch_dtype(dtype: DType) -> &'static str {
    match dtype {
        DType::Float => "torch.float32",
        DType::Int => "torch.int64",
        DType::Bool => "torch.bool",
    }
}

/// Whether `tree` has a subtree at `path`.
fn has_tree(tree: &Tree, path: &str) -> bool {
    tree.children.iter().any(|(_, child)| match child {
        Child::Tree(sub) => sub.path == path || (inside(path, &sub.path) && has_tree(sub, path)),
        Child::Layer(..) => false,
    })
}
