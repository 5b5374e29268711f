"""bench/schp_peer.py: the PyTorch SCHP peer has SCHP's output shapes and parameter count.

Needs the optional [bench] extra (torch); CI installs [dev] only, so there it skips.
"""

import importlib.util

import pytest
from train_support import REPO_ROOT

torch = pytest.importorskip("torch")


def _module():
    spec = importlib.util.spec_from_file_location("schp_peer", REPO_ROOT / "bench" / "schp_peer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _conv(cin, cout, kernel=1, bias=False):
    return cin * cout * kernel * kernel + (cout if bias else 0)


def _conv_bn(cin, cout, kernel=1):
    return _conv(cin, cout, kernel) + 2 * cout  # BatchNorm scale and shift


def _bottleneck(cin, width, projected):
    return (_conv_bn(cin, width) + _conv_bn(width, width, 3) + _conv_bn(width, 4 * width)
            + (_conv_bn(cin, 4 * width) if projected else 0))


def _stage(cin, width, blocks):
    return _bottleneck(cin, width, True) + (blocks - 1) * _bottleneck(4 * width, width, False)


def _schp_resnet101_parameters(classes=20):
    """SCHP ResNet-101 CE2P parameters counted by hand from its conv shapes."""
    stem = _conv_bn(3, 64, 3) + _conv_bn(64, 64, 3) + _conv_bn(64, 128, 3)
    trunk = stem + _stage(128, 64, 3) + _stage(256, 128, 4) + _stage(512, 256, 23) + _stage(1024, 512, 3)
    pyramid = 4 * _conv_bn(2048, 512) + _conv_bn(2048 + 4 * 512, 512, 3)
    decoder = (_conv_bn(512, 256) + _conv_bn(256, 48) + _conv_bn(304, 256) + _conv_bn(256, 256)
               + _conv(256, classes, bias=True))
    edge = (_conv_bn(256, 256) + _conv_bn(512, 256) + _conv_bn(1024, 256)
            + _conv(256, 2, 3, bias=True) + _conv(6, 2, bias=True))
    fusion = _conv_bn(1024, 256) + _conv(256, classes, bias=True)
    return trunk + pyramid + decoder + edge + fusion


def test_outputs_are_class_and_edge_logits_at_stride_4():
    schp_peer = _module()
    model = schp_peer.SCHP(num_classes=20).eval()
    with torch.no_grad():
        parsing, fusion, edge = model(torch.zeros(1, 3, 96, 64))
    assert parsing.shape == fusion.shape == (1, 20, 24, 16)
    assert edge.shape == (1, 2, 24, 16)


def test_parameter_count_matches_the_conv_shapes():
    schp_peer = _module()
    expected = _schp_resnet101_parameters()
    assert expected == 66_723_928
    assert schp_peer.parameter_count(schp_peer.build_schp()) == expected


def test_last_stage_is_dilated_not_strided():
    """Output stride 16: stage 4 keeps stage 3's resolution and dilates its 3x3 convs by 2."""
    schp_peer = _module()
    stage4 = schp_peer.build_schp().stages[3]
    dilated = [m for m in stage4.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert [(m.stride, m.dilation) for m in dilated] == [((1, 1), (2, 2))] * 3
