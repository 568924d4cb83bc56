// A path without the type's name.
nnc::model!("../../../../models/lenet.net");

fn main() {}
