import importlib

import viscy_models
from viscy_models import _components, contrastive, unet, vae


def test_public_exports():
    assert sorted(viscy_models.__all__) == [
        "BetaVae25D",
        "BetaVaeMonai",
        "ContrastiveEncoder",
        "FullyConvolutionalMAE",
        "ResNet3dEncoder",
        "UNeXt2",
        "Unet25d",
        "Unet2d",
    ]
    assert isinstance(viscy_models.__version__, str)
    for package in (viscy_models, _components, contrastive, unet, vae):
        for name in package.__all__:
            assert getattr(package, name).__name__ == name
    assert importlib.import_module("viscy_models.contrastive.encoder").projection_mlp
