"""Per-box ESI (esi_box) against a brute-force loop over boxes and answers through mmdet's
own image loss, and its answer distribution against mmdet's own un-suppressed predictions."""
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from conftest import ROOT, TINY, build_detector, voc_dataset
from test_box_influence import (MAX_BOXES, _ignoring, _objective, _own_normaliser,  # noqa: F401
                                reassigned, setup)
from toy import TensorObjective
from isal_mmdet.al.strategies import SelectionContext, build_strategy
from isal_mmdet.datasets.al_subset import ActiveSubset
from isal_mmdet.detection import detector_param_groups
from isal_mmdet.influence import influence_mode, summed_gradient
from isal_mmdet.study.box import ESIBox
from isal_mmdet.study.box.part_scores import part_esi_scores
from isal_mmdet.study.objective import ResearchObjective


@pytest.fixture(scope='module')
def unsure(setup):
    """The tiny RetinaNet with every class near probability 0.3. A fresh head scores ~0.01,
    where a class column's "no object" term has almost no gradient: a wrong one would pass."""
    model = build_detector('retinanet')
    torch.nn.init.constant_(model.bbox_head.retina_cls.bias,
                            torch.logit(torch.tensor(0.3)).item())
    return (model, detector_param_groups(model)) + setup[2:]


def _answered(head, box, answer):
    """The assigner's anchors of box ``box`` as a person's answer leaves them: labelled class
    ``answer`` (< K), or negatives (``answer`` K: "no object")."""
    def edit(res):
        hit = res.gt_inds == box + 1
        if answer == head.num_classes:
            res.gt_inds[hit] = 0
            res.labels[hit] = -1
        else:
            res.labels[hit] = answer

    return reassigned(head, edit)


def _answer_loss(model, item, norm, box, answer=None):
    """mmdet's image loss with box ``box`` answered ``answer`` (None: unasked, ignored)."""
    head = model.bbox_head
    with _ignoring(head, box) if answer is None else _answered(head, box, answer):
        return _objective(avg_factor=norm).per_sample_loss(model, pseudo_collate([item]),
                                                           pseudo=True)[0]


def _reference_answer_probs(model, item, boxes):
    """``[m, K + 1]`` from mmdet's prediction without NMS or threshold: the K (anchor, class)
    rows sharing each detection's box are its anchor's class probabilities p; the answer
    distribution is p/(1 − p) for each class and 1 for "no object", normalised."""
    head = model.bbox_head
    cfg = head.test_cfg.copy()
    cfg.update(score_thr=0.0, nms_pre=10 ** 9)
    with torch.no_grad():
        data = model.data_preprocessor(pseudo_collate([item]), False)
        outs = head(model.extract_feat(data['inputs']))
        rows = head.predict_by_feat(*outs, batch_img_metas=[item['data_samples'].metainfo],
                                    cfg=cfg, rescale=False, with_nms=False)[0]
    out = []
    for box in boxes:
        same = (rows.bboxes - box).abs().amax(1) < 1e-2
        assert sorted(rows.labels[same].tolist()) == list(range(head.num_classes))
        p = torch.zeros(head.num_classes, dtype=torch.float64)
        p[rows.labels[same]] = rows.scores[same].double()
        odds = torch.cat([p / (1 - p), p.new_ones(1)])
        out.append(odds / odds.sum())
    return torch.stack(out)


def _network_boxes(obj, img_id, item):
    scale = torch.tensor(item['data_samples'].metainfo['scale_factor']).repeat(2)
    return [torch.tensor(obj.parts[(img_id, j)]['bbox']) * scale for j in range(MAX_BOXES)]


def test_box_esi_equals_brute_force_loop_over_boxes_and_answers(unsure):
    model, groups, items, s = unsure
    got = part_esi_scores(_objective(), model, groups, s, [pseudo_collate(items)])
    obj = _objective()
    with influence_mode(model, groups):
        losses, probs, keys = obj.per_answer_loss(model, pseudo_collate(items))
    k = model.bbox_head.num_classes
    assert losses.shape == probs.shape == (len(keys), k + 1)
    params = groups.params()
    for item in items:
        img_id = item['data_samples'].metainfo['img_id']
        q_ref = _reference_answer_probs(model, item, _network_boxes(obj, img_id, item))
        norm = _own_normaliser(model, item)
        with influence_mode(model, groups):
            for j in range(MAX_BOXES):
                unasked = _answer_loss(model, item, norm, j)
                want = 0.0
                for answer in range(k + 1):
                    diff = _answer_loss(model, item, norm, j, answer) - unasked
                    grads = torch.autograd.grad(diff, params, retain_graph=True,
                                                allow_unused=True)
                    proj = sum(float((g * v).sum()) for g, v in zip(grads, s.tensors())
                               if g is not None)
                    want += float(q_ref[j, answer]) * proj ** 2
                assert got[(img_id, j)] == pytest.approx(want, rel=1e-4, abs=1e-9), (img_id, j)
    values = torch.tensor(list(got.values()))
    assert (values > 0).all() and len(values.unique()) == len(values)


