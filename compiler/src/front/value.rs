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
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(v) => write!(f, "{v}"),
            Value::Float(v) => write!(f, "{v:?}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::Str(v) => write!(f, "{v:?}"),
            Value::Tuple(items) => {
                f.write_str("(")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str(if items.len() == 1 { ",)" } else { ")" })
            }
            Value::Tensor(id) => write!(f, "tensor #{}", id.0),
            Value::Shared(name, _) => write!(f, "shared layer `{name}`"),
            Value::Poison => f.write_str("<error>"),
        }
    }
}
