"""Partly labelled images (PartialLabels) and the simulated box-level oracle (issue 37)."""
import json
import os.path as osp

import pytest
import torch
from mmdet.models.utils import unpack_gt_instances
from mmdet.structures.bbox import bbox_overlaps, get_box_tensor
from mmengine.dataset import pseudo_collate

from conftest import ROOT, TINY, build_detector, coco_dataset, voc_dataset
from isal_mmdet.datasets.al_subset import ActiveSubset
from isal_mmdet.detection import sum_losses
from isal_mmdet.fileio import write_json
from isal_mmdet.study.box.oracle import answer, merge_labels, partial_labels
from isal_mmdet.study.box.partial_labels import PartialLabels, read_labels


def human(bbox, label=0):
    return dict(bbox=list(map(float, bbox)), bbox_label=label, ignore_flag=0, source='human')


def ignore(bbox, label=0):
    return dict(bbox=list(map(float, bbox)), bbox_label=label, ignore_flag=1, source='ignore')


def labels_file(tmp_path, entries, name='box_labels.json'):
    path = str(tmp_path / name)
    write_json(path, dict(images=[{'background': [], 'queries': len(e['instances']), **e}
                                  for e in entries]))
    return path


def first_with_boxes(ds, n=1, skip=0):
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    return [info for info in infos if info['instances']][skip:skip + n]


def index_of(ds, img_id):
    return next(i for i in range(len(ds)) if ds.get_data_info(i)['img_id'] == img_id)


def tiny_retinanet(ignore_iof_thr, assigner='MaxIoUAssigner'):
    from mmengine.config import Config
    from mmdet.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, TINY['retinanet']))
    cfg.model.train_cfg.assigner.ignore_iof_thr = ignore_iof_thr
    cfg.model.train_cfg.assigner.type = assigner
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.eval()


def logit_grads(model, item):
    """d(training loss)/d(classification logits), one row per anchor, and the anchors."""
    data = model.data_preprocessor(pseudo_collate([item]), False)
    cls_scores, bbox_preds = model.bbox_head(model.extract_feat(data['inputs']))
    for c in cls_scores:
        c.retain_grad()
    gts, ignores, metas = unpack_gt_instances(data['data_samples'])
    sum_losses(model.bbox_head.loss_by_feat(cls_scores, bbox_preds, gts, metas, ignores)
               ).backward()
    num_classes = model.bbox_head.cls_out_channels
    grads = torch.cat([c.grad.permute(0, 2, 3, 1).reshape(-1, num_classes) for c in cls_scores])
    anchors = torch.cat(model.bbox_head.prior_generator.grid_priors(
        [c.shape[-2:] for c in cls_scores], device='cpu'))
    return grads, anchors


def test_ignored_region_gets_zero_gradient(synthetic_voc, tmp_path):
    ds = voc_dataset(synthetic_voc)
    info = first_with_boxes(ds)[0]
    real = info['instances'][0]
    # the image corner farthest from the human box: a region with nothing labelled
    w, h = info['width'], info['height']
    cx, cy = (real['bbox'][0] + real['bbox'][2]) / 2, (real['bbox'][1] + real['bbox'][3]) / 2
    x1 = 0 if cx > w / 2 else w - 96
    y1 = 0 if cy > h / 2 else h - 96
    region = [x1, y1, x1 + 96, y1 + 96]
    entry = dict(img_id=info['img_id'], instances=[human(real['bbox'], real['bbox_label'])])
    with_ignore = PartialLabels(ds, labels_file(tmp_path, [dict(entry, instances=entry[
        'instances'] + [ignore(region)])], 'ignore.json'))
    without = PartialLabels(ds, labels_file(tmp_path, [entry], 'plain.json'))
    idx = index_of(ds, info['img_id'])

    item = with_ignore[idx]
    sample = item['data_samples']
    assert len(sample.gt_instances) == 1 and len(sample.ignored_instances) == 1
    model = tiny_retinanet(ignore_iof_thr=0.5)
    grads, anchors = logit_grads(model, item)
    region, gt = (get_box_tensor(i.bboxes) for i in (sample.ignored_instances,
                                                     sample.gt_instances))
    inside = bbox_overlaps(anchors, region, mode='iof')[:, 0] > 0.5
    assert inside.sum() > 10
    # premise: without the region these anchors are negatives (IoU < neg_iou_thr 0.4)
    assert bbox_overlaps(anchors[inside], gt).max() < 0.4
    assert torch.equal(grads[inside], torch.zeros_like(grads[inside]))
    assert grads[~inside].abs().sum() > 0

    plain, _ = logit_grads(tiny_retinanet(ignore_iof_thr=0.5), without[idx])
    assert (plain[inside].abs().sum(1) > 0).all()
    # RetinaNet's own default (ignore_iof_thr=-1) trains the region as background
    off, _ = logit_grads(tiny_retinanet(ignore_iof_thr=-1), item)
    assert torch.equal(off[inside], plain[inside])


