"""The active-learning round loop behind ``tools/al_train.py``.

Work-dir contract (``W``)::

    W/experiment.json          config fingerprint (a rerun with another config is refused),
                               written once the config and data have been checked
    W/round_<k>/labeled.json   ids round k trains on
    W/round_<k>/train/         mmengine work dir (checkpoints, logs)
    W/round_<k>/metrics.json   test metrics of round k's model
    W/round_<k>/training.json  wall seconds and iterations of the training run that finished
                               the round (a resumed round: from its resume)
    W/round_<k>/selection.json strategy, selected ids and every pool score, for round k+1
    W/round_<k>/annotations_coco.json  (oracle=none, COCO) the labelling tool's export
    W/round_<k+1>/train_annotations.json  the ann_file merged with it, which round k+1 reads
    W/summary.json, W/summary.csv, W/curve.png

Every file is written atomically and a finished round is never rewritten, so running the
same command again after any crash continues where it stopped. Paths inside ``W`` (mmengine's
``last_checkpoint`` pointers) are read relative to ``W``: a copied or moved work dir resumes.
"""
from __future__ import annotations

import copy
import gc
import hashlib
import logging
import os
import os.path as osp
import time
from typing import Any, Dict, Hashable, List, Optional

import torch
from mmengine.config import Config
from mmengine.dist import get_dist_info
from mmengine.logging import print_log
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from ..checkpoints import UnreadableCheckpoint
from ..detection.semi import evaluated_model
from ..fileio import read_json, write_json
from ..influence.dist import barrier, broadcast_object
from ..labelling.annotations import MERGED_FILE, export_path_for, import_export
from .context import selection_context
from .data import (build_dataset, check_disjoint, check_reference, dataset_ids,
                   scoring_dataset_cfg, test_pipeline_of, unwrap_subset)
from .launch import cpu_wrapper_cfg, init_distributed, rank0_model_everywhere
from ..dataset_index import id_index
from .extension import RoundExtension
from .selection import select
from .semi import semi_round
from .settings import al_settings, budget_of, check_oracle, checked_strategy
from .state import LabelState, initial_split, read_ids
from .summary import FinishedRound, primary_metric, summary_rows, write_summary


def check_writable_dir(path: str, what: str) -> None:
    """Fails before any work when ``path`` cannot be (or become) a folder to write in, rather
    than when the first result is written."""
    probe = osp.abspath(path)
    while not osp.exists(probe):
        probe = osp.dirname(probe)
    if not osp.isdir(probe):
        raise ValueError(f'{path}: {what} must be a folder, and '
                         f'{"it" if probe == osp.abspath(path) else probe} is a file')
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f'{path}: {what} is not writable ({probe} is read-only)')


def check_pool_size(al: Dict[str, Any], pool: int) -> None:
    """Every round's images must exist before round 0 trains: found out later, the run stops
    after training a round, with no summary."""
    first, rounds = al['initial_size'], al['rounds']
    if first > pool:
        raise ValueError(f'active_learning.initial_size={first} is larger than the pool ({pool} '
                         'images of train_dataloader.dataset)')
    least = al['budget'] if al['budget_unit'] == 'images' else 1
    needs = first + least * (rounds - 1)
    if needs > pool:
        raise ValueError(f'active_learning.rounds={rounds}: initial_size={first} and '
                         f'{rounds - 1} selection(s) of {least} image(s)'
                         f'{"" if least == al["budget"] else " or more"} need {needs} images, '
                         f'the pool has {pool}; lower budget or rounds')


def fingerprint(cfg: Config) -> str:
    """Identifies the experiment; the round count is left out so a finished run can be
    extended by more rounds."""
    keep = copy.deepcopy(cfg._cfg_dict.to_dict())
    keep.pop('work_dir', None)
    keep.pop('launcher', None)
    keep.get('active_learning', {}).pop('rounds', None)
    return hashlib.sha256(Config(keep).pretty_text.encode()).hexdigest()[:16]


def shorten_schedule(cfg: Config, iters: int) -> None:
    """Fine-tuning rounds: an iteration-based schedule cut to ``iters``, its scheduler
    steps scaled by the same ratio."""
    if cfg.train_cfg.get('type') != 'IterBasedTrainLoop':
        raise ValueError('active_learning.warm_start_iters needs an IterBasedTrainLoop')
    ratio = iters / cfg.train_cfg.max_iters
    cfg.train_cfg.max_iters = iters
    schedulers = cfg.get('param_scheduler') or []
    for sched in schedulers if isinstance(schedulers, list) else [schedulers]:
        for key in ('begin', 'end'):
            if isinstance(sched.get(key), int) and sched[key] < 10 ** 9:
                sched[key] = max(1, round(sched[key] * ratio)) if sched[key] else 0
        if 'milestones' in sched:
            sched['milestones'] = [max(1, round(m * ratio)) for m in sched['milestones']]


