"""What soft pseudo labels would give UUIC: the expected gradient over the model's own
predicted class distribution, for the classification losses of the supported heads.

    python studies/soft_labels.py [--out docs/soft_labels.md]

For a loss that is a log-likelihood (sigmoid BCE, softmax cross-entropy: Faster R-CNN's
``fc_cls``, the RPN) the expected gradient under the model's own distribution is zero, so
soft-label influence is identically 0. For RetinaNet's sigmoid focal loss it is not zero:
the focal loss is not a proper scoring rule, so its expected gradient moves every probability
toward one fixed value. It is a function of the prediction alone, like an uncertainty score.
The table puts it next to the hard-label gradient (target 1 where q ≥ 0.1, UUIC's rule), per
logit, using mmdet's own loss functions.
"""
import argparse
import importlib

import torch
import torch.nn.functional as F

focal = importlib.import_module('mmdet.models.losses.focal_loss')


def logit_grad(loss_of_logit, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    grad, = torch.autograd.grad(loss_of_logit(x).sum(), x)
    return grad


def sigmoid_rows(score_thr: float = 0.1):
    x = torch.linspace(-6, 6, 13, dtype=torch.float64)
    q = torch.sigmoid(x)

    def fl(target):
        return lambda z: focal.py_sigmoid_focal_loss(z[:, None], target[:, None],
                                                    reduction='none')

    ones, zeros = torch.ones_like(q), torch.zeros_like(q)
    soft_focal = q * logit_grad(fl(ones), x) + (1 - q) * logit_grad(fl(zeros), x)
    soft_bce = logit_grad(lambda z: F.binary_cross_entropy_with_logits(z, q, reduction='none'),
                          x)
    hard_focal = logit_grad(fl((q >= score_thr).double()), x)
    return [dict(logit=float(a), q=float(b), soft_bce=float(c), soft_focal=float(d),
                 hard_focal=float(e))
            for a, b, c, d, e in zip(x, q, soft_bce, soft_focal, hard_focal)]


def softmax_ce_max_abs(num: int = 1000, classes: int = 4, seed: int = 0) -> float:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(num, classes, generator=gen, dtype=torch.float64) * 3
    q = torch.softmax(x, 1)
    expected = sum(q[:, c:c + 1] * logit_grad(
        lambda z, c=c: F.cross_entropy(z, torch.full((num,), c), reduction='none'), x)
        for c in range(classes))
    return float(expected.abs().max())


def report(rows, ce_max: float) -> str:
    lines = ['| logit | q = σ(logit) | soft, BCE | soft, focal | hard (q ≥ 0.1), focal |',
             '| --- | --- | --- | --- | --- |']
    for r in rows:
        lines.append(f"| {r['logit']:+.0f} | {r['q']:.3f} | {r['soft_bce']:.1e} | "
                     f"{r['soft_focal']:+.4f} | {r['hard_focal']:+.4f} |")
    lines.append('')
    lines.append(f'Softmax cross-entropy, 1,000 random logit rows × 4 classes: largest '
                 f'|expected gradient| = {ce_max:.1e}.')
    return '\n'.join(lines) + '\n'


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', help='also write the markdown table here')
    args = parser.parse_args()
    text = report(sigmoid_rows(), softmax_ce_max_abs())
    print(text, end='')
    if args.out:
        from isal_mmdet.fileio import write_text
        write_text(args.out, text)


if __name__ == '__main__':
    main()
