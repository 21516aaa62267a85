"""The influence core against explicit references: solves, per-sample scores, LOO retraining."""
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from isal_mmdet.influence import (CG, Curvature, Exact, LiSSA, ParamGroups, block_spectrum,
                                  build_solver, directional_derivatives, influence_scores,
                                  loss_grad, summed_gradient)
from toy import TensorObjective, explicit_hessian, fit, linear, make_data, mlp


def _problem(model_fn=linear, n=60, seed=0, rank=0, world=1):
    obj = TensorObjective()
    data = make_data(n, seed=seed)
    model = fit(model_fn(seed=seed), obj, data, weight_decay=1e-2)
    groups = ParamGroups.from_patterns(model, {'w': r'weight'})
    ref = make_data(20, seed=seed + 100)[rank::world]  # each rank sums its shard of R
    v = summed_gradient(obj, model, groups, [obj.collate(ref)])
    return obj, data, model, groups, v


def test_param_groups_keep_only_weights_and_name_bad_patterns():
    model = mlp()
    groups = ParamGroups.from_patterns(model, {'a': r'^0\.', 'b': r'^2\.'})
    assert groups.param_names() == {'a': ['0.weight'], 'b': ['2.weight']}
    with pytest.raises(ValueError, match='nothing_here'):
        ParamGroups.from_patterns(model, ['nothing_here'])


def test_exact_matches_linalg_solve_on_mlp():
    obj, data, model, _, _ = _problem(mlp)
    groups = ParamGroups.from_patterns(model, {'h': r'^0\.', 'o': r'^2\.'})
    v = summed_gradient(obj, model, groups, [obj.collate(make_data(10, seed=7))])
    s, info = Exact(damp=0.05).solve(v, Curvature(obj, model, groups, data))
    h = explicit_hessian(model, obj, data, groups.params())
    ref = torch.linalg.solve(h + 0.05 * torch.eye(h.shape[0], dtype=h.dtype), v.flatten())
    assert torch.allclose(s.flatten(), ref, rtol=1e-8, atol=1e-10)
    assert info.num_hvps == groups.numel() * len(data)


def test_cg_reaches_exact():
    obj, data, model, groups, v = _problem()
    curv = Curvature(obj, model, groups, data)
    s_exact, _ = Exact(damp=0.01).solve(v, curv)
    s_cg, info = CG(damp=0.01, max_iter=100, tol=1e-10).solve(v, curv)
    err = (s_cg.flatten() - s_exact.flatten()).norm() / s_exact.flatten().norm()
    assert err < 1e-4
    assert info.extra['iterations'] <= groups.numel() + 1


def test_lissa_error_falls_with_depth():
    obj, data, model, groups, v = _problem()
    curv = Curvature(obj, model, groups, data)
    scale, damp = 2.0, 0.01
    s_exact, _ = Exact(damp=damp * scale).solve(v, curv)
    errs = []
    for depth in (10, 100, 1000):
        s, info = LiSSA(scales={'w': scale}, damp=damp, depth=depth, num_chains=2, batch_size=8,
                        divide_by_scale=True).solve(v, curv)
        assert not info.diverged
        errs.append(float((s.flatten() - s_exact.flatten()).norm() / s_exact.flatten().norm()))
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 0.1  # what is left is sampling noise of batch-8 Hessians
    s, _ = LiSSA(scales={'w': scale}, damp=damp, depth=1500, batch_size=len(data),
                 divide_by_scale=True).solve(v, curv)
    assert torch.allclose(s.flatten(), s_exact.flatten(), rtol=1e-5)


def test_lissa_without_division_is_scale_times_damped_inverse():
    obj, data, model, groups, v = _problem()
    curv = Curvature(obj, model, groups, data)
    s_div, _ = LiSSA(scales={'w': 3.0}, depth=300, batch_size=len(data),
                     divide_by_scale=True).solve(v, curv)
    s_raw, _ = LiSSA(scales={'w': 3.0}, depth=300, batch_size=len(data)).solve(v, curv)
    assert torch.allclose(s_raw.flatten(), 3.0 * s_div.flatten(), rtol=1e-10)


