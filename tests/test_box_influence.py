"""Per-box influence (box-level selection) against a brute-force loop over boxes through
mmdet's own image loss: each box's loss is the image loss minus the image loss with that box's
anchors ignored, assignments and normaliser fixed."""
import re
from contextlib import contextmanager

import pytest
import torch
from mmengine.dataset import Compose, pseudo_collate

from conftest import TEST_PIPELINE, build_detector, voc_dataset
from toy import TensorObjective
from isal_mmdet.detection import detector_param_groups
from isal_mmdet.influence import influence_mode
from isal_mmdet.study.box.losses import box_loss_head
from isal_mmdet.study.box.part_scores import part_influence_scores
from isal_mmdet.study.objective import ResearchObjective, detection_candidates

MAX_BOXES = 6


@pytest.fixture(scope='module')
def setup(synthetic_voc):
    model = build_detector('retinanet')
    groups = detector_param_groups(model)
    ds = voc_dataset(synthetic_voc)
    # resized 1.25x, so that original coordinates differ from the network's
    ds.pipeline = Compose([dict(t, scale=(400, 300)) if t['type'] == 'Resize' else t
                           for t in TEST_PIPELINE])
    items = [ds[i] for i in range(len(ds)) if ds.get_data_info(i)['instances']][:3]
    g = torch.Generator().manual_seed(0)
    s = groups.wrap([torch.randn(p.shape, generator=g) for p in groups.params()])
    return model, groups, items, s


def _objective(**kw):
    # an untrained head scores every location ~0.01: threshold 0 keeps the best MAX_BOXES
    return ResearchObjective(score_thr=0.0, max_per_img=MAX_BOXES, **kw)


@contextmanager
def reassigned(head, edit):
    """The assigner's result goes through ``edit`` (in place) before the loss reads it."""
    original = head.assigner.assign

    def assign(*args, **kwargs):
        res = original(*args, **kwargs)
        edit(res)
        return res

    head.assigner.assign = assign
    try:
        yield
    finally:
        del head.assigner.assign


def _ignoring(head, box=None):
    """The assigner marks the anchors of box ``box`` (every box when None) as ignored, as
    partial-label training treats an un-queried region: neither positive nor negative."""
    def edit(res):
        res.gt_inds[res.gt_inds > 0 if box is None else res.gt_inds == box + 1] = -1

    return reassigned(head, edit)


def _image_loss(model, item, norm, box=None, ignore=False, pseudo=True):
    """mmdet's image loss (ResearchObjective.per_sample_loss) with the fixed normaliser
    ``norm``, box ``box``'s anchors (all boxes' with ``ignore``) ignored."""
    obj = _objective(avg_factor=norm)
    if box is None and not ignore:
        return obj.per_sample_loss(model, pseudo_collate([item]), pseudo=pseudo)[0]
    with _ignoring(model.bbox_head, box):
        return obj.per_sample_loss(model, pseudo_collate([item]), pseudo=pseudo)[0]


def _own_normaliser(model, item, pseudo=True):
    obj = _objective()
    with torch.no_grad():
        obj.per_sample_loss(model, pseudo_collate([item]), pseudo=pseudo)
    return max(obj.positives[-1], 1)


@contextmanager
def _allowed_border(head, border):
    """RetinaNet keeps every anchor (-1); 0 drops those crossing the image, so the sampler's
    anchor indices differ from the head's."""
    old = head.train_cfg['allowed_border']
    head.train_cfg['allowed_border'] = border
    try:
        yield
    finally:
        head.train_cfg['allowed_border'] = old


@pytest.mark.parametrize('border', [-1, 0])
def test_box_influence_equals_brute_force_loop_over_boxes(setup, border):
    model, groups, items, s = setup
    with _allowed_border(model.bbox_head, border):
        _brute_force(model, groups, items, s)


def _brute_force(model, groups, items, s):
    obj = _objective()
    got = part_influence_scores(obj, model, groups, s, [pseudo_collate(items)])
    ids = [item['data_samples'].metainfo['img_id'] for item in items]
    assert sorted(got) == sorted((i, j) for i in ids for j in range(MAX_BOXES))
    params = groups.params()
    with influence_mode(model, groups):
        for item, img_id in zip(items, ids):
            norm = _own_normaliser(model, item)
            full = _image_loss(model, item, norm)
            for j in range(MAX_BOXES):
                diff = full - _image_loss(model, item, norm, box=j)
                grads = torch.autograd.grad(diff, params, retain_graph=True, allow_unused=True)
                want = -sum(float((g * v).sum()) for g, v in zip(grads, s.tensors())
                            if g is not None)
                assert got[(img_id, j)] == pytest.approx(want, rel=1e-4, abs=1e-6), (img_id, j)
    values = torch.tensor(list(got.values()))
    assert (values.abs() > 1e-3).float().mean() > 0.5  # most boxes own anchors
    assert len(values.unique()) == len(values)


