"""UUIC losses and influence for RetinaNet, FCOS and Faster R-CNN against mmdet itself."""
import os.path as osp

import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.structures import InstanceData

from conftest import BCCD, build_detector, voc_dataset
from isal_mmdet.detection import (DetectionObjective, detector_family, detector_param_groups,
                                  sum_losses, to_pseudo_gt)
from isal_mmdet.detection.losses import image_seeded_rng, per_image_normalisation
from isal_mmdet.influence import influence_scores, loss_grad, summed_gradient
from isal_mmdet.study.objective import ResearchObjective, presence_draw

FAMILIES = ['retinanet', 'fcos', 'faster_rcnn']


def _items(ds, n, with_boxes=True):
    out = []
    for i in range(len(ds)):
        if not with_boxes or ds.get_data_info(i)['instances']:
            out.append(ds[i])
        if len(out) == n:
            return out
    raise AssertionError('not enough images')


def _random_s(groups, seed=0):
    g = torch.Generator().manual_seed(seed)
    return groups.wrap([torch.randn(p.shape, generator=g) for p in groups.params()])


@pytest.mark.parametrize('family', FAMILIES)
def test_per_image_loss_equals_mmdet_loss_on_image_alone(family, synthetic_voc):
    model = build_detector(family)
    assert detector_family(model) == family
    items = _items(voc_dataset(synthetic_voc), 4)
    with torch.no_grad():
        ours = DetectionObjective(seed=3).per_sample_loss(model, pseudo_collate(items))
        for item, got in zip(items, ours):
            one = model.data_preprocessor(pseudo_collate([item]), False)
            with image_seeded_rng(item['data_samples'].metainfo['img_id'], 3):
                want = sum_losses(model.loss(one['inputs'], one['data_samples']))
            assert float(got) == pytest.approx(float(want), rel=1e-5)


@pytest.mark.parametrize('family', FAMILIES)
def test_batched_influence_equals_batch1_autograd(family, synthetic_voc):
    model = build_detector(family)
    groups = detector_param_groups(model)
    items = _items(voc_dataset(synthetic_voc), 4, with_boxes=False)
    obj = DetectionObjective(score_thr=0.0, max_per_img=20, seed=1)
    s = _random_s(groups)
    got = influence_scores(obj, model, groups, s, [pseudo_collate(items)])
    with groups.only_these_require_grad(model), torch.enable_grad():
        for item in items:
            g = loss_grad(obj, model, groups, pseudo_collate([item]), pseudo=True)
            want = -g.dot(s)
            assert got[item['data_samples'].metainfo['img_id']] == pytest.approx(
                want, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize('family', ['retinanet', 'faster_rcnn'])
def test_score_does_not_depend_on_batch_size(family, synthetic_voc):
    model = build_detector(family)
    groups = detector_param_groups(model)
    items = _items(voc_dataset(synthetic_voc), 4, with_boxes=False)
    obj = DetectionObjective(score_thr=0.0, max_per_img=20)
    s = _random_s(groups)
    runs = []
    for bs in (1, 2, 4):
        batches = [pseudo_collate(items[k:k + bs]) for k in range(0, 4, bs)]
        runs.append(influence_scores(obj, model, groups, s, batches))
    for img_id, ref in runs[0].items():
        for other in runs[1:]:
            assert other[img_id] == pytest.approx(ref, rel=1e-5, abs=1e-7)


def test_image_without_pseudo_box_gets_finite_score_and_clamped_normaliser(synthetic_voc):
    model = build_detector('retinanet')
    groups = detector_param_groups(model)
    items = _items(voc_dataset(synthetic_voc), 2, with_boxes=False)
    obj = DetectionObjective(score_thr=2.0)  # no prediction reaches it
    scores = influence_scores(obj, model, groups, _random_s(groups), [pseudo_collate(items)])
    assert len(scores) == 2 and all(torch.isfinite(torch.tensor(list(scores.values()))))
    with torch.no_grad():
        ours = float(obj.per_sample_loss(model, pseudo_collate(items[:1]), pseudo=True)[0])
        one = model.data_preprocessor(pseudo_collate(items[:1]), False)
        ds = one['data_samples'][0]
        ds.gt_instances = InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0).long())
        head = model.bbox_head
        assert float(sum_losses(model.loss(one['inputs'], [ds]))) == pytest.approx(ours)
        # A head whose normaliser is the raw positive count (0 here): mmdet divides by
        # avg_factor + eps, ~1e7x too much; the per-image normalisation clamps it to 1.
        original = head.get_targets
        head.get_targets = lambda *a, **k: original(*a, **k)[:-1] + (0,)
        raw = float(sum_losses(model.loss(one['inputs'], [ds])))
        with per_image_normalisation(head):
            clamped = float(sum_losses(model.loss(one['inputs'], [ds])))
    assert raw > 1e6 * ours
    assert clamped == pytest.approx(ours, rel=1e-6)


