nnc::model!(ResNet = "models/resnet81.net");

fn main() {
    let vs = nnc::tch::nn::VarStore::new(nnc::tch::Device::Cpu);
    let _net = ResNet::new(&vs.root());
}
