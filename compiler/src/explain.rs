//! What each diagnostic code means, as `nnc explain E0202` prints it: a summary, a paragraph on
//! why nnc refuses (or warns), a broken example and the same example fixed.
//!
//! [`Code::explanation`] matches every code without a wildcard, so a new code does not build
//! until it is explained here; the workspace tests compile every example and check that the
//! broken one gives exactly its code and the fixed one nothing.

use crate::diagnostic::Code;

/// One code's explanation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// One line, lower case, as `nnc explain` lists it.
    pub summary: &'static str,
    /// What the code means and why nnc refuses the model (or warns); paragraphs are separated by
    /// a blank line, and lines are not wrapped.
    pub text: &'static str,
    /// A model that gets this code.
    pub broken: &'static str,
    /// The same model, fixed: it checks without any diagnostic.
    pub fixed: &'static str,
    /// Whether each example is one `.net` file that shows the code on its own. It is `false`
    /// only for the codes that need something beside the text of one file: a file on disk
    /// that is not UTF-8 (E0002), several files (E0004) or a command line (E0005). Their
    /// examples show each file under a `# name.net` line, and the command as a `$ nnc ...`
    /// line; the tests build those cases from them.
    pub standalone: bool,
}

impl Code {
    /// What this code means, with a broken and a fixed example.
    pub fn explanation(self) -> Explanation {
        match self {
            Code::Syntax => Explanation {
                summary: "a syntax error",
                text: "The file does not follow nnc's grammar: a bracket that is never closed, an \
                       operator the language does not have (`&&` where nnc writes `and`), a chain that \
                       ends in `->`, a keyword out of place. nnc cannot guess what was meant, so \
                       nothing in the broken item is checked. It reports every broken item at once: \
                       parsing resumes at the next line that starts with `block`, `network` or \
                       `import`, and the items that parse are still checked.",
                broken: "\
network lenet {
    input [N, 1, 28, 28]
    conv2d(6, 5, padding=2 -> sigmoid -> avgpool2d(2, stride=2)
}
",
                fixed: "\
network lenet {
    input [N, 1, 28, 28]
    conv2d(6, 5, padding=2) -> sigmoid -> avgpool2d(2, stride=2)
}
",
                standalone: true,
            },
            Code::Io => Explanation {
                summary: "a model file that cannot be read, or is not UTF-8",
                text: "nnc could not read a model file: it does not exist, it may not be read, it is \
                       a directory or not a regular file (a FIFO would wait for a writer, a device \
                       may never end), it is over the limit of 2 MiB, or its bytes are not UTF-8 \
                       text. A file that cannot be read whole, as text, holds no model nnc could \
                       check, and guessing an encoding could change what a name means. When the \
                       file named on the command line cannot be read, `nnc check` exits with 2, as \
                       for any bad command line; a file an import names that does not exist is \
                       E0003.\n\n\
                       The example is a file saved as Latin-1, where `é` is the single byte 0xe9; \
                       the fix is to save it as UTF-8 (`iconv -f latin1 -t utf-8`).",
                broken: "\
# lenet.net, saved as Latin-1
network lenet {
    input [N, 1, 28, 28]
    conv2d(6, 5) -> sigmoid   # the café's LeNet
}
",
                fixed: "\
# lenet.net, saved as UTF-8
network lenet {
    input [N, 1, 28, 28]
    conv2d(6, 5) -> sigmoid   # the café's LeNet
}
",
                standalone: false,
            },
            Code::MissingImport => Explanation {
                summary: "an import that names no file or standard module",
                text: "An `import \"file.net\"` whose file cannot be read, or an `import std.name` \
                       of a module the standard library does not have (it has std.resnet, \
                       std.inception, std.vgg and std.nin). A file's path is relative to the folder \
                       of the file that imports it, not to the folder nnc runs in. nnc refuses the \
                       model because the blocks the import should bring are missing; each call of \
                       them is reported too, as E0102.",
                broken: "\
import std.resnett

network net {
    input [N, 1, 28, 28]
    resnet_stage(8, 2, first=true)
}
",
                fixed: "\
import std.resnet

network net {
    input [N, 1, 28, 28]
    resnet_stage(8, 2, first=true)
}
",
                standalone: true,
            },
            Code::ImportCycle => Explanation {
                summary: "files that import each other in a cycle",
                text: "A file imports itself, directly or through the files it imports. Imports \
                       only bring blocks into scope, and every block is found by its name wherever \
                       it is defined, so a cycle is never needed; nnc refuses it instead of \
                       loading the files in an order that would depend on which one came first. \
                       Move the blocks that both files use into a third file, and import that one \
                       from both.",
                broken: "\
# main.net
import \"head.net\"

block stem(c) {
    conv2d(c, 3, padding=1) -> relu
}

network net {
    input [N, 1, 28, 28]
    stem(8) -> head(10)
}

# head.net
import \"main.net\"

block head(classes) {
    stem(16) -> flatten -> linear(classes)
}
",
                fixed: "\
# main.net
import \"stem.net\"
import \"head.net\"

network net {
    input [N, 1, 28, 28]
    stem(8) -> head(10)
}

# head.net
import \"stem.net\"

block head(classes) {
    stem(16) -> flatten -> linear(classes)
}

# stem.net
block stem(c) {
    conv2d(c, 3, padding=1) -> relu
}
",
                standalone: false,
            },
            Code::Usage => Explanation {
                summary: "a bad `--set` or `--network` on the command line",
                text: "The command line asks for something the file does not have: `--set \
                       NAME=VALUE` names a parameter that no network being checked has, or its \
                       value is not a constant expression, or `--network` names no network of the \
                       file. The model may be fine; the command is not, so nnc exits with 2, as \
                       for an unknown option, rather than check a network other than the one asked \
                       for. The message lists the parameters or networks there are.",
                broken: "\
$ nnc check lenet.net --set clases=5

# lenet.net
network lenet(classes = 10) {
    input [N, 1, 28, 28]
    flatten -> linear(classes)
}
",
                fixed: "\
$ nnc check lenet.net --set classes=5

# lenet.net
network lenet(classes = 10) {
    input [N, 1, 28, 28]
    flatten -> linear(classes)
}
",
                standalone: false,
            },
            Code::Duplicate => Explanation {
                summary: "two definitions, bindings or layers with one name",
                text: "A name is taken twice: a block defined twice (in one file or across \
                       imports), a block named as a built-in layer or as `cat`, a name bound twice \
                       in one block or network, or two layers with one name. Blocks are found by \
                       name and layer names become the PyTorch `state_dict` keys of their weights, \
                       so each must be unique: nnc refuses to let one silently win, as which one a \
                       call or a weights file meant would then depend on the order of the file.",
                broken: "\
network net {
    input [N, 1, 28, 28]
    x = conv2d(8, 3, padding=1)
    x = in -> conv2d(8, 5, padding=2)
    cat(x, x)
}
",
                fixed: "\
network net {
    input [N, 1, 28, 28]
    a = conv2d(8, 3, padding=1)
    b = in -> conv2d(8, 5, padding=2)
    cat(a, b)
}
",
                standalone: true,
            },
            Code::UnknownName => Explanation {
                summary: "a name that resolves to nothing",
                text: "A name that is not a parameter, a tensor, a built-in layer or a block in \
                       scope: most often a typo, a block from another file that is not imported, \
                       or a field that tensors do not have (they have `channels`, `height`, \
                       `width`, `features`, `rank` and `shape`). nnc never treats an unknown name \
                       as a default or as zero; it says which known name is closest.",
                broken: "\
block head(classes) {
    flatten -> linear(clases)
}

