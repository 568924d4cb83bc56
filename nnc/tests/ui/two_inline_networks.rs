// An inline model generates one type: two networks are refused, with the ways out.
nnc::model! {
    network alpha {
        input [N, 4]
        linear(2)
    }
    network beta {
        input [N, 8]
        linear(3)
    }
}

fn main() {}
