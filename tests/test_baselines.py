"""The strong baselines: PPAL's DCUS and BADGE, on unit inputs and on the synthetic set."""
import math

import pytest
import torch
from mmengine.dataset import pseudo_collate

from conftest import build_detector
from isal_mmdet.al.selection import select
from isal_mmdet.al.strategies import count_sketch, difficulty_weights, kmeans_pp
from isal_mmdet.al.strategies.uncertainty import _predict_alone, binary_entropy, box_qualities


def test_difficulty_weights_run_from_one_to_one_plus_ub():
    w = difficulty_weights([1.0, 0.5, 0.0], ub=0.2, alpha=0.3)
    assert w[0] == pytest.approx(1.0) and w[2] == pytest.approx(1.2)
    assert w[0] < w[1] < w[2]
    # concave in 1 - q: half the quality gap gives more than half the weight
    assert w[1] - 1 > 0.1
    ent = binary_entropy(torch.tensor([0.01, 0.5, 0.99]))
    assert ent[1] == pytest.approx(math.log(2)) and ent[0] == pytest.approx(ent[2])


def test_kmeans_pp_takes_the_largest_then_the_far_clusters():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[10.0, 0], [0, 10.0], [-10.0, -10.0]])
    pts = torch.cat([c + 0.1 * torch.randn(20, 2, generator=g) for c in centres])
    picked = kmeans_pp(pts, 3, seed=0)
    assert picked[0] == int(pts.norm(dim=1).argmax())
    assert sorted(p // 20 for p in picked) == [0, 1, 2]
    assert kmeans_pp(pts, 3, seed=0) == picked
    assert len(set(kmeans_pp(torch.zeros(5, 2), 4, seed=0))) == 4  # duplicates: in order


def test_count_sketch_keeps_inner_products_in_expectation():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(2, 300, generator=g, dtype=torch.float64)
    dots = [float((count_sketch(torch.stack([x, y]), 16, seed)[0] *
                   count_sketch(torch.stack([x, y]), 16, seed)[1]).sum()) for seed in range(400)]
    mean, se = sum(dots) / len(dots), torch.tensor(dots).std().item() / len(dots) ** 0.5
    assert abs(mean - float(x @ y)) < 4 * se
    a = count_sketch(x[None], 16, 3)
    assert torch.equal(a, count_sketch(x[None], 16, 3))  # fixed by its seed
    assert torch.allclose(count_sketch((2 * x)[None], 16, 3), 2 * a)  # linear


@pytest.mark.parametrize('name', ['dcus', 'badge'])
def test_baseline_scores_do_not_depend_on_batch_size(name, synthetic_voc):
    from test_strategies import _ctx
    model = build_detector('retinanet')
    runs = [select(dict(type=name, score_thr=0.0), _ctx(synthetic_voc, model, batch_size=b), 3)
            for b in (1, 4)]
    assert runs[0].scores == pytest.approx(runs[1].scores, rel=1e-4)
    assert runs[0].selected == runs[1].selected and len(set(runs[0].selected)) == 3


def test_dcus_score_is_weighted_entropy_of_the_detections(synthetic_voc):
    from test_strategies import _ctx
    model = build_detector('retinanet')
    ctx = _ctx(synthetic_voc, model)
    out = select(dict(type='dcus', score_thr=0.0), ctx, 3)
    q, w = out.info['dcus']['class_quality'], out.info['dcus']['class_weight']
    assert all(0 <= x <= 1 for x in q) and w == pytest.approx(difficulty_weights(q))
    sample = ctx.pool[0]
    pred = _predict_alone(model, pseudo_collate([sample]))[0]
    want = sum(float(binary_entropy(s)) * w[int(c)] for s, c in zip(pred.scores, pred.labels))
    assert out.scores[sample['data_samples'].metainfo['img_id']] == pytest.approx(want)


def test_box_quality_of_real_boxes_against_detections():
    """mmdet's real boxes come as HorizontalBoxes, predictions as tensors."""
    from mmdet.structures.bbox import HorizontalBoxes
    from mmengine.structures import InstanceData
    gt = InstanceData(bboxes=HorizontalBoxes(torch.tensor([[0., 0, 10, 10], [20, 20, 30, 30],
                                                           [50, 50, 60, 60]])),
                      labels=torch.tensor([0, 1, 0]))
    pred = InstanceData(bboxes=torch.tensor([[0., 0, 10, 5], [0, 0, 10, 10], [21, 21, 30, 30]]),
                        scores=torch.tensor([0.9, 0.4, 0.8]), labels=torch.tensor([0, 1, 1]))
    got = box_qualities(gt, pred, xi=0.6, iou_thr=0.5)
    # box 0: class-0 detection IoU 0.5 (score 0.9); box 1: IoU 0.81 (0.8); box 2: none
    assert [label for label, _ in got] == [0, 1, 0]
    assert got[0][1] == pytest.approx(0.9 ** 0.6 * 0.5 ** 0.4)
    assert got[1][1] == pytest.approx(0.8 ** 0.6 * 0.81 ** 0.4)
    assert got[2][1] == 0.0
