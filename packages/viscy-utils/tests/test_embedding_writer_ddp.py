import os
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np

SCRIPT = Path(__file__).with_name("_ddp_predict.py")


def test_ddp_predict_writes_every_cell_once_in_dataset_order(tmp_path):
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
    np.testing.assert_array_equal(adata.obs["id"], np.arange(n_samples))
    np.testing.assert_array_equal(adata.X[:, 0], np.arange(n_samples, dtype=np.float32))
    assert list(adata.obs["fov_name"]) == [f"A/1/{i % 3}" for i in range(n_samples)]
    assert adata.obs_names.is_unique
