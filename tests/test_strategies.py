"""Strategies behave as their definitions say, on unit inputs and on the synthetic set."""
import json
import logging

import pytest
import torch
from pycocotools.coco import COCO

from conftest import build_detector, voc_dataset
from isal_mmdet.al.selection import select
from isal_mmdet.al.strategies import (SelectionContext, build_strategy, entropy_of_boxes,
                                      k_center_greedy, least_confidence_of_boxes, rank_ids)
from isal_mmdet.datasets.al_subset import ActiveSubset
from isal_mmdet.detection import DetectionObjective, detector_param_groups
from isal_mmdet.influence import loss_grad
from isal_mmdet.study import research_strategies  # noqa: F401  (registers the research classes)
from isal_mmdet.study.objective import ResearchObjective


def test_entropy_ranks_uniform_prediction_above_confident_one():
    uniform = torch.tensor([[0.33, 0.33, 0.34]])
    confident = torch.tensor([[0.97, 0.02, 0.01]])
    assert entropy_of_boxes(uniform) > entropy_of_boxes(confident)
    assert entropy_of_boxes(torch.zeros(0, 3)) == 0.0
    # the image score is its most uncertain box
    both = torch.cat([confident, uniform])
    assert entropy_of_boxes(both) == pytest.approx(entropy_of_boxes(uniform))
    assert least_confidence_of_boxes(torch.tensor([[0.4, 0.3, 0.3]])) > \
        least_confidence_of_boxes(confident)


def test_coreset_picks_points_far_from_labelled():
    labelled = torch.tensor([[0.0, 0.0], [0.1, 0.0]])
    pool = torch.tensor([[0.05, 0.0], [5.0, 5.0], [0.0, 0.1], [-4.0, 0.0], [5.1, 5.0]])
    picked = k_center_greedy(pool, labelled, 2)
    # the far corner first; then not its twin at 0.1 but the far left point
    assert picked == [4, 3]


def test_ties_broken_by_id():
    assert rank_ids({'b': 1.0, 'a': 1.0, 'c': 0.5}, higher_is_better=True) == ['a', 'b', 'c']
    assert rank_ids({3: 0.0, 1: 0.0, 2: -1.0}, higher_is_better=False) == [2, 1, 3]


def test_unknown_strategy_and_bad_budget(synthetic_voc):
    with pytest.raises(ValueError, match="unknown strategy 'magic'"):
        build_strategy('magic')
    ds = voc_dataset(synthetic_voc)
    ctx = SelectionContext(model=None, pool=ds, labelled=ds, progress=False)
    with pytest.raises(ValueError, match='budget must be a positive integer'):
        select('random', ctx, 0)
    every = [ds.get_data_info(i)['img_id'] for i in range(len(ds))]
    empty = ActiveSubset(ds, ids=every, invert=True)  # all labelled: nothing left
    with pytest.raises(ValueError, match='pool is empty'):
        select('random', SelectionContext(model=None, pool=empty, labelled=ds, progress=False), 3)


def _ctx(synthetic_voc, model, seed=0, batch_size=4):
    full = voc_dataset(synthetic_voc, 'train')
    ids = [full.get_data_info(i)['img_id'] for i in range(len(full))]
    labelled = ActiveSubset(full, ids=ids[:8])
    pool = ActiveSubset(full, ids=ids[:8], invert=True)
    ref = voc_dataset(synthetic_voc, 'val')
    return SelectionContext(model=model, pool=pool, labelled=labelled, reference=ref,
                            batch_size=batch_size, seed=seed, progress=False)


def test_random_is_seed_deterministic(synthetic_voc):
    a = select('random', _ctx(synthetic_voc, None, seed=1), 5).selected
    b = select('random', _ctx(synthetic_voc, None, seed=1, batch_size=1), 5).selected
    c = select('random', _ctx(synthetic_voc, None, seed=2), 5).selected
    assert a == b and a != c and len(set(a)) == 5


