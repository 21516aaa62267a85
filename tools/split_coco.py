"""Split a COCO annotation file into a pool and a held-out reference part.

    python tools/split_coco.py ANN_FILE --reference N [--seed S]

writes ``<ANN_FILE stem>_pool.json`` and ``<stem>_reference.json`` beside it. ISAL's reference
set must not be the evaluation split; COCO has two labelled splits, so the reference is held
out of train2017 (see configs/isal_retinanet_coco.py).
"""
import argparse
import json
import os.path as osp
import random
import sys


def split(data: dict, reference: int, seed: int):
    """``(pool, reference)`` COCO dicts; the reference images are a seeded sample."""
    ids = sorted(im['id'] for im in data['images'])
    if not 0 < reference < len(ids):
        raise ValueError(f'--reference must be between 1 and {len(ids) - 1}, got {reference}')
    ref = set(random.Random(seed).sample(ids, reference))

    def part(keep):
        return dict(data, images=[im for im in data['images'] if keep(im['id'])],
                    annotations=[a for a in data['annotations'] if keep(a['image_id'])])

    return part(lambda i: i not in ref), part(lambda i: i in ref)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('ann_file')
    p.add_argument('--reference', type=int, required=True, help='reference images to hold out')
    p.add_argument('--seed', type=int, default=0)
    args = p.parse_args(argv)
    from isal_mmdet.fileio import write_json
    with open(args.ann_file, encoding='utf-8') as f:
        data = json.load(f)
    try:
        pool, ref = split(data, args.reference, args.seed)
    except ValueError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    stem = osp.splitext(args.ann_file)[0]
    for name, part in (('pool', pool), ('reference', ref)):
        write_json(f'{stem}_{name}.json', part)
        print(f"{stem}_{name}.json: {len(part['images'])} images, "
              f"{len(part['annotations'])} boxes")
    return 0


if __name__ == '__main__':
    sys.exit(main())
