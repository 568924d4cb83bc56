//! Calls of layers and blocks: resolving the name called, binding its arguments to the
//! parameters (positional, then keywords, then defaults), and applying it to the incoming
//! tensor.

use nnc_grammar::ast::{Arg, DefKind, Definition, Expr, ExprKind, Ident};

use super::eval::BUILTINS;
use super::graph::{child, refers, Join};
use super::{BodyKind, Expander, Frame, Scope};
use crate::diagnostic::did_you_mean;
use crate::front::load::RESERVED;
use crate::front::messages::{op_diagnostic, rank_origin, signature, Callee, Error};
use crate::front::value::Value;
use crate::ir::{Group, NodeId, Op};
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
        if let Some(value) = scope.read(name) {
            // A shared layer is applied where a tensor flows into it; elsewhere (a block's
            // argument) it is passed on as it is.
            return match (value, flow) {
                (Value::Shared(name, index), Some(flow)) => self.apply_shared(&name, index, loc, scope, flow),
                (value, _) => value,
            };
        }
        if let Some(spec) = ops::lookup(name) {
            return self.apply_op(spec, &[], loc, loc, scope, flow, path);
        }
        if let Some(&block) = self.program.blocks.get(name) {
            return self.call_block(name, block, &[], loc, scope, flow, path);
        }
        if self.program.broken_blocks.contains(name) {
            return Value::Poison;
        }
        let candidates: Vec<&str> = scope
            .vars
            .keys()
            .map(String::as_str)
            .chain(ops::ALL.iter().map(|o| o.name))
            .chain(self.program.blocks.keys().map(String::as_str))
            .collect();
        self.error(Error::UnknownName { name, at: loc, hint: did_you_mean(name, candidates) })
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
        if let Some(&builtin) = BUILTINS.iter().find(|b| **b == name) {
            return self.builtin(builtin, args, loc, scope);
        }
        match name {
            "cat" => return self.join_call("cat", Join::Concat, args, loc, scope, flow, path),
            "stack" => return self.join_call("stack", Join::Stack, args, loc, scope, flow, path),
            "matmul" => return self.contraction_call("matmul", args, loc, scope, flow, path),
            "einsum" => return self.einsum_call(args, loc, scope, flow, path),
            "scaled_dot_product_attention" => {
                return self.contraction_call("scaled_dot_product_attention", args, loc, scope, flow, path)
            }
            "chunk" => return self.apply_op(&ops::slice::CHUNK, args, loc, callee_loc, scope, flow, path),
            "split" => return self.apply_op(&ops::slice::SPLIT, args, loc, callee_loc, scope, flow, path),
            _ => {}
        }
        if let Some(spec) = ops::lookup(name) {
            return self.apply_op(spec, args, loc, callee_loc, scope, flow, path);
        }
        if let Some(&block) = self.program.blocks.get(name) {
            return self.call_block(name, block, args, loc, scope, flow, path);
        }
        // Its definition's syntax error says what is wrong; "unknown" would mislead.
        if self.program.broken_blocks.contains(name) {
            return Value::Poison;
        }
        let is_value = scope.vars.contains_key(name);
        let candidates = ops::ALL
            .iter()
            .map(|o| o.name)
            .chain(RESERVED.iter().copied())
            .chain(self.program.blocks.keys().map(String::as_str));
        let hint = match ops::renamed(name) {
            Some(new) => Some(format!(
                "did you mean `{new}`? `{name}` was renamed: layers name their rank, as PyTorch's modules do"
            )),
            None => did_you_mean(name, candidates),
        };
        self.error(Error::UnknownCallee { name, is_value, at: callee_loc, hint })
    }

    /// The `i`th argument of a call of tensors (`cat`, `matmul`, ...): the layers it makes are
    /// named `path.i`, unless it only names a tensor.
    fn tensor_arg(
        &mut self,
        i: usize,
        arg: &Arg,
        scope: &mut Scope,
        flow: Option<&Value>,
        path: &str,
    ) -> Value {
        let arg_path = if refers(&arg.value, scope) { path.to_string() } else { child(path, i) };
        self.eval(&arg.value, scope, flow, &arg_path)
    }

    /// `matmul(a, b)` or `scaled_dot_product_attention(q, k, v, is_causal=.., scale=..)`: the
    /// tensors by position, then the options by name.
    fn contraction_call(
        &mut self,
        name: &'static str,
        args: &[Arg],
        loc: Loc,
        scope: &mut Scope,
        flow: Option<&Value>,
        path: &str,
    ) -> Value {
        let (count, takes) = match name {
            "matmul" => (2, "two tensors"),
            _ => (3, "three tensors (query, key, value), then `mask`, `is_causal` and `scale` by name"),
        };
        let mut tensors = Vec::new();
        let (mut is_causal, mut scale, mut mask) = (false, None, None);
        for (i, arg) in args.iter().enumerate() {
            let option = arg.name.as_ref().map(|n| n.name.as_str());
            let value = match option {
                None | Some("mask") => self.tensor_arg(i, arg, scope, flow, path),
                Some(_) => self.eval(&arg.value, scope, None, path),
            };
            match (option, value) {
                (_, Value::Poison) => return Value::Poison,
                (None, value) => tensors.push((value, arg.value.span)),
                (Some("mask"), value) if count == 3 => mask = Some((value, arg.value.span)),
                (Some("is_causal"), Value::Bool(b)) if count == 3 => is_causal = b,
                (Some("scale"), Value::Float(v)) if count == 3 && v.is_finite() => scale = Some(v),
                (Some("scale"), Value::Int(v)) if count == 3 => scale = Some(v as f64),
                (_, value) => {
                    let found = format!("`{}` = {value}", option.unwrap_or("?"));
                    return self.error(Error::BuiltinArgs { function: name, takes, found, at: loc });
                }
            }
        }
        if tensors.len() != count {
            let found = match tensors.len() {
                1 => "one tensor".to_string(),
                n => format!("{n} tensors"),
            };
            return self.error(Error::BuiltinArgs { function: name, takes, found, at: loc });
        }
        let masked = mask.is_some();
        if masked && is_causal {
            let found = "both `mask` and `is_causal`, which PyTorch refuses together".to_string();
            return self.error(Error::BuiltinArgs { function: name, takes, found, at: loc });
        }
        tensors.extend(mask);
        let join = match name {
            "matmul" => Join::Matmul,
            _ => Join::Attention { is_causal, scale, masked },
        };
        self.join(join, tensors, loc, scope, path)
    }

    /// `einsum("nqd,nkd->nqk", q, k)`: the equation, then the operands.
    fn einsum_call(
        &mut self,
        args: &[Arg],
        loc: Loc,
        scope: &mut Scope,
        flow: Option<&Value>,
        path: &str,
    ) -> Value {
        let takes = "an equation with `->` (\"nqd,nkd->nqk\"), then its operands";
        let equation =
            match args.first().filter(|a| a.name.is_none()).map(|a| self.eval(&a.value, scope, None, path)) {
                Some(Value::Str(equation)) => equation,
                Some(Value::Poison) => return Value::Poison,
                Some(other) => {
                    return self.error(Error::BuiltinArgs {
                        function: "einsum",
                        takes,
                        found: other.to_string(),
                        at: loc,
                    })
                }
                None => {
                    return self.error(Error::BuiltinArgs {
                        function: "einsum",
                        takes,
                        found: "no equation".into(),
                        at: loc,
                    })
                }
            };
        let mut tensors = Vec::new();
        for (i, arg) in args.iter().enumerate().skip(1) {
            if arg.name.is_some() {
                return self.error(Error::BuiltinArgs {
                    function: "einsum",
                    takes,
                    found: "a named argument".into(),
                    at: loc,
                });
            }
            tensors.push((self.tensor_arg(i, arg, scope, flow, path), arg.value.span));
        }
        if tensors.is_empty() {
            return self.error(Error::BuiltinArgs {
                function: "einsum",
                takes,
                found: "no operands".into(),
                at: loc,
            });
        }
        self.join(Join::Einsum(equation), tensors, loc, scope, path)
    }

    /// `cat(a, b, dim=1)` or `stack(a, b, dim=1)` (`name`), joined as `join` says.
    #[allow(clippy::too_many_arguments)]
    fn join_call(
        &mut self,
        name: &'static str,
        join: fn(i64) -> Join,
        args: &[Arg],
        loc: Loc,
        scope: &mut Scope,
        flow: Option<&Value>,
        path: &str,
    ) -> Value {
        let mut tensors = Vec::new();
        let mut dim = 1i64;
        for (i, arg) in args.iter().enumerate() {
            match &arg.name {
                None => tensors.push((self.tensor_arg(i, arg, scope, flow, path), arg.value.span)),
                Some(n) if n.name == "dim" => match self.eval(&arg.value, scope, None, path) {
                    Value::Int(d) => dim = d,
                    Value::Poison => return Value::Poison,
                    other => {
                        let found = self.found(&other);
                        return self.error(Error::CatDimNotInteger {
                            found,
                            at: Loc::new(scope.file, arg.value.span),
                        });
                    }
                },
                Some(n) => {
                    let at = Loc::new(scope.file, n.span);
                    return self.error(Error::CatUnknownArg { join: name, name: &n.name, at });
                }
            }
        }
        if tensors.is_empty() {
            return self.error(Error::CatEmpty { join: name, at: loc });
        }
        // The shape rule resolves a negative `dim`, and refuses one out of range as written.
        self.join(join(dim), tensors, loc, scope, path)
    }

    /// Applies a built-in layer, or `chunk` or `split`, to the incoming tensor.
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
        let name = if path.is_empty() { spec.name.to_string() } else { path.to_string() };
        let Some(bound) = self.bind_op_args(spec, args, loc, scope, flow, &name) else {
            return Value::Poison;
        };
        let input = match flow {
            Some(Value::Tensor(id)) => *id,
            Some(Value::Poison) => return Value::Poison,
            _ => return self.error(Error::LayerNeedsInput { layer: spec.name, at: callee }),
        };
        if !self.batched(input, || format!("layer `{}`", spec.name), loc)
            || !self.typed(input, spec.takes, || format!("layer `{}`", spec.name), loc)
        {
            return Value::Poison;
        }
        // Borrowed, not copied: the rules read it before any node is added.
        let shape = &self.nodes[input.0].shape;
        // `chunk` and `split` give a tuple of their pieces, each a slice node named `path.0`,
        // `path.1`, ... (a destructuring binding renames them after its names).
        if matches!(spec.name, "chunk" | "split") {
            return match ops::slice::pieces(spec, &bound.args, shape) {
                Ok(pieces) => Value::Tuple(
                    pieces
                        .into_iter()
                        .enumerate()
                        .map(|(i, (op, shape))| {
                            self.add_node(child(&name, i), Op::Slice(op), vec![input], shape, 0, 0, loc)
                        })
                        .collect(),
                ),
                Err(err) => self.op_error(err, &bound, input, loc, &name),
            };
        }
        match (spec.apply)(&bound.args, shape) {
            Ok(built) => {
                // The tensors given by keyword (a recurrent layer's initial states, an
                // attention's memory) follow the flowing one, in the parameters' order.
                let inputs = std::iter::once(input).chain(bound.tensors).collect();
                self.add_node(name, built.op, inputs, built.shape, built.params, built.macs, loc)
            }
            Err(err) => self.op_error(err, &bound, input, loc, &name),
        }
    }

    /// Reports a shape rule's error at the argument it blames (or the call), with how the
    /// input got its size or rank when that is the trouble.
    fn op_error(&mut self, err: OpError, bound: &BoundOp, input: NodeId, loc: Loc, name: &str) -> Value {
        let given = |a| bound.locs.iter().find(|(name, _)| *name == a).map(|&(_, at)| at);
        let at = err.arg.and_then(given).unwrap_or(loc);
        let history = err.axis.map(|axis| self.size_history(input, axis));
        let needs = err.needs;
        let mut d = op_diagnostic(err, at, Some(name));
        d.notes.extend(history);
        if let Some(layout) = needs {
            let origin = self.rank_origin(input);
            d = rank_origin(d, &self.nodes[origin.0], &self.shown_shape(origin), layout);
        }
        let inputs: Vec<NodeId> = std::iter::once(input).chain(bound.tensors.iter().copied()).collect();
        let d = self.show_free_sizes(d, &inputs);
        self.error(d)
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
                    let at = Loc::new(file, arg.value.span);
                    self.error(Error::TooManyArgs { callee, given: args.len(), at });
                    return None;
                }
                None => {
                    positional += 1;
                    positional - 1
                }
                Some(n) => match callee.params.iter().position(|p| *p == n.name) {
                    Some(i) => i,
                    None => {
                        self.error(Error::UnknownArg { callee, name: &n.name, at: Loc::new(file, n.span) });
                        ok = false;
                        continue;
                    }
                },
            };
            if slots[slot].is_some() {
                let at = Loc::new(file, arg.value.span);
                self.error(Error::ArgTwice { param: callee.params[slot], at });
                ok = false;
                continue;
            }
            slots[slot] = Some(arg);
        }
        ok.then_some(slots)
    }

    /// Binds a layer's arguments. A [`Kind::Tensor`] argument is evaluated with the tensor
    /// flowing into the layer as `_`; the layers it makes are named after the layer's `name`
    /// and the parameter (`lstm_h0`, `attn_memory`), beside the layer, which as a module can
    /// hold none.
    fn bind_op_args(
        &mut self,
        spec: &'static OpSpec,
        args: &[Arg],
        loc: Loc,
        scope: &mut Scope,
        flow: Option<&Value>,
        name: &str,
    ) -> Option<BoundOp> {
        let names: Vec<&str> = spec.params.iter().map(|p| p.name).collect();
        let callee = Callee::layer(spec, &names);
        let packed;
        let args = match spec.params {
            [only] if only.kind == Kind::Ints => {
                packed = pack_positional(args);
                &packed[..]
            }
            _ => args,
        };
        let slots = self.match_args(&callee, args, scope.file)?;
        let mut values: Vec<Option<(ArgValue, Loc)>> = vec![None; spec.params.len()];
        let mut tensors = Vec::new();
        let mut ok = true;
        for (slot, arg) in slots.iter().enumerate().filter_map(|(i, a)| Some((i, (*a)?))) {
            let param = &spec.params[slot];
            let arg_loc = Loc::new(scope.file, arg.value.span);
            if let Kind::Tensor(dtype) = param.kind {
                let value = self.eval(&arg.value, scope, flow, &format!("{name}_{}", param.name));
                let what = || format!("`{}`'s `{}`", spec.name, param.name);
                match value {
                    Value::Tensor(id) => {
                        if self.batched(id, what, arg_loc) && self.typed(id, dtype, what, arg_loc) {
                            let shape = self.nodes[id.0].shape.clone();
                            values[slot] = Some((ArgValue::Tensor(shape), arg_loc));
                            tensors.push(id);
                        } else {
                            ok = false;
                        }
                    }
                    // None, as the default: a block passes its own optional tensor on.
                    Value::Bool(false) => values[slot] = Some((ArgValue::Unset, arg_loc)),
                    Value::Poison => ok = false,
                    other => {
                        let found = self.found(&other);
                        let (param, kind) = (param.name, param.kind);
                        self.error(Error::ArgType { param, kind, value: &other, found, at: arg_loc });
                        ok = false;
                    }
                }
                continue;
            }
            let value = self.eval(&arg.value, scope, None, "");
            match convert(&value, param.kind) {
                Some(v) => values[slot] = Some((v, arg_loc)),
                None if value == Value::Poison => ok = false,
                None => {
                    let found = self.found(&value);
                    let (param, kind) = (param.name, param.kind);
                    self.error(Error::ArgType { param, kind, value: &value, found, at: arg_loc });
                    ok = false;
                }
            }
        }
        let mut locs = Vec::new();
        let mut bound = Vec::with_capacity(spec.params.len());
        for (param, value) in spec.params.iter().zip(values) {
            match (value, param.default.clone()) {
                (Some((v, at)), _) => {
                    locs.push((param.name, at));
                    bound.push((v, true));
                }
                (None, Some(default)) => bound.push((default, false)),
                (None, None) => {
                    if ok {
                        let (layer, param, signature) = (spec.name, param.name, signature(spec));
                        self.error(Error::MissingLayerArg { layer, param, signature, at: loc });
                    }
                    ok = false;
                }
            }
        }
        ok.then_some(BoundOp { args: Args { values: bound, params: spec.params }, locs, tensors })
    }

    /// Calls a block on the incoming tensor.
    /// A function's body, evaluated with its parameters bound in `inner`: a value, never a
    /// layer (no tensor flows into a function).
    fn call_function(&mut self, name: &str, def: &Definition, mut inner: Scope, loc: Loc) -> Value {
        let before = self.nodes.len();
        self.frames.push(Frame::Call { block: name.to_string(), instance: String::new(), at: loc });
        let result = self.body(&def.body, &mut inner, "", BodyKind::Function, None);
        self.frames.pop();
        for (param, (_, read)) in def.params.iter().zip(&inner.params_read) {
            self.lints.param(name, &param.name.name, Loc::new(inner.file, param.name.span), *read);
        }
        match result {
            Some(Value::Poison) => Value::Poison,
            Some(Value::Tensor(_)) => self.error(Error::FunctionTensor { function: name, at: loc }),
            _ if self.nodes.len() > before => self.error(Error::FunctionTensor { function: name, at: loc }),
            Some(v) => v,
            None => self.error(Error::FunctionTensor { function: name, at: loc }),
        }
    }

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
            // Not through `error`, which would add the context: the cycle is the context.
            let cycle = &self.frames[pos + 1..];
            let function = def.kind == DefKind::Function;
            self.diags.push(Error::Recursion { block: name, function, at: loc, cycle }.into());
            return Value::Poison;
        }
        let depth = self.frames.iter().filter(|f| matches!(f, Frame::Call { .. })).count();
        if depth >= self.limits.max_call_depth {
            return self.limit(Error::TooDeep { max: self.limits.max_call_depth, at: loc });
        }
        let mut inner = Scope::new(block.0, path);
        // Arguments are evaluated in the caller's scope, defaults in the block's, in order, so
        // that a default may use the parameters before it (`mid = c // 4`).
        let names: Vec<&str> = def.params.iter().map(|p| p.name.name.as_str()).collect();
        let callee = Callee::block(name, &names, Loc::new(block.0, def.name.span));
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
                    let param_at = Loc::new(block.0, param.name.span);
                    let param = &param.name.name;
                    return self.error(Error::MissingBlockArg { block: name, param, at: loc, param_at });
                }
            };
            // A tensor (a decoder's memory) shows as its shape.
            match &value {
                Value::Tensor(id) => shown.push(format!("{}={}", param.name.name, self.nodes[id.0].shape)),
                value => shown.push(format!("{}={value}", param.name.name)),
            }
            inner.vars.insert(param.name.name.clone(), (value, param.name.span));
            inner.params_read.push((param.name.name.clone(), false));
        }
        if def.kind == DefKind::Function {
            return self.call_function(name, def, inner, loc);
        }
        match flow {
            Some(&Value::Tensor(id)) => {
                if !self.batched(id, || format!("block `{name}`"), loc) {
                    return Value::Poison;
                }
            }
            Some(Value::Poison) => return Value::Poison,
            _ => return self.error(Error::BlockNeedsInput { block: name, at: loc }),
        }
        inner.input = flow.cloned();
        self.groups.push(Group { name: path.to_string(), label: format!("{name}({})", shown.join(", ")) });
        self.frames.push(Frame::Call { block: name.to_string(), instance: path.to_string(), at: loc });
        let result = self.body(&def.body, &mut inner, path, BodyKind::Block, None);
        self.frames.pop();
        for (param, (_, read)) in def.params.iter().zip(&inner.params_read) {
            self.lints.param(name, &param.name.name, Loc::new(block.0, param.name.span), *read);
        }
        match result {
            Some(v @ (Value::Tensor(_) | Value::Poison)) => v,
            other => {
                let found = other.map(|v| v.type_name());
                let at =
                    def.body.last().map_or(Loc::new(block.0, def.name.span), |s| Loc::new(block.0, s.span()));
                self.diags.push(Error::BlockOutput { block: name, found, at, call: loc }.into());
                Value::Poison
            }
        }
    }
}

