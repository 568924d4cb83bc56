// (Paths are relative to trybuild's crate, in target/tests/trybuild/nnc.)
// A misspelt parameter is an error at its name among the macro's arguments, and a value the
// network cannot take is one in the file that also points at the argument that gave it.
nnc::model!(LeNet = "../../../../models/lenet.net", clases = 3);
nnc::model!(LeNetHalf = "../../../../models/lenet.net", classes = -3);

fn main() {}
