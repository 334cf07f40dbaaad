"""Run a 2-process CPU DDP prediction with EmbeddingWriter (launched by test_embedding_writer_ddp.py).

The dataloader uses a shuffled, padded DistributedSampler, so ranks see interleaved samples and one
sample twice.
"""

import sys

from _embedding_fixtures import EchoEmbedder, IndexedCells
from lightning.pytorch import LightningDataModule, Trainer
from torch.utils.data import DataLoader, DistributedSampler

from viscy_utils.callbacks import EmbeddingWriter


class PaddedShuffledCells(LightningDataModule):
    def __init__(self, n_samples: int) -> None:
        super().__init__()
        self.dataset = IndexedCells(n_samples)

    def predict_dataloader(self) -> DataLoader:
        sampler = DistributedSampler(
            self.dataset, num_replicas=self.trainer.world_size, rank=self.trainer.global_rank, shuffle=True, seed=3
        )
        return DataLoader(self.dataset, batch_size=2, sampler=sampler)


if __name__ == "__main__":
    output_path, n_samples = sys.argv[1], int(sys.argv[2])
    trainer = Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        use_distributed_sampler=False,
        callbacks=[EmbeddingWriter(output_path)],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.predict(EchoEmbedder(), datamodule=PaddedShuffledCells(n_samples), return_predictions=False)
