from __future__ import annotations

import torch

from labelless.semi.algorithms import create_algorithm
from labelless.semi.state import SampleState

from .conftest import TinyEncoder


def test_write_and_read_rows():
    state = SampleState(6, torch.tensor([2, 3, 4, 5]))
    state.add("loss", fill=0.0)
    state.write("loss", torch.tensor([4, 2]), torch.tensor([1.5, 0.5]))
    assert state["loss"].tolist() == [0.0, 0.0, 0.5, 0.0, 1.5, 0.0]
    assert state.unlabelled.tolist() == [False, False, True, True, True, True]


def test_sample_state_survives_checkpoint_and_resume(tmp_path, tiny_batches):
    """FlexMatch's learning status lives in SampleState, inside the algorithm's state dict: a
    checkpoint written with torch.save loads with weights_only=True into a fresh run."""
    labelled, unlabelled = tiny_batches(batch=4, mu=2, classes=3)
    state = SampleState(12, torch.arange(4, 12))
    algorithm = create_algorithm("flexmatch", TinyEncoder(), 3, state, threshold=0.0)
    algorithm(labelled, unlabelled, 0.5)  # threshold 0: every sample gets a status
    status = state["flexmatch_status"].clone()
    assert (status[4:] >= 0).all() and (status[:4] == -1).all()
    torch.save({"state_dict": algorithm.state_dict()}, tmp_path / "last.ckpt")

    fresh_state = SampleState(12, torch.arange(4, 12))
    fresh = create_algorithm("flexmatch", TinyEncoder(), 3, fresh_state, threshold=0.0)
    assert (fresh_state["flexmatch_status"] == -1).all()
    checkpoint = torch.load(tmp_path / "last.ckpt", weights_only=True)
    fresh.load_state_dict(checkpoint["state_dict"])
    assert torch.equal(fresh_state["flexmatch_status"], status)
    assert torch.equal(fresh_state.unlabelled, state.unlabelled)