def test_answer_distribution_is_the_documented_one_from_the_detections_anchor(unsure):
    model, groups, items, s = unsure
    obj = _objective()
    with influence_mode(model, groups):
        losses, probs, keys = obj.per_answer_loss(model, pseudo_collate(items))
        own, own_keys = _objective().per_part_loss(model, pseudo_collate(items))
    assert keys == own_keys
    torch.testing.assert_close(probs.sum(1), torch.ones(len(keys), dtype=torch.float64))
    for row, key in enumerate(keys):
        det = obj.parts[key]
        # the column of the predicted class is isal_box's loss; its odds against "no object"
        # are the detection score's
        assert float(losses[row, det['label']]) == pytest.approx(float(own[row]), rel=1e-6)
        odds = probs[row, det['label']] / probs[row, -1]
        assert float(odds) == pytest.approx(det['score'] / (1 - det['score']), rel=1e-5)
    for item in items:
        img_id = item['data_samples'].metainfo['img_id']
        rows = [i for i, key in enumerate(keys) if key[0] == img_id]
        want = _reference_answer_probs(model, item, _network_boxes(obj, img_id, item))
        torch.testing.assert_close(probs[rows], want, rtol=1e-5, atol=1e-9)


def test_box_esi_does_not_depend_on_batch_size(unsure):
    model, groups, items, s = unsure
    one = part_esi_scores(_objective(), model, groups, s,
                          [pseudo_collate([item]) for item in items])
    three = part_esi_scores(_objective(), model, groups, s, [pseudo_collate(items)])
    assert one.keys() == three.keys() and len(one) == len(items) * MAX_BOXES
    for key, ref in one.items():
        assert three[key] == pytest.approx(ref, rel=1e-5, abs=1e-12)


def test_images_without_pseudo_boxes_have_no_answers(unsure):
    model, groups, items, s = unsure
    obj = ResearchObjective(score_thr=2.0)  # no prediction reaches it
    assert part_esi_scores(obj, model, groups, s, [pseudo_collate(items)]) == {}
    assert obj.pseudo_boxes == [0, 0, 0] and obj.parts == {}


def test_esi_box_scores_isal_box_detections_along_the_same_s(unsure, synthetic_voc):
    model, groups, _, _ = unsure
    full, ref = voc_dataset(synthetic_voc, 'train'), voc_dataset(synthetic_voc, 'val')
    ids = [full.get_data_info(i)['img_id'] for i in range(len(full))]
    ctx = SelectionContext(model=model, pool=ActiveSubset(full, ids=ids[:3]),
                           labelled=ActiveSubset(full, ids=ids[3:5]),
                           reference=ActiveSubset(ref, ids=[ref.get_data_info(i)['img_id']
                                                            for i in range(2)]),
                           batch_size=2, progress=False)
    cfg = dict(solver='identity', score_thr=0.005, max_per_img=3)
    strategy = build_strategy(dict(type='esi_box', **cfg))
    assert isinstance(strategy, ESIBox) and strategy.higher_is_better
    dets, scores = strategy.score_boxes(ctx)
    isal_dets, isal = build_strategy(dict(type='isal_box', **cfg)).score_boxes(ctx)
    assert dets == isal_dets and scores.keys() == isal.keys()
    assert sorted(scores) == sorted((i, j) for i, boxes in dets.items()
                                    for j in range(len(boxes)))
    s = summed_gradient(ResearchObjective(), model, groups, ctx.loader(ctx.reference))
    want = part_esi_scores(ResearchObjective(0.005, 3), model, groups, s, ctx.loader(ctx.pool))
    assert scores == pytest.approx(want, rel=1e-6)


def test_softmax_heads_and_objectives_without_answers_are_refused(unsure):
    from mmdet.registry import MODELS
    cfg = Config.fromfile(f'{ROOT}/{TINY["retinanet"]}').model
    strategy = ESIBox()
    strategy.check_model(cfg)
    cfg.bbox_head.loss_cls = dict(type='CrossEntropyLoss', use_sigmoid=False)
    with pytest.raises(ValueError, match="not 'CrossEntropyLoss' with use_sigmoid=False"):
        strategy.check_model(cfg)
    with pytest.raises(ValueError, match='need a sigmoid classifier .* use_sigmoid=False$'):
        _objective().per_answer_loss(MODELS.build(cfg).eval(), pseudo_collate(unsure[2]))
    with pytest.raises(NotImplementedError, match='TensorObjective has no per-answer losses'):
        TensorObjective().per_answer_loss(None, None)
