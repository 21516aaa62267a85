"""torchrun --nproc_per_node=2: the exact Fisher solve with NCCL on the tiny RetinaNet equals
the one-process solve (saved beforehand by a run without torchrun).

    python benchmarks/gpu_nccl.py REPO_ROOT VOC_ROOT REFERENCE.pt
"""
import json
import os
import sys

import torch
import torch.distributed as dist

sys.path.insert(0, sys.argv[1] + '/tests')
from conftest import build_detector, voc_dataset  # noqa: E402
from isal_mmdet.detection import DetectionObjective, detector_param_groups  # noqa: E402
from isal_mmdet.influence import Curvature, Woodbury, summed_gradient  # noqa: E402

root, ref_file = sys.argv[2], sys.argv[3]
distributed = 'RANK' in os.environ
if distributed:
    dist.init_process_group('nccl')
    torch.cuda.set_device(dist.get_rank())
rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
train = voc_dataset(root, 'train')
obj = DetectionObjective(seed=0)
model = build_detector('retinanet').cuda()
groups = detector_param_groups(model)
ref = [train[i] for i in range(8, 12)][rank::world]
v = summed_gradient(obj, model, groups, [obj.collate(ref)])
s, info = Woodbury(batch_size=2).solve(
    v, Curvature(obj, model, groups, [train[i] for i in range(8)], kind='fisher'))
flat = s.flatten().double().cpu()
if not distributed:
    torch.save(flat, ref_file)
else:
    one = torch.load(ref_file)
    diff = float((flat - one).norm() / one.norm())
    if rank == 0:
        print(json.dumps(dict(world=world, rel_diff_vs_one_process=diff, ok=diff < 1e-5,
                              info=info.as_dict())))
    dist.destroy_process_group()
