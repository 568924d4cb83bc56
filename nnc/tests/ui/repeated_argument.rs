// A parameter given twice is refused: neither value would be the obvious one.
nnc::model!(LeNet = "../../../../models/lenet.net", classes = 2, classes = 5);

fn main() {}
