"""SCHP's ResNet-101 CE2P network in PyTorch: the peer that bench/model_speed.py --peer schp times.

Written from the published architecture (Li et al., "Self-Correction for Human Parsing",
TPAMI 2020; network AugmentCE2P), for speed and FLOP comparison only: no weights are loaded.
The shapes follow the paper's released network:
  trunk    ResNet-101 with a deep stem (3x3 convs 3->64 stride 2, 64->64, 64->128, then a
           3x3 max-pool stride 2), stages of 3/4/23/3 bottlenecks (stride on the 3x3 conv),
           the last stage at stride 1 with dilation 2 x multi-grid (1, 1, 1): output stride 16;
  context  pyramid pooling over 2048 channels, bins 1, 2, 3, 6 -> 512 each, concatenated with
           the features and fused by a 3x3 conv -> 512;
  decoder  context 1x1 -> 256, upsampled to stage 1 (stride 4), joined with stage 1 1x1 -> 48,
           two 1x1 convs -> 256 (the parsing features), 1x1 -> classes;
  edge     stages 1-3 each 1x1 -> 256 and one shared 3x3 -> 2 edge logits, upsampled to stride 4;
           the three 2-channel maps fused by a 1x1 conv, the three 256-channel maps concatenated;
  fusion   parsing features (256) + edge features (768) -> 1x1 -> 256 -> 1x1 -> classes.
SCHP trains with InPlaceABN (BatchNorm + LeakyReLU 0.01 in one op); at inference that is a
plain BatchNorm2d followed by LeakyReLU (trunk batch norms carry no activation and are
followed by ReLU, as in the released network). Dropout is the identity in eval mode and is left out.
"""

import torch
from torch import nn
from torch.nn import functional as F

LEAKY_SLOPE = 0.01  # InPlaceABN's default activation


