import subprocess
import sys

import viscy_utils


def test_import_is_light():
    heavy = "('torch', 'matplotlib', 'skimage', 'anndata')"
    code = f"import sys, viscy_utils; print(sorted(m for m in {heavy} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "[]", result.stderr


def test_public_names_resolve_lazily():
    for name in viscy_utils.__all__:
        assert callable(getattr(viscy_utils, name))
    assert sorted(viscy_utils.__all__) == [
        "detach_sample",
        "get_val_stats",
        "hist_clipping",
        "mp_wrapper",
        "render_images",
        "unzscore",
        "zscore",
    ]


def test_unknown_attribute_raises():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        viscy_utils.nope  # noqa: B018


def test_evaluation_exports_load_annotation_anndata():
    from viscy_utils import evaluation
    from viscy_utils.evaluation.annotation import load_annotation_anndata

    assert evaluation.load_annotation_anndata is load_annotation_anndata