def test_pool_smaller_than_budget_selects_all_and_warns(synthetic_voc, caplog):
    ctx = _ctx(synthetic_voc, None)
    with caplog.at_level(logging.WARNING, logger='isal_mmdet'):
        out = select('random', ctx, 10_000)
    assert sorted(out.selected) == sorted(ctx.pool.img_ids())
    assert 'selecting all of it' in caplog.text


@pytest.mark.parametrize('name', ['entropy', 'least_confidence', 'coreset', 'grad_similarity'])
def test_every_strategy_selects_budget_unique_pool_ids(name, synthetic_voc):
    model = build_detector('retinanet')
    ctx = _ctx(synthetic_voc, model)
    out = select(dict(type=name, score_thr=0.0) if name in ('entropy', 'least_confidence')
                 else name, ctx, 3)
    assert len(set(out.selected)) == 3
    assert set(out.selected) <= set(ctx.pool.img_ids())
    assert set(out.scores) == set(ctx.pool.img_ids())


def test_isal_prefers_images_aligned_with_minus_s(synthetic_voc, tmp_path):
    model = build_detector('retinanet')
    ctx = _ctx(synthetic_voc, model)
    strategy = build_strategy(dict(type='ISAL', score_thr=0.0, max_per_img=20,
                                   solver=dict(type='lissa', depth=20, power_iters=5,
                                               power_samples=8)))
    out = select(strategy, ctx, 3, out_dir=str(tmp_path))
    # recompute ⟨s, g_z⟩ with a batch-1 loop and the same s
    obj = DetectionObjective(0.0, 20, seed=0)
    groups = detector_param_groups(model)
    s = strategy.s_test(ctx, obj, groups)
    align = {}
    with groups.only_these_require_grad(model), torch.enable_grad():
        for i in range(len(ctx.pool)):
            item = ctx.pool[i]
            from mmengine.dataset import pseudo_collate
            g = loss_grad(obj, model, groups, pseudo_collate([item]), pseudo=True)
            align[item['data_samples'].metainfo['img_id']] = g.dot(s)
    best = sorted(align, key=lambda k: -align[k])[:3]
    assert out.selected == best
    # exports
    sel = json.load(open(tmp_path / 'selection.json'))
    assert sel['strategy'] == 'ISAL' and sel['selected'] == out.selected
    assert (tmp_path / 'selected.txt').read_text().split() == [str(i) for i in out.selected]
    coco = COCO(str(tmp_path / 'preannotations_coco.json'))
    assert len(coco.getImgIds()) == 3
    assert [im['isal_img_id'] for im in coco.loadImgs(coco.getImgIds())] == out.selected
    assert 'ISAL' == sel['strategy'] and 's_test' in sel['info']


