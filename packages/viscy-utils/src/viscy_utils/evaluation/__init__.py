"""Evaluation of learned embeddings.

Linear classifier accuracy (``linear_classifier``), clustering metrics such as NMI and ARI (``clustering``),
temporal smoothness and displacement of tracks (``smoothness``, ``distance``), dimensionality reduction
(``dimensionality_reduction``: PCA, UMAP, PHATE), image-quality and segmentation metrics (``metrics``),
hand-crafted cell features (``feature``) and attribution of linear classifiers (``lca``).

Most modules need ``pip install 'viscy-utils[eval]'`` (and ``[anndata]`` for AnnData input). The
interactive Dash visualization app of the original package is not included.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["load_annotation_anndata"]


def __getattr__(name: str) -> Any:
    if name == "load_annotation_anndata":
        return importlib.import_module(f"{__name__}.annotation").load_annotation_anndata
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
