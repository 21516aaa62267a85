"""ESI: its closed form against autograd, forward-mode JVPs and a Monte-Carlo expectation over
sampled labels; the strategy's scores against batch size; refusals from the config."""
import importlib

import pytest
import torch
from mmengine.dataset import pseudo_collate
from torch.func import functional_call, jvp

from conftest import ROOT, TINY, build_detector, voc_dataset
from isal_mmdet.al.selection import select
from isal_mmdet.detection import detector_param_groups
from isal_mmdet.detection.esi import DirectionalHead
from isal_mmdet.influence.expected import aggregate_esi, focal_logit_grads
from isal_mmdet.study import research_strategies  # noqa: F401  (registers ESIResearch)

focal = importlib.import_module('mmdet.models.losses.focal_loss')


def test_focal_logit_grads_equal_autograd_of_mmdets_focal_loss():
    x = torch.linspace(-12, 12, 97, dtype=torch.float64).requires_grad_()
    for target, which in ((1.0, 0), (0.0, 1)):
        loss = focal.py_sigmoid_focal_loss(x[:, None], torch.full((97, 1), target,
                                           dtype=torch.float64), reduction='sum')
        want, = torch.autograd.grad(loss, x)
        got = focal_logit_grads(x.detach())[which]
        assert torch.allclose(got, want, rtol=1e-9, atol=1e-12)


def _model_and_image(synthetic_voc):
    model = build_detector('retinanet')
    with torch.no_grad():  # spread the class probabilities away from the 0.01 prior
        g = torch.Generator().manual_seed(0)
        b = model.bbox_head.retina_cls.bias
        b.copy_(torch.randn(b.shape, generator=g) - 2.0)
    items = [voc_dataset(synthetic_voc)[i] for i in range(4)]
    return model, items


def _random_s(groups, seed=1):
    g = torch.Generator().manual_seed(seed)
    return groups.wrap([torch.randn(p.shape, generator=g) * 0.01 for p in groups.params()])


def test_esi_equals_a_monte_carlo_expectation_over_sampled_labels(synthetic_voc):
    """Directional logits from torch.func.jvp (not the conv-with-s shortcut), logit
    gradients from autograd of mmdet's focal and L1 losses, the expectation by sampling."""
    model, items = _model_and_image(synthetic_voc)
    groups = detector_param_groups(model)
    s = _random_s(groups)
    head = model.bbox_head
    variance, mean = DirectionalHead(model, groups, s).terms(pseudo_collate(items[:1]))[0]
    closed = aggregate_esi(variance, mean, mean_term=True)

    one = model.data_preprocessor(pseudo_collate(items[:1]), False)
    with torch.no_grad():
        x = model.extract_feat(one['inputs'])
    names = [n for g in groups.names() for n, _ in groups.groups[g]]
    prefix = 'bbox_head.'
    params = {n[len(prefix):]: p.detach() for n, p in zip(names, groups.params())}
    tangents = {n[len(prefix):]: t for n, t in zip(names, s.tensors())}

    def outputs(p):
        cls, box = functional_call(head, p, (x,))
        k = head.cls_out_channels
        return (torch.cat([c[0].permute(1, 2, 0).reshape(-1, k) for c in cls]),
                torch.cat([b[0].permute(1, 2, 0).reshape(-1, 4) for b in box]))

    (logits, boxes), (j_cls, j_box) = jvp(outputs, (params,), (tangents,))
    sizes = [c.shape[-2:] for c in head(x)[0]]
    valid = torch.cat(head.prior_generator.valid_flags(
        sizes, one['data_samples'][0].metainfo['pad_shape'], logits.device))
    logits, boxes = logits[valid].double(), boxes[valid].double()
    j_cls, j_box = j_cls[valid].double(), j_box[valid].double()
    p = logits.sigmoid()
    q = p.max(-1).values
    gen = torch.Generator().manual_seed(2)
    draws = []
    for _ in range(8):  # 8 x 250 sampled labellings of the image
        n = 250
        t = torch.bernoulli(p.expand(n, *p.shape), generator=gen)
        pos = torch.bernoulli(q.expand(n, *q.shape), generator=gen)
        sign = torch.randint(0, 2, (n, *boxes.shape), generator=gen).double() * 2 - 1
        lx = logits.expand(n, *logits.shape).clone().requires_grad_()
        lb = boxes.expand(n, *boxes.shape).clone().requires_grad_()
        cls_loss = focal.py_sigmoid_focal_loss(lx.reshape(-1, lx.shape[-1]),
                                               t.reshape(-1, t.shape[-1]), reduction='sum')
        box_loss = (torch.nn.functional.l1_loss(lb, (lb - 0.5 * sign).detach(),
                                                reduction='none') * pos[..., None]).sum()
        u_cls, u_box = torch.autograd.grad(cls_loss + box_loss, (lx, lb))
        draws.append(((u_cls * j_cls).sum((1, 2)) + (u_box * j_box).sum((1, 2))).detach())
    proj = torch.cat(draws)
    sq = proj.square()
    mc, se = float(sq.mean()), float(sq.std() / len(sq) ** 0.5)
    assert abs(closed - mc) < 4 * se, (closed, mc, se)
    assert se < 0.05 * mc  # the check has teeth: dropping the box or mean term fails it
    assert abs(aggregate_esi(variance, mean) - mc) > 4 * se


def test_esi_strategy_scores_do_not_depend_on_batch_size(synthetic_voc):
    from test_strategies import _ctx
    model, _ = _model_and_image(synthetic_voc)
    cfg = dict(type='ESI', solver=dict(type='woodbury', num_samples=4))
    runs = [select(cfg, _ctx(synthetic_voc, model, batch_size=b), 3) for b in (1, 4)]
    assert runs[0].scores == pytest.approx(runs[1].scores, rel=1e-4)
    assert runs[0].selected == runs[1].selected
    scores = runs[0].scores
    assert runs[0].selected == sorted(scores, key=lambda i: -scores[i])[:3]
    assert runs[0].info['esi'] == dict(mean_term=False, box_term=True, top_k=None)
    top = select(dict(cfg, type='ESIResearch', top_k=50), _ctx(synthetic_voc, model), 3).scores
    assert all(top[i] <= scores[i] * (1 + 1e-6) for i in scores)


@pytest.mark.parametrize('family,message', [
    ('fcos', 'ESI needs a single-stage anchor head'),
    ('faster_rcnn', 'ESI needs a single-stage detector'),
])
def test_esi_refused_for_detectors_it_cannot_score(family, message):
    from mmengine.config import Config
    from isal_mmdet.al.settings import al_settings
    cfg = Config.fromfile(f'{ROOT}/{TINY[family]}')
    cfg.active_learning = dict(strategy='esi')
    with pytest.raises(ValueError, match=f'^active_learning.strategy: {message}'):
        al_settings(cfg)
    cfg = Config.fromfile(f'{ROOT}/{TINY["retinanet"]}')
    cfg.active_learning = dict(strategy='esi')
    al_settings(cfg)
