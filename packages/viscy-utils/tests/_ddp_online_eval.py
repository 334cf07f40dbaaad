"""Fit 1 epoch on 2 CPU/gloo ranks with OnlineEvalCallback (launched by test_online_eval.py).

Lightning's distributed sampler pads the odd-sized validation set with a repeated sample. Each rank
writes the ``eval/*`` metrics it logged; rank 0 also writes the gathered embeddings.
"""

import json
import sys
from pathlib import Path

import numpy as np
from _online_eval_fixtures import EmbeddingEcho, LabelledTracksData
from lightning.pytorch import Trainer

from viscy_utils.callbacks import OnlineEvalCallback

if __name__ == "__main__":
    output, n_samples = Path(sys.argv[1]), int(sys.argv[2])
    callback = OnlineEvalCallback(label_key="infection_state", k=5)
    trainer = Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[callback],
    )
    trainer.fit(EmbeddingEcho(), datamodule=LabelledTracksData(n_samples))
    logged = sorted(name for name in trainer.callback_metrics if name.startswith("eval/"))
    (output / f"rank{trainer.global_rank}.json").write_text(json.dumps(logged))
    if trainer.global_rank == 0:
        table = callback.last_embeddings
        np.savez(output / "gathered.npz", features=table.features, keys=table.order_key[:, 1])
