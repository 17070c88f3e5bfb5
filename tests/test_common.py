"""The pieces the reference loops share (reference/common.py): masks, the KL over the vocabulary, the JSON writer."""

import json
import os

import pytest
import torch

from reference.common import kl_over_vocab, through_first, write_json


def test_through_first_keeps_each_row_up_to_its_first_stop_token():
    tokens = torch.tensor([[5, 2, 7, 2], [5, 6, 7, 8], [2, 2, 1, 1]])
    assert through_first(tokens, 2).tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    assert through_first(tokens[None], 2).shape == (1, 3, 4)  # the last dimension, whatever comes before it


def test_kl_over_vocab_is_zero_for_equal_distributions_and_matches_torch():
    torch.manual_seed(0)
    p, q = torch.randn(3, 5, 7).log_softmax(-1), torch.randn(3, 5, 7).log_softmax(-1)
    assert torch.equal(kl_over_vocab(p, p), torch.zeros(3, 5))
    expected = torch.nn.functional.kl_div(q, p, log_target=True, reduction="none").sum(-1)  # KL(p || q)
    torch.testing.assert_close(kl_over_vocab(p, q), expected)


def test_write_json_makes_the_folder_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "new" / "result.json"
    write_json(path, {"curve": [{"step": 0, "metric": 0.5}]})
    assert json.loads(path.read_text()) == {"curve": [{"step": 0, "metric": 0.5}]}
    write_json(str(path), {"x": 1})  # replaces the file whole
    assert json.loads(path.read_text()) == {"x": 1} and os.listdir(path.parent) == ["result.json"]
    with pytest.raises(TypeError):
        write_json(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"x": 1} and os.listdir(path.parent) == ["result.json"]  # the old one
