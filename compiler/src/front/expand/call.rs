//! Calls of layers and blocks: resolving the name called, binding its arguments to the
//! parameters (positional, then keywords, then defaults), and applying it to the incoming
//! tensor.

use std::collections::HashMap;

use nnc_grammar::ast::{Arg, DefKind, Ident};

use super::graph::{child, refers, Join};
use super::{Expander, Frame, Scope};
use crate::diagnostic::{did_you_mean, Code, Diagnostic};
use crate::front::load::RESERVED;
use crate::front::value::Value;
use crate::ir::Group;
use crate::ops::{self, ArgValue, Args, Kind, OpError, OpSpec};
use crate::source::{FileId, Loc};

impl Expander<'_> {
    pub(super) fn name(
        &mut self,
        name: &str,
        loc: Loc,
        scope: &mut Scope,
        flow: Option<&Value>,
        path: &str,
    ) -> Value {
        if let Some((value, _)) = scope.vars.get(name) {
            return value.clone();
        }
        if let Some(spec) = ops::lookup(name) {
            return self.apply_op(spec, &[], loc, loc, scope, flow, path);
        }
        if let Some(&block) = self.program.blocks.get(name) {
            return self.call_block(name, block, &[], loc, scope, flow, path);
        }
        let candidates: Vec<&str> = scope
            .vars
            .keys()
            .map(String::as_str)
            .chain(ops::ALL.iter().map(|o| o.name))
            .chain(self.program.blocks.keys().map(String::as_str))
            .collect();
        let d = Diagnostic::error(Code::UnknownName, format!("unknown name `{name}`"))
            .primary(loc, "not a parameter, tensor, layer or block")
            .maybe_hint(did_you_mean(name, candidates));
        self.error(d)
    }

    pub(super) fn call(
        &mut self,
        callee: &Ident,
        args: &[Arg],
        loc: Loc,
        scope: &mut Scope,
        flow: Option<&Value>,
        path: &str,
    ) -> Value {
        let name = callee.name.as_str();
        let callee_loc = Loc::new(scope.file, callee.span);
        if name == "cat" {
            return self.cat(args, loc, scope, flow, path);
        }
        if let Some(spec) = ops::lookup(name) {
            return self.apply_op(spec, args, loc, callee_loc, scope, flow, path);
        }
        if let Some(&block) = self.program.blocks.get(name) {
            return self.call_block(name, block, args, loc, scope, flow, path);
        }
        let message = if scope.vars.contains_key(name) {
            format!("`{name}` is a value, not a layer or block, and cannot be called")
        } else {
            format!("unknown layer or block `{name}`")
        };
        let candidates = ops::ALL
            .iter()
            .map(|o| o.name)
            .chain(RESERVED.iter().copied())
            .chain(self.program.blocks.keys().map(String::as_str));
        let d = Diagnostic::error(Code::UnknownName, message)
            .primary(callee_loc, "not a built-in layer or a block in scope")
            .maybe_hint(
                did_you_mean(name, candidates)
                    .or_else(|| Some("blocks from other files need an `import`".into())),
            );
        self.error(d)
    }

    fn cat(&mut self, args: &[Arg], loc: Loc, scope: &mut Scope, flow: Option<&Value>, path: &str) -> Value {
        let mut tensors = Vec::new();
        let mut dim = 1i64;
        for (i, arg) in args.iter().enumerate() {
            match &arg.name {
                None => {
                    let arg_path = if refers(&arg.value, scope) { path.to_string() } else { child(path, i) };
                    tensors.push((self.eval(&arg.value, scope, flow, &arg_path), arg.value.span));
                }
                Some(n) if n.name == "dim" => match self.eval(&arg.value, scope, None, path) {
                    Value::Int(d) => dim = d,
                    Value::Poison => return Value::Poison,
                    other => {
                        return self.type_error(
                            format!("`dim` must be an integer, not {}", other.type_name()),
                            &other,
                            Loc::new(scope.file, arg.value.span),
                        );
                    }
                },
                Some(n) => {
                    let d = Diagnostic::error(
                        Code::UnknownArgument,
                        format!("`cat` has no argument `{}`", n.name),
                    )
                    .primary(Loc::new(scope.file, n.span), "unknown argument")
                    .hint("`cat(a, b, ..., dim=1)` takes tensors and an optional `dim`");
                    return self.error(d);
                }
            }
        }
        if tensors.is_empty() {
            let d = Diagnostic::error(Code::ArgumentCount, "`cat` needs at least one tensor")
                .primary(loc, "nothing to concatenate")
                .hint("e.g. `cat(a, b)` joins a and b along the channels");
            return self.error(d);
        }
        let rank = tensors.iter().find_map(|(v, _)| match v {
            Value::Tensor(id) => Some(self.nodes[id.0].shape.rank() as i64),
            _ => None,
        });
        let resolved = match rank {
            Some(r) if dim < 0 => dim + r,
            _ => dim,
        };
        // Out-of-range values become an error in the shape rule; clamp only to keep usize.
        self.join(Join::Concat, tensors, resolved.clamp(0, i64::from(u32::MAX)) as usize, loc, scope, path)
    }

    /// Applies a built-in layer to the incoming tensor.
    #[allow(clippy::too_many_arguments)]
    fn apply_op(
        &mut self,
        spec: &'static OpSpec,
        args: &[Arg],
        loc: Loc,
        callee: Loc,
        scope: &mut Scope,
        flow: Option<&Value>,
        path: &str,
    ) -> Value {
        let Some(bound) = self.bind_op_args(spec, args, loc, scope) else {
            return Value::Poison;
        };
        let input = match flow {
            Some(Value::Tensor(id)) => *id,
            Some(Value::Poison) => return Value::Poison,
            _ => {
                let d = Diagnostic::error(Code::Type, format!("`{}` is a layer and needs an input tensor here", spec.name))
                    .primary(callee, "nothing flows into this layer")
                    .hint("layers stand in chains (`x -> conv2d(...)`) or statements; arguments and conditions take values");
                return self.error(d);
            }
        };
        let name = if path.is_empty() { spec.name.to_string() } else { path.to_string() };
        let shape = self.nodes[input.0].shape.clone();
        match (spec.apply)(&bound.args, &shape) {
            Ok(built) => {
                self.add_node(name, built.op, vec![input], built.shape, built.params, built.macs, loc)
            }
            Err(err) => {
                let at = err.arg.and_then(|a| bound.locs.get(a).copied()).unwrap_or(loc);
                let history = err.axis.map(|axis| self.size_history(input, axis));
                let mut d = op_diagnostic(err, at, Some(&name));
                d.notes.extend(history);
                self.error(d)
            }
        }
    }

    /// Matches a call's arguments to its parameters: positional ones in order, then keywords by
    /// name. Reports extra, unknown and repeated arguments; returns the argument of each
    /// parameter (if given), or `None` when an error was reported.
    fn match_args<'a>(
        &mut self,
        callee: &Callee,
        args: &'a [Arg],
        file: FileId,
    ) -> Option<Vec<Option<&'a Arg>>> {
        let mut slots: Vec<Option<&Arg>> = vec![None; callee.params.len()];
        let mut ok = true;
        let mut positional = 0;
        for arg in args {
            let slot = match &arg.name {
                None if positional >= callee.params.len() => {
                    let message = format!(
                        "{} takes at most {} arguments, but gets {}",
                        callee.what,
                        callee.params.len(),
                        args.len()
                    );
                    let d = callee
                        .context(Diagnostic::error(Code::ArgumentCount, message))
                        .primary(Loc::new(file, arg.value.span), "extra argument");
                    self.error(d);
                    return None;
                }
                None => {
                    positional += 1;
                    positional - 1
                }
                Some(n) => match callee.params.iter().position(|p| *p == n.name) {
                    Some(i) => i,
                    None => {
                        let message = format!("{} has no argument `{}`", callee.what, n.name);
                        let d = callee
                            .context(Diagnostic::error(Code::UnknownArgument, message))
                            .primary(Loc::new(file, n.span), "unknown argument")
                            .maybe_hint(did_you_mean(&n.name, callee.params.iter().copied()));
                        self.error(d);
                        ok = false;
                        continue;
                    }
                },
            };
            if slots[slot].is_some() {
                let message = format!("argument `{}` is given twice", callee.params[slot]);
                let d = Diagnostic::error(Code::ArgumentCount, message)
                    .primary(Loc::new(file, arg.value.span), "given again here");
                self.error(d);
                ok = false;
                continue;
            }
            slots[slot] = Some(arg);
        }
        ok.then_some(slots)
    }

    fn bind_op_args(
        &mut self,
        spec: &'static OpSpec,
        args: &[Arg],
        loc: Loc,
        scope: &mut Scope,
    ) -> Option<BoundOp> {
        let names: Vec<&str> = spec.params.iter().map(|p| p.name).collect();
        let callee = Callee {
            what: format!("`{}`", spec.name),
            params: &names,
            defined: None,
            signature: Some(signature(spec)),
        };
        let slots = self.match_args(&callee, args, scope.file)?;
        let mut values: Vec<Option<(ArgValue, Loc)>> = vec![None; spec.params.len()];
        let mut ok = true;
        for (slot, arg) in slots.iter().enumerate().filter_map(|(i, a)| Some((i, (*a)?))) {
            let param = &spec.params[slot];
            let arg_loc = Loc::new(scope.file, arg.value.span);
            let value = self.eval(&arg.value, scope, None, "");
            match convert(&value, param.kind) {
                Some(v) => values[slot] = Some((v, arg_loc)),
                None if value == Value::Poison => ok = false,
                None => {
                    let hint = match (&value, param.kind) {
                        (Value::Float(_), Kind::Int | Kind::Pair) => {
                            Some("use `//` for integer division".to_string())
                        }
                        _ => None,
                    };
                    let d = Diagnostic::error(
                        Code::Type,
                        format!(
                            "`{}` must be {}, but is {}",
                            param.name,
                            param.kind.describe(),
                            value.type_name()
                        ),
                    )
                    .primary(arg_loc, format!("this is {}", self.show(&value)))
                    .maybe_hint(hint);
                    self.error(d);
                    ok = false;
                }
            }
        }
        let mut locs = HashMap::new();
        let mut bound = Vec::new();
        for (param, value) in spec.params.iter().zip(values) {
            match (value, param.default) {
                (Some((v, at)), _) => {
                    locs.insert(param.name, at);
                    bound.push((v, true));
                }
                (None, Some(default)) => bound.push((default, false)),
                (None, None) => {
                    if ok {
                        let d = Diagnostic::error(
                            Code::ArgumentCount,
                            format!("`{}` needs the argument `{}`", spec.name, param.name),
                        )
                        .primary(loc, format!("`{}` is missing", param.name))
                        .hint(format!("the signature is {}", signature(spec)));
                        self.error(d);
                    }
                    ok = false;
                }
            }
        }
        ok.then_some(BoundOp { args: Args { values: bound, params: spec.params }, locs })
    }

    /// Calls a block on the incoming tensor.
    #[allow(clippy::too_many_arguments)]
    fn call_block(
        &mut self,
        name: &str,
        block: (FileId, usize),
        args: &[Arg],
        loc: Loc,
        scope: &mut Scope,
        flow: Option<&Value>,
        path: &str,
    ) -> Value {
        let def = self.program.definition(block);
        if let Some(pos) =
            self.frames.iter().position(|f| matches!(f, Frame::Call { block: b, .. } if b == name))
        {
            let mut d = Diagnostic::error(Code::Recursion, format!("block `{name}` calls itself"))
                .primary(loc, "this call would expand forever");
            for frame in &self.frames[pos + 1..] {
                if let Frame::Call { block, at, .. } = frame {
                    d = d.secondary(*at, format!("`{block}` is called here"));
                }
            }
            // Context frames are added by `error`; the chain above is the cycle itself.
            let d = d.hint("blocks cannot be recursive; build deep networks with `repeat`");
            self.diags.push(d);
            return Value::Poison;
        }
        let depth = self.frames.iter().filter(|f| matches!(f, Frame::Call { .. })).count();
        if depth >= self.limits.max_call_depth {
            let msg = format!("block calls nest deeper than the limit of {}", self.limits.max_call_depth);
            return self.limit(loc, msg, "this call is too deep");
        }
        let mut inner =
            Scope { file: block.0, vars: HashMap::new(), input: None, label_prefix: path.to_string() };
        // Arguments are evaluated in the caller's scope, defaults in the block's, in order, so
        // that a default may use the parameters before it (`mid = c // 4`).
        let names: Vec<&str> = def.params.iter().map(|p| p.name.name.as_str()).collect();
        let callee = Callee {
            what: format!("block `{name}`"),
            params: &names,
            defined: Some(Loc::new(block.0, def.name.span)),
            signature: None,
        };
        let Some(slots) = self.match_args(&callee, args, scope.file) else {
            return Value::Poison;
        };
        let mut ok = true;
        let mut given: Vec<Option<Value>> = vec![None; def.params.len()];
        for (slot, arg) in slots.iter().enumerate() {
            if let Some(arg) = arg {
                let value = self.eval(&arg.value, scope, None, "");
                ok &= value != Value::Poison;
                given[slot] = Some(value);
            }
        }
        if !ok {
            return Value::Poison;
        }
        let mut shown = Vec::new();
        for (param, value) in def.params.iter().zip(given) {
            let value = match (value, &param.default) {
                (Some(v), _) => v,
                (None, Some(default)) => match self.eval(default, &mut inner, None, "") {
                    Value::Poison => return Value::Poison,
                    v => v,
                },
                (None, None) => {
                    let d = Diagnostic::error(
                        Code::ArgumentCount,
                        format!("block `{name}` needs the argument `{}`", param.name.name),
                    )
                    .primary(loc, format!("`{}` is missing", param.name.name))
                    .secondary(Loc::new(block.0, param.name.span), "parameter without a default");
                    return self.error(d);
                }
            };
            shown.push(format!("{}={value}", param.name.name));
            inner.vars.insert(param.name.name.clone(), (value, param.name.span));
        }
        match flow {
            Some(Value::Tensor(_)) => {}
            Some(Value::Poison) => return Value::Poison,
            _ => {
                let d = Diagnostic::error(Code::Type, format!("block `{name}` needs an input tensor here"))
                    .primary(loc, "nothing flows into this block")
                    .hint("blocks stand in chains (`x -> block(...)`) or statements");
                return self.error(d);
            }
        }
        inner.input = flow.cloned();
        self.groups.push(Group { name: path.to_string(), label: format!("{name}({})", shown.join(", ")) });
        self.frames.push(Frame::Call { block: name.to_string(), instance: path.to_string(), at: loc });
        let result = self.body(&def.body, &mut inner, path, DefKind::Block);
        self.frames.pop();
        match result {
            Some(v @ (Value::Tensor(_) | Value::Poison)) => v,
            other => {
                let what = other.map_or("nothing".to_string(), |v| v.type_name().to_string());
                let at =
                    def.body.last().map_or(Loc::new(block.0, def.name.span), |s| Loc::new(block.0, s.span()));
                let d = Diagnostic::error(Code::Structure, format!("block `{name}` must end with a tensor"))
                    .primary(at, format!("the last statement gives {what}"))
                    .secondary(loc, "called here")
                    .hint("a block's output is its last statement");
                self.diags.push(d);
                Value::Poison
            }
        }
    }
}