def test_an_ignored_region_holds_in_an_image_whose_queries_found_nothing(synthetic_voc,
                                                                        tmp_path):
    """mmdet's MaxIoUAssigner makes every anchor of an image without a box a negative, ignore
    regions included; the loop's IgnoringMaxIoUAssigner keeps them ignored."""
    ds = voc_dataset(synthetic_voc)
    info = first_with_boxes(ds)[0]
    region = [0, 0, 96, 96]
    item = PartialLabels(ds, labels_file(tmp_path, [dict(img_id=info['img_id'],
                                                         instances=[ignore(region)])]))[
        index_of(ds, info['img_id'])]
    sample = item['data_samples']
    assert len(sample.gt_instances) == 0 and len(sample.ignored_instances) == 1
    grads, anchors = logit_grads(tiny_retinanet(0.5, 'IgnoringMaxIoUAssigner'), item)
    inside = bbox_overlaps(anchors, get_box_tensor(sample.ignored_instances.bboxes),
                           mode='iof')[:, 0] > 0.5
    assert inside.sum() > 10
    assert torch.equal(grads[inside], torch.zeros_like(grads[inside]))
    assert grads[~inside].abs().sum() > 0
    plain, _ = logit_grads(tiny_retinanet(0.5), item)
    assert (plain[inside].abs().sum(1) > 0).all()


def test_pseudo_and_human_box_give_the_same_loss(synthetic_voc, tmp_path):
    ds = voc_dataset(synthetic_voc)
    info = first_with_boxes(ds)[0]
    idx = index_of(ds, info['img_id'])
    model = build_detector('retinanet')

    def loss(dataset):
        data = model.data_preprocessor(pseudo_collate([dataset[idx]]), False)
        with torch.no_grad():
            return float(sum_losses(model.loss(data['inputs'], data['data_samples'])))

    def wrapped(source, shift=0.0):
        instances = [dict(bbox=[v + shift for v in inst['bbox']], bbox_label=inst['bbox_label'],
                          ignore_flag=0, source=source) for inst in info['instances']]
        path = labels_file(tmp_path, [dict(img_id=info['img_id'], instances=instances)],
                           f'{source}{shift}.json')
        return loss(PartialLabels(ds, path))

    as_human = wrapped('human')
    assert as_human == loss(ds)  # the real boxes as human labels: the image as it was
    assert wrapped('pseudo') == as_human
    assert wrapped('pseudo', shift=12.0) != as_human


@pytest.mark.parametrize('fmt', ['voc', 'coco'])
def test_partial_labels_under_active_subset(fmt, synthetic_voc, synthetic_coco, tmp_path):
    ds = voc_dataset(synthetic_voc) if fmt == 'voc' else coco_dataset(synthetic_coco)
    a, b, other = first_with_boxes(ds, 3)
    box = [10.0, 20.0, 60.0, 90.0]
    path = labels_file(tmp_path, [
        dict(img_id=a['img_id'], instances=[human(box, 2), ignore([100, 100, 150, 140], 1)]),
        dict(img_id=b['img_id'], instances=[], background=[[5, 5, 40, 40]], queries=1)])
    subset = ActiveSubset(PartialLabels(ds, path), ids=[other['img_id'], a['img_id'],
                                                        b['img_id']])
    assert subset.img_ids() == [other['img_id'], a['img_id'], b['img_id']]
    assert subset.get_data_info(0)['instances'] == other['instances']
    assert subset.get_data_info(1)['instances'] == [
        dict(bbox=box, bbox_label=2, ignore_flag=0),
        dict(bbox=[100.0, 100.0, 150.0, 140.0], bbox_label=1, ignore_flag=1)]
    assert subset.get_data_info(2)['instances'] == []

    def loaded(k):
        sample = subset[k]['data_samples']
        scale = torch.tensor(sample.metainfo['scale_factor']).repeat(2)
        return (get_box_tensor(sample.gt_instances.bboxes), sample.gt_instances.labels,
                get_box_tensor(sample.ignored_instances.bboxes),
                sample.ignored_instances.labels, scale)

    gt, labels, ignored, ignored_labels, scale = loaded(0)
    real = [i for i in other['instances'] if not i['ignore_flag']]
    assert labels.tolist() == [i['bbox_label'] for i in real]
    assert torch.allclose(gt / scale, torch.tensor([i['bbox'] for i in real]).float())
    gt, labels, ignored, ignored_labels, scale = loaded(1)
    assert labels.tolist() == [2] and ignored_labels.tolist() == [1]
    assert torch.allclose(gt / scale, torch.tensor([box]))
    assert torch.allclose(ignored / scale, torch.tensor([[100.0, 100.0, 150.0, 140.0]]))
    gt, _, ignored, _, _ = loaded(2)
    assert len(gt) == 0 and len(ignored) == 0 and b['instances']


