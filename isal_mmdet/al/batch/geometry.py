"""Pure torch picks on points and distances: k-centre, k-means(++), k-medoids, round-robin.
Every tie goes to the lowest index, so inputs sorted by id give the same picks every time."""
from __future__ import annotations

import math
from collections import Counter, deque
from typing import Dict, Hashable, List, Optional, Sequence

import torch
from torch import Tensor


def k_center_greedy(pool: Tensor, labelled: Optional[Tensor], budget: int,
                    min_dist: Optional[Tensor] = None) -> List[int]:
    """Indices of ``pool`` picked greedily farthest from everything chosen so far.

    Keeps one distance per pool point (O(pool × dim) memory, no N×N matrix).

    Args:
        pool (Tensor): ``[N, D]`` points to pick from.
        labelled (Tensor, optional): ``[M, D]`` points already chosen, or None.
        budget (int): how many to pick (at most N).
        min_dist (Tensor, optional): ``[N]`` each point's distance to the chosen ones, when
            known (``labelled`` is then not read). Defaults to None.

    Returns:
        list[int]: the picks, in the order they were made.
    """
    if min_dist is None:
        min_dist = torch.full((len(pool),), math.inf)
        if labelled is not None:
            for chunk in labelled.split(1024):
                min_dist = torch.minimum(min_dist, torch.cdist(pool, chunk).min(1).values)
    picked: List[int] = []
    for _ in range(min(budget, len(pool))):
        j = int(torch.argmax(min_dist))
        picked.append(j)
        min_dist = torch.minimum(min_dist, torch.cdist(pool, pool[j:j + 1]).squeeze(1))
        min_dist[j] = -1.0
    return picked


def k_center_on(dist: Tensor, k: int, first: int = 0) -> List[int]:
    """k-centre greedy on a distance matrix.

    Args:
        dist (Tensor): ``[N, N]`` distances.
        k (int): how many points to pick (at most N).
        first (int): the first pick. Defaults to 0.

    Returns:
        list[int]: the picks, ``first`` first.
    """
    picked = [first]
    nearest = dist[first].clone()
    nearest[first] = -1.0
    for _ in range(min(k, len(dist)) - 1):
        j = int(torch.argmax(nearest))
        picked.append(j)
        nearest = torch.minimum(nearest, dist[j])
        nearest[picked] = -1.0
    return picked


def k_medoids(dist: Tensor, medoids: Sequence[int], max_iter: int = 100) -> List[int]:
    """Alternating k-medoids: assign every point to its nearest medoid (a medoid to itself),
    move each medoid to the member with the least total distance to its cluster; stops when
    nothing moves.

    Args:
        dist (Tensor): ``[N, N]`` distances.
        medoids (sequence of int): the starting medoids.
        max_iter (int): at most this many rounds. Defaults to 100.

    Returns:
        list[int]: the medoids, one per starting medoid.
    """
    medoids = list(medoids)
    for _ in range(max_iter):
        assign = dist[:, medoids].argmin(1)
        assign[medoids] = torch.arange(len(medoids))
        moved = []
        for j in range(len(medoids)):
            members = torch.nonzero(assign == j).flatten()
            cost = dist[members][:, members].sum(1)
            moved.append(int(members[int(torch.argmin(cost))]))
        if moved == medoids:
            break
        medoids = moved
    return medoids


def kmeans_pp(points: Tensor, k: int, seed: int) -> List[int]:
    """k-means++ seeding as BADGE does it: the largest point first, then each next one drawn
    with probability proportional to its squared distance to the nearest one chosen.

    Args:
        points (Tensor): ``[N, D]`` points.
        k (int): how many seeds (at most N).
        seed (int): the draws' seed.

    Returns:
        list[int]: the seeds' indices, in the order drawn.
    """
    g = torch.Generator().manual_seed(seed)
    points = points.double()
    first = int(torch.argmax(points.norm(dim=1)))
    picked = [first]
    d2 = (points - points[first]).square().sum(1)
    for _ in range(min(k, len(points)) - 1):
        d2[picked] = 0
        if float(d2.sum()) <= 0:  # the rest duplicate what is chosen: take them in order
            picked.append(next(i for i in range(len(points)) if i not in picked))
        else:
            picked.append(int(torch.multinomial(d2 / d2.sum(), 1, generator=g)))
        d2 = torch.minimum(d2, (points - points[picked[-1]]).square().sum(1))
    return picked


def kmeans(points: Tensor, k: int, seed: int, max_iter: int = 20) -> Tensor:
    """Lloyd's iterations from k-means++ seeds (:func:`kmeans_pp`).

    Args:
        points (Tensor): ``[N, D]`` points.
        k (int): the number of clusters.
        seed (int): the seeding's seed.
        max_iter (int): at most this many iterations. Defaults to 20.

    Returns:
        Tensor: ``[N]`` each point's cluster.
    """
    points = points.double()
    centres = points[kmeans_pp(points, k, seed)]
    labels = torch.full((len(points),), -1, dtype=torch.long)
    for _ in range(max_iter):
        new = torch.cdist(points, centres).argmin(1)
        if torch.equal(new, labels):
            break
        labels = new
        counts = torch.bincount(labels, minlength=len(centres))
        sums = torch.zeros_like(centres).index_add_(0, labels, points)
        filled = counts > 0  # an emptied cluster keeps its centre
        centres[filled] = sums[filled] / counts[filled, None]
    return labels


def round_robin(order: Sequence[Hashable], cluster: Dict[Hashable, int],
                labelled: Dict[int, int], n: int) -> List[Hashable]:
    """Picks one cluster at a time: next comes the cluster with the fewest picks, then the
    fewest labelled images, then the best remaining candidate; its best remaining candidate is
    taken. No cluster gets a second pick while another candidate cluster has none.

    Args:
        order (sequence): candidate ids, best first.
        cluster (dict): each candidate's cluster.
        labelled (dict): each cluster's number of labelled images (absent: none).
        n (int): the batch size.

    Returns:
        list: at most ``n`` ids of ``order``, in the order picked.
    """
    queues: Dict[int, deque] = {}
    for i in order:
        queues.setdefault(cluster[i], deque()).append(i)
    rank = {i: r for r, i in enumerate(order)}
    picks: Counter = Counter()
    out: List[Hashable] = []
    while len(out) < n and queues:
        c = min(queues, key=lambda c: (picks[c], labelled.get(c, 0), rank[queues[c][0]]))
        out.append(queues[c].popleft())
        picks[c] += 1
        if not queues[c]:
            del queues[c]
    return out
