"""Loading ImageNet-style ResNet weights saved in torchvision's layout.

The reference here is independent of the plugin's modules: the state_dict is
generated from torchvision's architecture description (names and shapes),
and its forward is computed functionally from that dict.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mtlx import CheckpointError
from mtlx_archs.plugin import BACKBONES

SPECS = {  # name -> (blocks per layer, bottleneck, dilated layers 2..4)
    "resnet18": ((2, 2, 2, 2), False, (False, False, False)),
    "resnet50": ((3, 4, 6, 3), True, (False, False, False)),
    "resnet50-dilated": ((3, 4, 6, 3), True, (False, True, True)),
}


def torchvision_state_dict(layers, bottleneck, seed=0):
    """Random tensors under torchvision's ResNet names, fc included (as in an ImageNet checkpoint)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}

    def conv(name, out_ch, in_ch, k):
        sd[name] = torch.randn(out_ch, in_ch, k, k, generator=g) * math.sqrt(2.0 / (in_ch * k * k))

    def bn(prefix, ch):
        sd[prefix + "weight"] = 1 + 0.1 * torch.randn(ch, generator=g)
        sd[prefix + "bias"] = 0.1 * torch.randn(ch, generator=g)
        sd[prefix + "running_mean"] = 0.1 * torch.randn(ch, generator=g)
        sd[prefix + "running_var"] = 0.5 + torch.rand(ch, generator=g)
        sd[prefix + "num_batches_tracked"] = torch.tensor(1000)

    expansion = 4 if bottleneck else 1
    conv("conv1.weight", 64, 3, 7)
    bn("bn1.", 64)
    in_ch = 64
    for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers, strict=True)):
        for b in range(n):
            p = f"layer{i + 1}.{b}."
            if bottleneck:
                conv(p + "conv1.weight", planes, in_ch, 1)
                conv(p + "conv2.weight", planes, planes, 3)
                conv(p + "conv3.weight", planes * 4, planes, 1)
                bn(p + "bn3.", planes * 4)
            else:
                conv(p + "conv1.weight", planes, in_ch, 3)
                conv(p + "conv2.weight", planes, planes, 3)
            bn(p + "bn1.", planes)
            bn(p + "bn2.", planes)
            if b == 0 and (i > 0 or in_ch != planes * expansion):
                conv(p + "downsample.0.weight", planes * expansion, in_ch, 1)
                bn(p + "downsample.1.", planes * expansion)
            in_ch = planes * expansion
    sd["fc.weight"] = torch.randn(1000, in_ch, generator=g) * 0.01
    sd["fc.bias"] = torch.zeros(1000)
    return sd


def reference_forward(sd, x, layers, bottleneck, dilated):
    """torchvision's ResNet forward in eval mode, up to layer4, from the state_dict alone."""

    def bn(t, p):
        return F.batch_norm(t, sd[p + "running_mean"], sd[p + "running_var"], sd[p + "weight"], sd[p + "bias"])

    x = F.max_pool2d(F.relu(bn(F.conv2d(x, sd["conv1.weight"], stride=2, padding=3), "bn1.")), 3, 2, 1)
    dilation = 1
    for i, n in enumerate(layers):
        stride, previous = (1 if i == 0 else 2), dilation
        if i > 0 and dilated[i - 1]:
            dilation, stride = dilation * stride, 1
        for b in range(n):
            p, s, d = f"layer{i + 1}.{b}.", (stride if b == 0 else 1), (previous if b == 0 else dilation)
            identity = x
            if p + "downsample.0.weight" in sd:
                identity = bn(F.conv2d(x, sd[p + "downsample.0.weight"], stride=s), p + "downsample.1.")
            if bottleneck:
                out = F.relu(bn(F.conv2d(x, sd[p + "conv1.weight"]), p + "bn1."))
                out = F.relu(bn(F.conv2d(out, sd[p + "conv2.weight"], stride=s, padding=d, dilation=d), p + "bn2."))
                out = bn(F.conv2d(out, sd[p + "conv3.weight"]), p + "bn3.")
            else:
                out = F.relu(bn(F.conv2d(x, sd[p + "conv1.weight"], stride=s, padding=d, dilation=d), p + "bn1."))
                out = bn(F.conv2d(out, sd[p + "conv2.weight"], padding=d, dilation=d), p + "bn2.")
            x = F.relu(out + identity)
    return x


def _backbone(name, path):
    cls = BACKBONES[name]
    return cls(cls.Config(weights=str(path)), (3, 64, 64)).eval()


@pytest.mark.parametrize(
    "name", ["resnet18", "resnet50-dilated", pytest.param("resnet50", marks=pytest.mark.slow)]
)  # resnet50 differs from resnet50-dilated only in strides
def test_torchvision_layout_weights_reproduce_outputs(tmp_path, name):
    layers, bottleneck, dilated = SPECS[name]
    sd = torchvision_state_dict(layers, bottleneck)
    path = tmp_path / f"{name}.pth"
    torch.save(sd, path)
    net = _backbone(name, path)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference_forward(sd, x, layers, bottleneck, dilated)
        got = net(x)
    assert got.shape == expected.shape == (2, 512 * (4 if bottleneck else 1), *((8, 8) if any(dilated) else (2, 2)))
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.fixture
def resnet18_file(tmp_path):
    def write(edit):
        sd = torchvision_state_dict(*SPECS["resnet18"][:2])
        edit(sd)
        path = tmp_path / "weights.pth"
        torch.save(sd, path)
        return path

    return write


def test_missing_keys_are_listed(resnet18_file):
    path = resnet18_file(lambda sd: (sd.pop("layer4.1.bn2.weight"), sd.pop("layer1.0.conv1.weight")))
    with pytest.raises(
        CheckpointError, match=r"backbone 'resnet18'.*missing keys: layer1\.0\.conv1\.weight, layer4\.1\.bn2\.weight"
    ):
        _backbone("resnet18", path)


def test_unexpected_keys_are_listed(resnet18_file):
    path = resnet18_file(lambda sd: sd.update({"layer5.0.conv1.weight": torch.zeros(1)}))
    with pytest.raises(CheckpointError, match=r"unexpected keys: layer5\.0\.conv1\.weight"):
        _backbone("resnet18", path)


def test_misshaped_keys_are_listed(resnet18_file):
    path = resnet18_file(lambda sd: sd.update({"conv1.weight": torch.zeros(64, 3, 3, 3)}))
    with pytest.raises(
        CheckpointError, match=r"mis-shaped keys: conv1\.weight \(file \(64, 3, 3, 3\), model \(64, 3, 7, 7\)\)"
    ):
        _backbone("resnet18", path)


def test_missing_file_and_non_state_dict(tmp_path):
    with pytest.raises(CheckpointError, match=r"weights file .*nope\.pth does not exist"):
        _backbone("resnet18", tmp_path / "nope.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="does not hold a state_dict"):
        _backbone("resnet18", tmp_path / "list.pth")


def test_other_backbones_round_trip_their_own_weights(tmp_path):
    """digits-cnn and mlp accept weights too (``--backbone-weights`` works for every backbone)."""
    for name, shape in (("digits-cnn", (1, 32, 32)), ("mlp", (11,))):
        cls = BACKBONES[name]
        source = cls(cls.Config(), shape).eval()
        torch.save(source.state_dict(), tmp_path / f"{name}.pth")
        loaded = cls(cls.Config(weights=str(tmp_path / f"{name}.pth")), shape).eval()
        x = torch.randn(2, *shape)
        torch.testing.assert_close(loaded(x), source(x), rtol=0, atol=0)
