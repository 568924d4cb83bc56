//! Diagnostics as plain data: a code, a message, labelled locations, notes and a hint.
//! Rendering lives in `render.rs`; nothing here prints.

use serde::Serialize;

use crate::source::Loc;

/// Every kind of error and warning nnc reports, with a stable code. Each is explained, with a
/// broken and a fixed example, in `explain.rs` ([`Code::explanation`], `nnc explain E0202`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Code {
    /// A syntax error.
    Syntax,
    /// A file that could not be read, or is not UTF-8.
    Io,
    /// An import that names no file or module.
    MissingImport,
    /// An import cycle.
    ImportCycle,
    /// Two definitions, bindings or layers with one name.
    Duplicate,
    /// A name that resolves to nothing.
    UnknownName,
    /// A layer or block argument that does not exist.
    UnknownArgument,
    /// Too many, too few or repeated arguments.
    ArgumentCount,
    /// A value of the wrong type.
    Type,
    /// A value out of its allowed range (zero stride, negative padding, p > 1, ...).
    Value,
    /// Integer arithmetic that overflows or divides by zero.
    Arithmetic,
    /// A spatial size that shrinks to zero or below.
    SizeTooSmall,
    /// Tensors whose shapes do not broadcast, in `+ - * /`.
    AddMismatch,
    /// Tensors that cannot be concatenated.
    ConcatMismatch,
    /// A layer given a tensor of the wrong rank or size.
    ShapeMismatch,
    /// A free input size (`input [N, 3, H, W]`) that a layer cannot take.
    FreeSize,
    /// A block that calls itself, directly or not.
    Recursion,
    /// An exhausted limit (expanded layers, repeat count, nesting, evaluation steps).
    Limit,
    /// A network, input or output that is missing or misplaced.
    Structure,
    /// A bad command-line argument (`--set`, `--network`).
    Usage,
    /// Warning: a tensor that is computed but never reaches the network's output.
    DeadTensor,
    /// Warning: a chain stage whose value does not depend on the tensor flowing into it.
    IgnoredInput,
    /// Warning: a block parameter that no instance of the block reads.
    UnusedParameter,
    /// Warning: a name that hides another in scope.
    Shadowed,
    /// Warning: an input of the network that nothing reads.
    UnusedInput,
    /// Warning: a size after an input's first named as a batch (`N`), which makes it a free
    /// size while the first is the batch.
    BatchNamedFree,
}

/// Whether a diagnostic stops the model (an error) or only points at a likely mistake (a
/// warning, which `--deny warnings` turns into an error).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl Code {
    /// The code shown as `error[E0xxx]`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Syntax => "E0001",
            Code::Io => "E0002",
            Code::MissingImport => "E0003",
            Code::ImportCycle => "E0004",
            Code::Usage => "E0005",
            Code::Duplicate => "E0101",
            Code::UnknownName => "E0102",
            Code::UnknownArgument => "E0103",
            Code::ArgumentCount => "E0104",
            Code::Type => "E0105",
            Code::Value => "E0106",
            Code::Arithmetic => "E0107",
            Code::Structure => "E0108",
            Code::Recursion => "E0109",
            Code::Limit => "E0110",
            Code::SizeTooSmall => "E0201",
            Code::AddMismatch => "E0202",
            Code::ConcatMismatch => "E0203",
            Code::ShapeMismatch => "E0204",
            Code::FreeSize => "E0205",
            Code::DeadTensor => "W0001",
            Code::IgnoredInput => "W0002",
            Code::UnusedParameter => "W0003",
            Code::Shadowed => "W0004",
            Code::UnusedInput => "W0005",
            Code::BatchNamedFree => "W0006",
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            Code::DeadTensor
            | Code::IgnoredInput
            | Code::UnusedParameter
            | Code::Shadowed
            | Code::UnusedInput
            | Code::BatchNamedFree => Severity::Warning,
            _ => Severity::Error,
        }
    }

    /// The code of `E0202` or `W0001`, whatever the case.
    pub fn parse(text: &str) -> Option<Code> {
        Code::ALL.iter().copied().find(|c| c.as_str().eq_ignore_ascii_case(text))
    }

    /// Every code, in the order of their numbers.
    pub const ALL: &'static [Code] = &[
        Code::Syntax,
        Code::Io,
        Code::MissingImport,
        Code::ImportCycle,
        Code::Usage,
        Code::Duplicate,
        Code::UnknownName,
        Code::UnknownArgument,
        Code::ArgumentCount,
        Code::Type,
        Code::Value,
        Code::Arithmetic,
        Code::Structure,
        Code::Recursion,
        Code::Limit,
        Code::SizeTooSmall,
        Code::AddMismatch,
        Code::ConcatMismatch,
        Code::ShapeMismatch,
        Code::FreeSize,
        Code::DeadTensor,
        Code::IgnoredInput,
        Code::UnusedParameter,
        Code::Shadowed,
        Code::UnusedInput,
        Code::BatchNamedFree,
    ];
}

