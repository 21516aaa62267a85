"""Labelling input and output: importing labelling-tool exports (COCO, Label Studio), Label
Studio tasks and labelling configs, COCO pre-annotations, their score thresholds and the
contact sheet. Depends on mmdet and :mod:`isal_mmdet.fileio` only, never on :mod:`isal_mmdet.al`.
"""
