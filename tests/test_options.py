"""explain's options: the configuration, how to read the inputs and how to run, sorted by name."""

import re

import numpy as np
import pytest
import torch
from conftest import tiny_cnn

import iaside
from iaside import ExplainConfig, RunOptions
from iaside.errors import IasideError
from iaside.options import SourceOptions, split_options


def data(n=6, size=24):
    g = torch.Generator().manual_seed(3)
    return torch.rand(n, 3, size, size, generator=g), torch.arange(n) % 3


def test_options_are_sorted_into_config_sources_and_run():
    base = ExplainConfig(bands=4, fill="zero", seed=5)
    config, run, sources = split_options(
        base,
        RunOptions(batch_size=7, views=False),
        {"bands": 3, "labels": "labels.csv", "num_classes": 10, "device": "cpu", "views": True, "seed": None},
    )
    assert (config.bands, config.fill, config.seed, config.labels) == (3, "zero", 5, "given")  # None = not given
    assert (run.batch_size, run.views, run.device) == (7, True, "cpu")
    assert sources == SourceOptions(num_classes=10, labels_file="labels.csv")
    config, _, sources = split_options(None, None, {"labels": "predicted", "fill": "random"})
    assert (config.labels, config.fill, sources.labels_file) == ("predicted", "partner", None)
    config, _, _ = split_options(ExplainConfig(labels="predicted"), None, {"labels": "given"})
    assert config.labels == "given"  # a keyword given beside a config is over it, 'given' included
    with pytest.raises(IasideError, match="is a labels file, but the configuration scores predicted labels"):
        split_options(ExplainConfig(labels="predicted"), None, {"labels": "labels.csv"})


def test_options_a_model_object_would_ignore_are_refused():
    from iaside.models.registry import resolve_model

    for given in ({"weights": "w.pt"}, {"num_classes": 10}):
        with pytest.raises(IasideError, match="apply to a model spec"):
            resolve_model(tiny_cnn(), **given)
    loaded = resolve_model(tiny_cnn())
    with pytest.raises(IasideError, match="carries its output kind"):
        resolve_model(loaded, outputs="probs")


@pytest.mark.parametrize(
    "options, message",
    [
        ({"bandz": 3}, "unknown option 'bandz'; did you mean 'bands'"),
        ({"batchsize": 3}, "did you mean 'batch_size'"),
        ({"on_bad_image": "ignore"}, "--on-bad-image 'ignore' is not one of error, skip"),
        ({"target_ci": 0.01, "shard": (0, 2)}, "--target-ci needs one process"),
        ({"checkpoint_every_s": -1.0}, "seconds between checkpoints"),
        (
            {"confidence": 1.5},
            "confidence=1.5: the intervals' level is a fraction between 0 and 1 (0.95 is the default)",
        ),
        ({"confidence": 0.0}, "confidence=0.0: the intervals' level is a fraction between 0 and 1"),
        ({"beta": 1.0}, "beta=1.0: the score weighs band k by beta**k with 0 < beta < 1 (0.75 is the default; at 1 "),
        ({"beta": 0.0}, "beta=0.0: the score weighs band k by beta"),
        ({"beta": -2.0}, "beta=-2.0: the score weighs band k by beta"),
    ],
)
def test_bad_options_are_named(options, message):
    """Refused before anything runs (β = 1 used to end in a ZeroDivisionError after every pass;
    β < 0 or a level of 1.5 gave numbers that mean nothing)."""
    with pytest.raises(IasideError, match=re.escape(message)):
        iaside.explain(tiny_cnn(), data(), **options)


def test_a_config_and_run_options_give_the_numbers_of_the_same_keywords():
    model, pair = tiny_cnn(), data()
    by_keywords = iaside.explain(model, pair, bands=3, fill="zero", n_bootstrap=50, show_progress=False, views=False)
    by_objects = iaside.explain(
        model,
        pair,
        ExplainConfig(bands=3, fill="zero", n_bootstrap=50),
        run=RunOptions(show_progress=False, views=False),
    )
    assert np.array_equal(by_keywords.phi.value, by_objects.phi.value)
    assert by_keywords.score.value == by_objects.score.value
    assert by_objects.band_limited is None and by_objects.interactions is None  # views=False from the RunOptions
    with_views = iaside.explain(
        model,
        pair,
        ExplainConfig(bands=3, fill="zero", n_bootstrap=50),
        run=RunOptions(show_progress=False, views=False),
        views=True,
    )
    assert with_views.band_limited is not None and np.array_equal(with_views.phi.value, by_objects.phi.value)