network net {
    input [N, 1, 28, 28]
    head(10)
}
",
                fixed: "\
block head(classes) {
    flatten -> linear(classes)
}

network net {
    input [N, 1, 28, 28]
    head(10)
}
",
                standalone: true,
            },
            Code::UnknownArgument => Explanation {
                summary: "a layer or block argument that does not exist",
                text: "A keyword argument that the layer or block does not declare. An ignored \
                       `pading=2` would silently change every shape after it, so nnc refuses it, as \
                       Python refuses an unexpected keyword argument to `nn.Conv2d`, and suggests \
                       the closest parameter. `nnc layers NAME` lists a layer's parameters.",
                broken: "\
network net {
    input [N, 1, 28, 28]
    conv2d(6, 5, pading=2) -> relu
}
",
                fixed: "\
network net {
    input [N, 1, 28, 28]
    conv2d(6, 5, padding=2) -> relu
}
",
                standalone: true,
            },
            Code::ArgumentCount => Explanation {
                summary: "too many, too few or repeated arguments",
                text: "A call of a layer or block with more positional arguments than it has \
                       parameters, without a parameter that has no default, or with one argument \
                       given twice (by position and by name, or twice by name). nnc refuses rather \
                       than guess which value was meant; the message shows the signature, and \
                       `nnc layers NAME` a layer's parameters with their defaults.",
                broken: "\
network net {
    input [N, 1, 28, 28]
    conv2d(6) -> relu
}
",
                fixed: "\
network net {
    input [N, 1, 28, 28]
    conv2d(6, 5) -> relu
}
",
                standalone: true,
            },
            Code::Type => Explanation {
                summary: "a value of the wrong type",
                text: "A value of another type than its place needs. Values are integers, numbers, \
                       booleans, tuples and tensors, and each parameter takes one kind: channels \
                       and kernels are integers, a condition is a boolean, a chain stage is a \
                       tensor. `/` always gives a number, as in Python 3, so `c / 2` is 32.0 even \
                       when `c` is 64; `//` divides integers. nnc never rounds or converts a value \
                       silently, since a rounded channel count would be another model. A tensor's \
                       element type is part of its type: every layer takes float tensors but \
                       `embedding`, which reads the ids of an input declared `int`, and nothing \
                       takes a `bool` mask yet.",
                broken: "\
network net(c = 64) {
    input [N, 1, 28, 28]
    conv2d(c / 2, 3, padding=1) -> relu
}
",
                fixed: "\
network net(c = 64) {
    input [N, 1, 28, 28]
    conv2d(c // 2, 3, padding=1) -> relu
}
",
                standalone: true,
            },
            Code::Value => Explanation {
                summary: "a value out of its allowed range",
                text: "A value of the right type outside the range its place allows: a stride of \
                       0, a negative padding, a pooling padding over half the kernel, `groups` that \
                       do not divide the channels, a dropout probability over 1, a dimension below \
                       1, a negative repeat count, a tuple index out of range. PyTorch would raise \
                       these when the layer is built or run, or compute something meaningless; \
                       nnc refuses them at the argument, before anything runs.",
                broken: "\
network net {
    input [N, 1, 28, 28]
    conv2d(6, 5, stride=0) -> relu
}
",
                fixed: "\
network net {
    input [N, 1, 28, 28]
    conv2d(6, 5, stride=1) -> relu
}
",
                standalone: true,
            },
            Code::Arithmetic => Explanation {
                summary: "integer arithmetic that overflows or divides by zero",
                text: "Integer and shape arithmetic is 64-bit and checked. This is an expression \
                       that overflows or divides by zero (`//` and `%` included), a tensor with \
                       more elements than libtorch can hold as f32 (2^61 - 1), or a network whose \
                       parameter count, multiply-adds or memory do not fit in 64 bits. nnc refuses \
                       rather than wrap or saturate, because a wrapped size would be another model, \
                       and a saturated count a wrong one.",
                broken: "\
network net(stages = 0) {
    input [N, 3, 32, 32]
    conv2d(256 // stages, 3, padding=1) -> relu
}
",
                fixed: "\
network net(stages = 4) {
    input [N, 3, 32, 32]
    conv2d(256 // stages, 3, padding=1) -> relu
}
",
                standalone: true,
            },
            Code::Structure => Explanation {
                summary: "a network, input or output that is missing or misplaced",
                text: "Something is missing or out of place in the shape of a network or block. A \
                       network declares its input once, `input [N, ...]`, before anything uses it \
                       (or several, each named, `input tokens [N, T] int`, all with the same \
                       batch), and ends with a tensor, its output; each of its parameters needs a default \
                       or a `--set` value. `input` belongs in networks only (inside a block, `in` \
                       is the tensor the block is applied to), a block ends with a tensor too, and \
                       an `if` whose value is used needs an `else`. Without these there is no \
                       graph to build.",
                broken: "\
network classifier(classes) {
    input [N, 1, 28, 28]
    flatten -> linear(classes)
}
",
                fixed: "\
network classifier(classes = 10) {
    input [N, 1, 28, 28]
    flatten -> linear(classes)
}
",
                standalone: true,
            },
            Code::Recursion => Explanation {
                summary: "a block that calls itself, directly or not",
                text: "A block that calls itself, directly or through other blocks. nnc expands \
                       every block call into layers when it checks the model, so a block on its own \
                       call path would expand forever. Build deep networks with `repeat n { ... }`, \
                       whose count is known.",
                broken: "\
block tower(c) {
    conv2d(c, 3, padding=1) -> relu -> tower(c)
}

