"""Evaluation of learned embeddings.

Linear classifier accuracy (``linear_classifier``), clustering metrics such as NMI and ARI (``clustering``),
temporal smoothness and displacement of tracks (``smoothness``, ``distance``), dimensionality reduction
(``dimensionality_reduction``: PCA, UMAP, PHATE), image-quality and segmentation metrics (``metrics``),
hand-crafted cell features (``feature``) and attribution of linear classifiers (``lca``).

Most modules need ``pip install 'viscy-utils[eval]'`` (and ``[anndata]`` for AnnData input). The
interactive Dash visualization app of the original package is not included.
"""

from __future__ import annotations

import lazy_loader

__all__ = ["load_annotation_anndata"]
__getattr__, __dir__, _ = lazy_loader.attach(__name__, submod_attrs={"annotation": ["load_annotation_anndata"]})
