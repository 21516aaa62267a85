"""The exact Fisher solve (Woodbury) against explicit matrices, converged CG, a tiny RetinaNet,
its CG fallback, its refusal of the Hessian, and its independence of the number of ranks."""
import logging

import pytest
import torch
import torch.multiprocessing as mp

from isal_mmdet.influence import (CG, Curvature, ParamGroups, Woodbury, build_solver,
                                  loss_grad, summed_gradient)
from test_influence_core import _free_port, _problem
from toy import make_data, mlp


def _rel(a, b):
    return float((a.flatten().double() - b.flatten().double()).norm() / b.flatten().norm())


def _mlp_problem():
    obj, data, model, _, _ = _problem(mlp)
    groups = ParamGroups.from_patterns(model, {'h': r'^0\.', 'o': r'^2\.'})
    v = summed_gradient(obj, model, groups, [obj.collate(make_data(10, seed=7))])
    return obj, data, model, groups, v


@pytest.mark.parametrize('num_samples', [None, 20])
def test_woodbury_equals_explicit_damped_fisher_inverse(num_samples):
    obj, data, model, groups, v = _mlp_problem()
    curv = Curvature(obj, model, groups, data, kind='fisher')
    s, info = Woodbury(damp=0.01, num_samples=num_samples, batch_size=7).solve(v, curv)
    idx = curv.subset(num_samples, 0)
    g = torch.stack([loss_grad(obj, model, groups, obj.collate([data[i]])).flatten()
                     for i in idx])
    fisher = g.T @ g / len(idx)
    want = torch.linalg.solve(fisher + 0.01 * torch.eye(len(fisher), dtype=g.dtype),
                              v.flatten())
    assert _rel(s, want) < 1e-8
    assert info.method == 'woodbury' and info.num_hvps == 0
    assert info.extra == dict(n=len(idx), params=groups.numel(),
                              bytes=8 * len(idx) * groups.numel(), max_bytes=2 ** 30,
                              fell_back=False, per_sample_grads=len(idx))


def test_woodbury_matches_converged_cg():
    obj, data, model, groups, v = _mlp_problem()
    curv = Curvature(obj, model, groups, data, kind='fisher')
    s, _ = Woodbury(num_samples=32).solve(v, curv)
    s_cg, info = CG(num_samples=32, max_iter=500, tol=1e-12).solve(v, curv)
    assert info.extra['relative_residual'] < 1e-10
    assert _rel(s, s_cg) < 1e-5


def test_unreadable_sample_keeps_a_zero_row():
    obj, data, model, groups, v = _mlp_problem()
    holes = list(data[:12]) + [None] + list(data[12:20])
    s, info = Woodbury(num_samples=None, batch_size=4).solve(
        v, Curvature(obj, model, groups, holes, kind='fisher'))
    s_cg, _ = CG(max_iter=500, tol=1e-12, batch_size=4).solve(
        v, Curvature(obj, model, groups, holes, kind='fisher'))
    assert info.extra['n'] == 21 and info.extra['per_sample_grads'] == 20
    assert _rel(s, s_cg) < 1e-5


def test_falls_back_to_cg_above_max_bytes(caplog):
    obj, data, model, groups, v = _mlp_problem()
    curv = Curvature(obj, model, groups, data, kind='fisher')
    with caplog.at_level(logging.WARNING, logger='isal_mmdet.influence.solvers'):
        s, info = Woodbury(num_samples=16, max_bytes=1000, fallback_iters=7).solve(v, curv)
    assert 'woodbury' in caplog.text and 'solving by CG, 7 iterations' in caplog.text
    assert info.method == 'cg' and info.extra['fell_back'] is True
    assert info.extra['bytes'] == 8 * 16 * groups.numel() and info.extra['iterations'] == 7
    s_cg, _ = CG(num_samples=16, max_iter=7).solve(v, curv)
    assert torch.equal(s.flatten(), s_cg.flatten())


def test_refuses_the_hessian_and_is_registered():
    obj, data, model, groups, v = _mlp_problem()
    with pytest.raises(ValueError, match="woodbury solver needs curvature='fisher', got "
                                         "'hessian'"):
        Woodbury().solve(v, Curvature(obj, model, groups, data))
    assert isinstance(build_solver(dict(type='woodbury', num_samples=16)), Woodbury)
    with pytest.raises(ValueError, match='damp must be > 0'):
        Woodbury(damp=0.0)


def test_isal_default_solver_is_woodbury():
    from isal_mmdet.al.strategies import DEFAULT_SOLVER, ISAL
    assert DEFAULT_SOLVER['type'] == 'woodbury' and DEFAULT_SOLVER['num_samples'] == 64
    assert ISAL().solver_cfg == DEFAULT_SOLVER
    assert ISAL(curvature='hessian').solver_cfg['type'] == 'cg'
    with pytest.raises(ValueError, match="woodbury solves the Fisher exactly"):
        ISAL(curvature='hessian', solver='woodbury')


def test_tiny_retinanet_matches_converged_cg(synthetic_voc):
    from conftest import build_detector, voc_dataset
    from isal_mmdet.detection import DetectionObjective, detector_param_groups
    model = build_detector('retinanet')
    train = voc_dataset(synthetic_voc, 'train')
    labelled = [train[i] for i in range(6)]
    obj = DetectionObjective(seed=0)
    groups = detector_param_groups(model)
    v = summed_gradient(obj, model, groups, [obj.collate([train[i] for i in range(6, 10)])])
    curv = Curvature(obj, model, groups, labelled, kind='fisher')
    s, info = Woodbury(batch_size=3).solve(v, curv)
    s_cg, cg_info = CG(max_iter=50, tol=1e-7, batch_size=3).solve(v, curv)
    assert info.extra['n'] == 6 and info.extra['per_sample_grads'] == 6
    assert cg_info.extra['relative_residual'] < 1e-5
    assert _rel(s, s_cg) < 1e-4


def _rank_worker(rank, world, port, out):
    import os
    import torch.distributed as dist
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world)
    try:
        obj, data, model, groups, v = _problem(mlp, rank=rank, world=world)
        s, _ = Woodbury(num_samples=30, batch_size=4).solve(
            v, Curvature(obj, model, groups, data, kind='fisher'))
        torch.save(s.flatten(), f'{out}.{rank}')
    finally:
        dist.destroy_process_group()


def test_same_s_in_one_or_two_processes(tmp_path):
    obj, data, model, groups, v = _problem(mlp)
    s1, _ = Woodbury(num_samples=30, batch_size=4).solve(
        v, Curvature(obj, model, groups, data, kind='fisher'))
    out = str(tmp_path / 's')
    mp.start_processes(_rank_worker, args=(2, _free_port(), out), nprocs=2,
                       start_method='spawn')
    for rank in (0, 1):
        assert torch.allclose(s1.flatten(), torch.load(f'{out}.{rank}'), rtol=1e-10,
                              atol=1e-12)