network net {
    input [N, 1, 28, 28]
    tower(8)
}
",
                fixed: "\
block layer(c) {
    conv2d(c, 3, padding=1) -> relu
}

network net {
    input [N, 1, 28, 28]
    repeat 4 { layer(8) }
}
",
                standalone: true,
            },
            Code::Limit => Explanation {
                summary: "an exhausted limit (repeat count, layers, nesting, evaluation steps)",
                text: "Expansion hit one of nnc's limits: a repeat runs at most 10,000 times, a \
                       network expands to at most 100,000 layers (a `split` or `chunk` makes at most \
                       as many pieces) and 5,000,000 evaluation steps (a tuple counts one step per \
                       value it holds), a recurrent layer stacks at most 100,000 layers, and block \
                       calls and imports \
                       nest at most 64 deep. nnc bounds its work so that \
                       no file can exhaust its time or memory; a model that reaches a limit is most \
                       often a count with a few zeros too many.",
                broken: "\
network net(depth = 50_000) {
    input [N, 16, 8, 8]
    repeat depth { conv2d(16, 3, padding=1) -> relu }
}
",
                fixed: "\
network net(depth = 50) {
    input [N, 16, 8, 8]
    repeat depth { conv2d(16, 3, padding=1) -> relu }
}
",
                standalone: true,
            },
            Code::SizeTooSmall => Explanation {
                summary: "a spatial size that shrinks to zero or below",
                text: "A convolution's or pooling's window is larger than its (padded) input (a \
                       pooling's with `ceil_mode`, which may reach past it, by the stride or more): the \
                       height or width would shrink to nothing. PyTorch raises this when the model \
                       first runs, after the data is loaded; nnc knows every height and width \
                       ahead, so it refuses the layer and shows how the size got there, layer by \
                       layer. Pad the layers, use smaller kernels or fewer downsampling layers, or \
                       a larger input.",
                broken: "\
network lenet(size = 8) {
    input [N, 1, size, size]
    conv2d(6, 5) -> sigmoid -> avgpool2d(2, stride=2)
        -> conv2d(16, 5) -> sigmoid -> avgpool2d(2, stride=2)
        -> flatten -> linear(10)
}
",
                fixed: "\
network lenet(size = 28) {
    input [N, 1, size, size]
    conv2d(6, 5) -> sigmoid -> avgpool2d(2, stride=2)
        -> conv2d(16, 5) -> sigmoid -> avgpool2d(2, stride=2)
        -> flatten -> linear(10)
}
",
                standalone: true,
            },
            Code::AddMismatch => Explanation {
                summary: "tensors whose shapes do not broadcast, added or multiplied",
                text: "`a + b`, `a - b`, `a * b` and `a / b` work element by element, broadcast as \
                       PyTorch broadcasts: the tensors have the same rank and batch, and each other \
                       dimension is equal, or 1 in one of them (squeeze-excitation's [N, C, 1, 1] \
                       gate scales [N, C, H, W]). Any other pair would fail when the model runs, and \
                       is most often a wiring mistake. A residual connection whose branch changes the \
                       channels or the size needs a projection on its shortcut, as `std.resnet`'s \
                       `residual` has.",
                broken: "\
block residual(c, stride = 1) {
    y = conv2d(c, 3, padding=1, stride=stride) -> batchnorm -> relu
        -> conv2d(c, 3, padding=1) -> batchnorm
    y + in -> relu
}

