"""The one training loop: resumable, guarded against divergence, shared by every objective."""

import pytest
import torch

from facessl.augment import BatchPipeline
from facessl.config import TrainConfig
from facessl.errors import FacesslError
from facessl.models.tinyvgg import TinyVGG
from facessl.train import Classification, TensorSet, run_training


def _setup(seed=0):
    torch.manual_seed(seed)
    model = TinyVGG(3, input_size=20, width=0.25)
    fixed = torch.Generator().manual_seed(123)  # the same data whatever the model's seed
    data = TensorSet(torch.randint(0, 256, (40, 3, 20, 20), dtype=torch.uint8, generator=fixed),
                     torch.randint(0, 3, (40,), generator=fixed))
    return model, Classification(model, BatchPipeline((0.5,) * 3, (0.5,) * 3, "flip")), data


def test_resume_continues_exactly_where_it_stopped(tmp_path):
    config = TrainConfig(epochs=3, batch_size=8, lr=0.05, schedule="cosine")
    _, objective, data = _setup()
    straight = run_training(objective, data, config)
    final = {k: v.clone() for k, v in objective.state_dict().items()}

    model, objective, data = _setup()
    checkpoint = tmp_path / "resume.pt"

    def stop_after_first(record):
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_training(objective, data, config, checkpoint=checkpoint, on_epoch=stop_after_first)
    model, objective, data = _setup(seed=1)  # a fresh process would start from other weights
    seen = []
    resumed = run_training(objective, data, config, checkpoint=checkpoint,
                           on_epoch=lambda r: seen.append(r["epoch"]))
    assert seen == [2, 3]
    assert [r["train_loss"] for r in resumed] == pytest.approx([r["train_loss"] for r in straight])
    for key, value in objective.state_dict().items():
        assert torch.allclose(value, final[key], atol=1e-6), key


def test_diverging_loss_stops_with_advice():
    _, objective, data = _setup()
    with pytest.raises(FacesslError, match="Lower the learning rate"):
        run_training(objective, data, TrainConfig(epochs=2, batch_size=8, lr=1e12))


def test_batches_read_from_the_cache_train_as_a_tensor_in_memory_does():
    """A pool streamed batch by batch (`TorchFaces`) must train exactly like the same faces
    held as one tensor."""
    from facessl.augment import TorchFaces
    config = TrainConfig(epochs=2, batch_size=8, lr=0.05)
    _, objective, data = _setup()
    in_memory = run_training(objective, data, config)
    held = {k: v.clone() for k, v in objective.state_dict().items()}
    _, objective, data = _setup()
    faces = TorchFaces(data.images.permute(0, 2, 3, 1).numpy())  # N x H x W x C, like the cache
    streamed = run_training(objective, TensorSet(faces, data.labels), config)
    assert [r["train_loss"] for r in streamed] == [r["train_loss"] for r in in_memory]
    for key, value in objective.state_dict().items():
        assert torch.equal(value, held[key]), key
