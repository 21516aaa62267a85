"""The Quick-start demo: generate the synthetic set if missing, run a short experiment with
the default ISAL, then print each selection's time and where its files for annotators are.

    python tools/demo.py [--work-dir work_dirs/demo] [--data-root data/synthetic_voc]
"""
import argparse
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs', 'demo'))
    p.add_argument('--data-root', default=osp.join(ROOT, 'data', 'synthetic_voc'))
    args = p.parse_args(argv)

    from isal_mmdet.demo.synthetic import make_synthetic
    summary = make_synthetic(args.data_root, num_images=300, seed=0, fmt='voc')
    print(f"dataset: {summary['num_images']} images, {summary['num_boxes']} boxes in "
          f'{args.data_root}')
    sys.path.insert(0, osp.join(ROOT, 'tools'))
    import al_train
    root = args.data_root.rstrip('/') + '/'
    rc = al_train.main([
        osp.join(ROOT, 'configs', 'isal_retinanet_demo.py'), '--work-dir', args.work_dir,
        '--cfg-options', f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}', f'test_dataloader.dataset.data_root={root}'
    ])
    if rc == 0:
        print_selections(args.work_dir)
    return rc


def print_selections(work_dir: str) -> None:
    """Each round's selection time and where its annotator-facing files are."""
    import json
    with open(osp.join(work_dir, 'summary.json')) as f:
        rows = json.load(f)
    for row in rows:
        k = row['round']
        if row.get('selection_seconds') is None:
            continue
        d = osp.join(work_dir, f'round_{k}')
        print(f"round {k}: mAP {row['mAP']:.3f} with {row['num_labelled']} images; "
              f"{row['strategy']} selected in {row['selection_seconds']:.1f} s -> contact sheet "
              f"{osp.join(d, 'selected.jpg')}, Label Studio tasks "
              f"{osp.join(d, 'preannotations_labelstudio.json')} (config "
              f"{osp.join(d, 'labelstudio_config.xml')})")


if __name__ == '__main__':
    sys.exit(main())