REAL = [dict(bbox=[0, 0, 100, 100], bbox_label=2, ignore_flag=0),
        dict(bbox=[200, 0, 260, 60], bbox_label=1, ignore_flag=0),
        dict(bbox=[0, 200, 50, 250], bbox_label=0, ignore_flag=1)]


def det(bbox, label=0, score=0.3):
    return dict(bbox=bbox, label=label, score=score)


def test_oracle_iou_threshold_and_real_class_and_coordinates():
    # IoU of [0, 0, 100, h] with [0, 0, 100, 100] is h / 100
    got = answer([det([0, 0, 100, 49]), det([0, 0, 100, 51]), det([0, 200, 50, 250])], REAL)
    assert got == [dict(answer='background', bbox=[0.0, 0.0, 100.0, 49.0], query=0),
                   dict(answer='object', bbox=[0.0, 0.0, 100.0, 100.0], label=2, query=1),
                   # a real box the dataset ignores (VOC difficult) is no answer
                   dict(answer='background', bbox=[0.0, 200.0, 50.0, 250.0], query=2)]
    # the best match wins (IoU 0.90 against 0.74), whatever the query's class
    two = [dict(bbox=[0, 0, 100, 100], bbox_label=2), dict(bbox=[20, 0, 120, 100], bbox_label=1)]
    got = answer([det([15, 0, 115, 100], label=0)], two)
    assert got == [dict(answer='object', bbox=[20.0, 0.0, 120.0, 100.0], label=1, query=0)]
    assert answer([det([0, 0, 10, 10])], []) == [
        dict(answer='background', bbox=[0.0, 0.0, 10.0, 10.0], query=0)]


def test_oracle_charges_every_query_and_answers_a_real_box_once():
    dets = [det([0, 0, 100, 90]), det([0, 5, 100, 100], label=1), det([300, 300, 340, 340]),
            det([200, 0, 258, 60], score=0.9)]
    entry = partial_labels(dets, [True, True, True, False], REAL, [False, False, False, True],
                           img_id='a')
    assert entry['queries'] == 3
    assert entry['instances'] == [human([0, 0, 100, 100], 2),
                                  dict(human([200, 0, 258, 60], 0), source='pseudo')]
    assert entry['background'] == [[300.0, 300.0, 340.0, 340.0]]
    none = partial_labels(dets, [True, True, True, False], REAL, [False, False, False, True],
                          pseudo='none', img_id='a')
    assert none['instances'][1] == ignore([200, 0, 258, 60], 0) and none['queries'] == 3


def test_pseudo_boxes_and_ignore_regions_give_way_to_answers():
    dets = [det([0, 0, 100, 100]),        # asked: the real box, a human label
            det([300, 300, 400, 400]),    # asked: nothing there, background
            det([0, 31, 100, 100]),       # IoU 0.69 with the human box
            det([300, 330, 400, 430]),    # IoU 0.54 with the background region
            det([0, 71, 100, 171]),       # IoU 0.17 with the human box
            det([500, 0, 600, 100]),      # far from everything
            det([500, 29, 600, 129])]     # IoU 0.55 with the pseudo box above
    queried = [True, True, False, False, False, False, False]
    for pseudo in ('confident', 'none'):
        for confident in ([False] * 7, [False, False, True, True, True, True, False]):
            entry = partial_labels(dets, queried, REAL, confident, pseudo=pseudo, img_id=1)
            kept = [i['bbox'][:2] for i in entry['instances']]
            assert kept[0] == [0.0, 0.0] and [0.0, 31.0] not in kept and [300.0, 330.0] \
                not in kept and [0.0, 71.0] in kept and [500.0, 0.0] in kept, (pseudo, kept)
            over_pseudo = pseudo == 'confident' and confident[5]
            assert ([500.0, 29.0] in kept) != over_pseudo
    # the drop threshold: IoU (100 - y) / (100 + y), 0.307 dropped, 0.290 kept
    for y, n in ((53, 1), (55, 2)):
        entry = partial_labels([det([0, 0, 100, 100]), det([0, y, 100, y + 100])],
                               [True, False], REAL, [False, True], img_id=1)
        assert len(entry['instances']) == n