class ActiveLearningLoop:
    """Runs (or resumes) a whole experiment in ``work_dir``."""

    def __init__(self, cfg: Config, work_dir: str, launcher: str = 'none',
                 force: bool = False, oracle: Optional[str] = None,
                 annotations: Optional[str] = None, allow_missing: bool = False):
        self.cfg = cfg
        self.al = al_settings(cfg)
        if oracle is not None:
            self.al['oracle'] = oracle
        strategy = checked_strategy(self.al['strategy'])
        strategy.check_settings(self.al)  # again: --oracle may have changed it
        # what the strategy changes in each round (a research package may), else nothing
        self.extension = strategy.round_extension() or RoundExtension()
        check_oracle(self.al['oracle'])
        if (annotations or allow_missing) and self.al['oracle'] != 'none':
            raise ValueError('--annotations and --allow-missing need --oracle none')
        if annotations is not None and osp.isdir(annotations):
            raise ValueError(f'--annotations {annotations}: a folder; name the export file')
        check_writable_dir(work_dir, 'the work dir')
        self.annotations = annotations
        self.allow_missing = allow_missing
        self.sources: Dict[str, Any] = {}
        self.work_dir = osp.abspath(work_dir)
        self.launcher = launcher
        self.force = force

    # -- paths -------------------------------------------------------------------------------
    def round_dir(self, k: int) -> str:
        return osp.join(self.work_dir, f'round_{k}')

    def path(self, k: int, name: str) -> str:
        return osp.join(self.round_dir(k), name)

    def is_rank0(self) -> bool:
        return get_dist_info()[0] == 0

    def write(self, fn, *args) -> None:
        if self.is_rank0():
            fn(*args)
        barrier()

    def agree(self, fn):
        """``fn()`` evaluated on rank 0 and broadcast: decisions that read files must not
        race with rank 0's writes."""
        return broadcast_object(fn() if self.is_rank0() else None)

    # -- setup -------------------------------------------------------------------------------
    def setup(self) -> None:
        """Checks the work dir, the config and the data, then marks the work dir: a failed
        start leaves nothing that would refuse the corrected command."""
        fp = fingerprint(self.cfg)
        init_distributed(self.launcher)
        self.cfg.launcher = self.launcher
        if self.launcher != 'none' and not torch.cuda.is_available():
            self.cfg.model_wrapper_cfg = self.cfg.get('model_wrapper_cfg') or cpu_wrapper_cfg()
        init_default_scope(self.cfg.get('default_scope', 'mmdet'))
        marker = osp.join(self.work_dir, 'experiment.json')
        old = self.agree(lambda: read_json(marker).get('fingerprint')
                         if osp.exists(marker) else None)
        if old is not None and not self.force:
            if old != fp:
                raise ValueError(f'{self.work_dir} holds an experiment from a different '
                                   'config; use another --work-dir, or --force to continue it')
        pipeline = test_pipeline_of(self.cfg)
        self.source_cfg = scoring_dataset_cfg(self.cfg.train_dataloader.dataset, pipeline)
        self.source = build_dataset(self.source_cfg, 'train_dataloader.dataset')
        self.all_ids = dataset_ids(self.source)
        if not self.all_ids:
            raise ValueError('train_dataloader.dataset: the pool has no image')
        check_pool_size(self.al, len(self.all_ids))
        ref = self.al['reference']
        disjoint = ref == 'val' and not self.al['allow_split_overlap']
        splits = {'train_dataloader.dataset': self.source}
        for name in ('val', 'test') if disjoint else (ref,) if ref != 'labelled' else ():
            field = f'{name}_dataloader.dataset'
            splits[field] = build_dataset(scoring_dataset_cfg(
                self.cfg[f'{name}_dataloader'].dataset, pipeline), field)
        if ref != 'labelled':
            check_reference(splits[f'{ref}_dataloader.dataset'], f'{ref}_dataloader.dataset')
        if disjoint:
            check_disjoint(splits)
        self.write(write_json, marker, dict(fingerprint=fp, active_learning=self.al))

    # -- rounds ------------------------------------------------------------------------------
    def labelled_for(self, k: int) -> List[Hashable]:
        path = self.path(k, 'labeled.json')

        def load_or_make():
            if osp.exists(path):
                return LabelState.load(path, self.all_ids).labelled
            if k == 0:
                ids = initial_split(self.all_ids, self.al['initial_size'], self.al['seed'])
            else:
                prev = LabelState.load(self.path(k - 1, 'labeled.json'), self.all_ids)
                sel = read_ids(self.path(k - 1, 'selection.json'), 'selected')
                ids = prev.add(sel).labelled
            write_json(path, ids)
            return ids

        return self.agree(load_or_make)

    def round_done(self, k: int) -> bool:
        last = k == self.al['rounds'] - 1
        return self.agree(lambda: osp.exists(self.path(k, 'metrics.json')) and (
            last or osp.exists(self.path(k, 'selection.json'))))

    def merged_ann_file(self, k: int) -> Optional[str]:
        """The annotation file round k trains on once annotations were imported (oracle=none,
        COCO): the latest ``round_<j>/train_annotations.json``, j ≤ k; None: the config's."""
        merged = (self.path(j, MERGED_FILE) for j in range(k, 0, -1))
        return next((path for path in merged if osp.exists(path)), None)

    def with_ann_file(self, ann_file: Optional[str]) -> Config:
        """A copy of the config whose training data source reads ``ann_file`` (if given)."""
        cfg = copy.deepcopy(self.cfg)
        if ann_file is not None:
            inner, subset = unwrap_subset(cfg.train_dataloader.dataset)
            inner['ann_file'] = ann_file
            cfg.train_dataloader.dataset = inner if subset is None else dict(
                type='ActiveSubset', dataset=inner, **subset)
        return cfg

    def runner_cfg(self, k: int, ann_file: Optional[str] = None) -> Config:
        cfg = self.with_ann_file(ann_file)
        cfg.pop('active_learning', None)
        cfg.work_dir = self.path(k, 'train')
        inner, _ = unwrap_subset(cfg.train_dataloader.dataset)
        inner = self.extension.train_dataset(self, k, inner, cfg)
        cfg.train_dataloader.dataset = dict(type='ActiveSubset', dataset=inner,
                                            ids_file=self.path(k, 'labeled.json'))
        semi_round(self, cfg, k)
        # resumed from the checkpoint found here, never from mmengine's own lookup: its
        # pointer file holds an absolute path, the work dir's old place after a move
        cfg.load_from = self.last_checkpoint(k)
        cfg.resume = cfg.load_from is not None
        cfg.experiment_name = f'round{k}_{time.time_ns()}'
        randomness = dict(cfg.get('randomness') or {})
        randomness.setdefault('seed', self.al['seed'])
        cfg.randomness = randomness
        if self.al['warm_start'] and k > 0:
            # Weights only: resuming from the previous round would carry over its iteration
            # count and skip this round's training. A crash inside this round resumes as usual.
            if cfg.load_from is None:
                cfg.load_from = self.warm_start_checkpoint(k)
            if self.al['warm_start_iters']:
                shorten_schedule(cfg, self.al['warm_start_iters'])
        return cfg

    def strategy_name(self) -> str:
        strategy = self.al['strategy']
        return strategy if isinstance(strategy, str) else str(strategy.get('type'))

    def count_boxes(self, ids: List[Hashable], ann_file: Optional[str] = None,
                    k: Optional[int] = None) -> float:
        """The boxes labelling ``ids`` cost: every real box of a fully labelled image, and
        what a partly labelled one was charged up to round ``k`` (:class:`RoundExtension`)."""
        partial = self.extension.charged(self, k) if k is not None else {}
        source = self.source
        if ann_file is not None:
            if ann_file not in self.sources:
                self.sources[ann_file] = build_dataset(dict(self.source_cfg, ann_file=ann_file),
                                                       ann_file)
            source = self.sources[ann_file]
        wanted = set(ids)
        total = sum(n for i, n in partial.items() if i in wanted)
        wanted -= set(partial)
        for i in range(len(source)):
            info = source.get_data_info(i)
            if info['img_id'] in wanted:
                total += sum(1 for inst in info.get('instances', [])
                             if not inst.get('ignore_flag', 0))
        return total

    def last_checkpoint(self, k: int) -> Optional[str]:
        """Round k's latest checkpoint: the file its ``last_checkpoint`` pointer names, looked
        up next to the pointer (the pointer's absolute path is where the work dir was when it
        was written)."""
        folder = self.path(k, 'train')
        pointer = osp.join(folder, 'last_checkpoint')
        if not osp.exists(pointer):
            return None
        with open(pointer) as f:
            path = osp.join(folder, osp.basename(f.read().strip()))
        return path if osp.exists(path) else None

    def warm_start_checkpoint(self, k: int) -> str:
        """Round k-1's checkpoint, which warm starts round k: one deleted (to free disk) would
        otherwise train round k from scratch without a word."""
        prev = self.last_checkpoint(k - 1)
        if prev is None:
            raise ValueError(f"{self.path(k - 1, 'train')}: round {k - 1}'s checkpoint is "
                             f'missing, and active_learning.warm_start=True starts round {k} '
                             'from it; restore it and run the same command again')
        return prev

    def load_or_train(self, k: int, runner: Runner, trained: Optional[str]) -> None:
        """Round k's model: ``trained`` loaded, or trained (resumed, or warm started); a
        checkpoint that cannot be read is an error saying what to do."""
        try:
            if trained is not None:
                runner.load_checkpoint(trained, map_location='cpu')
            else:
                start = time.perf_counter()
                runner.train()
                rank0_model_everywhere(runner.model)
                self.write(write_json, self.path(k, 'training.json'),
                           dict(seconds=time.perf_counter() - start, iters=runner.iter))
        except UnreadableCheckpoint as e:
            raise ValueError(f'{e}; delete it and run the same command again to train round '
                             f'{k} from its start') from None

    def run_round(self, k: int) -> None:
        if self.al['warm_start'] and k > 0 and self.last_checkpoint(k) is None:
            self.warm_start_checkpoint(k)  # missing: an error before round k writes a file
        labelled = self.labelled_for(k)
        if self.is_rank0():
            self.extension.before_training(self, k)
        barrier()
        ann_file = self.agree(lambda: self.merged_ann_file(k))
        runner = Runner.from_cfg(self.runner_cfg(k, ann_file))
        metrics_path = self.path(k, 'metrics.json')
        metrics = self.agree(lambda: read_json(metrics_path) if osp.exists(metrics_path)
                             else None)
        trained = self.agree(lambda: self.last_checkpoint(k))
        # Trained and tested already (a crash during selection, or a shared round 0):
        # resuming would replay the whole data order just to reach the last iteration.
        self.load_or_train(k, runner, trained if metrics is not None else None)
        if metrics is None:
            metrics = {k_: float(v) for k_, v in runner.test().items()}
            self.write(write_json, metrics_path, metrics)
        seconds = None
        selected = self.agree(lambda: osp.exists(self.path(k, 'selection.json')))
        if k < self.al['rounds'] - 1 and not selected:
            model = evaluated_model(runner.model)
            ctx = selection_context(self.with_ann_file(ann_file), model, labelled,
                                    self.al['reference'],
                                    batch_size=self.al['batch_size'],
                                    num_workers=self.al['num_workers'], seed=self.al['seed'])
            seconds = self.extension.select(self, k, ctx)
            if seconds is None:
                seconds = select(self.al['strategy'], ctx, budget_of(self.al),
                                 self.round_dir(k), self.al['export_coco'],
                                 self.al['preannotation_thr'],
                                 self.al['labelstudio_image_root']).seconds
        mAP = primary_metric(metrics, self.al['metric'])
        print_log(f"round {k}: {len(labelled)} labelled images, "
                  f"{self.count_boxes(labelled, ann_file, k):g} boxes, mAP "
                  f"{'-' if mAP is None else f'{mAP:.4f}'}, strategy {self.strategy_name()}, "
                  f"selection {'-' if seconds is None else f'{seconds:.1f}s'}",
                  logger='current')
        del runner
        gc.collect()

    def run(self) -> Optional[str]:
        """Runs every round not yet done; returns None, or a message when paused."""
        self.setup()
        for k in range(self.al['rounds']):
            if k > 0 and self.al['oracle'] == 'none':
                missing = self.agree(lambda: self.missing_annotations(k - 1))
                if missing is not None:
                    self.write_summary()
                    return missing
            if not self.round_done(k):
                self.run_round(k)
        self.write_summary()
        return None

    def missing_annotations(self, k: int) -> Optional[str]:
        """With a human oracle, round k+1 waits for the annotations of the images selected in
        round k: a new Pascal VOC XML per image (XML datasets), or a COCO export from a
        labelling tool, which is then merged (COCO datasets, :meth:`import_coco`)."""
        sel_path = self.path(k, 'selection.json')
        selected = read_ids(sel_path, 'selected')
        if self.source.get_data_info(0).get('xml_path') is None:
            return self.import_coco(k, selected)
        if self.annotations:
            raise ValueError('--annotations is for COCO datasets; an XML dataset waits for '
                             'one Pascal VOC XML per selected image')
        since = os.path.getmtime(sel_path)
        index = id_index(self.source)
        missing = []
        for img_id in selected:
            xml = self.source.get_data_info(index[img_id])['xml_path']
            if not osp.exists(xml) or os.path.getmtime(xml) <= since:
                missing.append(xml)
        if not missing:
            return None
        return (f'round {k + 1} waits for annotations: {len(missing)} of {len(selected)} '
                f'selected images (list: {self.path(k, "selected.txt")}) have no new Pascal VOC '
                f'XML yet, e.g. {missing[0]}. Pre-annotations to start from: '
                f'{self.path(k, "preannotations_coco.json")}. Save each XML at that path, then '
                'run the same command again.')

    def import_coco(self, k: int, selected: List[Hashable]) -> Optional[str]:
        """Imports round k's COCO export into ``round_<k+1>/train_annotations.json`` (with
        ``round_<k+1>/labeled.json``, written first: the merged file marks a finished import)."""
        merged = self.path(k + 1, MERGED_FILE)
        if osp.exists(merged):
            return None
        export = export_path_for(self.round_dir(k), self.annotations)
        waits = f'round {k + 1} waits for annotations: '
        stale = self.annotations and osp.exists(export) and (
            os.path.getmtime(export) <= os.path.getmtime(self.path(k, 'selection.json')))
        if not osp.exists(export) or stale:
            return (f'{waits}label the {len(selected)} selected images: Label Studio tasks '
                    f'{self.path(k, "preannotations_labelstudio.json")} (config '
                    f'{self.path(k, "labelstudio_config.xml")}), COCO for CVAT '
                    f'{self.path(k, "preannotations_coco.json")}, contact sheet '
                    f'{self.path(k, "selected.jpg")}; then save the export (COCO, or Label '
                    f'Studio JSON) to {export}'
                    f'{" (the file there predates this selection)" if stale else ""} and run the '
                    'same command again.')
        base = self.merged_ann_file(k) or self.source.ann_file
        result = import_export(export, base, selected, self.source.metainfo['classes'])
        if result.missing and not self.allow_missing:
            return (f'{waits}{len(result.missing)} of {len(selected)} selected images are not '
                    f'in {export}, e.g. {result.missing[:3]}: export them too and run the same '
                    'command again, or add --allow-missing to leave them unlabelled.')
        if result.missing:
            print_log(f'{len(result.missing)} selected images are not in {export} and stay '
                      f'unlabelled (--allow-missing): {result.missing}', logger='current',
                      level=logging.WARNING)
        labelled = LabelState.load(self.path(k, 'labeled.json'), self.all_ids).add(
            result.labelled)
        write_json(self.path(k + 1, 'labeled.json'), labelled.labelled)
        write_json(merged, result.coco)
        print_log(f'{export}: imported {len(result.labelled)} images, {result.boxes} boxes '
                  f'({result.clipped} clipped to the image, {result.dropped} under 1 px '
                  f'dropped, {len(result.ignored)} images not selected in round {k} ignored) '
                  f'-> {merged}', logger='current')
        return None

    # -- summary -----------------------------------------------------------------------------
    def write_summary(self) -> None:
        if self.is_rank0():
            done = []
            for k in range(self.al['rounds']):
                if not osp.exists(self.path(k, 'metrics.json')):
                    break
                ids = read_json(self.path(k, 'labeled.json'))
                sel_path = self.path(k, 'selection.json')
                trained = self.path(k, 'training.json')
                done.append(FinishedRound(
                    ids=ids, metrics=read_json(self.path(k, 'metrics.json')),
                    selection=read_json(sel_path) if osp.exists(sel_path) else {},
                    boxes=self.count_boxes(ids, self.merged_ann_file(k), k),
                    training_seconds=read_json(trained)['seconds'] if osp.exists(trained)
                    else None))
            rows = summary_rows(done, budget_of(self.al).cost, self.al['metric'],
                                self.strategy_name())
            write_summary(self.work_dir, rows, self.strategy_name())
        barrier()