def test_isal_sampled_pseudo_labels_and_diversity(synthetic_voc):
    model = build_detector('retinanet')
    solver = dict(type='lissa', depth=10, power_iters=3, power_samples=4)
    hard = select(dict(type='ISAL', score_thr=0.0, max_per_img=20, solver=solver),
                  _ctx(synthetic_voc, model), 3)
    sampled = [select(dict(type='ISALResearch', score_thr=0.0, max_per_img=20, solver=solver,
                           pseudo='sampled', samples=2), _ctx(synthetic_voc, model, batch_size=b),
                      3).scores for b in (1, 4)]
    assert sampled[0] == pytest.approx(sampled[1], rel=1e-4, abs=1e-6)
    boxes = hard.info['pseudo_boxes_per_image']
    assert 0 < boxes['mean'] <= boxes['max'] <= 20
    assert sampled[0] != pytest.approx(hard.scores, rel=1e-3)
    # Diversity picks among the pool_factor × budget most helpful, never outside them.
    div = select(dict(type='ISALResearch', score_thr=0.0, max_per_img=20, solver=solver,
                      diversity=dict(pool_factor=2)), _ctx(synthetic_voc, model), 3)
    top = rank_ids(hard.scores, higher_is_better=False)
    assert set(div.selected) <= set(top[:6]) and len(set(div.selected)) == 3
    same = select(dict(type='ISALResearch', score_thr=0.0, max_per_img=20, solver=solver,
                       diversity=dict(pool_factor=1)), _ctx(synthetic_voc, model), 3)
    assert set(same.selected) == set(top[:3])
    harmful = build_strategy(dict(type='ISALResearch', prefer='harmful'))
    assert harmful.select(hard.scores, 3, None) == rank_ids(hard.scores, True)[:3]
    with pytest.raises(ValueError, match='ISALResearch.prefer'):
        build_strategy(dict(type='ISALResearch', prefer='both'))
    with pytest.raises(ValueError, match='ISALResearch.pseudo'):
        build_strategy(dict(type='ISALResearch', pseudo='fuzzy'))
    soft = [select(dict(type='ISALResearch', solver=solver, pseudo='soft'),
                   _ctx(synthetic_voc, model, batch_size=b), 3) for b in (1, 4)]
    assert soft[0].scores == pytest.approx(soft[1].scores, rel=1e-4, abs=1e-6)
    assert soft[0].scores != pytest.approx(hard.scores, rel=1e-3)
    assert 'pseudo_boxes_per_image' not in soft[0].info
    # refused before s_test, which would fail first here for want of a reference set
    two_stage = _ctx(synthetic_voc, build_detector('faster_rcnn'))
    two_stage.reference = None
    with pytest.raises(ValueError, match="pseudo='soft' needs a single-stage"):
        select(dict(type='ISALResearch', solver=solver, pseudo='soft'), two_stage, 3)


@pytest.mark.parametrize('name', ['random', 'entropy', 'least_confidence', 'coreset',
                                  'grad_similarity', 'isal'])
def test_every_strategy_on_coco_format(name, synthetic_coco):
    from conftest import coco_dataset
    full = coco_dataset(synthetic_coco, 'train')
    ids = [full.get_data_info(i)['img_id'] for i in range(len(full))]
    assert all(isinstance(i, int) for i in ids)  # COCO ids, not positions
    ctx = SelectionContext(model=build_detector('retinanet'),
                           pool=ActiveSubset(full, ids=ids[:6], invert=True),
                           labelled=ActiveSubset(full, ids=ids[:6]),
                           reference=coco_dataset(synthetic_coco, 'val'), progress=False)
    cfg = dict(type=name, solver=dict(type='cg', max_iter=3)) if name == 'isal' else name
    out = select(cfg, ctx, 2)
    assert len(out.selected) == 2 and set(out.selected) <= set(ids[6:])


def test_labelled_ids_not_in_dataset_are_an_error(synthetic_voc):
    from mmengine.config import Config
    from conftest import ROOT
    from mmengine.registry import init_default_scope
    from isal_mmdet.al.context import selection_context
    init_default_scope('mmdet')
    cfg = Config.fromfile(f'{ROOT}/configs/isal_retinanet_demo.py')
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_root = synthetic_voc + '/'
    with pytest.raises(ValueError, match=r"1 labelled id\(s\) are not in train_dataloader"):
        first = open(f'{synthetic_voc}/ImageSets/Main/train.txt').read().split()[0]
        selection_context(cfg, None, [first, 'no_such_image'])


def test_a_separate_pool_is_scored_apart_from_the_labelled_training_images(synthetic_voc):
    """The hook's ``pool=dict(...)``: labelled images come from the training set, the pool is
    the other dataset less what it shares with them (it used to refuse every labelled id)."""
    from mmengine.config import Config
    from conftest import ROOT
    from mmengine.registry import init_default_scope
    from isal_mmdet.al.context import selection_context
    init_default_scope('mmdet')
    cfg = Config.fromfile(f'{ROOT}/configs/isal_retinanet_demo.py')
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_root = synthetic_voc + '/'
    train = open(f'{synthetic_voc}/ImageSets/Main/train.txt').read().split()
    val = open(f'{synthetic_voc}/ImageSets/Main/val.txt').read().split()
    other = selection_context(cfg, None, train[:5], reference='labelled',
                              pool=cfg.val_dataloader.dataset.to_dict())
    assert other.labelled.img_ids() == train[:5] and other.pool.img_ids() == val
    same = selection_context(cfg, None, train[:5], reference='labelled',
                             pool=cfg.train_dataloader.dataset.to_dict())
    assert same.pool.img_ids() == train[5:]


