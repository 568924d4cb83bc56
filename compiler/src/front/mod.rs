//! The front end: from `.net` text to IR graphs. `load` reads files and resolves imports,
//! `expand` evaluates a network (its blocks, repeats and arguments) into a graph, and `value`
//! holds what the evaluator computes with.

pub mod expand;
pub mod load;
pub mod value;
