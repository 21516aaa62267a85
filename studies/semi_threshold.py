"""How right and how complete a round's detections are on the rest of the pool, per score
threshold: the check behind active_learning.semi's default cls_pseudo_thr (docs/design.md).

    python studies/semi_threshold.py CONFIG WORK_DIR [--cfg-options k=v ...]

WORK_DIR is a finished round loop (round 0's labeled.json and checkpoint); a detection is
right when it overlaps an unmatched box of its class at IoU >= 0.5.
"""
import argparse
import os.path as osp

import torch


def matches(bboxes, labels, scores, gt_boxes, gt_labels) -> int:
    """Right detections, greedily by score, each box matched once."""
    from mmdet.structures.bbox import bbox_overlaps
    if not len(bboxes) or not len(gt_boxes):
        return 0
    iou = bbox_overlaps(bboxes, gt_boxes)
    used, right = set(), 0
    for j in torch.argsort(scores, descending=True).tolist():
        free = [(iou[j, q].item(), q) for q in range(len(gt_boxes))
                if q not in used and gt_labels[q] == labels[j] and iou[j, q] >= 0.5]
        if free:
            used.add(max(free)[1])
            right += 1
    return right


def main() -> None:
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config')
    p.add_argument('work_dir')
    p.add_argument('--thresholds', nargs='+', type=float, default=[0.3, 0.4, 0.5, 0.6, 0.7])
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    args = p.parse_args()
    import isal_mmdet  # noqa: F401
    from mmdet.apis import inference_detector, init_detector
    from isal_mmdet.al.data import build_dataset, scoring_dataset_cfg, test_pipeline_of
    from isal_mmdet.fileio import load_config, read_json
    cfg = load_config(args.config, args.cfg_options)
    train = osp.join(args.work_dir, 'round_0', 'train')
    with open(osp.join(train, 'last_checkpoint')) as f:
        model = init_detector(cfg, osp.join(train, osp.basename(f.read().strip())), device='cpu')
    pool = build_dataset(scoring_dataset_cfg(cfg.train_dataloader.dataset, test_pipeline_of(cfg)),
                         'train_dataloader.dataset')
    labelled = set(read_json(osp.join(args.work_dir, 'round_0', 'labeled.json')))
    right = {t: 0 for t in args.thresholds}
    found = {t: 0 for t in args.thresholds}
    boxes = images = 0
    for i in range(len(pool)):
        info = pool.get_data_info(i)
        if info['img_id'] in labelled:
            continue
        gt = [inst for inst in info['instances'] if not inst.get('ignore_flag', 0)]
        gt_boxes = torch.tensor([inst['bbox'] for inst in gt], dtype=torch.float32).view(-1, 4)
        gt_labels = [inst['bbox_label'] for inst in gt]
        images, boxes = images + 1, boxes + len(gt)
        pred = inference_detector(model, info['img_path']).pred_instances
        for t in args.thresholds:
            keep = pred.scores >= t
            found[t] += int(keep.sum())
            right[t] += matches(pred.bboxes[keep], pred.labels[keep], pred.scores[keep],
                                gt_boxes, gt_labels)
    print(f'{images} pool images, {boxes} boxes')
    for t in args.thresholds:
        print(f'score >= {t:g}: {found[t]} detections, {right[t] / max(found[t], 1):.3f} right, '
              f'{right[t] / max(boxes, 1):.3f} of the boxes found')


if __name__ == '__main__':
    main()
