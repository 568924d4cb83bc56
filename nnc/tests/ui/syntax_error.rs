nnc::model! {
    network lenet {
        input [N, 1, 28, 28]
        conv2d(6, 5 padding=2) -> sigmoid -> flatten -> linear(10)
    }
}

fn main() {}