def test_lissa_scale_from_power_iteration_and_divergence_report():
    obj, data, model, groups, v = _problem()
    curv = Curvature(obj, model, groups, data)
    lam_max = torch.linalg.eigvalsh(explicit_hessian(model, obj, data, groups.params()))[-1]
    solver = LiSSA(depth=50, power_iters=50, power_samples=None, margin=1.0)
    scales = solver.estimate_scales(curv)
    assert scales['w'] == pytest.approx(float(lam_max), rel=1e-3)
    _, info = LiSSA(scales={'w': float(lam_max) / 4}, depth=200, batch_size=len(data)
                    ).solve(v, curv)
    assert info.diverged == ['w']
    _, info = LiSSA(scales={'w': float(lam_max)}, depth=200, batch_size=len(data)).solve(v, curv)
    assert info.diverged == [] and info.nan_resets == {'w': 0}


def test_block_spectrum_finds_both_ends_of_an_indefinite_hessian():
    obj, data, model, _, _ = _problem(mlp)
    groups = ParamGroups.from_patterns(model, {'w': r'weight'})
    curv = Curvature(obj, model, groups, data)
    eig = torch.linalg.eigvalsh(explicit_hessian(model, obj, data, groups.params()))
    assert eig[0] < 0 < eig[-1]  # the tanh network's Hessian is indefinite: a real check
    got = block_spectrum(curv, 'w', list(range(len(data))), iters=400)
    assert got['lambda_max'] == pytest.approx(float(eig[-1]), rel=1e-3)
    assert got['lambda_min'] == pytest.approx(float(eig[0]), rel=1e-2)
    fisher = block_spectrum(Curvature(obj, model, groups, data, kind='fisher'), 'w',
                            list(range(len(data))), iters=400)
    assert fisher['lambda_min'] > -1e-8  # the empirical Fisher is PSD


def test_zero_curvature_group_gets_v_over_damp():
    obj, data, _, _, _ = _problem()

    class Piecewise(TensorObjective):  # L1 loss: zero Hessian everywhere
        def per_sample_loss(self, model, batch, pseudo=False):
            _, x, y = batch
            return (model(x) - torch.nn.functional.one_hot(y, 3)).abs().sum(-1)

    pobj = Piecewise()
    model = linear()
    groups = ParamGroups.from_patterns(model, ['weight'])
    v = summed_gradient(pobj, model, groups, [pobj.collate(data[:10])])
    s, info = LiSSA(depth=3000, damp=0.01).solve(v, Curvature(pobj, model, groups, data))
    assert info.scales == {'weight': 1.0}
    assert torch.allclose(s.flatten(), v.flatten() / 0.01, rtol=1e-6)


def test_fisher_product_equals_explicit_mean_outer_product_and_cg_converges():
    obj, data, model, groups, v = _problem(model_fn=mlp)
    grads = torch.stack([loss_grad(obj, model, groups, obj.collate([x])).flatten()
                         for x in data])
    fisher = grads.T @ grads / len(data)
    vec = groups.wrap([torch.randn_like(p) for p in groups.params()])
    curv = Curvature(obj, model, groups, data, kind='fisher')
    got = curv.mean_hvp(vec, list(range(len(data))), batch_size=7).flatten()
    assert torch.allclose(got, fisher @ vec.flatten(), rtol=1e-4, atol=1e-6)
    s, info = CG(damp=0.01, max_iter=200, tol=1e-8).solve(v, curv)
    want = torch.linalg.solve(fisher + 0.01 * torch.eye(len(fisher)), v.flatten())
    assert torch.allclose(s.flatten(), want, rtol=1e-3, atol=1e-5)
    with pytest.raises(ValueError, match='curvature kind'):
        Curvature(obj, model, groups, data, kind='ggn')


def test_identity_and_registry():
    obj, data, model, groups, v = _problem()
    s, _ = build_solver('identity').solve(v, Curvature(obj, model, groups, data))
    assert torch.equal(s.flatten(), v.flatten())
    assert isinstance(build_solver(dict(type='cg', max_iter=3)), CG)
    with pytest.raises(ValueError, match="unknown s_test solver 'newton'"):
        build_solver('newton')


