"""The text classifier's reference (`models/text_classifier.net`): token ids embedded (row 0
the padding), a two-layer bidirectional LSTM over them, its last layer's states averaged over
the sequence, and a linear classifier, as a PyTorch user writes it. Its state_dict names
(embedding.weight, lstm.weight_ih_l0, ..., lstm.bias_hh_l1_reverse, fc.weight) are nnc's."""

from torch import nn


class TextClassifier(nn.Module):
    def __init__(self, vocab=10_000, embed=128, hidden=256, num_classes=4):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed, padding_idx=0)
        self.lstm = nn.LSTM(embed, hidden, num_layers=2, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(2 * hidden, num_classes)

    def forward(self, tokens):
        states, _ = self.lstm(self.embedding(tokens))
        return self.fc(states.mean(dim=1))
