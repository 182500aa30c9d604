"""Output shapes of every architecture x backbone x head on NYUv2-, Cityscapes- and Office-sized inputs.

Shapes are checked on the meta device (shape propagation, no arithmetic), so
even MMoE over four dilated ResNet-50s at 288x384 takes milliseconds; real
forwards of the same modules are exercised in test_training and test_flops.
"""

from __future__ import annotations

import pytest
import torch

from mtlx import ConfigError
from mtlx.engine.step import forward
from mtlx_archs.plugin import ARCHS, BACKBONES, HEADS

IMAGE_BACKBONES = [b for b in BACKBONES if b != "mlp"]
RESNETS = [b for b in BACKBONES if b.startswith("resnet")]
#: expected per-sample Z shape for each backbone at each benchmark size.
Z_SHAPES = {
    ("digits-cnn", "nyuv2"): (64, 144, 192),
    ("resnet18", "nyuv2"): (512, 9, 12),
    ("resnet50", "nyuv2"): (2048, 9, 12),
    ("resnet50-dilated", "nyuv2"): (2048, 36, 48),
    ("digits-cnn", "cityscapes"): (64, 64, 128),
    ("resnet18", "cityscapes"): (512, 4, 8),
    ("resnet50", "cityscapes"): (2048, 4, 8),
    ("resnet50-dilated", "cityscapes"): (2048, 16, 32),
    ("digits-cnn", "office"): (64, 112, 112),
    ("resnet18", "office"): (512, 7, 7),
    ("resnet50", "office"): (2048, 7, 7),
    ("resnet50-dilated", "office"): (2048, 28, 28),
}


def _expected(spec, input_shape, batch):
    return (batch, spec.out_channels, *input_shape[1:]) if spec.dense else (batch, spec.out_channels)


@pytest.mark.parametrize("bench", ["nyuv2", "cityscapes", "office"])
@pytest.mark.parametrize("backbone", IMAGE_BACKBONES)
def test_backbone_out_shape_matches_forward(benchmarks, bench, backbone):
    input_shape, _ = benchmarks[bench]
    with torch.device("meta"):
        net = BACKBONES[backbone](BACKBONES[backbone].Config(), input_shape)
        z = net(torch.empty(1, *input_shape))
    assert net.out_shape == Z_SHAPES[backbone, bench] == tuple(z.shape[1:])


def _check_predictions(make_model, benchmarks, bench, backbone, head, arch, options=None):
    input_shape, tasks = benchmarks[bench]
    with torch.device("meta"):
        model = make_model(arch, backbone, head, input_shape, tasks, options).eval()
        out = model(torch.empty(2, *input_shape))
    assert set(out) == set(tasks)
    for name, spec in tasks.items():
        assert tuple(out[name].shape) == _expected(spec, input_shape, 2), name


@pytest.mark.parametrize("bench", ["nyuv2", "cityscapes", "office"])
@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_every_arch_and_head_at_every_size(make_model, benchmarks, bench, head, arch):
    _check_predictions(make_model, benchmarks, bench, "digits-cnn", head, arch)


@pytest.mark.parametrize("backbone", RESNETS)
@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_every_arch_on_every_backbone(make_model, benchmarks, backbone, arch):
    options = {"arch": {"num_experts": 2}} if arch == "mmoe" else None
    _check_predictions(make_model, benchmarks, "nyuv2", backbone, "deeplab-aspp", arch, options)


@pytest.mark.slow
@pytest.mark.parametrize("bench", ["nyuv2", "cityscapes", "office"])
@pytest.mark.parametrize("backbone", IMAGE_BACKBONES)
@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_full_product(make_model, benchmarks, bench, backbone, head, arch):
    _check_predictions(make_model, benchmarks, bench, backbone, head, arch)


@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_vector_data_with_mlp(make_model, benchmarks, head, arch):
    input_shape, tasks = benchmarks["qm9"]
    model = make_model(arch, "mlp", head, input_shape, tasks, options={"backbone": {"hidden_sizes": [16, 8]}})
    out = model(torch.randn(4, *input_shape))
    assert {t: tuple(v.shape) for t, v in out.items()} == {t: (4, 1) for t in tasks}


@pytest.mark.parametrize("arch", ["hps", "saliency-decoder"])
def test_multi_input_encodes_each_task_input(make_model, benchmarks, arch):
    input_shape, tasks = benchmarks["office"]
    with torch.device("meta"):
        model = make_model(arch, "resnet18", "linear", input_shape, tasks).eval()
        preds, reps = forward(model, {t: torch.empty(3, *input_shape) for t in tasks}, multi_input=True)
    assert {t: tuple(p.shape) for t, p in preds.items()} == {t: (3, 31) for t in tasks}
    assert {t: tuple(z.shape) for t, z in reps.items()} == {t: (3, 512, 7, 7) for t in tasks}


@pytest.mark.parametrize("arch", sorted(a for a, cls in ARCHS.items() if not cls.has_shared_representation))
def test_architectures_without_z_refuse_multi_input(make_model, benchmarks, arch):
    input_shape, tasks = benchmarks["office"]
    with torch.device("meta"):
        model = make_model(arch, "digits-cnn", "linear", input_shape, tasks)
    assert not model.has_shared_representation
    with pytest.raises(ConfigError, match="shared encoder"):
        forward(model, {t: torch.empty(1, *input_shape) for t in tasks}, multi_input=True)


@pytest.mark.parametrize("head", sorted(HEADS))
def test_dense_task_on_vector_z_is_a_config_error(make_model, benchmarks, head):
    _, tasks = benchmarks["cityscapes"]
    with pytest.raises(ConfigError, match=rf"head '{head}' cannot produce dense task 'seg'.*spatial backbone"):
        make_model("hps", "mlp", head, (3, 8, 8), tasks, options={"backbone": {"hidden_sizes": [4]}})


def test_image_backbones_refuse_vector_input():
    with pytest.raises(
        ConfigError, match=r"backbone 'resnet18' needs image inputs \(C, H, W\), got input shape \(11,\)"
    ):
        BACKBONES["resnet18"](BACKBONES["resnet18"].Config(), (11,))
    with pytest.raises(ConfigError, match="use backbone 'mlp' for vector data"):
        BACKBONES["digits-cnn"](BACKBONES["digits-cnn"].Config(), (11,))


@pytest.mark.parametrize("output_stride, size", [(32, (2, 3)), (16, (4, 6)), (8, (8, 12))])
def test_resnet_output_stride(output_stride, size):
    net = BACKBONES["resnet18"](BACKBONES["resnet18"].Config(output_stride=output_stride), (3, 64, 96)).eval()
    with torch.no_grad():
        z = net(torch.randn(1, 3, 64, 96))
    assert tuple(z.shape) == (1, 512, *size) and net.out_shape == (512, *size)