network net {
    input [N, 64, 56, 56]
    residual(64) -> residual(128, stride=2)
}
",
                fixed: "\
block residual(c, stride = 1) {
    y = conv2d(c, 3, padding=1, stride=stride) -> batchnorm -> relu
        -> conv2d(c, 3, padding=1) -> batchnorm
    skip = if stride != 1 or in.channels != c { in -> conv2d(c, 1, stride=stride) } else { in }
    y + skip -> relu
}

network net {
    input [N, 64, 56, 56]
    residual(64) -> residual(128, stride=2)
}
",
                standalone: true,
            },
            Code::ConcatMismatch => Explanation {
                summary: "tensors that cannot be concatenated",
                text: "`cat(a, b, ..., dim=1)` joins tensors along one dimension, the channels \
                       unless `dim` says otherwise, so they must have the same rank and the same \
                       size in every other dimension. In an Inception-style block, that means every \
                       branch keeps the height and width: a k×k convolution of stride 1 keeps them \
                       with `padding=(k - 1) // 2`. PyTorch's `torch.cat` raises this when the \
                       model runs; nnc refuses it at the `cat`.",
                broken: "\
block branches(c) {
    a = conv2d(c, 1)
    b = in -> conv2d(c, 3)
    cat(a, b)
}

network net {
    input [N, 3, 32, 32]
    branches(16)
}
",
                fixed: "\
block branches(c) {
    a = conv2d(c, 1)
    b = in -> conv2d(c, 3, padding=1)
    cat(a, b)
}