def test_reference_test_takes_the_evaluation_split(synthetic_voc):
    """reference='test' (the official protocol, a diagnostic): v's images are the test
    split's, not val's."""
    from mmengine.config import Config
    from conftest import ROOT
    from mmengine.registry import init_default_scope
    from isal_mmdet.al.context import selection_context
    from isal_mmdet.al.data import dataset_ids
    init_default_scope('mmdet')
    cfg = Config.fromfile(f'{ROOT}/configs/isal_retinanet_demo.py')
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_root = synthetic_voc + '/'
    first = open(f'{synthetic_voc}/ImageSets/Main/train.txt').read().split()[0]
    refs = {r: set(dataset_ids(selection_context(cfg, None, [first], r).reference))
            for r in ('val', 'test')}
    split = {r: set(open(f'{synthetic_voc}/ImageSets/Main/{r}.txt').read().split())
             for r in ('val', 'test')}
    assert refs == split and not refs['val'] & refs['test']


def test_isal_fixed_normaliser_divides_every_image_by_one_count(synthetic_voc):
    """normaliser='fixed': the count is the reference set's mean positives per image, and
    scores still do not depend on batch size."""
    model = build_detector('retinanet')
    cfg = dict(type='ISALResearch', score_thr=0.0, max_per_img=20, normaliser='fixed',
               solver=dict(type='cg', max_iter=5, num_samples=4))
    runs = [select(cfg, _ctx(synthetic_voc, model, batch_size=b), 3) for b in (1, 4)]
    assert runs[0].scores == pytest.approx(runs[1].scores, rel=1e-4, abs=1e-7)
    ctx = _ctx(synthetic_voc, model)
    obj = ResearchObjective(avg_factor=1.0)
    from mmengine.dataset import pseudo_collate
    with torch.no_grad():
        obj.per_sample_loss(model, pseudo_collate([ctx.reference[i]
                                                   for i in range(len(ctx.reference))]))
    assert runs[0].info['avg_factor'] == pytest.approx(
        max(sum(obj.positives) / len(obj.positives), 1.0))
    image = select(dict(cfg, normaliser='image'), _ctx(synthetic_voc, model), 3)
    assert image.scores != pytest.approx(runs[0].scores, rel=1e-3)
    with pytest.raises(ValueError, match='ISALResearch.normaliser'):
        build_strategy(dict(type='ISALResearch', normaliser='batch'))


def test_isal_reference_size_is_a_seeded_subset_of_the_reference_set(synthetic_voc):
    """reference_size=k scores as ISAL on a reference set of those k images; k at least the
    set's size changes nothing."""
    model = build_detector('retinanet')
    cfg = dict(type='ISAL', score_thr=0.0, max_per_img=20,
               solver=dict(type='cg', max_iter=5, num_samples=4))
    full = select(cfg, _ctx(synthetic_voc, model), 3)
    ctx = _ctx(synthetic_voc, model)
    assert select(dict(cfg, reference_size=len(ctx.reference)), ctx, 3).scores == \
        pytest.approx(full.scores, rel=1e-6)
    sub = select(dict(cfg, reference_size=2), _ctx(synthetic_voc, model), 3)
    assert sub.info['reference_images'] == 2
    assert sub.scores != pytest.approx(full.scores, rel=1e-3)
    strategy = build_strategy(dict(cfg, reference_size=2))
    ctx = _ctx(synthetic_voc, model)
    ref = strategy.reference(ctx)
    assert len(ref) == 2 and ref.img_ids() == strategy.reference(
        _ctx(synthetic_voc, model)).img_ids()  # seeded: the same two every time
    ctx.reference = ref
    assert select(cfg, ctx, 3).scores == pytest.approx(sub.scores, rel=1e-6)
    with pytest.raises(ValueError, match='ISAL.reference_size'):
        build_strategy(dict(type='ISAL', reference_size=0))


