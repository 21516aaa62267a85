"""Strategies × seeds through the real round loop, every strategy of a seed from the same
round 0 (the same initial images and trained model, trained once), so differences between
strategies are paired. Rerunning with the same work dir skips finished rounds; more
``rounds`` or seeds extend it."""
from __future__ import annotations

import glob
import os
import os.path as osp
import shutil
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from ..al.cost import AnnotationCost
from ..fileio import load_config, read_json, write_json, write_text
from .analysis import analyse_study
from .check_price import check_prices
from .merge import check_prior, merge_prior
from .picks import box_answers, busyness_correlation, composition, pool_boxes, solver_summary
from .report import plot, report
from .variants import strategy_cfg


@dataclass
class StudySetup:
    """What a study runs; recorded in its report so a later run can merge into it."""
    config: str
    strategies: List[str]
    seeds: List[int]
    rounds: int
    initial: int
    budget: int
    cfg_options: Dict[str, Any] = field(default_factory=dict)

    def record(self) -> Dict[str, Any]:
        return dict(asdict(self), config=osp.relpath(self.config))


def _config(setup: StudySetup, seed: int, changes: Dict[str, Any]):
    cfg = load_config(setup.config, setup.cfg_options)
    al = cfg.active_learning
    al.rounds, al.initial_size, al.budget, al.seed = (setup.rounds, setup.initial,
                                                      setup.budget, seed)
    for key, value in changes.items():
        al[key] = value  # assignment, not ConfigDict.update: that would merge solver dicts
    cfg.randomness = dict(seed=seed)
    return cfg


def strategy_config(setup: StudySetup, strategy: str, seed: int):
    """The config of one strategy × seed of the study."""
    al = load_config(setup.config, setup.cfg_options).get('active_learning') or {}
    return _config(setup, seed, strategy_cfg(al.get('strategy'), strategy, al.get('cost'),
                                             al.get('semi')))


def trains_semi(work_dir: str) -> bool:
    """Whether the run in ``work_dir`` trains semi-supervised rounds (its experiment.json)."""
    marker = osp.join(work_dir, 'experiment.json')
    al = read_json(marker).get('active_learning', {}) if osp.exists(marker) else {}
    return al.get('semi') is not None


def shared_rounds0(work_dir: str, seed: int) -> Dict[bool, str]:
    """Seed ``seed``'s finished round 0 to share, one per training regime (supervised, semi-
    supervised): a semi-supervised round 0 is another model, and trained on other data."""
    out: Dict[bool, str] = {}
    for done in sorted(glob.glob(osp.join(work_dir, '*', f'seed{seed}', 'round_0',
                                          'metrics.json'))):
        round0 = osp.dirname(done)
        out.setdefault(trains_semi(osp.dirname(round0)), round0)
    return out


def check_setup(setup: StudySetup, train: bool) -> None:
    """Each seed and strategy given once, and (``train``) every strategy's settings checked,
    before any training: a typo in the last strategy would otherwise end the study only after
    every round of the first (leaving their folders), and a seed given twice would enter the
    paired statistics twice."""
    from ..al.settings import al_settings
    for flag, values in (('--seeds', setup.seeds), ('--strategies', setup.strategies)):
        twice = [v for k, v in enumerate(values) if v in values[:k]]
        if twice:
            raise ValueError(f'{flag}: {twice[0]} is given twice; each enters the paired '
                             'statistics once')
    for strategy in setup.strategies if train else ():
        try:
            al_settings(strategy_config(setup, strategy, setup.seeds[0] if setup.seeds else 0))
        except ValueError as e:
            raise ValueError(f'--strategies {strategy}: {e}') from None


def run_one(setup: StudySetup, work_dir: str, strategy: str, seed: int,
            shared_round0: Optional[str] = None) -> List[Dict[str, Any]]:
    """One strategy × seed through every round; round 0 copied from ``shared_round0``."""
    from ..al.loop import ActiveLearningLoop
    cfg = strategy_config(setup, strategy, seed)
    if shared_round0 and not osp.exists(osp.join(work_dir, 'round_0', 'metrics.json')):
        os.makedirs(work_dir, exist_ok=True)
        shutil.copytree(shared_round0, osp.join(work_dir, 'round_0'), dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns('selection.json', 'selected*',
                                                      'scores.csv', 'preannotations*'))
    ActiveLearningLoop(cfg, work_dir).run()
    return read_json(osp.join(work_dir, 'summary.json'))



def cpu_per_round(cpu: Dict[str, List[list]]) -> Dict[str, Dict[str, list]]:
    """Per strategy and round, the mean training and selection seconds over the seeds that
    recorded them (None where none did): what a round costs on this machine."""
    out: Dict[str, Dict[str, list]] = {}
    for s, seeds in cpu.items():
        rounds = max((len(r) for r in seeds), default=0)
        out[s] = {}
        for j, key in enumerate(('training_s', 'selection_s')):
            vals = [[r[k][j] for r in seeds if k < len(r) and r[k][j] is not None]
                    for k in range(rounds)]
            out[s][key] = [sum(v) / len(v) if v else None for v in vals]
    return out