network net {
    input [N, 3, 32, 32]
    branches(16)
}
",
                standalone: true,
            },
            Code::ShapeMismatch => Explanation {
                summary: "a layer given a tensor of the wrong rank or size",
                text: "A layer receives a tensor it cannot take. Each layer accepts certain ranks, \
                       the batch included (`nnc layers` lists them): `conv2d` and the poolings \
                       take [N, C, H, W], `batchnorm` ranks 2 to 4; and `layernorm`'s \
                       `normalized_shape` must equal the input's last sizes. PyTorch raises this \
                       when the model runs; nnc refuses it at the layer, with the shape it got. The \
                       most common cause is a layer on the wrong side of `flatten`.",
                broken: "\
network net {
    input [N, 1, 28, 28]
    flatten -> conv2d(6, 5) -> relu -> linear(10)
}
",
                fixed: "\
network net {
    input [N, 1, 28, 28]
    conv2d(6, 5) -> relu -> flatten -> linear(10)
}
",
                standalone: true,
            },
            Code::FreeSize => Explanation {
                summary: "a free input size that a layer cannot take",
                text: "An input declared with free sizes (`input [N, 3, H, W]`, with `H` and `W` bound \
                       to nothing) is checked for every size at once: nnc works out each layer's sizes \
                       as expressions of the free ones and the exact set of sizes that work. A layer \
                       whose weights would depend on a free size cannot take every size: a `linear` \
                       after a `flatten` of the image gets as many input features as the image has \
                       pixels, so PyTorch's `nn.Linear` would need another weight for each size. Pool \
                       to a fixed size first (`adaptive_avgpool2d`), or fix the size with `--set H=28`. \
                       A few layers do not take free sizes yet; they get this code too, and `--set` \
                       checks them at one size.",
                broken: "\
network net {
    input [N, 1, H, W]
    conv2d(6, 5) -> relu -> flatten -> linear(10)
}
",
                fixed: "\
network net {
    input [N, 1, H, W]
    conv2d(6, 5) -> relu -> adaptive_avgpool2d(4) -> flatten -> linear(10)
}
",
                standalone: true,
            },
            Code::DeadTensor => Explanation {
                summary: "a tensor that is computed but never reaches the network's output",
                text: "A layer whose result never flows, directly or through later layers, into \
                       the network's output. The network still checks, so this is a warning, but it \
                       is almost always a wiring mistake: a branch that was meant to be added or \
                       concatenated. The dead layers' parameters are counted and exported, yet \
                       would never get a gradient, and a forward pass computes them for nothing. \
                       Feed the tensor into the output, or remove it. `--allow W0001` silences \
                       this warning, and `--deny warnings` makes it an error.",
                broken: "\
network net {
    input [N, 1, 28, 28]
    a = conv2d(8, 3, padding=1) -> relu
    b = in -> conv2d(8, 5, padding=2) -> relu
    a -> flatten -> linear(10)
}
",
                fixed: "\
network net {
    input [N, 1, 28, 28]
    a = conv2d(8, 3, padding=1) -> relu
    b = in -> conv2d(8, 5, padding=2) -> relu
    cat(a, b) -> flatten -> linear(10)
}
",
                standalone: true,
            },
            Code::IgnoredInput => Explanation {
                summary: "a chain stage that does not use the tensor flowing into it",
                text: "In a chain `a -> b`, `a` flows into `b`. A stage computed from other \
                       tensors only, such as `cat(x, y)`, `x + y` or a name, throws away the tensor \
                       that flows into it, so the stages before it are computed for nothing: \
                       most often a new statement was meant. The network still checks, so this is \
                       a warning. Start a new statement to branch from another tensor, or use the \
                       tensor flowing in. `--allow W0002` silences this warning, and `--deny \
                       warnings` makes it an error.",
                broken: "\
network net {
    input [N, 3, 8, 8]
    a = conv2d(4, 1)
    b = in -> conv2d(4, 3, padding=1) -> cat(in, a)
    b -> relu
}
",
                fixed: "\
network net {
    input [N, 3, 8, 8]
    a = conv2d(4, 1)
    b = in -> conv2d(4, 3, padding=1)
    cat(in, a, b) -> relu
}
",
                standalone: true,
            },
            Code::UnusedParameter => Explanation {
                summary: "a block parameter that no instance of the block reads",
                text: "A block declares a parameter that no call of the block reads. Every \
                       argument given for it is accepted and ignored, so `projection(32, \
                       stride=2)` silently keeps stride 1: most often the parameter was meant to \
                       be passed on to a layer. The network still checks, so this is a warning. \
                       Use the parameter in the block's body, or remove it. `--allow W0003` \
                       silences this warning, and `--deny warnings` makes it an error.",
                broken: "\
block projection(c, stride = 2) {
    conv2d(c, 1) -> batchnorm
}

