"""The decoder's bound on the search work a file may ask for, and the checks on every decode path's output."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gecodec import codec as codec_module
from gecodec import search_budget
from gecodec.codec import Codec
from gecodec.errors import DecodeError
from gecodec.options import SearchOptions
from gecodec.search_budget import check_search_budget, forward_macs, search_flops

from test_codec import images
from test_learned_layer import learned_bundle
from test_start_layers import START_LADDER


@pytest.fixture
def codec(tiny) -> Codec:
    return Codec(tiny, "cpu")


@pytest.fixture(scope="module")
def start_codec() -> Codec:
    """The tiny model with a learned start, a learned layer and a ladder of start-picture layers."""
    bundle = learned_bundle()
    bundle.ladder = START_LADDER
    return Codec(bundle, "cpu")


def test_macs_are_counted_over_convolutions_and_linear_layers():
    net = nn.Sequential(nn.Linear(4, 8), nn.Unflatten(1, (2, 2, 2)), nn.ConvTranspose2d(2, 3, 3, stride=2),
                        nn.Conv2d(3, 5, 3))
    # linear 4 x 8; transposed conv: 8 input values x 3 x 9; conv: 5 x 3 x 3 outputs of 3 x 9 each
    assert forward_macs(net, torch.zeros(1, 4)) == 32 + 8 * 3 * 9 + 5 * 3 * 3 * 27


def test_a_search_over_the_budget_is_refused_with_the_limit_in_the_message():
    own = search_flops(SearchOptions(iters=50, restarts=1), 0, 1000)
    check_search_budget(search_budget.BUDGET_FACTOR * own, own, "a file")
    with pytest.raises(DecodeError, match=r"a file asks for a search of .* over the limit of"):
        check_search_budget(search_budget.BUDGET_FACTOR * own + 1, own, "a file")
    with pytest.raises(DecodeError, match="over the limit of 60.0 GFLOP"):  # whatever the model's own schedule
        check_search_budget(61e9, 1e12, "a file")


def test_hints_asking_for_minutes_are_refused_before_any_search(codec, monkeypatch: pytest.MonkeyPatch):
    greedy = codec.encode_batch(images(1), bits=8, hints={"iters": 5000, "restarts": 16})
    searched = []
    monkeypatch.setattr(codec_module, "latent_search", lambda *args, **kwargs: searched.append(1))
    with pytest.raises(DecodeError, match="5000 iterations x 16 restarts"):
        codec.decode_batch(greedy + codec.encode_batch(images(1), bits=8))
    assert not searched


def test_the_callers_own_settings_are_not_bounded(codec):
    greedy = codec.encode_batch(images(1), bits=8, hints={"iters": 5000, "restarts": 16})
    assert codec.decode_batch(greedy, iters=2, restarts=1).shape == (1, 3, 16, 16)
    with pytest.raises(DecodeError):  # the file's 16 restarts still count
        codec.decode_batch(greedy, iters=2000)


def test_a_models_own_schedule_counts_against_the_same_bound(codec, monkeypatch: pytest.MonkeyPatch):
    plain = codec.encode_batch(images(1), bits=8)
    monkeypatch.setattr(search_budget, "MAX_SEARCH_FLOPS", 1e3)
    with pytest.raises(DecodeError, match="over the limit of 0.0 GFLOP"):
        codec.decode_batch(plain)
    assert codec.decode_batch(plain, iters=1, restarts=1).shape == (1, 3, 16, 16)


def test_a_cs_files_matrix_counts_towards_its_search(codec, monkeypatch: pytest.MonkeyPatch):
    small, large = (codec.encode_batch(images(1), mode="cs", count=count, hints={"iters": 3000, "restarts": 2})
                    for count in (8, 768))

    def searched(*args, **kwargs):
        raise RuntimeError("past the budget")

    monkeypatch.setattr(codec_module, "latent_search", searched)
    with pytest.raises(DecodeError, match="could not run \\(past the budget"):  # G's passes alone fit
        codec.decode_batch(small)
    with pytest.raises(DecodeError, match="a cs file .* over the limit"):
        codec.decode_batch(large)


def test_a_file_with_a_layer_on_its_search_is_searched_alone(start_codec, monkeypatch: pytest.MonkeyPatch):
    faces = images(3)
    bases = start_codec.encode_batch(faces, quality=30)
    layered, _ = start_codec.layered(bases[:2], faces[:2], start_codec.layer_bases(bases[:2], False), 2, "dct")
    batches = []
    search = codec_module.latent_search
    monkeypatch.setattr(codec_module, "latent_search",
                        lambda generator, measure, targets, *rest: batches.append(len(targets)) or
                        search(generator, measure, targets, *rest))
    start_codec.decode_batch(layered + bases[2:], iters=2, restarts=1)
    assert sorted(batches) == [1, 1, 1]
    batches.clear()
    start_codec.decode_batch(bases, iters=2, restarts=1)  # files without a layer share one search
    assert batches == [3]


def test_a_degenerate_start_is_an_error_on_files_that_refine_the_start_picture(start_codec):
    faces = images(2)
    bases = start_codec.encode_batch(faces, quality=30)
    files, _ = start_codec.layered(bases, faces, start_codec.layer_bases(bases, True), 1, "learned", on_start=True)
    broken = Codec(start_codec.bundle, "cpu")
    broken.solver = type(start_codec.solver)(start_codec.solver.config)
    with torch.no_grad():
        for parameter in broken.solver.parameters():
            parameter.fill_(3e38)
    with pytest.raises(DecodeError, match="non-finite|degenerate"):
        broken.decode_batch(files)