def training_noise(setup: StudySetup, work_dir: str, image_seed: int,
                   train_seeds: Sequence[int], train: bool,
                   round_k: int = 0) -> Dict[str, Any]:
    """The noise floor: round ``round_k``'s images of ``image_seed``, trained with other
    training seeds. A paired difference smaller than this spread is not evidence for either
    side. For ``round_k > 0`` the first strategy's run of that seed supplies rounds
    0..round_k-1 and round_k's images; round_k is warm started from its round_k-1 model as in
    the study, so the spread is the one at the round where the strategies are compared."""
    from ..al.loop import ActiveLearningLoop
    source = osp.join(work_dir, setup.strategies[0], f'seed{image_seed}')
    maps = []
    for t in train_seeds:
        name = f'train{t}' if round_k == 0 else f'round{round_k}_train{t}'
        wd = osp.join(work_dir, 'noise', f'seed{image_seed}', name)
        if train:
            for j in range(round_k + 1 if round_k else 0):
                src = osp.join(source, f'round_{j}')
                keep = (None if j < round_k else
                        shutil.ignore_patterns('train', 'metrics.json', 'selection.json',
                                               'selected*', 'scores.csv', 'preannotations*'))
                if not osp.exists(osp.join(wd, f'round_{j}')):
                    if not osp.exists(osp.join(src, 'labeled.json')):
                        raise ValueError(f'--noise-round {round_k}: {src} has no finished '
                                         'run to start from; run the study first')
                    shutil.copytree(src, osp.join(wd, f'round_{j}'), ignore=keep)
            semi = strategy_config(setup, setup.strategies[0], image_seed).active_learning.get(
                'semi')  # the first strategy's regime, which supplies the earlier rounds
            cfg = _config(setup, image_seed, dict(rounds=round_k + 1) if semi is None else
                          dict(rounds=round_k + 1, semi=semi))
            cfg.randomness = dict(seed=t)
            ActiveLearningLoop(cfg, wd).run()
        maps.append(read_json(osp.join(wd, 'summary.json'))[round_k]['mAP'])
    std = (sum((m - sum(maps) / len(maps)) ** 2 for m in maps) / (len(maps) - 1)) ** 0.5 \
        if len(maps) > 1 else 0.0
    return dict(image_seed=image_seed, round=round_k, train_seeds=list(train_seeds),
                mAP=maps, std=std)


def run_study(setup: StudySetup, work_dir: str, report_name: str = 'results',
              analyse_only: bool = False, merge: Optional[str] = None,
              cost: AnnotationCost = AnnotationCost(),
              noise_seeds: Sequence[int] = (), noise_round: int = 0) -> Dict[str, Any]:
    """Runs (or reads, ``analyse_only``) the study and writes ``<work_dir>/<report_name>``
    ``.json``, ``.md`` and ``.png``. ``merge``: an earlier report of the same setup whose
    seeds join this run's (its work dir may be gone)."""
    work_dir = osp.abspath(work_dir)
    check_setup(setup, train=not analyse_only)
    record = setup.record()
    prior = None
    if merge:
        prior = read_json(merge)
        check_prior(prior, record)
    curves: Dict[str, Dict[int, list]] = {s: {} for s in setup.strategies}
    box_curves: Dict[str, Dict[int, list]] = {s: {} for s in setup.strategies}
    cpu: Dict[str, List[list]] = {s: [] for s in setup.strategies}
    for seed in setup.seeds:
        firsts = shared_rounds0(work_dir, seed)
        for s in setup.strategies:
            wd = osp.join(work_dir, s, f'seed{seed}')
            semi = strategy_config(setup, s, seed).active_learning.get('semi') is not None
            if analyse_only:
                rows = read_json(osp.join(wd, 'summary.json'))[:setup.rounds]
            else:
                rows = run_one(setup, wd, s, seed, shared_round0=firsts.get(semi))
            firsts.setdefault(semi, osp.join(wd, 'round_0'))
            curves[s][seed] = [(r['num_labelled'], r['mAP']) for r in rows]
            box_curves[s][seed] = [(r['num_boxes'], r['mAP']) for r in rows]
            cpu[s].append([(r.get('training_seconds'), r.get('selection_seconds'))
                           for r in rows])
    comp: Dict[str, Any] = {}
    busy: Dict[str, Any] = {}
    if setup.seeds:
        try:  # extras: a pool they cannot read never ends a report
            boxes = pool_boxes(setup.config)
            comp = composition(work_dir, setup.strategies, setup.seeds, setup.rounds, boxes)
            busy = busyness_correlation(work_dir, setup.strategies, setup.seeds, setup.rounds,
                                        boxes)
        except (KeyError, ValueError, OSError) as e:
            print(f'composition and busyness skipped: {type(e).__name__}: {e}',
                  file=sys.stderr)
    selections = solver_summary(work_dir, setup.strategies, setup.seeds, setup.rounds)
    answers = box_answers(work_dir, setup.strategies, setup.seeds, setup.rounds)
    if prior is not None:
        record['seeds'] = merge_prior(prior, record, curves, box_curves, comp, selections)
        busy = busy or prior.get('busyness_correlation') or {}
    res = analyse_study(curves, box_curves, setup.strategies, record['seeds'], cost)
    res['box_curves'] = {s: {str(k): v for k, v in c.items()} for s, c in box_curves.items()}
    res['curves'] = {s: {str(k): v for k, v in c.items()} for s, c in curves.items()}
    if comp:
        res['selected_composition'] = comp
    if busy:
        res['busyness_correlation'] = busy
        res['busyness_seeds'] = setup.seeds or (prior or {}).get('busyness_seeds')
    res['selections'] = selections
    res['cpu_per_round'] = cpu_per_round(cpu)
    if answers:
        res['box_answers'] = answers
        res['check_prices'] = check_prices(box_curves, answers, cost.per_box, record['seeds'])
    if noise_seeds:
        image_seed = record['seeds'][0]
        res['training_noise'] = training_noise(setup, work_dir, image_seed, noise_seeds,
                                               train=not analyse_only, round_k=noise_round)
    elif prior is not None and prior.get('training_noise'):
        res['training_noise'] = prior['training_noise']
    res['setup'] = record
    out = osp.join(work_dir, report_name)
    write_json(out + '.json', res)
    write_text(out + '.md', report(res, setup.strategies))
    plot(out + '.png', res, setup.strategies)
    return res
