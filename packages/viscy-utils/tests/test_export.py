import numpy as np
import pytest
import torch
from lightning.pytorch import LightningModule

from viscy_utils.trainer import VisCyTrainer

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxscript")


class TinyConv(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv3d(2, 3, kernel_size=(1, 3, 3), padding=(0, 1, 1))
        self.example_input_array = torch.rand(1, 2, 3, 8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


def _checkpoint(tmp_path, model: LightningModule):
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": model.state_dict()}, path)
    return path


def test_export_writes_onnx_that_reproduces_the_checkpoint(tmp_path):
    torch.manual_seed(0)
    trained = TinyConv()
    ckpt = _checkpoint(tmp_path, trained)
    export_path = tmp_path / "model.onnx"
    VisCyTrainer(logger=False, accelerator="cpu").export(TinyConv(), export_path, ckpt)

    model = onnx.load(export_path)
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["output"]
    input_dims = model.graph.input[0].type.tensor_type.shape.dim
    assert input_dims[2].dim_value == 3  # depth stays static
    assert all(input_dims[axis].dim_param for axis in (0, 3, 4))  # batch, rows and columns are dynamic

    from onnx.reference import ReferenceEvaluator

    x = np.random.default_rng(0).random((2, 2, 3, 12, 10), dtype=np.float32)
    (onnx_output,) = ReferenceEvaluator(model).run(None, {"input": x})
    with torch.no_grad():
        expected = trained(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(onnx_output, expected, rtol=1e-4, atol=1e-5)


def test_export_rejects_other_formats(tmp_path):
    with pytest.raises(NotImplementedError, match="Export format 'torchscript'"):
        VisCyTrainer(logger=False).export(TinyConv(), tmp_path / "m.pt", tmp_path / "m.ckpt", format="torchscript")