struct BoundOp {
    args: Args,
    /// Where each given argument was written, by parameter: a short list, searched only to
    /// report an error, where a map (made for every layer) cost more than the search.
    locs: Vec<(&'static str, Loc)>,
    /// The tensors given to [`Kind::Tensor`] parameters, in the parameters' order.
    tensors: Vec<NodeId>,
}

/// The arguments with two or more positional ones packed into one tuple, as a layer whose
/// only parameter is [`Kind::Ints`] takes them: `reshape(4, -1)` is `reshape((4, -1))`.
fn pack_positional(args: &[Arg]) -> Vec<Arg> {
    let positional: Vec<Expr> = args.iter().filter(|a| a.name.is_none()).map(|a| a.value.clone()).collect();
    if positional.len() < 2 {
        return args.to_vec();
    }
    let span = positional[0].span.to(positional[positional.len() - 1].span);
    let tuple = Arg { name: None, value: Expr { kind: ExprKind::Tuple(positional), span } };
    std::iter::once(tuple).chain(args.iter().filter(|a| a.name.is_some()).cloned()).collect()
}

/// Converts a value to a parameter's kind, or `None` if it is not of that kind.
fn convert(value: &Value, kind: Kind) -> Option<ArgValue> {
    match (kind, value) {
        (Kind::Int | Kind::Spatial(_), Value::Int(v)) => Some(ArgValue::Int(*v)),
        // A tuple only of the layer's spatial rank: `kernel=(3, 3)` on a `conv3d` is a mistake.
        (Kind::Spatial(n), Value::Tuple(items)) if items.len() == n => convert(value, Kind::Dims),
        (Kind::Dims, Value::Int(v)) => Some(ArgValue::Dims(vec![*v])),
        (Kind::Ints, Value::Int(v)) => Some(ArgValue::Int(*v)),
        (Kind::Dims | Kind::Ints, Value::Tuple(items)) => items
            .iter()
            .map(|item| if let Value::Int(v) = item { Some(*v) } else { None })
            .collect::<Option<Vec<i64>>>()
            .map(ArgValue::Dims),
        (Kind::Float, Value::Float(v)) => Some(ArgValue::Float(*v)),
        (Kind::Float, Value::Int(v)) => Some(ArgValue::Float(*v as f64)),
        (Kind::Bool, Value::Bool(v)) => Some(ArgValue::Bool(*v)),
        (Kind::Choice(choices), Value::Str(s)) => {
            choices.iter().find(|c| *c == s).map(|c| ArgValue::Choice(c))
        }
        (Kind::SpatialOr(_, choices), Value::Str(_)) => convert(value, Kind::Choice(choices)),
        (Kind::SpatialOr(n, _), _) => convert(value, Kind::Spatial(n)),
        _ => None,
    }
}
