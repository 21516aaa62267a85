"""A supervised mmdet training config rewritten as mmdet's mean teacher (``SemiBaseDetector``):
labelled images train the student on their boxes, unlabelled ones on the teacher's confident
detections, the teacher is the EMA of the student (``MeanTeacherHook``), optionally after a
burn-in on the labelled images alone (``BurnInMeanTeacherHook``), and when training ends the
teacher is written as a plain checkpoint of the configured detector (``teacher.pth``, which
the work dir's ``last_checkpoint`` then names), so everything that loads a round's model loads
the teacher without knowing about the rewrite.
"""
from __future__ import annotations

import copy
import os.path as osp
from typing import Any, Dict, List, Optional

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.runner.checkpoint import weights_to_cpu
from mmengine.structures import InstanceData
from mmengine.utils import apply_to
from mmdet.engine.hooks import MeanTeacherHook
from mmdet.models.detectors.semi_base import SemiBaseDetector
from mmdet.registry import HOOKS, MODELS
from torch import nn

from ..fileio import atomic_write, write_text
from .assigners import with_ignore_regions

BRANCHES = ['sup', 'unsup_teacher', 'unsup_student']
TEACHER_FILE = 'teacher.pth'
# the pseudo boxes of the weak view are carried to the strong one by these transforms'
# homography matrices
VIEW_META = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
             'flip_direction', 'homography_matrix')
# mmdet's colour operations (configs/_base_/datasets/semi_coco_detection.py)
COLOUR = [[dict(type=t)] for t in ('ColorTransform', 'AutoContrast', 'Equalize', 'Sharpness',
                                   'Posterize', 'Solarize', 'Color', 'Contrast', 'Brightness')]
# Shifts only (up to 10 % of the side): they move a pseudo box exactly, where mmdet's rotation
# and shear turn it into a looser enclosing box, noise a small detector trained for a few
# hundred steps does not average out.
SHIFT = [[dict(type='TranslateX')], [dict(type='TranslateY')]]
# at most three patches of up to a tenth of the side (mmdet: five, a fifth): a patch can hide
# a small object whose pseudo box stays
ERASE = dict(type='RandomErasing', n_patches=(1, 3), ratio=(0, 0.1))
PACKS = ('PackDetInputs', 'mmdet.PackDetInputs')


def _steps(pipeline: List[dict], field: str) -> Dict[str, List[dict]]:
    """The train pipeline in parts: image loading, augmentation, the final pack."""
    pipeline = [dict(p) for p in pipeline]
    if not pipeline or pipeline[-1].get('type') not in PACKS:
        raise ValueError(f'{field}: active_learning.semi needs a train pipeline that ends in '
                         'PackDetInputs')
    kind = [str(p.get('type')).split('.')[-1] for p in pipeline[:-1]]
    return dict(load=[p for p, t in zip(pipeline, kind) if t.startswith('LoadImage')],
                augment=[p for p, t in zip(pipeline, kind)
                         if not t.startswith('Load') and t != 'FilterAnnotations'],
                pack=[pipeline[-1]])


def sup_pipeline(pipeline: List[dict], field: str) -> List[dict]:
    """The config's own train pipeline, packed into the ``sup`` branch."""
    pipeline = [dict(p) for p in pipeline]
    _steps(pipeline, field)
    return pipeline[:-1] + [dict(type='MultiBranch', branch_field=BRANCHES, sup=pipeline[-1])]


def unsup_pipeline(pipeline: List[dict], field: str) -> List[dict]:
    """No annotation is loaded (``LoadEmptyAnnotations``); the teacher sees the config's own
    augmentation (the weak view), the student that plus colour, a shift and erased patches
    (the strong view)."""
    parts = _steps(pipeline, field)
    pack = dict(type='PackDetInputs', meta_keys=VIEW_META)
    strong = [dict(type='RandomOrder', transforms=[
        dict(type='RandAugment', aug_space=COLOUR, aug_num=1),
        dict(type='RandAugment', aug_space=SHIFT, aug_num=1)]), dict(ERASE)]
    return parts['load'] + [dict(type='LoadEmptyAnnotations'), dict(
        type='MultiBranch', branch_field=BRANCHES,
        unsup_teacher=parts['augment'] + [pack],
        unsup_student=copy.deepcopy(parts['augment']) + strong + [dict(pack)])]


def with_pipeline(ds_cfg: dict, pipeline: List[dict]) -> dict:
    """``ds_cfg`` (through its wrappers, ``dataset=``) with ``pipeline``."""
    ds_cfg = copy.deepcopy(ds_cfg)
    inner = ds_cfg
    while 'pipeline' not in inner and isinstance(inner.get('dataset'), dict):
        inner = inner['dataset']
    inner['pipeline'] = pipeline
    return ds_cfg