def test_isal_with_no_pseudo_box_is_flagged_uninformative(synthetic_voc, caplog):
    model = build_detector('retinanet')
    with caplog.at_level(logging.WARNING, logger='isal_mmdet'):
        out = select(dict(type='ISAL', score_thr=1.0, solver=dict(type='cg', max_iter=2,
                                                                    num_samples=4)),
                     _ctx(synthetic_voc, model), 3)
    assert len(out.selected) == 3
    assert any('no pseudo box' in r for r in out.info['uninformative'])
    assert 'carries little information' in caplog.text
    ok = select(dict(type='ISAL', score_thr=0.0, max_per_img=20,
                     solver=dict(type='cg', max_iter=2, num_samples=4)),
                _ctx(synthetic_voc, model), 3)
    assert 'uninformative' not in ok.info


def test_bad_strategy_arguments_are_one_line_errors():
    from isal_mmdet.al.settings import checked_strategy
    for spec, match in ((dict(type='ISAL', solver=dict(type='lisa')), "solver 'lisa'"),
                        (dict(type='ISAL', solver=dict(type='cg', iters=3)), 'ISAL.solver'),
                        (dict(type='entropy', thr=0.2), 'thr'),
                        (dict(type='ISAL', curvature='gauss'), 'ISAL.curvature'),
                        ('isall', "unknown strategy 'isall'")):
        with pytest.raises(ValueError, match=match) as err:
            checked_strategy(spec)
        assert str(err.value).startswith('active_learning.strategy: ')
        assert '\n' not in str(err.value)


@pytest.mark.parametrize('name', ['random', 'entropy', 'least_confidence', 'coreset',
                                  'grad_similarity', 'isal'])
def test_no_strategy_selects_an_unreadable_image(name, synthetic_voc, tmp_path):
    """Every strategy, random included, sees the same readable pool; the exports too."""
    import shutil
    root = tmp_path / 'voc'
    shutil.copytree(synthetic_voc, root)
    ctx = _ctx(str(root), build_detector('retinanet'))
    pool_ids = ctx.pool.img_ids()
    # truncate the images random would draw first
    first = rank_ids(build_strategy('random').score(ctx), True)[:4]
    for img_id in first:
        path = root / 'JPEGImages' / f'{img_id}.jpg'
        path.write_bytes(path.read_bytes()[:200])
    cfg = dict(type='ISAL', solver=dict(type='cg', max_iter=2, num_samples=4)) \
        if name == 'isal' else name
    out = select(cfg, _ctx(str(root), ctx.model), 3, out_dir=str(tmp_path / 'out'))
    assert len(out.selected) == 3 and not set(out.selected) & set(first)
    assert set(out.selected) <= set(pool_ids)
    coco = json.load(open(tmp_path / 'out' / 'preannotations_coco.json'))
    assert len(coco['images']) == 3


def test_tools_take_the_config_strategy_and_its_arguments():
    from isal_mmdet.al.settings import strategy_for_tool
    paper = dict(type='ISAL', curvature='hessian', solver=dict(type='lissa', depth=7))
    assert strategy_for_tool(paper, None)[0] == paper
    assert strategy_for_tool(paper, 'isal')[0] == paper          # same type: its arguments
    assert strategy_for_tool(paper, 'ISAL')[0] == paper
    assert strategy_for_tool(paper, 'grad_similarity')[0] == 'grad_similarity'
    assert strategy_for_tool(paper, 'entropy')[0] == 'entropy'
    assert strategy_for_tool('entropy', 'isal')[0] == 'isal'
    with pytest.raises(ValueError, match="--strategy: unknown strategy 'isall'"):
        strategy_for_tool(paper, 'isall')


