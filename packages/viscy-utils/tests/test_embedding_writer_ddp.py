import os
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np

SCRIPT = Path(__file__).with_name("_ddp_predict.py")


def test_ddp_predict_writes_every_cell_once_in_documented_order(tmp_path):
    output = tmp_path / "embeddings.zarr"
    n_samples = 11  # odd: the distributed sampler pads one rank with a repeated sample
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(output), str(n_samples)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    adata = ad.read_zarr(output)
    ids = sorted(range(n_samples), key=lambda i: (f"A/1/{i % 3}", i // 4, i % 4))  # fov_name, track_id, t
    np.testing.assert_array_equal(adata.obs["id"], ids)
    np.testing.assert_array_equal(adata.X[:, 0], np.asarray(ids, dtype=np.float32))
    assert list(adata.obs["fov_name"]) == [f"A/1/{i % 3}" for i in ids]
    assert adata.obs_names.is_unique
    assert adata.uns["embedding_writer"]["world_size"] == 2
    assert adata.uns["embedding_writer"]["duplicates_dropped"] == 1
    assert [p.name for p in tmp_path.iterdir() if "embeddings" in p.name] == ["embeddings.zarr"]
