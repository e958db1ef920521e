"""One training step on a fixed global batch of real faces, alone or under torchrun: what
`tests/e2e/test_distributed.py` compares. Not a test module itself (pytest does not collect it).

usage: python ddp_step.py classification|simclr BATCH.pt OUT.pt
"""

import sys

import torch
from torch import nn

from facessl import distributed
from facessl.augment import BatchPipeline
from facessl.config import TrainConfig
from facessl.models.resnet import ResNet18
from facessl.ssl.simclr import SimCLR
from facessl.train import Classification, Pretext, TensorSet, run_training

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


class FixedViews(nn.Module):
    """SimCLR's views without their randomness, so one process and two see the same views:
    what is compared is the gathering of negatives, not the augmentation."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255
        return ((x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
                ).contiguous(memory_format=torch.channels_last)


def main(kind: str, batch_file: str, out_file: str) -> None:
    distributed.start()
    batch = torch.load(batch_file)
    torch.manual_seed(0)
    backbone = ResNet18(int(batch["labels"].max()) + 1, 3, batch["images"].shape[-1])
    if kind == "classification":
        objective = Classification(backbone, BatchPipeline(MEAN, STD, "none"))
    else:
        method = SimCLR(backbone, MEAN, STD, temperature=0.5)
        method.augment = FixedViews()
        objective = Pretext(method)
    initial = {k: v.clone() for k, v in objective.state_dict().items()}
    config = TrainConfig(epochs=1, batch_size=len(batch["labels"]), lr=0.05, momentum=0.9)
    history = run_training(objective, TensorSet(batch["images"], batch["labels"]), config)
    if distributed.is_main():
        torch.save({"loss": history[0]["train_loss"], "world_size": distributed.world_size(),
                    "initial": initial,
                    "state": {k: v.cpu() for k, v in objective.state_dict().items()}}, out_file)


if __name__ == "__main__":
    main(*sys.argv[1:])
