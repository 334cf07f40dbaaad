"""Demo evaluation: linear probes of the cell state on held-out FOVs, and a 2-D view of the embeddings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "ONLINE_PANELS",
    "ProbeResult",
    "labelled_embeddings",
    "plot_embeddings",
    "plot_online_metrics",
    "probe_accuracy",
    "read_online_metrics",
]

_KEYS = ["fov_name", "track_id", "t"]

#: Panels of the online-metrics figure: title -> TensorBoard tags drawn in it.
ONLINE_PANELS = {
    "effective rank (RankMe)": ["eval/effective_rank", "eval/effective_rank_projections"],
    "k-NN / probe accuracy (held-out FOVs)": ["eval/knn_accuracy", "eval/linear_probe_accuracy"],
    "temporal smoothness (Spearman)": ["eval/temporal_smoothness"],
    "loss": ["loss/train_epoch", "loss/val_epoch"],
}


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


def read_online_metrics(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Per-epoch values of the ``eval/*`` and epoch-loss scalars of a TensorBoard run.

    Parameters
    ----------
    log_dir : Path
        Folder holding the run's event files.

    Returns
    -------
    dict[str, list[tuple[int, float]]]
        Tag -> ``(epoch, value)`` in logging order (epochs from Lightning's ``epoch`` scalar).
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    tags = events.Tags()["scalars"]
    epoch_of_step = {event.step: int(event.value) for event in events.Scalars("epoch")} if "epoch" in tags else {}
    wanted = [tag for tag in tags if tag.startswith("eval/") or tag in ("loss/train_epoch", "loss/val_epoch")]
    return {
        tag: [(epoch_of_step.get(event.step, event.step), float(event.value)) for event in events.Scalars(tag)]
        for tag in wanted
    }


def plot_online_metrics(series: dict[str, list[tuple[int, float]]], path: Path) -> None:
    """Draw the :data:`ONLINE_PANELS` of ``series`` (from :func:`read_online_metrics`) into one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(ONLINE_PANELS), figsize=(4 * len(ONLINE_PANELS), 3.2))
    for ax, (title, tags) in zip(axes, ONLINE_PANELS.items(), strict=True):
        for tag in tags:
            if series.get(tag):
                epochs, values = zip(*series[tag], strict=True)
                ax.plot(np.asarray(epochs) + 1, values, marker="o", markersize=3, label=tag.split("/", 1)[1])
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
