import pytest
import torch

from hplandscape.errors import UserError
from hplandscape.models import build_model, load_weights, save_weights


def test_roundtrip_restores_the_same_function(tmp_path):
    torch.manual_seed(0)
    model = build_model("resnet20", num_classes=4, in_channels=1).eval()
    path = save_weights(tmp_path / "run" / "model.pt", "resnet20", model, 4, 1)
    w = load_weights(path, expected_model="resnet20")
    assert (w.model, w.num_classes, w.in_channels, w.widths) == ("resnet20", 4, 1, None)
    x = torch.randn(2, 1, 8, 8)
    assert torch.allclose(w.build().eval()(x), model(x))
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temp file left


def test_pruned_widths_roundtrip(tmp_path):
    model = build_model("resnet20", widths={"layer1.0.conv1": 3})
    path = save_weights(tmp_path / "m.pt", "resnet20", model, 10, 3, widths={"layer1.0.conv1": 3})
    assert load_weights(path).build().layer1[0].conv1.out_channels == 3


def test_other_architecture_is_refused_naming_the_path(tmp_path):
    path = save_weights(tmp_path / "m.pt", "resnet20", build_model("resnet20"), 10, 3)
    with pytest.raises(UserError, match=rf"{path}.*'resnet20'.*'resnet56'"):
        load_weights(path, expected_model="resnet56")


def test_corrupt_and_foreign_files(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(UserError, match=f"{bad}: not a readable weights file"):
        load_weights(bad)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(UserError, match=f"{foreign}: not an hplandscape weights file.*model"):
        load_weights(foreign)
    with pytest.raises(UserError, match="not found"):
        load_weights(tmp_path / "missing.pt")


def test_weights_that_do_not_fit_name_the_path(tmp_path):
    path = save_weights(tmp_path / "m.pt", "resnet20", build_model("resnet20"), 10, 3)
    data = torch.load(path, weights_only=True)
    data["num_classes"] = 7
    torch.save(data, path)
    with pytest.raises(UserError, match=f"{path}: weights do not fit"):
        load_weights(path).build()