def pipeline_of(ds_cfg: dict) -> List[dict]:
    while 'pipeline' not in ds_cfg and isinstance(ds_cfg.get('dataset'), dict):
        ds_cfg = ds_cfg['dataset']
    return list(ds_cfg.get('pipeline') or [])


@MODELS.register_module()
class BurnInTeacher(SemiBaseDetector):
    """mmdet's mean teacher that trains on the labelled images alone while ``burning_in``
    (set by :class:`BurnInMeanTeacherHook`): no teacher pass and no unlabelled loss, so a
    burn-in step costs what a supervised one does."""
    burning_in = False

    def loss(self, multi_batch_inputs: Dict[str, torch.Tensor],
             multi_batch_data_samples: Dict[str, list]) -> dict:
        if self.burning_in:
            return self.loss_by_gt_instances(multi_batch_inputs['sup'],
                                             multi_batch_data_samples['sup'])
        return super().loss(multi_batch_inputs, multi_batch_data_samples)


@HOOKS.register_module()
class BurnInMeanTeacherHook(MeanTeacherHook):
    """mmdet's ``MeanTeacherHook`` after ``burn_in`` (a share of the training steps) on the
    labelled images alone, the teacher a copy of the student until then. Which step burns in
    follows the runner's iteration, so a resumed run burns in as an uninterrupted one."""

    def __init__(self, momentum: float, burn_in: float, skip_buffer: bool = False) -> None:
        super().__init__(momentum=momentum, skip_buffer=skip_buffer)
        self.burn_in, self.burn_in_iters = burn_in, 0

    def before_train(self, runner: Any) -> None:
        super().before_train(runner)
        self.burn_in_iters = round(self.burn_in * runner.max_iters)

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        model = getattr(runner.model, 'module', runner.model)
        model.burning_in = runner.iter < self.burn_in_iters

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: Any = None) -> None:
        model = getattr(runner.model, 'module', runner.model)
        self.momentum_update(model, 1 if runner.iter < self.burn_in_iters else self.momentum)


@MODELS.register_module()
class UncertainIgnoringTeacher(BurnInTeacher):
    """mmdet's mean teacher, whose unsure detections (``ignore_thr`` <= score <
    ``cls_pseudo_thr``) are ignore regions of the student's loss on unlabelled images. With
    only the confident ones as boxes, every object the teacher is unsure of would train as
    background: on BCCD, where the teacher finds about half the cells at 0.5, that
    suppressed the cells the labelled images teach. Holds for detectors whose assigners are
    ``IgnoringMaxIoUAssigner`` (:func:`~.assigners.with_ignore_regions`)."""

    def loss_by_pseudo_instances(self, batch_inputs: torch.Tensor, batch_data_samples: list,
                                 batch_info: Any = None) -> dict:
        low, high = self.semi_train_cfg.ignore_thr, self.semi_train_cfg.cls_pseudo_thr
        for sample in batch_data_samples:
            gt = sample.gt_instances
            unsure = (gt.scores >= low) & (gt.scores < high)
            sample.ignored_instances = InstanceData(bboxes=gt.bboxes[unsure],
                                                    labels=gt.labels[unsure])
        return super().loss_by_pseudo_instances(batch_inputs, batch_data_samples, batch_info)


def semi_model(detector: dict, cls_pseudo_thr: float, unsup_weight: float,
               ignore_thr: Optional[float] = None, burn_in: float = 0) -> dict:
    """Teacher and student of ``detector``; predictions (tests, scoring) are the teacher's.
    With ``ignore_thr``, the teacher's unsure detections are ignore regions
    (:class:`UncertainIgnoringTeacher`); with ``burn_in``, the first steps train on labelled
    images alone (:class:`BurnInTeacher`); with neither, the model is mmdet's own."""
    preprocessor = detector.get('data_preprocessor')
    if not preprocessor:
        raise ValueError('model.data_preprocessor: active_learning.semi needs the detector\'s '
                         'own data preprocessor')
    train_cfg = dict(freeze_teacher=True, sup_weight=1.0, unsup_weight=unsup_weight,
                     cls_pseudo_thr=cls_pseudo_thr, min_pseudo_bbox_wh=(1e-2, 1e-2))
    kind = BurnInTeacher.__name__ if burn_in else 'SemiBaseDetector'
    if ignore_thr is not None and ignore_thr < cls_pseudo_thr:
        detector = copy.deepcopy(detector)
        if with_ignore_regions(detector.get('train_cfg')):
            kind, train_cfg['ignore_thr'] = UncertainIgnoringTeacher.__name__, ignore_thr
    return dict(type=kind, detector=detector,
                data_preprocessor=dict(type='MultiBranchDataPreprocessor',
                                       data_preprocessor=preprocessor),
                semi_train_cfg=train_cfg, semi_test_cfg=dict(predict_on='teacher'))