@pytest.mark.parametrize('family', ['retinanet', 'fcos'])
def test_soft_labels_are_the_expected_focal_loss_per_image(family, synthetic_voc):
    model = build_detector(family)
    groups = detector_param_groups(model)
    items = _items(voc_dataset(synthetic_voc), 4, with_boxes=False)
    obj = ResearchObjective(soft=True)
    with torch.no_grad():
        batched = obj.per_sample_loss(model, pseudo_collate(items), pseudo=True)
        for item, got in zip(items, batched):
            one = model.data_preprocessor(pseudo_collate([item]), False)
            logits = torch.cat([lvl[0].permute(1, 2, 0).reshape(-1, 3) for lvl in
                                model.bbox_head(model.extract_feat(one['inputs']))[0]])
            p = q = logits.sigmoid()
            a, g = 0.25, 2.0
            want = (q * -a * (1 - p) ** g * p.log()
                    + (1 - q) * -(1 - a) * p ** g * (1 - p).log()).sum() / q.sum().clamp(min=1)
            assert float(got) == pytest.approx(float(want), rel=1e-5)
    # Scores through the batched double backward match a batch-1 autograd loop.
    s = _random_s(groups)
    got = influence_scores(obj, model, groups, s, [pseudo_collate(items)])
    with groups.only_these_require_grad(model), torch.enable_grad():
        for item in items:
            g = loss_grad(obj, model, groups, pseudo_collate([item]), pseudo=True)
            # the expected box is the predicted one: no gradient on regression weights
            reg = [t for name in g.keys() if 'cls' not in name for t in g[name]]
            assert reg and all(float(t.abs().max()) == 0 for t in reg)
            assert got[item['data_samples'].metainfo['img_id']] == pytest.approx(
                float(-g.dot(s)), rel=1e-4, abs=1e-6)


def test_soft_labels_refuse_likelihood_heads(synthetic_voc):
    model = build_detector('faster_rcnn')
    items = _items(voc_dataset(synthetic_voc), 1)
    with pytest.raises(ValueError, match="pseudo='soft' needs a single-stage"):
        ResearchObjective(soft=True).per_sample_loss(model, pseudo_collate(items), pseudo=True)


def test_pseudo_labels_threshold_cap_and_degenerate_boxes():
    pred = InstanceData(
        bboxes=torch.tensor([[0, 0, 10, 10], [5, 5, 5, 20], [1, 1, 8, 9], [2, 2, 9, 9.]]),
        scores=torch.tensor([0.9, 0.8, 0.05, 0.5]), labels=torch.tensor([0, 1, 2, 1]))
    gt, dropped = to_pseudo_gt(pred, score_thr=0.1, max_per_img=10)
    assert dropped == 1  # the zero-width box
    assert gt.labels.tolist() == [0, 1] and gt.scores.tolist() == pytest.approx([0.9, 0.5])
    gt, _ = to_pseudo_gt(pred, score_thr=0.1, max_per_img=1)
    assert len(gt) == 1 and float(gt.scores[0]) == pytest.approx(0.9)


def test_pseudo_labels_per_class_cap_and_presence_draw():
    scores = torch.tensor([0.2, 0.9, 0.5, 0.7, 0.6, 0.3])
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    boxes = torch.tensor([[0., 0., 10., 10.]]).repeat(6, 1) + torch.arange(6.)[:, None]
    pred = InstanceData(bboxes=boxes, scores=scores, labels=labels)
    gt, _ = to_pseudo_gt(pred, score_thr=0.0, max_per_class=2)
    assert sorted(gt.scores.tolist()) == pytest.approx([0.3, 0.5, 0.6, 0.7, 0.9])
    gt, _ = to_pseudo_gt(pred, score_thr=0.0, keep_mask=torch.tensor([1, 0, 1, 0, 1, 1.]) > 0)
    assert sorted(gt.scores.tolist()) == pytest.approx([0.2, 0.3, 0.5, 0.6])
    # Each box survives a draw with probability = its score, the same on every call.
    many = torch.full((20000,), 0.3)
    a, b = presence_draw(many, 'img7', 0, 0), presence_draw(many, 'img7', 0, 0)
    assert torch.equal(a, b) and not torch.equal(a, presence_draw(many, 'img7', 0, 1))
    assert float(a.float().mean()) == pytest.approx(0.3, abs=0.015)


def test_param_group_presets_keep_last_layer_weights_only():
    names = {f: detector_param_groups(build_detector(f)).param_names() for f in FAMILIES}
    assert names['retinanet'] == {'retina_cls': ['bbox_head.retina_cls.weight'],
                                  'retina_reg': ['bbox_head.retina_reg.weight']}
    assert set(names['fcos']) == {'conv_cls', 'conv_reg', 'conv_centerness'}
    assert names['faster_rcnn']['fc_cls'] == ['roi_head.bbox_head.fc_cls.weight']
    assert names['faster_rcnn']['rpn_cls'] == ['rpn_head.rpn_cls.weight']


@pytest.mark.skipif(not osp.isdir(BCCD), reason='../shared/data/BCCD not present')
def test_bccd_with_zero_size_boxes_and_own_classes(tmp_path):
    stems = ['BloodImage_00338', 'BloodImage_00343', 'BloodImage_00000', 'BloodImage_00001']
    ann = tmp_path / 'ids.txt'
    ann.write_text('\n'.join(stems) + '\n')
    ds = voc_dataset(BCCD, classes=('RBC', 'WBC', 'Platelets'), ann_file=str(ann))
    assert len(ds) == 4
    model = build_detector('retinanet')
    groups = detector_param_groups(model)
    obj = DetectionObjective(score_thr=0.0, max_per_img=20)
    batch = pseudo_collate([ds[i] for i in range(4)])
    v = summed_gradient(obj, model, groups, [batch])
    assert obj.dropped_boxes == 2  # the two zero-size ground-truth boxes
    assert all(torch.isfinite(t).all() for t in v.tensors()) and v.norm() > 0
    scores = influence_scores(obj, model, groups, v, [batch])
    assert set(scores) == set(stems)
    assert all(abs(x) < float('inf') for x in scores.values())
