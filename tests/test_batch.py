"""Batch stages against independent references: brute-force k-centre radius and k-medoids
optimality on small inputs, the class-conditioned distance written as a plain loop, the
stochastic draw's first-pick probabilities by Monte-Carlo, and the round-robin's one rule as a
property test; then each stage through select() on a real detector."""
import itertools
import math
import random as pyrandom

import pytest
import torch
from hypothesis import given, settings, strategies as st

from conftest import build_detector, voc_dataset
from isal_mmdet.al.batch import (ClassMedoids, Stochastic, build_batch_stage, image_distances,
                                 k_center_on, k_medoids, kmeans, round_robin)
from isal_mmdet.al.budget import Budget
from isal_mmdet.al.selection import select
from isal_mmdet.al.strategies import SelectionContext, build_strategy, rank_ids
from isal_mmdet.datasets.al_subset import ActiveSubset
from isal_mmdet.detection.box_features import BoxFeatures
from isal_mmdet.study.variants import strategy_cfg


def _points(n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 2, generator=g, dtype=torch.float64)


def _radius(dist, centres):
    return float(dist[:, centres].min(1).values.max())


@pytest.mark.parametrize('seed', range(5))
def test_k_centre_is_within_twice_the_brute_force_optimum(seed):
    dist = torch.cdist(_points(9, seed), _points(9, seed))
    for k in (2, 3):
        greedy = k_center_on(dist, k)
        best = min(_radius(dist, list(c)) for c in itertools.combinations(range(9), k))
        assert len(set(greedy)) == k and _radius(dist, greedy) <= 2 * best + 1e-12


@pytest.mark.parametrize('seed', range(5))
def test_k_medoids_ends_at_a_fixed_point_brute_force_checked(seed):
    pts = _points(10, seed)
    dist = torch.cdist(pts, pts)
    medoids = k_medoids(dist, k_center_on(dist, 3))
    assign = dist[:, medoids].argmin(1)
    for j, m in enumerate(medoids):
        members = [i for i in range(10) if assign[i] == j]
        costs = {c: sum(float(dist[c, i]) for i in members) for c in members}
        assert costs[m] == pytest.approx(min(costs.values()))


def test_k_medoids_finds_the_brute_force_optimum_on_clear_clusters():
    pts = torch.tensor([[0, 0], [0.1, 0], [0, 0.2], [5, 5], [5.2, 5], [5, 5.1], [9, 0]],
                       dtype=torch.float64)
    dist = torch.cdist(pts, pts)
    cost = lambda ms: float(dist[:, list(ms)].min(1).values.sum())  # noqa: E731
    best = min(itertools.combinations(range(7), 3), key=cost)
    assert sorted(k_medoids(dist, k_center_on(dist, 3))) == sorted(best)


def test_kmeans_recovers_separated_blobs():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    pts = torch.cat([c + 0.1 * torch.randn(20, 2, generator=g) for c in centres])
    labels = kmeans(pts, 3, seed=0)
    groups = {tuple(sorted(torch.nonzero(labels == c).flatten().tolist())) for c in range(3)}
    assert groups == {tuple(range(0, 20)), tuple(range(20, 40)), tuple(range(40, 60))}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=30), st.integers(1, 30),
       st.dictionaries(st.integers(0, 5), st.integers(0, 4)))
def test_round_robin_never_takes_a_second_image_while_a_cluster_has_none(clusters, n, lab):
    order = list(range(len(clusters)))
    cluster = dict(zip(order, clusters))
    batch = round_robin(order, cluster, lab, n)
    assert len(batch) == min(n, len(order)) and len(set(batch)) == len(batch)
    picks = {}
    for i in batch:
        c = cluster[i]
        untouched = {cluster[j] for j in order} - set(picks)
        assert picks.get(c, 0) == 0 or not untouched
        picks[c] = picks.get(c, 0) + 1
    for c in set(clusters):  # within a cluster, best first
        mine = [i for i in batch if cluster[i] == c]
        assert mine == sorted(mine) == [i for i in order if cluster[i] == c][:len(mine)]


def _reference_distance(a, b):
    """The definition, one detection at a time."""
    if not len(a.labels) and not len(b.labels):
        return 0.0
    if not len(a.labels) or not len(b.labels):
        return 2.0

    def one_way(x, y):
        total = 0.0
        for f, c, s in zip(x.features, x.labels.tolist(), x.scores.tolist()):
            same = [float(f @ g) for g, d in zip(y.features, y.labels.tolist()) if d == c]
            total += s * (max(same) if same else -1.0)
        return total / float(x.scores.sum())
    return max(0.0, 1.0 - (one_way(a, b) + one_way(b, a)) / 2)