def test_oracle_entries_merge_and_read_back(synthetic_voc, tmp_path):
    ds = voc_dataset(synthetic_voc)
    a, b = first_with_boxes(ds, 2)
    entries = [partial_labels([det(info['instances'][0]['bbox']), det([1, 1, 9, 9], 1)],
                              [True, False], info['instances'], [False, False],
                              img_id=info['img_id']) for info in (a, b)]
    first = merge_labels(None, entries[:1])
    merged = merge_labels(first, entries[1:])
    assert [e['img_id'] for e in merged['images']] == [a['img_id'], b['img_id']]
    assert len(first['images']) == 1
    with pytest.raises(ValueError, match='queried in one round only'):
        merge_labels(merged, entries[:1])
    with pytest.raises(ValueError, match='queried in one round only'):
        merge_labels(None, entries + entries[:1])
    path = str(tmp_path / 'merged.json')
    write_json(path, merged)
    got = PartialLabels(ds, path).labels
    assert got[a['img_id']][0] == dict(bbox=[float(v) for v in a['instances'][0]['bbox']],
                                       bbox_label=a['instances'][0]['bbox_label'],
                                       ignore_flag=0)
    assert got[a['img_id']][1]['ignore_flag'] == 1


def _bad(entry_change=None, inst_change=None, drop=None, extra=None):
    inst = dict(bbox=[10, 10, 50, 50], bbox_label=1, ignore_flag=0, source='human')
    inst.update(inst_change or {})
    entry = dict(img_id='ID', instances=[inst], background=[[0, 0, 5, 5]], queries=1)
    entry.update(entry_change or {})
    for key in drop or ():
        (inst if key in inst else entry).pop(key)
    return dict(images=[entry] + (extra or []))


BAD = [
    (_bad(entry_change=dict(img_id='nope')), "images[0] (img_id 'nope').img_id"),
    (_bad(entry_change=dict(img_id=1)), 'images[0] (img_id 1).img_id'),
    (_bad(drop=['img_id']), 'images[0].img_id'),
    (_bad(extra=[_bad()['images'][0]]), "images[1] (img_id 'ID').img_id"),
    (_bad(inst_change=dict(bbox=[50, 10, 10, 50])), '.instances[0].bbox'),
    (_bad(inst_change=dict(bbox=[10, 10, 50])), '.instances[0].bbox'),
    (_bad(inst_change=dict(bbox=[10, 10, 50, 'x'])), '.instances[0].bbox'),
    (_bad(inst_change=dict(bbox=[1000, 1000, 1050, 1050])), '.instances[0].bbox'),
    (_bad(inst_change=dict(bbox_label=3)), '.instances[0].bbox_label'),
    (_bad(inst_change=dict(bbox_label=True)), '.instances[0].bbox_label'),
    (_bad(drop=['bbox_label']), '.instances[0].bbox_label'),
    (_bad(drop=['ignore_flag']), '.instances[0].ignore_flag'),
    (_bad(inst_change=dict(ignore_flag=1)), '.instances[0].ignore_flag'),
    (_bad(drop=['source']), '.instances[0].source'),
    (_bad(entry_change=dict(background=[[0, 0, 0, 5]])), '.background[0]'),
    (_bad(drop=['background']), '.background'),
    (_bad(drop=['queries']), '.queries'),
    (_bad(entry_change=dict(instances=[5])), '.instances[0]'),
    ([], 'images'),
]


@pytest.mark.parametrize('content,where', BAD, ids=[w for _, w in BAD])
def test_bad_labels_file_is_one_line_naming_file_entry_and_field(content, where, tmp_path,
                                                                 synthetic_voc):
    ds = voc_dataset(synthetic_voc)
    img_id = ds.get_data_info(0)['img_id']
    path = str(tmp_path / 'labels.json')
    with open(path, 'w') as f:
        f.write(json.dumps(content).replace('ID', img_id))
    with pytest.raises(ValueError) as err:
        PartialLabels(ds, path)
    message = str(err.value)
    assert '\n' not in message and message.startswith(path + ': ')
    assert where.replace('ID', img_id) in message


def test_not_json_names_the_file(synthetic_voc, tmp_path):
    path = tmp_path / 'labels.json'
    path.write_text('{"images": [')
    with pytest.raises(ValueError, match='labels.json: not valid JSON'):
        PartialLabels(voc_dataset(synthetic_voc), str(path))


def test_ids_a_filtering_dataset_left_out_are_skipped(tmp_path):
    infos = {'a': dict(img_id='a', width=100, height=100)}
    path = labels_file(tmp_path, [dict(img_id='gone', instances=[human([0, 0, 9, 9])]),
                                  dict(img_id='a', instances=[human([1, 1, 9, 9])])])
    assert list(read_labels(path, infos, ['x'], filtered=True)) == ['a']
    with pytest.raises(ValueError, match=r"images\[0\] \(img_id 'gone'\).img_id is not"):
        read_labels(path, infos, ['x'])
    typo = labels_file(tmp_path, [dict(img_id=7, instances=[])], 'typo.json')
    with pytest.raises(ValueError, match=r'images\[0\] \(img_id 7\).img_id is not'):
        read_labels(typo, infos, ['x'], filtered=True)
