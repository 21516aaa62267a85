"""Backbone/neck features cached for a curvature solve give the uncached products."""
import torch

from conftest import build_detector, voc_dataset
from isal_mmdet.detection import DetectionObjective, detector_param_groups
from isal_mmdet.influence import Curvature, ParamGroups, influence_mode


def _setup(synthetic_voc, **kwargs):
    model = build_detector('retinanet')
    train = voc_dataset(synthetic_voc, 'train')
    obj = DetectionObjective(seed=0, **kwargs)
    calls = []
    extract = model.extract_feat
    model.extract_feat = lambda inputs: calls.append(len(inputs)) or extract(inputs)
    return model, [train[i] for i in range(4)], obj, calls


def test_cached_hvp_equals_uncached_and_skips_the_backbone(synthetic_voc):
    model, labelled, obj, calls = _setup(synthetic_voc)
    groups = detector_param_groups(model)
    curv = Curvature(obj, model, groups, labelled)
    g = torch.Generator().manual_seed(0)
    vec = groups.wrap([torch.randn(p.shape, generator=g) for p in groups.params()])
    with influence_mode(model, groups):
        plain = curv.mean_hvp(vec, range(4), 2).flatten()
        with obj.cached():
            first = curv.mean_hvp(vec, range(4), 2).flatten()
            assert sorted(obj.features) == sorted(d['data_samples'].metainfo['img_id']
                                                  for d in labelled)
            calls.clear()
            second = curv.mean_hvp(vec, range(4), 2).flatten()
            assert calls == []  # every feature came from the cache
        assert obj.features is None
    assert torch.allclose(first, plain, rtol=1e-6, atol=1e-9)
    assert torch.allclose(second, plain, rtol=1e-6, atol=1e-9)


def test_nothing_cached_when_theta_reaches_the_neck_or_over_budget(synthetic_voc):
    model, labelled, obj, _ = _setup(synthetic_voc)
    with_neck = ParamGroups.from_patterns(model, {'neck': r'^neck\.', 'cls': r'retina_cls\.'})
    vec = with_neck.wrap([torch.ones_like(p) for p in with_neck.params()])
    with influence_mode(model, with_neck), obj.cached():
        Curvature(obj, model, with_neck, labelled).mean_hvp(vec, range(2), 2)
        assert obj.features == {}
    model, labelled, obj, _ = _setup(synthetic_voc, cache_bytes=0)
    groups = detector_param_groups(model)
    with influence_mode(model, groups), obj.cached():
        Curvature(obj, model, groups, labelled).mean_hvp(groups.zeros(), range(2), 2)
        assert obj.features == {}