def test_class_conditioned_distance_matches_its_definition():
    rnd = pyrandom.Random(0)
    images = []
    for k in range(12):
        n = 0 if k in (3, 7) else rnd.randint(1, 5)
        f = torch.nn.functional.normalize(torch.randn(n, 6, dtype=torch.float64), dim=1)
        images.append(BoxFeatures(f, torch.tensor([rnd.randint(0, 2) for _ in range(n)],
                                                  dtype=torch.long),
                                  torch.tensor([rnd.uniform(0.1, 1) for _ in range(n)],
                                               dtype=torch.float64)))
    dist = image_distances(images, chunk=3)
    for i, j in itertools.product(range(12), repeat=2):
        want = 0.0 if i == j else _reference_distance(images[i], images[j])
        assert float(dist[i, j]) == pytest.approx(want, abs=1e-9), (i, j)
    assert torch.equal(dist, dist.T)


def test_stochastic_first_pick_follows_rank_weights_monte_carlo():
    ranked = ['a', 'b', 'c', 'd']
    stage = Stochastic(beta=1.0)
    counts = dict.fromkeys(ranked, 0)
    trials = 4000
    for seed in range(trials):
        counts[stage.pick(ranked, {}, 1, SelectionContext(None, None, None, seed=seed))[0]] += 1
    weights = [1 / r for r in range(1, 5)]
    for i, w in zip(ranked, weights):
        p = w / sum(weights)
        assert abs(counts[i] / trials - p) < 4 * math.sqrt(p * (1 - p) / trials)


def test_stochastic_is_seeded_and_tends_to_topk_as_beta_grows():
    ranked = list(range(50))
    ctx = SelectionContext(None, None, None, seed=3)
    once = Stochastic(beta=1.0).pick(ranked, {}, 10, ctx)
    assert once == Stochastic(beta=1.0).pick(ranked, {}, 10, ctx)
    assert once != Stochastic(beta=1.0).pick(ranked, {}, 10, SelectionContext(None, None, None,
                                                                                seed=4))
    assert Stochastic(beta=50.0).pick(ranked, {}, 10, ctx) == ranked[:10]
    assert set(Stochastic(beta=0.0).pick(ranked, {}, 10, ctx)) != set(ranked[:10])


def test_wrong_stage_names_and_arguments_are_one_line():
    with pytest.raises(ValueError, match=r"unknown batch stage 'clumps'; choose one of"):
        build_strategy(dict(type='dcus', batch='clumps'))
    with pytest.raises(ValueError, match=r'batch: Clusters.candidates must be a number >= 1'):
        build_strategy(dict(type='dcus', batch=dict(type='clusters', candidates=0.5)))
    with pytest.raises(ValueError, match='batch: coreset picks its own set'):
        build_strategy(dict(type='coreset', batch='clusters'))
    with pytest.raises(ValueError, match='batch: isal_box picks its own set'):
        build_strategy(dict(type='isal_box', batch='stochastic'))
    assert build_strategy(dict(type='coreset', batch='topk')).batch.describe() == dict(type='topk')
    assert strategy_cfg('isal', 'dcus+clusters') == dict(
        strategy=dict(type='dcus', batch=dict(type='clusters')))
    with pytest.raises(ValueError, match="unknown batch stage 'magic' in 'dcus\\+magic'"):
        strategy_cfg('isal', 'dcus+magic')


def _ctx(synthetic_voc, model, seed=0, batch_size=4):
    full = voc_dataset(synthetic_voc, 'train')
    ids = [full.get_data_info(i)['img_id'] for i in range(len(full))]
    return SelectionContext(model=model, pool=ActiveSubset(full, ids=ids[:8], invert=True),
                            labelled=ActiveSubset(full, ids=ids[:8]), batch_size=batch_size,
                            seed=seed, progress=False)


@pytest.mark.parametrize('family, stage', [('retinanet', 'clusters'),
                                           ('retinanet', 'class_medoids'),
                                           ('faster_rcnn', 'class_medoids'),
                                           ('fcos', 'stochastic')])
def test_each_stage_through_select_independent_of_batch_size(synthetic_voc, family, stage):
    model = build_detector(family)
    spec = dict(type='dcus', score_thr=0.0, batch=dict(type=stage))
    runs = [select(spec, _ctx(synthetic_voc, model, batch_size=b), 4) for b in (1, 4)]
    assert runs[0].selected == runs[1].selected
    assert len(set(runs[0].selected)) == 4 and set(runs[0].selected) <= set(runs[0].scores)
    assert runs[0].info['batch']['type'] == stage
    top = rank_ids(runs[0].scores, True)
    if stage != 'stochastic':  # drawn from the candidates only
        assert set(runs[0].selected) <= set(top[:math.ceil(
            build_batch_stage(stage).candidates * 4)])


def test_a_batch_stage_spends_a_box_budget(synthetic_voc):
    model = build_detector('retinanet')
    torch.nn.init.constant_(model.bbox_head.retina_cls.bias, -1.4)  # sigmoid 0.2: detections
    spec = dict(type='entropy', score_thr=0.0, batch=dict(type='class_medoids'))
    ctx = _ctx(synthetic_voc, model)
    out = select(spec, ctx, Budget(6, 'boxes'), preannotation_thr=0.0)
    planned = out.info['budget']['planned']
    assert planned['images'] == len(out.selected) >= 1 and planned['boxes'] >= 6
    assert isinstance(build_strategy(spec).batch, ClassMedoids)