def test_isal_foreground_reference_keeps_only_the_terms_of_assigned_anchors(synthetic_voc):
    """reference_terms='foreground': v loses the background classification terms only (the
    box terms, which live on assigned anchors, are unchanged; an image without boxes adds
    nothing); pseudo losses are untouched; scores stay independent of batch size."""
    from mmengine.dataset import pseudo_collate
    model = build_detector('retinanet')
    ctx = _ctx(synthetic_voc, model)
    groups = detector_param_groups(model)
    batch = pseudo_collate([ctx.reference[i] for i in range(4)])
    full, fg = (loss_grad(ResearchObjective(foreground_only=f), model, groups, batch)
                for f in (False, True))
    reg, cls = [g for g in groups.names() if 'reg' in g], [g for g in groups.names()
                                                           if 'cls' in g]
    assert reg and cls

    def flat(v, names):
        return torch.cat([t.flatten() for g in names for t in v[g]])
    assert torch.allclose(flat(fg, reg), flat(full, reg), rtol=1e-5, atol=1e-8)
    assert not torch.allclose(flat(fg, cls), flat(full, cls), rtol=1e-2)
    empty = pseudo_collate([ctx.reference[0]])
    gt = empty['data_samples'][0].gt_instances
    empty['data_samples'][0].gt_instances = gt[gt.labels < 0]
    with torch.no_grad():
        assert float(ResearchObjective(foreground_only=True).per_sample_loss(
            model, empty).sum()) == 0.0
        assert float(DetectionObjective().per_sample_loss(model, empty).sum()) > 0
        pseudo = [ResearchObjective(score_thr=0.0, max_per_img=20, foreground_only=f)
                  .per_sample_loss(model, pseudo_collate([ctx.pool[0]]), pseudo=True)
                  for f in (False, True)]
    assert torch.equal(pseudo[0], pseudo[1])
    cfg = dict(type='ISALResearch', score_thr=0.0, max_per_img=20, reference_terms='foreground',
               solver=dict(type='cg', max_iter=5, num_samples=4))
    runs = [select(cfg, _ctx(synthetic_voc, model, batch_size=b), 3) for b in (1, 4)]
    assert runs[0].scores == pytest.approx(runs[1].scores, rel=1e-4, abs=1e-7)
    default = select(dict(cfg, reference_terms='all'), _ctx(synthetic_voc, model), 3)
    assert default.scores != pytest.approx(runs[0].scores, rel=1e-3)


