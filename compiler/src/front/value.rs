//! The values an expression evaluates to while a model is expanded.

use std::fmt;

use crate::ir::NodeId;

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    Tuple(Vec<Value>),
    /// The output of a node of the graph being built.
    Tensor(NodeId),
    /// A `shared` layer (its name, and its index among the expansion's), applied where it is
    /// written as a stage.
    Shared(String, usize),
    /// The result of an expression whose error was already reported. Everything computed from
    /// it is poisoned too, silently, so that one mistake gives one diagnostic.
    Poison,
}

impl Value {
    /// The type's name, as error messages say it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Bool(_) => "a boolean",
            Value::Str(_) => "a string",
            Value::Tuple(_) => "a tuple",
            Value::Tensor(_) => "a tensor",
            Value::Shared(..) => "a shared layer",
            Value::Poison => "an invalid value",
        }
    }

    /// How many values it holds, itself included (a tuple's items, nested ones too).
    pub fn weight(&self) -> u64 {
        match self {
            Value::Tuple(items) => 1 + items.iter().map(Value::weight).sum::<u64>(),
            _ => 1,
        }
    }
}

/// How much of a tuple a message shows, in bytes, before it writes `…`: a tuple may hold
/// thousands of items (`split` of many channels), which no message needs to spell out.
const SHOWN_BYTES: usize = 200;

impl Value {
    /// Writes the value to `out`, a tuple's items only while `out` is shorter than `limit`.
    fn show(&self, out: &mut String, limit: usize) {
        use std::fmt::Write;
        let _ = match self {
            Value::Int(v) => write!(out, "{v}"),
            Value::Float(v) => write!(out, "{v:?}"),
            Value::Bool(v) => write!(out, "{v}"),
            Value::Str(v) => write!(out, "{v:?}"),
            Value::Tuple(items) => {
                out.push('(');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    if out.len() >= limit {
                        out.push('…');
                        break;
                    }
                    item.show(out, limit);
                }
                out.push_str(if items.len() == 1 { ",)" } else { ")" });
                Ok(())
            }
            Value::Tensor(id) => write!(out, "tensor #{}", id.0),
            Value::Shared(name, _) => write!(out, "shared layer `{name}`"),
            Value::Poison => write!(out, "<error>"),
        };
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        self.show(&mut out, SHOWN_BYTES);
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::Value;

    #[test]
    fn a_long_tuple_is_shown_in_part() {
        let short = Value::Tuple(vec![Value::Int(1), Value::Tuple(vec![Value::Str("a".into())])]);
        assert_eq!(short.to_string(), "(1, (\"a\",))");
        let long = Value::Tuple((0..10_000).map(Value::Int).collect());
        let shown = long.to_string();
        assert!(shown.len() < 220 && shown.starts_with("(0, 1, 2") && shown.ends_with(", …)"), "{shown}");
        let nested = (0..16).fold(Value::Int(1), |v, _| Value::Tuple(vec![v.clone(), v]));
        assert!(nested.to_string().len() < 300);
    }
}
