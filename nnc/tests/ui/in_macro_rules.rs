// Inside a `macro_rules!`, an inline model's source text holds `$c`, not the value given.
macro_rules! net_of {
    ($c:literal) => {
        nnc::model! {
            network net {
                input [N, 4]
                linear($c)
            }
        }
    };
}

net_of!(5);

fn main() {
    // The stand-in keeps this code free of further errors.
    let vs = nnc::tch::nn::VarStore::new(nnc::tch::Device::Cpu);
    let _ = Net::new(&vs.root()).for_inference();
}