#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    pub loc: Loc,
    pub message: String,
    /// The primary label is where the error is; secondary ones give context.
    pub primary: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub code: Code,
    /// The code's severity, or an error for a warning that `--deny warnings` denied.
    pub severity: Severity,
    pub message: String,
    pub labels: Vec<Label>,
    pub notes: Vec<String>,
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A diagnostic of `code`, an error or a warning as the code says.
    pub fn error(code: Code, message: impl Into<String>) -> Self {
        let severity = code.severity();
        Diagnostic {
            code,
            severity,
            message: message.into(),
            labels: Vec::new(),
            notes: Vec::new(),
            hint: None,
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Makes a warning an error, as `--deny warnings` does.
    pub fn deny(&mut self) {
        if self.severity == Severity::Warning {
            self.severity = Severity::Error;
            self.notes.push(format!(
                "`{}` is a warning, an error here because warnings are denied",
                self.code.as_str()
            ));
        }
    }

    pub fn primary(mut self, loc: Loc, message: impl Into<String>) -> Self {
        self.labels.push(Label { loc, message: message.into(), primary: true });
        self
    }

    pub fn secondary(mut self, loc: Loc, message: impl Into<String>) -> Self {
        self.labels.push(Label { loc, message: message.into(), primary: false });
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn maybe_hint(mut self, hint: Option<String>) -> Self {
        if hint.is_some() {
            self.hint = hint;
        }
        self
    }

    /// The location of the primary label.
    pub fn primary_loc(&self) -> Option<Loc> {
        self.labels.iter().find(|l| l.primary).map(|l| l.loc)
    }
}

/// "did you mean `x`?" for the closest of `candidates`, if one is close enough; "`x`, `y` or
/// `z`?" for several as close (`conv` is as near `conv1d` as `conv2d`: picking one would guess
/// the rank).
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    // No name is a typo of a known one this long, and the distance costs its length times the
    // candidate's for each (a name of a megabyte took seconds).
    if name.len() > 64 {
        return None;
    }
    let mut close: Vec<(usize, &str)> = candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        // Close enough, and not a whole different name (`m` for `c`).
        .filter(|(d, c)| *d <= (name.len().max(c.len()) / 3).max(1) && *d < name.len())
        .collect();
    close.sort();
    close.dedup();
    let best = close.first()?.0;
    let names: Vec<String> =
        close.iter().take_while(|(d, _)| *d == best).map(|(_, c)| format!("`{c}`")).collect();
    Some(match &names[..] {
        [init @ .., last] if !init.is_empty() => format!("did you mean {} or {last}?", init.join(", ")),
        _ => format!("did you mean {}?", names.join("")),
    })
}

#[cfg(test)]
mod tests {
    use super::did_you_mean;

    #[test]
    fn close_names_are_suggested_and_long_ones_not_measured() {
        assert_eq!(did_you_mean("conv2e", ["conv2d", "linear"]).as_deref(), Some("did you mean `conv2d`?"));
        assert_eq!(
            did_you_mean("conv", ["conv1d", "conv2d"]).as_deref(),
            Some("did you mean `conv1d` or `conv2d`?")
        );
        // Over 64 bytes no name is a typo of a known one, and the distance is not computed.
        assert_eq!(did_you_mean(&"conv2e".repeat(11), ["conv2d"]), None);
    }
}
