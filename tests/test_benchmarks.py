"""The arithmetic of the timing benchmarks and the GPU check's torch-only stage."""
import os.path as osp
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, osp.join(ROOT, 'benchmarks'))
import selection_speed  # noqa: E402


def test_realsize_rows_extrapolate_from_fixed_cost_and_fitted_rates():
    fixed = dict(v_s=10.0, s_test_s=30.0)
    # per image: inference 1.0 then 1.2 s, scoring 2.0 s; least squares through the origin
    measured = {10: dict(inference_s=10.0, scoring_s=20.0),
                20: dict(inference_s=24.0, scoring_s=40.0)}
    res = selection_speed.pool_rows(fixed, measured, [20, 100])
    rate = (10 * 10 + 20 * 24) / (10 ** 2 + 20 ** 2)
    assert res['rates_per_image_s'] == pytest.approx(dict(inference_s=rate, scoring_s=2.0))
    assert res['linearity'][20] == pytest.approx(dict(inference_per_image_s=1.2,
                                                      scoring_per_image_s=2.0))
    rows = {r['pool']: r for r in res['rows']}
    assert sorted(rows) == [10, 20, 100]
    assert not rows[20]['extrapolated'] and rows[20]['inference_s'] == 24.0
    big = rows[100]
    assert big['extrapolated'] and big['inference_s'] == pytest.approx(100 * rate)
    assert big['end_to_end_s'] == pytest.approx(10 + 30 + 200)
    assert big['ratio_end_to_end_over_inference'] == pytest.approx(240 / (100 * rate))
    assert big['s_test_share'] == pytest.approx(30 / 240)
    assert big['scoring_over_inference_per_image'] == pytest.approx(2.0 / rate)


def test_gpu_check_core_stage_runs_on_torch_alone(tmp_path):
    """benchmarks/gpu_core.py, the GPU check's first stage, on the CPU with mmcv, mmengine and
    mmdet made unimportable: the influence core must not need them."""
    import json
    import subprocess
    out = tmp_path / 'core.json'
    script = ('import runpy, sys\n'
              'for m in ("mmdet", "mmcv", "mmengine"):\n'
              '    sys.modules[m] = None\n'
              f'sys.argv = ["gpu_core.py", "--device", "cpu", "--speed-samples", "256", '
              f'"--out", {str(out)!r}]\n'
              f'runpy.run_path({osp.join(ROOT, "benchmarks", "gpu_core.py")!r}, '
              'run_name="__main__")\n')
    res = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                         timeout=300, cwd=str(tmp_path))
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    got = json.load(open(out))
    assert got['ok'] and got['device'] == 'cpu'
    assert set(got['solver_rel_err']) == {'exact', 'cg', 'lissa', 'woodbury_fisher',
                                          'cg_fisher', 'identity'}
    assert got['fisher_rows']['dtype'] == 'torch.float64'
    assert got['speed']['ratio'] > 1 and got['speed']['max_rel_diff'] < 1e-3