def conv_bn(in_channels, out_channels, kernel=1, stride=1, dilation=1, activation="leaky"):
    """Conv (no bias) + BatchNorm2d + activation ("leaky", "relu" or None), "same" padding."""
    layers = [
        nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=dilation * (kernel // 2),
                  dilation=dilation, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if activation == "leaky":
        layers.append(nn.LeakyReLU(LEAKY_SLOPE))
    elif activation == "relu":
        layers.append(nn.ReLU())
    elif activation is not None:
        raise ValueError(f"activation={activation!r} is not one of 'leaky', 'relu', None")
    return nn.Sequential(*layers)


def upsample_to(x, reference):
    """Bilinear resize of `x` to `reference`'s height and width (SCHP aligns corners)."""
    return F.interpolate(x, size=reference.shape[-2:], mode="bilinear", align_corners=True)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries stride and dilation), 1x1 expand x4, projected shortcut when shapes change."""

    def __init__(self, in_channels, width, stride=1, dilation=1):
        super().__init__()
        out_channels = 4 * width
        self.body = nn.Sequential(
            conv_bn(in_channels, width, activation="relu"),
            conv_bn(width, width, 3, stride=stride, dilation=dilation, activation="relu"),
            conv_bn(width, out_channels, activation=None),
        )
        needs_projection = stride != 1 or in_channels != out_channels
        self.shortcut = conv_bn(in_channels, out_channels, stride=stride, activation=None) if needs_projection else None

    def forward(self, x):
        identity = x if self.shortcut is None else self.shortcut(x)
        return F.relu(self.body(x) + identity)


def resnet_stage(in_channels, width, blocks, stride=1, dilation=1, multi_grid=None):
    """`blocks` bottlenecks; the first changes stride/width, block i is dilated dilation x multi_grid[i % len]."""
    grid = multi_grid or (1,)
    return nn.Sequential(*(
        Bottleneck(in_channels if i == 0 else 4 * width, width, stride if i == 0 else 1,
                   dilation * grid[i % len(grid)])
        for i in range(blocks)
    ))


class PyramidPooling(nn.Module):
    """PSPNet context: average-pool to each bin size, 1x1 conv, upsample, concatenate, 3x3 fuse."""

    def __init__(self, in_channels=2048, branch_channels=512, bins=(1, 2, 3, 6)):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(size), conv_bn(in_channels, branch_channels)) for size in bins
        )
        self.fuse = conv_bn(in_channels + len(bins) * branch_channels, branch_channels, 3)

    def forward(self, x):
        pooled = [upsample_to(branch(x), x) for branch in self.branches]
        return self.fuse(torch.cat(pooled + [x], dim=1))


class EdgeBranch(nn.Module):
    """Edge logits and features at stage 1's resolution from stages 1-3 (one 3x3 classifier shared by all)."""

    def __init__(self, in_channels=(256, 512, 1024), width=256, edge_classes=2):
        super().__init__()
        self.reduce = nn.ModuleList(conv_bn(c, width) for c in in_channels)
        self.classify = nn.Conv2d(width, edge_classes, 3, padding=1)
        self.fuse = nn.Conv2d(len(in_channels) * edge_classes, edge_classes, 1)

    def forward(self, stages):
        features = [reduce(x) for reduce, x in zip(self.reduce, stages)]
        edges = [upsample_to(self.classify(f), stages[0]) for f in features]
        features = [upsample_to(f, stages[0]) for f in features]
        return self.fuse(torch.cat(edges, dim=1)), torch.cat(features, dim=1)


class Decoder(nn.Module):
    """Context upsampled to stride 4 and joined with reduced stage-1 features (DeepLabv3+-style)."""

    def __init__(self, num_classes, context_channels=512, low_channels=256):
        super().__init__()
        self.context = conv_bn(context_channels, 256)
        self.low = conv_bn(low_channels, 48)
        self.refine = nn.Sequential(conv_bn(256 + 48, 256), conv_bn(256, 256))
        self.classify = nn.Conv2d(256, num_classes, 1)

    def forward(self, context, low):
        joined = torch.cat([upsample_to(self.context(context), low), self.low(low)], dim=1)
        features = self.refine(joined)
        return self.classify(features), features


class SCHP(nn.Module):
    """CE2P with ResNet-101: returns (parsing logits, fusion logits, edge logits), all at stride 4."""

    def __init__(self, num_classes=20, blocks=(3, 4, 23, 3)):
        super().__init__()
        self.stem = nn.Sequential(
            conv_bn(3, 64, 3, stride=2, activation="relu"),
            conv_bn(64, 64, 3, activation="relu"),
            conv_bn(64, 128, 3, activation="relu"),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        self.stages = nn.ModuleList([
            resnet_stage(128, 64, blocks[0]),
            resnet_stage(256, 128, blocks[1], stride=2),
            resnet_stage(512, 256, blocks[2], stride=2),
            resnet_stage(1024, 512, blocks[3], dilation=2, multi_grid=(1, 1, 1)),
        ])
        self.context = PyramidPooling()
        self.decoder = Decoder(num_classes)
        self.edge = EdgeBranch()
        self.fusion = nn.Sequential(conv_bn(256 + 3 * 256, 256), nn.Conv2d(256, num_classes, 1))

    def forward(self, images):
        x = self.stem(images)
        stage_outputs = []
        for stage in self.stages:
            x = stage(x)
            stage_outputs.append(x)
        parsing, parsing_features = self.decoder(self.context(x), stage_outputs[0])
        edge, edge_features = self.edge(stage_outputs[:3])
        fusion = self.fusion(torch.cat([parsing_features, edge_features], dim=1))
        return parsing, fusion, edge


def build_schp(num_classes=20):
    """SCHP ResNet-101 in eval mode (BatchNorm uses its running statistics), random weights."""
    return SCHP(num_classes).eval()


def parameter_count(model):
    """Trainable parameters (conv weights and biases, BatchNorm scale and shift; not running stats)."""
    return sum(p.numel() for p in model.parameters())


def forward_gflop(model, side, batch_size=1):
    """FLOPs of one forward pass per image, in GFLOP, by torch's FlopCounterMode (2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(batch_size, 3, side, side))
    return counter.get_total_flops() / batch_size / 1e9