def to_semi(cfg: Any, unlabelled: dict, momentum: float, cls_pseudo_thr: float,
            unsup_weight: float, unlabelled_per_labelled: int,
            ignore_thr: Optional[float] = None, burn_in: float = 0) -> None:
    """Rewrites a training config in place. Its train dataset becomes the labelled source and
    ``unlabelled`` (a dataset config of the unlabelled images, its pipeline replaced) the
    other; each batch holds the config's batch size of labelled images and
    ``unlabelled_per_labelled`` times as many unlabelled ones. Buffers (BatchNorm statistics)
    are averaged too: a teacher that never trains would keep its initial ones."""
    field = 'train_dataloader.dataset.pipeline'
    labelled = cfg.train_dataloader.dataset
    labelled = labelled.to_dict() if hasattr(labelled, 'to_dict') else dict(labelled)
    pipeline = pipeline_of(labelled)
    per_batch = cfg.train_dataloader.batch_size
    loader = cfg.train_dataloader
    loader.batch_size = per_batch * (1 + unlabelled_per_labelled)
    loader.sampler = dict(type='MultiSourceSampler', batch_size=loader.batch_size,
                          source_ratio=[1, unlabelled_per_labelled])
    loader.dataset = dict(type='ConcatDataset', datasets=[
        with_pipeline(labelled, sup_pipeline(pipeline, field)),
        with_pipeline(unlabelled, unsup_pipeline(pipeline, field))])
    detector = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(cfg.model)
    cfg.model = semi_model(detector, cls_pseudo_thr, unsup_weight, ignore_thr, burn_in)
    teacher_hook = dict(type='MeanTeacherHook', momentum=momentum, skip_buffer=False)
    if burn_in:
        teacher_hook.update(type=BurnInMeanTeacherHook.__name__, burn_in=burn_in)
    cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [
        teacher_hook,
        dict(type='TeacherCheckpointHook')]


def evaluated_model(model: nn.Module) -> nn.Module:
    """The model a round is tested, scored and exported with: a mean teacher's teacher, its
    parameters marked trainable as the student's are (as the plain detector loaded from
    ``teacher.pth`` has them), or ``model`` itself."""
    model = getattr(model, 'module', model)
    if not isinstance(model, SemiBaseDetector):
        return model
    for t, s in zip(model.teacher.parameters(), model.student.parameters()):
        t.requires_grad_(s.requires_grad)
    return model.teacher


def teacher_checkpoint(runner: Any) -> Dict[str, Any]:
    """The teacher as a checkpoint of the plain detector; its meta says training finished, so
    a rerun that resumes from it tests and selects without training again."""
    model = getattr(runner.model, 'module', runner.model)
    meta = dict(epoch=runner.epoch, iter=runner.iter, seed=runner.seed,
                experiment_name=runner.experiment_name,
                dataset_meta=getattr(runner.train_dataloader.dataset, 'metainfo', None))
    hub = apply_to(runner.message_hub.state_dict(), lambda x: hasattr(x, 'cpu'),
                   lambda x: x.cpu())
    return dict(meta=meta, state_dict=weights_to_cpu(model.teacher.state_dict()),
                message_hub=hub)


@HOOKS.register_module()
class TeacherCheckpointHook(Hook):
    """Writes ``<work_dir>/teacher.pth`` when training ends, then points ``last_checkpoint``
    at it (both atomically): the semi-supervised checkpoints before it stay for a resume
    during training."""
    priority = 'LOWEST'

    def after_train(self, runner: Any) -> None:
        if not is_main_process():
            return
        path = osp.join(runner.work_dir, TEACHER_FILE)
        state = teacher_checkpoint(runner)
        atomic_write(path, lambda f: torch.save(state, f), mode='wb')
        write_text(osp.join(runner.work_dir, 'last_checkpoint'), path)


def labelled_view(cfg: Any) -> Any:
    """``cfg`` as a supervised config: a mean teacher's (``SemiBaseDetector`` or a subclass,
    as mmdet's semi-supervised configs build it) train dataset is replaced by its labelled
    source, the first of its ``ConcatDataset``; any other config is returned as it is."""
    model_type = (cfg.get('model') or {}).get('type')
    model_cls = MODELS.get(model_type) if isinstance(model_type, str) else model_type
    dataset = cfg.train_dataloader.dataset
    if not (isinstance(model_cls, type) and issubclass(model_cls, SemiBaseDetector)) or \
            dataset.get('type') != 'ConcatDataset':
        return cfg
    cfg = copy.deepcopy(cfg)
    cfg.train_dataloader.dataset = dataset.datasets[0]
    return cfg