@pytest.mark.parametrize('pseudo', [True, False])
def test_box_losses_and_background_sum_to_the_image_loss(setup, pseudo):
    model, _, items, _ = setup
    obj = _objective()
    with torch.no_grad():
        parts, keys = obj.per_part_loss(model, pseudo_collate(items), pseudo=pseudo)
        images = _objective().per_sample_loss(model, pseudo_collate(items), pseudo=pseudo)
        for item, image in zip(items, images):
            img_id = item['data_samples'].metainfo['img_id']
            mine = torch.stack([p for p, k in zip(parts, keys) if k[0] == img_id])
            if not pseudo:
                assert len(mine) == len(item['data_samples'].gt_instances)
            norm = _own_normaliser(model, item, pseudo)
            background = _image_loss(model, item, norm, ignore=True, pseudo=pseudo)
            assert (mine >= 0).all() and mine.sum() > 0.01 * image
            assert float(mine.sum() + background) == pytest.approx(float(image), rel=1e-5)


def test_box_scores_do_not_depend_on_batch_size(setup):
    model, groups, items, s = setup
    one = part_influence_scores(_objective(), model, groups, s,
                                [pseudo_collate([item]) for item in items])
    three = part_influence_scores(_objective(), model, groups, s, [pseudo_collate(items)])
    assert one.keys() == three.keys()
    for key, ref in one.items():
        assert three[key] == pytest.approx(ref, rel=1e-5, abs=1e-7)


def test_candidates_are_the_scored_boxes_in_original_coordinates(setup):
    model, groups, items, s = setup
    obj = _objective()
    part_influence_scores(obj, model, groups, s, [pseudo_collate(items)])
    found = detection_candidates(model, pseudo_collate(items), 0.0, MAX_BOXES)
    assert set(found) == {k[0] for k in obj.parts}
    for img_id, boxes in found.items():
        assert boxes == [obj.parts[(img_id, j)] for j in range(len(boxes))]
    # mmdet's own rescaled prediction (test score threshold lowered to ours) has these boxes
    head = model.bbox_head
    thr = head.test_cfg.score_thr
    head.test_cfg.score_thr = 0.0
    try:
        with torch.no_grad():
            data = model.data_preprocessor(pseudo_collate(items), False)
            preds = model.predict(data['inputs'], data['data_samples'], rescale=True)
    finally:
        head.test_cfg.score_thr = thr
    for pred in preds:
        meta = pred.metainfo
        assert meta['scale_factor'] == pytest.approx((1.25, 1.25))
        inst = pred.pred_instances[:MAX_BOXES]
        boxes = found[meta['img_id']]
        assert [b['label'] for b in boxes] == inst.labels.tolist()
        assert torch.tensor([b['score'] for b in boxes]) == pytest.approx(inst.scores, abs=1e-6)
        assert torch.tensor([b['bbox'] for b in boxes]) == pytest.approx(inst.bboxes, abs=1e-3)


def test_images_without_pseudo_boxes_have_no_parts(setup):
    model, groups, items, s = setup
    obj = ResearchObjective(score_thr=2.0)  # no prediction reaches it
    assert part_influence_scores(obj, model, groups, s, [pseudo_collate(items)]) == {}
    assert obj.pseudo_boxes == [0, 0, 0] and obj.parts == {}


@pytest.mark.parametrize('family,head', [('faster_rcnn', 'RPNHead + Shared2FCBBoxHead'),
                                         ('fcos', 'FCOSHead')])
def test_other_heads_are_refused_naming_the_head(setup, family, head):
    items = setup[2][:1]
    model = build_detector(family)
    with pytest.raises(ValueError, match=f'not {re.escape(head)}$'):
        _objective().per_part_loss(model, pseudo_collate(items))
    assert box_loss_head(setup[0]) is setup[0].bbox_head
    with pytest.raises(NotImplementedError, match='TensorObjective has no per-part losses'):
        TensorObjective().per_part_loss(None, None)
