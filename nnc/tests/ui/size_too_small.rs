// LeNet's second convolution has no room left on 8×8 images.
nnc::model! {
    network lenet {
        input [N, 1, 8, 8]
        conv2d(6, 5) -> sigmoid -> avgpool2d(2, stride=2) -> conv2d(16, 5) -> flatten -> linear(10)
    }
}

fn main() {}
