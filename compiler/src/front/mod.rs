//! The front end: from `.net` text to IR graphs. `load` reads files and resolves imports,
//! `expand` evaluates a network (its blocks, repeats and arguments) into a graph, `value`
//! holds what the evaluator computes with, and `messages` words the errors of loading and
//! expanding.

pub mod expand;
pub mod load;
mod messages;
pub mod value;
