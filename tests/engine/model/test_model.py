"""The InstMatt network: authors' checkpoint layout, spectral-norm folding, batching, equivariance."""

from __future__ import annotations

import pytest
import torch

from engine.errors import InputFileError
from engine.model import (
    InstMatt,
    build_model,
    load_model,
    read_checkpoint,
    save_checkpoint,
)
from engine.model.spectral_norm import SpectralNorm, fold_spectral_norm


@pytest.fixture(scope="module")
def authors_state(make_authors_state):
    return make_authors_state()


def test_reference_key_list_matches_network(reference_keys):
    shapes = reference_keys
    model_shapes = {key: tuple(value.shape) for key, value in InstMatt(1.0).state_dict().items()}
    assert len(shapes) == 604
    assert model_shapes == shapes


def test_refiner_has_paper_parameter_count():
    assert sum(p.numel() for p in InstMatt(1.0).refiner.parameters()) == 38707


def test_authors_checkpoint_loads_strictly(authors_checkpoint, authors_state):
    model = load_model(authors_checkpoint)
    assert model.width == 1.0 and not model.training
    assert not any(isinstance(m, SpectralNorm) for m in model.modules())
    original = authors_state
    loaded = build_model(authors_checkpoint).state_dict()
    assert torch.equal(loaded["decoder.refine_OS1.3.bias"], original["decoder.refine_OS1.3.bias"])


def test_without_module_prefix(tmp_path, authors_state):
    path = tmp_path / "plain.pth"
    torch.save({"state_dict": authors_state}, path)
    state, width = read_checkpoint(path)
    assert width == 1.0 and "encoder.conv1.module.weight_bar" in state
    build_model(path)


@pytest.mark.parametrize("damage, message", [
    (lambda s: s.pop("aspp.conv2.weight"), "1 missing keys (first: aspp.conv2.weight)"),
    (lambda s: s.__setitem__("refiner.extra.weight", torch.zeros(1)), "unexpected keys (first: refiner.extra.weight)"),
    (lambda s: s.__setitem__("refiner.head.bias", torch.zeros(4)), "refiner.head.bias (4,) != (3,)"),
])
def test_wrong_checkpoint_names_first_mismatch(tmp_path, make_authors_state, damage, message):
    state = make_authors_state()
    damage(state)
    path = tmp_path / "bad.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(InputFileError) as error:
        load_model(path)
    assert str(error.value).startswith(str(path)) and message in str(error.value)


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"this is not a checkpoint", "not a readable PyTorch checkpoint"),
])
def test_not_a_checkpoint(tmp_path, content, message):
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(InputFileError, match=message):
        load_model(path)


def test_dict_without_state_dict(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(InputFileError, match="expected a dict with a 'state_dict' entry"):
        load_model(path)


def test_missing_file(tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        load_model(tmp_path / "nope.pth")


def _inputs(count: int, size=(64, 96), seed=0):
    generator = torch.Generator().manual_seed(seed)
    image = torch.randn(count, 3, *size, generator=generator)
    trimask = torch.rand(count, 3, *size, generator=generator)
    return image, trimask


def test_folded_weights_equal_spectral_norm_formula(authors_checkpoint):
    unfolded = build_model(authors_checkpoint).eval()
    conv = unfolded.encoder.layer2[0].conv1.module
    matrix = conv.weight_bar.reshape(conv.weight_bar.shape[0], -1)
    expected = conv.weight_bar / conv.weight_u.dot(matrix.mv(conv.weight_v))
    folded = load_model(authors_checkpoint)
    assert torch.allclose(folded.encoder.layer2[0].conv1.weight, expected, atol=0, rtol=1e-6)
    image, trimask = _inputs(2)
    with torch.no_grad():
        a = unfolded(image, trimask)
        b = folded(image, trimask)
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key


def test_transposed_conv_folding_matches():
    model = InstMatt(0.25).eval()
    reference = model.decoder.layer1[0].conv1
    x = torch.randn(1, reference.module.in_channels, 4, 4)
    with torch.no_grad():
        expected = reference(x)
        got = reference.folded()(x)
    assert torch.allclose(expected, got, atol=1e-6)


def test_training_mode_runs_power_iteration():
    layer = InstMatt(0.25).encoder.conv1
    layer.module.weight_u.normal_()
    before = layer.module.weight_u.clone()
    layer.train()
    layer(torch.randn(1, 6, 8, 8))
    assert not torch.equal(before, layer.module.weight_u)


def test_outputs_shapes_and_ranges():
    model = load_model(None, width=0.25)
    image, trimask = _inputs(3)
    with torch.no_grad():
        out = model.matting(image, trimask)
    for key in ("alpha_os1", "alpha_os4", "alpha_os8"):
        assert out[key].shape == (3, 3, 64, 96)
        assert out[key].min() >= 0 and out[key].max() <= 1
    assert out["feature"].shape == (3, 8, 64, 96)
    assert load_model(None, width=1.0).decoder.feature_channels == 32


def test_matting_rejects_sizes_not_multiple_of_32():
    model = load_model(None, width=0.25)
    image, trimask = _inputs(1, size=(50, 64))
    with pytest.raises(ValueError, match="multiples of 32"):
        model.matting(image, trimask)


def test_refiner_is_permutation_equivariant():
    model = load_model(None, width=0.25)
    generator = torch.Generator().manual_seed(3)
    image = torch.randn(4, 3, 40, 48, generator=generator)
    trimatte = torch.rand(4, 3, 40, 48, generator=generator)
    feature = torch.randn(4, model.decoder.feature_channels, 40, 48, generator=generator)
    order = torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        straight = model.refiner(image, trimatte, feature)
        shuffled = model.refiner(image[order], trimatte[order], feature[order])
    assert torch.allclose(straight[order], shuffled, atol=1e-5)
    # the people do interact: changing one changes the others
    with torch.no_grad():
        changed = trimatte.clone()
        changed[0] = 1 - changed[0]
        other = model.refiner(image, changed, feature)
    assert not torch.allclose(other[1], straight[1], atol=1e-4)


def test_project_checkpoint_round_trip(tmp_path):
    model = build_model(None, width=0.25)
    for suffix, half in ((".safetensors", True), (".pth", False)):
        path = save_checkpoint(model, tmp_path / f"tiny{suffix}", half=half)
        state, width = read_checkpoint(path)
        assert width == 0.25
        restored = build_model(path)
        tolerance = 1e-3 if half else 0
        for key, value in model.state_dict().items():
            if value.is_floating_point():
                assert torch.allclose(restored.state_dict()[key], value, atol=tolerance, rtol=tolerance), key
    assert not list(tmp_path.glob("*.partial"))


def test_fold_is_idempotent_and_keeps_outputs():
    model = InstMatt(0.25).eval()
    image, trimask = _inputs(1)
    with torch.no_grad():
        before = model(image, trimask)["alpha_os1"]
        fold_spectral_norm(model)
        fold_spectral_norm(model)
        after = model(image, trimask)["alpha_os1"]
    assert torch.allclose(before, after, atol=1e-6)
