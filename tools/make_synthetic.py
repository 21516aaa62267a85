"""Write a seeded synthetic shape-detection dataset (VOC or COCO layout)."""
from __future__ import annotations

import argparse

from isal_mmdet.demo.synthetic import (MAX_OBJ_SIZE, MAX_OBJECTS,
                                           MIN_OBJ_SIZE, make_synthetic)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('out_dir', help='output folder')
    parser.add_argument('--num-images', type=int, default=200)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--format', dest='fmt', choices=('voc', 'coco'),
                        default='voc')
    parser.add_argument('--voc2012', action='store_true',
                        help='VOCdevkit/VOC2012 layout with VOC class names')
    parser.add_argument('--classes', nargs='+', default=None,
                        help='class names (default: circle square triangle, '
                        'or person car dog with --voc2012)')
    parser.add_argument('--img-size', nargs=2, type=int, default=(320, 240),
                        metavar=('W', 'H'))
    parser.add_argument('--objects', nargs=2, type=int,
                        default=(1, MAX_OBJECTS), metavar=('MIN', 'MAX'),
                        help='objects per non-empty image, drawn uniformly; '
                        'placements overlapping others are dropped after 20 '
                        'tries, so crowded images can hold fewer '
                        f'(default: 1 {MAX_OBJECTS})')
    parser.add_argument('--obj-size', nargs=2, type=int,
                        default=(MIN_OBJ_SIZE, MAX_OBJ_SIZE),
                        metavar=('MIN', 'MAX'),
                        help='object side in pixels (default: '
                        f'{MIN_OBJ_SIZE} {MAX_OBJ_SIZE})')
    parser.add_argument('--class-weights', nargs='+', type=float,
                        default=None, metavar='W',
                        help='relative frequency of each class, e.g. 1 1 0.1 '
                        'for a rare third class (default: uniform)')
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        summary = make_synthetic(args.out_dir, num_images=args.num_images,
                                 seed=args.seed, fmt=args.fmt,
                                 classes=args.classes,
                                 img_size=tuple(args.img_size),
                                 voc2012=args.voc2012,
                                 objects=tuple(args.objects),
                                 obj_size=tuple(args.obj_size),
                                 class_weights=args.class_weights)
    except ValueError as err:
        parser.error(str(err))
    layout = 'voc2012' if args.voc2012 else args.fmt
    print(f"{summary['num_images']} images, {summary['num_boxes']} boxes, "
          f"classes {', '.join(summary['classes'])} ({layout}) in "
          f"{summary['out_dir']}")
    print('splits: ' + ', '.join(f'{name}={len(ids)}'
                                  for name, ids in summary['splits'].items()))


if __name__ == '__main__':
    main()