@pytest.mark.parametrize('pseudo', [False, True])
def test_batched_scores_equal_batch1_autograd_loop(pseudo):
    obj, data, model, _, _ = _problem(mlp)
    groups = ParamGroups.from_patterns(model, {'h': r'^0\.', 'o': r'^2\.'})
    s = groups.wrap([torch.randn_like(p) for p in groups.params()])
    batches = [obj.collate(data[k:k + 16]) for k in range(0, len(data), 16)]
    got = influence_scores(obj, model, groups, s, batches, pseudo=pseudo)
    for sample in data:
        g = loss_grad(obj, model, groups, obj.collate([sample]), pseudo=pseudo)
        want = -g.dot(s)
        assert got[sample[0]] == pytest.approx(want, rel=1e-5, abs=1e-12)


def test_directional_derivative_is_zero_without_graph_to_theta():
    obj, data, model, groups, _ = _problem()
    s = groups.zeros()
    out = directional_derivatives(obj, model, groups, obj.collate(data[:3]), s)
    assert out.shape == (3,) and torch.all(out == 0)


def _newton_logreg(data, lam, w0=None, iters=50):
    x = torch.stack([d[1] for d in data])
    y = torch.stack([d[2] for d in data])
    w = torch.zeros(x.shape[1], dtype=torch.float64) if w0 is None else w0.clone()
    for _ in range(iters):
        p = torch.sigmoid(x @ w)
        g = x.T @ (p - y) / len(data) + lam * w
        h = (x.T * (p * (1 - p))) @ x / len(data) + lam * torch.eye(len(w), dtype=x.dtype)
        w = w - torch.linalg.solve(h, g)
    return w


def test_influence_predicts_leave_one_out_retraining():
    """Koh & Liang's check on L2-regularised logistic regression at its optimum."""
    lam = 0.01
    obj = TensorObjective(binary=True)
    train = make_data(80, d=4, seed=3, binary=True)
    ref = make_data(40, d=4, seed=4, binary=True)
    w = _newton_logreg(train, lam)
    model = linear(d=4, classes=1, bias=False)
    with torch.no_grad():
        model.weight.copy_(w[None])
    groups = ParamGroups.from_patterns(model, ['weight'])
    v = summed_gradient(obj, model, groups, [obj.collate(ref)])
    # The L2 term is exactly the damping of the regularised objective's Hessian.
    s, _ = Exact(damp=lam).solve(v, Curvature(obj, model, groups, train))
    scores = influence_scores(obj, model, groups, s, [obj.collate(train)], pseudo=False)

    def ref_loss(wv):
        with torch.no_grad():
            model.weight.copy_(wv[None])
            return float(obj.per_sample_loss(model, obj.collate(ref)).sum())

    base = ref_loss(w)
    predicted, actual = [], []
    for i in range(40):
        w_loo = _newton_logreg(train[:i] + train[i + 1:], lam, w0=w)
        actual.append(ref_loss(w_loo) - base)
        predicted.append(-scores[i] / len(train))
    r = torch.corrcoef(torch.tensor([predicted, actual]))[0, 1]
    assert r >= 0.95


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _lissa_worker(rank, world, port, out):
    import torch.distributed as dist
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world)
    try:
        obj, data, model, groups, v = _problem(rank=rank, world=world)
        s, _ = LiSSA(scales={'w': 2.0}, depth=50, num_chains=4, batch_size=2, seed=5
                     ).solve(v, Curvature(obj, model, groups, data))
        torch.save(s.flatten(), f'{out}.{rank}')
    finally:
        dist.destroy_process_group()


def test_lissa_same_result_in_one_or_two_processes(tmp_path):
    obj, data, model, groups, v = _problem()
    s1, _ = LiSSA(scales={'w': 2.0}, depth=50, num_chains=4, batch_size=2, seed=5
                  ).solve(v, Curvature(obj, model, groups, data))
    out = str(tmp_path / 's')
    mp.start_processes(_lissa_worker, args=(2, _free_port(), out), nprocs=2,
                       start_method='spawn')
    for rank in (0, 1):
        s2 = torch.load(f'{out}.{rank}')
        assert torch.allclose(s1.flatten(), s2, rtol=1e-10, atol=1e-12)