/// What is being called, as argument errors describe it.
struct Callee<'p> {
    /// "`conv2d`" or "block `residual`".
    what: String,
    params: &'p [&'p str],
    /// Where a block is defined.
    defined: Option<Loc>,
    /// A built-in layer's signature.
    signature: Option<String>,
}

impl Callee<'_> {
    /// Adds where the callee is defined, or its signature.
    fn context(&self, mut d: Diagnostic) -> Diagnostic {
        if let Some(at) = self.defined {
            d = d.secondary(at, "block defined here");
        }
        if let Some(signature) = &self.signature {
            d = d.note(format!("the signature is {signature}"));
        }
        d
    }
}

struct BoundOp {
    args: Args,
    /// Where each given argument was written.
    locs: HashMap<&'static str, Loc>,
}

pub(super) fn op_diagnostic(err: OpError, at: Loc, layer: Option<&str>) -> Diagnostic {
    let label = match (layer, err.label.is_empty()) {
        (Some(name), true) => format!("in layer `{name}`"),
        (Some(name), false) => format!("{} (layer `{name}`)", err.label),
        (None, _) => err.label,
    };
    let mut d = Diagnostic::error(err.code, err.message).primary(at, label).maybe_hint(err.hint);
    d.notes = err.notes;
    d
}

