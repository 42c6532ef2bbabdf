"""A network's id names the trained network, whatever sweep trained it: the same in every study that shares a
cell, different wherever a setting that changes the training differs."""

from __future__ import annotations

from ibjax.spec import validate
from ibjax.sweep.plan import expand_grid, network_ids, run_ids
from tests.helpers import small_spec


def ids_by_settings(raw: dict) -> dict:
    spec = validate(raw)
    runs = expand_grid(spec)
    keys = [(r.seed, r.activation, r.learning_rate, r.train_fraction or spec.data.train_fraction) for r in runs]
    return dict(zip(keys, network_ids(runs, spec)))


def test_the_same_network_in_two_studies_has_one_id():
    # Study A: tanh and relu, training fractions as a grid axis, 12 epochs, binning every 3 epochs.
    a = small_spec(**{"grid.train_fraction": [0.45, 0.85]})
    # Study B: other activations beside tanh, the 85 % split from the data section, longer training, other
    # estimators and MI sample, another chunk size: none of that changes the network.
    b = small_spec(**{"grid.activation": ["tanh", "sigmoid"], "train.epochs": 40, "train.chunk_epochs": 7,
                      "mi.estimators": [{"kind": "kde", "bound": "upper"}], "mi.schedule": {"every": 5},
                      "data.mi_sample": {"n": 512}})
    ids_a, ids_b = ids_by_settings(a), ids_by_settings(b)
    shared = set(ids_a) & set(ids_b)
    assert shared == {(s, "tanh", 4e-4, 0.85) for s in (0, 1)}
    for key in shared:
        assert ids_a[key] == ids_b[key]
    # Everything else is another network, and run ids (which include the epochs) still differ.
    assert len(set(ids_a.values()) | set(ids_b.values())) == len(set(ids_a) | set(ids_b))
    assert not set(run_ids(expand_grid(validate(a)), validate(a))) & set(run_ids(expand_grid(validate(b)),
                                                                                validate(b)))


def test_what_changes_the_training_changes_the_id():
    base = small_spec(**{"grid.activation": ["tanh"], "grid.hidden": None})
    one = set(ids_by_settings(base).values())
    for change in ({"train.learning_rate": 1e-3}, {"data.label_noise": 0.5}, {"data.split_seed": 1},
                   {"train.batch_size": 128}, {"train.weight_decay": 1e-4}, {"model.hidden": [10, 7, 5]},
                   {"data.train_fraction": 0.45}, {"train.optimizer": "sgd"}):
        other = set(ids_by_settings(small_spec(**{"grid.activation": ["tanh"], "grid.hidden": None},
                                               **change)).values())
        assert len(other) == 2 and not other & one, change
    # No weight decay is one setting whether the grid names 0 or leaves the axis out.
    spec = validate(small_spec(**{"grid.activation": ["tanh"], "grid.hidden": None, "grid.weight_decay": [0.0, 1e-4]}))
    decay = set(network_ids(expand_grid(spec), spec))
    assert len(decay) == 4 and len(decay & one) == 2
