"""Integration: ``dynaclr fit`` and ``dynaclr predict`` on 2 simulated nodes x 1 process, started as srun does.

Each rank is a separate ``python -m dynaclr.cli`` process that only sees SLURM's environment variables
(``SLURM_NTASKS``, ``SLURM_PROCID``, ``SLURM_NODEID``, ...) plus ``MASTER_ADDR``/``MASTER_PORT``, and the
config says ``trainer.num_nodes: 2``, ``devices: 1``: Lightning's SLURMEnvironment forms the gloo process
group. Data: the two-experiment plates of ``test_integration_ddp`` (93 tracked cells, not divisible by the
world size).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
from _config_helpers import write_yaml
from _multi_experiment_plates import write_two_experiment_plates
from test_integration_ddp import OBS_KEY, _rows, _tracked_cells

N_NODES = 2
PATCH = 16


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _srun_env(rank: int, port: int) -> dict[str, str]:
    """The environment srun gives task ``rank`` of ``--nodes=2 --ntasks-per-node=1``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SLURM_")}
    env.update(
        SLURM_JOB_ID="4242",
        SLURM_JOB_NAME="dynaclr-multinode",
        SLURM_NTASKS=str(N_NODES),
        SLURM_NTASKS_PER_NODE="1",
        SLURM_NNODES=str(N_NODES),
        SLURM_JOB_NUM_NODES=str(N_NODES),
        SLURM_NODELIST="127.0.0.1",
        SLURM_PROCID=str(rank),
        SLURM_LOCALID="0",
        SLURM_NODEID=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        OMP_NUM_THREADS="1",
        PYTHONWARNINGS="ignore",
        PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), *sys.path]),
    )
    return env


def _srun(subcommand: str, config: Path, cwd: Path) -> None:
    """Start one ``dynaclr`` process per node and wait for all of them."""
    port = _free_port()
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "dynaclr.cli", subcommand, "-c", str(config)],
            cwd=cwd,
            env=_srun_env(rank, port),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(N_NODES)
    ]
    outputs = []
    try:
        outputs = [process.communicate(timeout=400)[0] for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    for rank, (process, output) in enumerate(zip(processes, outputs, strict=True)):
        assert process.returncode == 0, f"rank {rank} of dynaclr {subcommand} failed:\n{output[-4000:]}"


def _config(experiments_yaml: Path, trainer: dict) -> dict:
    return {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "num_nodes": N_NODES,
            "strategy": {
                "class_path": "lightning.pytorch.strategies.DDPStrategy",
                "init_args": {"process_group_backend": "gloo"},
            },
            "logger": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            **trainer,
        },
        "model": {
            "class_path": "dynaclr.engine.ContrastiveModule",
            "init_args": {
                "encoder": {"class_path": "dynaclr_testing.TinyEncoder", "init_args": {"in_channels": 2}},
                "loss_function": {
                    "class_path": "dynaclr.loss.NTXentHCL",
                    "init_args": {"temperature": 0.5, "beta": 0.5, "gather_distributed": True},
                },
                "lr": 0.01,
                "example_input_array_shape": [1, 2, 1, PATCH, PATCH],
            },
        },
        "data": {
            "class_path": "dynaclr.datamodule.MultiExperimentDataModule",
            "init_args": {
                "experiments_yaml": str(experiments_yaml),
                "z_range": [0, 1],
                "yx_patch_size": [PATCH, PATCH],
                "final_yx_patch_size": [PATCH, PATCH],
                "val_experiments": [],
                "tau_range": [0.5, 1.0],
                "batch_size": 4,
                "num_workers": 0,
                "channel_dropout_prob": 0.0,
            },
        },
    }


def test_two_node_srun_fit_then_predict(tmp_path):
    import anndata

    plates = write_two_experiment_plates(tmp_path)
    records, checkpoints, output = tmp_path / "records", tmp_path / "checkpoints", tmp_path / "embeddings.zarr"
    records.mkdir()
    fit = _config(
        plates["experiments_yaml"],
        {
            "max_steps": 2,
            "limit_val_batches": 0,
            "use_distributed_sampler": False,
            "default_root_dir": str(tmp_path / "fit"),
            "callbacks": [
                {"class_path": "_slurm_recorder.BatchRecorder", "init_args": {"output_dir": str(records)}},
                {
                    "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                    "init_args": {"dirpath": str(checkpoints), "filename": "dynaclr", "save_top_k": 1},
                },
            ],
        },
    )
    _srun("fit", write_yaml(tmp_path / "fit.yml", fit), cwd=tmp_path)

    ranks = [json.loads((records / f"rank-{rank}.json").read_text()) for rank in range(N_NODES)]
    assert [(r["global_rank"], r["node_rank"], r["local_rank"]) for r in ranks] == [(0, 0, 0), (1, 1, 0)]
    assert all(r["world_size"] == 2 and r["num_nodes"] == 2 and r["global_step"] == 2 for r in ranks)
    # both ranks trained on 2 batches of 4 anchors each, and no anchor patch was given to both ranks
    assert [len(r["anchor_sums"]) for r in ranks] == [8, 8]
    assert not set(ranks[0]["anchor_sums"]) & set(ranks[1]["anchor_sums"])
    # gradients were synchronised across the nodes: identical weights
    np.testing.assert_array_equal(ranks[0]["weights"], ranks[1]["weights"])
    assert sorted(p.name for p in checkpoints.iterdir()) == ["dynaclr.ckpt"]

    writer = {
        "class_path": "viscy_utils.callbacks.embedding_writer.EmbeddingWriter",
        "init_args": {"output_path": str(output)},
    }
    predict = _config(plates["experiments_yaml"], {"callbacks": [writer], "default_root_dir": str(tmp_path / "pred")})
    predict["ckpt_path"] = str(checkpoints / "dynaclr.ckpt")
    _srun("predict", write_yaml(tmp_path / "predict.yml", predict), cwd=tmp_path)

    cells = _tracked_cells(plates["experiments_yaml"])
    adata = anndata.read_zarr(output)
    assert adata.n_obs == len(cells) == 93
    assert _rows(adata.obs) == _rows(cells)
    assert adata.uns["embedding_writer"]["world_size"] == 2
    # Lightning's predict sampler shards without padding: 47 + 46 cells (padded samplers: test_embedding_writer_ddp)
    assert list(adata.uns["embedding_writer"]["rows_per_rank"]) == [47, 46]
    assert adata.uns["embedding_writer"]["duplicates_dropped"] == 0
    sort_key = adata.obs[OBS_KEY[:3]].astype({"track_id": int, "t": int})
    assert sort_key.equals(sort_key.sort_values(OBS_KEY[:3], kind="stable"))
    assert np.isfinite(adata.X).all() and adata.X.shape == (93, 8)
    assert [p.name for p in tmp_path.iterdir() if "embeddings" in p.name] == ["embeddings.zarr"]
