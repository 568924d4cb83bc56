//! The recurrent layers' states through `model!`: each generated module of a states fixture of
//! `parity/fixtures/ops/` (written by `parity/make_op_fixtures.py` from the real `nn.LSTM`,
//! `nn.GRU` and `nn.RNN`; the interpreter and the emitted PyTorch module check them too) is
//! the fixture's network, loads the module's state strictly and computes its outputs: initial
//! states given batch first, final states bound by a destructuring.

use std::path::Path;

use nnc::runtime::{parity, weights};
use nnc::tch::{nn, nn::ModuleT, Device};
use nnc_compiler::{compile, Options, Root};

nnc::model! {
    network lstm_states {
        input [N, 6, 5]
        h = in[:, 0:4]
        c = in[:, 2:6] * 0.5
        y, h_n, c_n = in -> lstm(5, num_layers=2, bidirectional=true, h0=h, c0=c)
        cat(y -> flatten, h_n -> flatten, c_n -> flatten, dim=1)
    }
}

nnc::model! {
    network gru_states {
        input [N, 5, 4]
        h = in[:, 1:3] - 1
        y, h_n = in -> gru(4, num_layers=2, h0=h)
        cat(y -> flatten, h_n -> flatten, dim=1)
    }
}

nnc::model! {
    network rnn_states {
        input [N, 4, 6]
        y, h_n = rnn(3, nonlinearity="relu", bidirectional=true)
        cat(y -> flatten, h_n -> flatten, dim=1)
    }
}

/// `net`, whose layers are `layers`, against the fixture `case`: the same network as the
/// fixture's, its state loaded strictly, its outputs in both modes.
fn check(case: &str, net: &dyn ModuleT, layers: &[nnc::runtime::LayerInfo], vs: &mut nn::VarStore) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../parity/fixtures/ops/{case}.safetensors"));
    let fixture = parity::read_op(&path).unwrap();
    let text = fixture.network();
    let compiled = compile(Root::Text { name: "op.net", text: &text, dir: None }, &Options::default());
    assert!(compiled.diagnostics.is_empty(), "{case}: {:?}", compiled.diagnostics);
    let expected: Vec<(String, String, Vec<i64>)> = compiled.graphs[0]
        .nodes
        .iter()
        .map(|n| (n.name.clone(), n.op.to_string(), n.shape.sizes(-1)))
        .collect();
    let generated: Vec<(String, String, Vec<i64>)> =
        layers.iter().map(|l| (l.name.to_string(), l.op.to_string(), l.shape.to_vec())).collect();
    assert_eq!(generated, expected, "{case}: the macro's network is not the fixture's");
    assert_eq!(fixture.state_prefix(), "", "{case}: the state is named as nnc names it");
    weights::load_map(vs, &fixture.state, "the fixture").unwrap();
    assert_eq!(vs.variables().len(), fixture.state.len(), "{case}: the module's state has other tensors");
    for (train, expected) in [(false, &fixture.output), (true, &fixture.output_train)] {
        nnc::tch::manual_seed(parity::DROPOUT_SEED);
        let y = nnc::tch::no_grad(|| net.forward_t(&fixture.input, train));
        let error = parity::relative(&y, expected);
        assert!(error <= 1e-5, "{case} (train = {train}): off torch.nn's output by {error:e}");
    }
}

macro_rules! states {
    ($test:ident, $ty:ident) => {
        #[test]
        fn $test() {
            let mut vs = nn::VarStore::new(Device::Cpu);
            let net = $ty::new(&vs.root());
            check(stringify!($test), &net, $ty::LAYERS, &mut vs);
        }
    };
}

states!(lstm_states, LstmStates);
states!(gru_states, GruStates);
states!(rnn_states, RnnStates);