network net {
    input [N, 8, 8, 8]
    projection(16) -> projection(32, stride=1)
}
",
                fixed: "\
block projection(c, stride = 2) {
    conv2d(c, 1, stride=stride) -> batchnorm
}

network net {
    input [N, 8, 8, 8]
    projection(16) -> projection(32, stride=1)
}
",
                standalone: true,
            },
            Code::Shadowed => Explanation {
                summary: "a repeat's index that hides a name defined before it",
                text: "`repeat i in lo..hi { ... }` names its index `i`; when a parameter or \
                       tensor defined before already has that name, the index hides it inside the \
                       body, so an expression there that meant the outer value reads the index. \
                       The network still checks, so this is a warning. Give the index another \
                       name. `--allow W0004` silences this warning, and `--deny warnings` makes it \
                       an error.",
                broken: "\
network net(n = 3) {
    input [N, 4, 8, 8]
    repeat n in 0..n { conv2d(8 * (n + 1), 1) -> relu }
}
",
                fixed: "\
network net(n = 3) {
    input [N, 4, 8, 8]
    repeat i in 0..n { conv2d(8 * (i + 1), 1) -> relu }
}
",
                standalone: true,
            },
            Code::UnusedInput => Explanation {
                summary: "an input of the network that nothing reads",
                text: "A network declares an input that no layer reads: the data given for it is \
                       ignored, most often because a branch meant to read it reads another \
                       tensor. The statement after the inputs continues from the first input, \
                       `in`; a later input is read only by its name. The network still checks, \
                       so this is a warning. Read the input, or remove it. `--allow W0005` \
                       silences this warning, and `--deny warnings` makes it an error.",
                broken: "\
network net {
    input image [N, 16]
    input extra [N, 4]
    linear(8) -> relu -> linear(2)
}
",
                fixed: "\
network net {
    input image [N, 16]
    input extra [N, 4]
    cat(image, extra -> linear(4)) -> linear(8) -> relu -> linear(2)
}
",
                standalone: true,
            },
            Code::BatchNamedFree => Explanation {
                summary: "an input's size named as a batch, after its first",
                text: "An input's first size is its batch, whatever its name, and a later size named \
                       by a name bound to nothing is a free size, which the network is checked for at \
                       every value. So `input x [T, N, 16]`, laid out as a sequence-first PyTorch \
                       model's (`batch_first=False`) is, takes `T` for the batch and checks `N` as \
                       the sequence's length. nnc's tensors are batch first, as PyTorch's with \
                       `batch_first=True`; its recurrent layers and attention take [N, T, F]. The \
                       network may still check, so this is a warning. Put the batch first, or name \
                       the size otherwise if it is no batch. `--allow W0006` silences this warning, \
                       and `--deny warnings` makes it an error.",
                broken: "\
network net {
    input x [T, N, 16]
    lstm(32) -> linear(4)
}
",
                fixed: "\
network net {
    input x [N, T, 16]
    lstm(32) -> linear(4)
}
",
                standalone: true,
            },
        }
    }
}
