"""Demo evaluation: linear probes of the cell state on held-out FOVs, and a 2-D view of the embeddings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["ProbeResult", "labelled_embeddings", "plot_embeddings", "probe_accuracy"]

_KEYS = ["fov_name", "track_id", "t"]


@dataclass(frozen=True)
class ProbeResult:
    """Test accuracy of a probe, the majority-class accuracy of the test cells, and the cell counts."""

    accuracy: float
    chance_accuracy: float
    n_train: int
    n_test: int


def labelled_embeddings(embeddings_path: Path, ground_truth: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """Read an embeddings store and attach the ground-truth state and experiment of every cell.

    Parameters
    ----------
    embeddings_path : Path
        AnnData zarr store written by ``EmbeddingWriter``.
    ground_truth : pd.DataFrame
        ``experiment, fov_name, track_id, t, condition, infection_state`` (FOV names unique over experiments).

    Returns
    -------
    tuple[np.ndarray, pd.DataFrame]
        Features ``(N, F)`` and their labelled obs, in store order.

    Raises
    ------
    ValueError
        If a cell of the store has no ground truth.
    """
    import anndata as ad

    adata = ad.read_zarr(embeddings_path)
    obs = adata.obs[_KEYS].reset_index(drop=True).astype({"fov_name": str, "track_id": int, "t": int})
    labelled = obs.merge(ground_truth, on=_KEYS, how="left", validate="one_to_one")
    if labelled["infection_state"].isna().any():
        missing = labelled.loc[labelled["infection_state"].isna(), _KEYS].head()
        raise ValueError(f"Cells of {embeddings_path} have no ground truth, e.g.\n{missing}")
    labelled["X_pca_0"], labelled["X_pca_1"] = adata.obsm["X_pca"][:, 0], adata.obsm["X_pca"][:, 1]
    return np.asarray(adata.X), labelled


def probe_accuracy(features: np.ndarray, cells: pd.DataFrame, held_out_fovs: list[str]) -> ProbeResult:
    """Fit a logistic-regression probe of ``infection_state`` on training FOVs, score it on held-out FOVs.

    Parameters
    ----------
    features : np.ndarray
        ``(N, F)`` embeddings.
    cells : pd.DataFrame
        ``fov_name`` and ``infection_state`` of each row.
    held_out_fovs : list[str]
        Test FOVs; all other FOVs train the probe.

    Returns
    -------
    ProbeResult
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    test = cells["fov_name"].isin(held_out_fovs).to_numpy()
    labels = cells["infection_state"].to_numpy(dtype=int)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    probe.fit(features[~test], labels[~test])
    majority = max(labels[test].mean(), 1 - labels[test].mean())
    return ProbeResult(
        accuracy=float(probe.score(features[test], labels[test])),
        chance_accuracy=float(majority),
        n_train=int((~test).sum()),
        n_test=int(test.sum()),
    )


def plot_embeddings(views: dict[str, pd.DataFrame], path: Path) -> None:
    """Scatter the 2-D PCA of each embedding, coloured by cell state and by experiment, into one PNG.

    Parameters
    ----------
    views : dict[str, pd.DataFrame]
        Title -> labelled cells with ``X_pca_0``, ``X_pca_1``, ``infection_state``, ``experiment``.
    path : Path
        PNG to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(views), 2, figsize=(10, 4.5 * len(views)), squeeze=False)
    for row, (title, cells) in zip(axes, views.items(), strict=True):
        for ax, column, names in zip(
            row, ["infection_state", "experiment"], [{0: "uninfected", 1: "infected"}, None], strict=True
        ):
            for value, group in cells.groupby(column):
                label = names[value] if names else value
                ax.scatter(group["X_pca_0"], group["X_pca_1"], s=3, alpha=0.5, label=label)
            ax.set_title(f"{title}: coloured by {column}")
            ax.set_xlabel("PC 1")
            ax.set_ylabel("PC 2")
            ax.legend(markerscale=4)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