/// `conv2d(out_channels, kernel, stride=1, ...)`
fn signature(spec: &OpSpec) -> String {
    let params: Vec<String> = spec
        .params
        .iter()
        .map(|p| match p.default {
            None => p.name.to_string(),
            Some(ArgValue::Int(v)) => format!("{}={v}", p.name),
            Some(ArgValue::Float(v)) => format!("{}={v}", p.name),
            Some(ArgValue::Bool(v)) => format!("{}={v}", p.name),
            Some(ArgValue::Pair([a, b])) => format!("{}=({a}, {b})", p.name),
            Some(ArgValue::Unset) => format!("{}=…", p.name),
        })
        .collect();
    format!("`{}({})`", spec.name, params.join(", "))
}

/// Converts a value to a parameter's kind, or `None` if it is not of that kind.
fn convert(value: &Value, kind: Kind) -> Option<ArgValue> {
    match (kind, value) {
        (Kind::Int, Value::Int(v)) | (Kind::Pair, Value::Int(v)) => {
            Some(if kind == Kind::Int { ArgValue::Int(*v) } else { ArgValue::Pair([*v, *v]) })
        }
        (Kind::Pair, Value::Tuple(items)) => match items[..] {
            [Value::Int(a), Value::Int(b)] => Some(ArgValue::Pair([a, b])),
            _ => None,
        },
        (Kind::Float, Value::Float(v)) => Some(ArgValue::Float(*v)),
        (Kind::Float, Value::Int(v)) => Some(ArgValue::Float(*v as f64)),
        (Kind::Bool, Value::Bool(v)) => Some(ArgValue::Bool(*v)),
        _ => None,
    }
}