def test_balanced_reference_weighs_each_class_column_and_its_boxes(synthetic_voc):
    """reference_terms='balanced': with the weight on class k alone, the gradient of the
    classification bias is the plain loss's on class k's output channels and zero on the
    others (each channel's loss terms are its class's column), and the box gradient comes
    from class k's boxes only; the loss is linear in the weights; the plain loss is weight 1."""
    from mmengine.dataset import pseudo_collate
    from isal_mmdet.al.data import class_counts
    from isal_mmdet.study.research_strategies import class_balance
    model = build_detector('retinanet')
    ctx = _ctx(synthetic_voc, model)
    groups = detector_param_groups(model)
    batch = pseudo_collate([ctx.reference[i] for i in range(4)])
    labels = torch.cat([ds.gt_instances.labels for ds in batch['data_samples']])
    assert len(set(labels.tolist())) == 3

    def grad(w):
        obj = ResearchObjective(class_weights=None if w is None else torch.tensor(w))
        g = loss_grad(obj, model, groups, batch)
        return {n: torch.cat([t.flatten() for t in g[n]]) for n in groups.names()}
    plain, ones = grad(None), grad([1.0, 1.0, 1.0])
    for n in plain:
        assert torch.allclose(ones[n], plain[n], rtol=1e-6, atol=1e-9)
    head = model.bbox_head
    bias = [n for n in groups.names() if 'cls' in n]
    reg = [n for n in groups.names() if 'reg' in n]
    assert bias and reg
    k_of_channel = torch.arange(head.cls_out_channels * head.num_base_priors) % head.num_classes
    cls_bias = head.retina_cls.bias

    def bias_grad(w):
        obj = ResearchObjective(class_weights=None if w is None else torch.tensor(w))
        loss = obj.per_sample_loss(model, pseudo_collate(
            [ctx.reference[i] for i in range(4)])).sum()
        return torch.autograd.grad(loss, cls_bias)[0]
    full = bias_grad(None)
    parts = []
    for k in range(3):
        w = [0.0, 0.0, 0.0]
        w[k] = 1.0
        g = bias_grad(w)
        mine = k_of_channel == k
        assert torch.allclose(g[mine], full[mine], rtol=1e-5, atol=1e-9)
        assert torch.count_nonzero(g[~mine]) == 0
        parts.append(grad(w))
    weighted = grad([0.5, 2.0, 3.0])
    for n in weighted:
        mix = 0.5 * parts[0][n] + 2.0 * parts[1][n] + 3.0 * parts[2][n]
        assert torch.allclose(weighted[n], mix, rtol=1e-4, atol=1e-8)
    # an image holding class-0 boxes only: with the weight on class 1, no box gradient
    one = pseudo_collate([ctx.reference[0]])
    gt = one['data_samples'][0].gt_instances
    one['data_samples'][0].gt_instances = gt[gt.labels == gt.labels[0]]
    other = [0.0, 0.0, 0.0]
    other[(int(gt.labels[0]) + 1) % 3] = 1.0
    g = loss_grad(ResearchObjective(class_weights=torch.tensor(other)), model, groups, one)
    assert all(float(t.abs().sum()) == 0.0 for n in reg for t in g[n])
    # the weights: the reference set's box counts, every class present weighing the same
    counts = class_counts(ctx.reference, 3)
    by_hand = [0, 0, 0]
    for i in range(len(ctx.reference)):
        for lab in ctx.reference[i]['data_samples'].gt_instances.labels.tolist():
            by_hand[lab] += 1
    assert counts == by_hand
    w = class_balance(counts)
    assert torch.allclose(w * torch.tensor(counts, dtype=w.dtype),
                          torch.full((3,), sum(counts) / 3, dtype=w.dtype))
    assert class_balance([4, 0, 12]).tolist() == [2.0, 1.0, 8 / 12]
    # through the strategy: recorded, pseudo losses unweighted, independent of batch size
    cfg = dict(type='ESIResearch', reference_terms='balanced',
               solver=dict(type='cg', max_iter=5, num_samples=4))
    runs = [select(cfg, _ctx(synthetic_voc, model, batch_size=b), 3) for b in (1, 4)]
    assert runs[0].scores == pytest.approx(runs[1].scores, rel=1e-4, abs=1e-12)
    assert runs[0].info['reference_class_weights'] == pytest.approx(w.tolist())
    plain_esi = select(dict(cfg, reference_terms='all'), _ctx(synthetic_voc, model), 3)
    assert plain_esi.scores != pytest.approx(runs[0].scores, rel=1e-3)


@pytest.mark.parametrize('family,option,message', [
    ('fcos', dict(reference_terms='foreground'), "reference_terms='foreground' needs"),
    ('faster_rcnn', dict(reference_terms='foreground'), 'RPNHead \\+ Shared2FCBBoxHead'),
    ('faster_rcnn', dict(reference_terms='balanced'), "'balanced' needs a single-stage"),
    ('fcos', dict(reference_terms='balanced'), "reference_terms='balanced' needs"),
    ('fcos', dict(normaliser='fixed'), "normaliser='fixed' needs anchor heads"),
])
def test_isal_loss_options_refused_for_heads_that_cannot_take_them(family, option, message):
    """Checked from the config when the settings are read, before any training."""
    from mmengine.config import Config
    from conftest import ROOT, TINY
    from isal_mmdet.al.settings import al_settings
    cfg = Config.fromfile(f'{ROOT}/{TINY[family]}')
    cfg.active_learning = dict(strategy=dict(type='ISALResearch', **option))
    with pytest.raises(ValueError, match=f'^active_learning.strategy: ISAL .*{message}'):
        al_settings(cfg)
    cfg.active_learning = dict(strategy=dict(type='ISAL'))
    al_settings(cfg)
