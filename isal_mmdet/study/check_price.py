"""What a "no object" answer would have to cost for box queries to pay.

The box-level oracle charges every query one box, whatever the answer. Box-Level Active
Detection's public code charges only the real boxes a query finds: a query that matches no
unlabelled box is skipped without cost. The two accountings bracket what an annotator's
rejection of a wrong box costs. With a "no object" answer (or a second query on a box
already found) priced at ``c`` drawn boxes, a box-query run that asked ``q`` queries, found
``f`` objects and was charged ``Q`` boxes for them would have been charged
``B − Q + f + c (q − f)`` boxes, where ``B`` is its recorded box count. Its break-even price is the ``c`` at which that charge equals the boxes
random needs (its curve, linear between rounds) to reach the run's mAP, on the same seed:
above it random is cheaper. Random's curve bends down between rounds, so the linear reading
makes random look slower than it is and the price a little too generous to box queries.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from .metrics import Curve, interp, labels_to_reach, mean_std, paired


def _free_check_boxes(run: Curve, queries: int, objects: int,
                      charged: Optional[float]) -> float:
    """``run``'s last box count had its checks cost nothing."""
    return run[-1][0] - (queries if charged is None else charged) + objects


def break_even(run: Curve, random: Curve, queries: int, objects: int,
               charged: Optional[float] = None) -> Optional[float]:
    """The price of a "no object" answer, in drawn boxes, at which ``run`` (boxes, mAP) costs
    what ``random`` does for its last mAP; None where random never reaches it (box queries
    win at any price, even a check dearer than a drawn box). ``charged``: what the queries
    were charged in the run (default: a box each)."""
    x = labels_to_reach(random, run[-1][1])
    checks = queries - objects
    if x is None:
        return None
    if checks <= 0:
        raise ValueError(f'break_even: {queries} queries found {objects} objects: no '
                         '"no object" answer to price')
    return (x - _free_check_boxes(run, queries, objects, charged)) / checks


def free_check_gap(run: Curve, random: Curve, queries: int, objects: int,
                   charged: Optional[float] = None) -> Optional[float]:
    """mAP of ``run`` minus random's at the boxes ``run`` is charged when a "no object"
    answer is free (BLAD's accounting); None where that is outside random's curve."""
    at = interp(random, _free_check_boxes(run, queries, objects, charged))
    return None if at is None else run[-1][1] - at


def check_prices(box_curves: Dict[str, Dict[int, Curve]],
                 answers: Dict[str, List[Dict[str, Any]]], per_box: float,
                 seeds: Sequence[int]) -> Dict[str, Dict[str, Any]]:
    """Per box-query strategy with answers, over ``seeds`` that have them: the break-even
    price (in boxes, and in seconds at ``per_box`` seconds a drawn box) and the mAP gap to
    random when checks are free."""
    out: Dict[str, Dict[str, Any]] = {}
    if 'random' not in box_curves:
        return out
    for s, rows in answers.items():
        prices, gaps = [], []
        for row in rows:
            seed = row['seed']
            if seed not in seeds or seed not in box_curves['random']:
                continue
            run, rnd = box_curves[s][seed], box_curves['random'][seed]
            args = (run, rnd, row['queries'], row['objects'], row.get('charged'))
            prices.append(break_even(*args))
            gaps.append(free_check_gap(*args))
        if prices:
            reached = [p for p in prices if p is not None]
            out[s] = dict(per_seed=prices, never_reached=len(prices) - len(reached),
                          boxes=mean_std(reached),
                          seconds=tuple(None if v is None else v * per_box
                                        for v in mean_std(reached)),
                          free_check_gap=paired([g for g in gaps if g is not None]))
    return out
