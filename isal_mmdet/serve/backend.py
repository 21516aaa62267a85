"""The Label Studio ML backend's behaviour behind its routes (:mod:`.app`): which project it
serves, predictions from the newest finished round, and one background training round at a
time, started by counted annotation webhooks or by "Start training".

Its state is in ``W/labelstudio_backend.json`` (written atomically): the project, the
annotations counted since the last round, how many rounds were requested and finished, and
the version made the project's model version. Label Studio's Data Manager scores, sorts and
pre-annotates with the project's model version only, and accepts one only once predictions
of it exist; so once a new version has predicted every task of the project, the backend
makes it the project's (:meth:`Backend._publish`).
A restart (after kill -9 too) serves the newest finished round and starts the requested
round that did not finish again; the round loop resumes its training where it stopped.

Rounds train in a thread of the server process, so that a round reuses the loaded pool and
resumes in place; the processes a round starts (mmdet's ``eval_map`` pool at every
``VOCMetric`` evaluation, DataLoader workers) come from a fork server, not from the threaded
server (:data:`.rounds.CHILDREN_START`). ``/health`` shows the round running or last run (its
stage, start, newest log line and error).
"""
from __future__ import annotations

import glob
import logging
import os.path as osp
import threading
import time
from collections import deque
from datetime import datetime, timezone
from typing import Any, Deque, Dict, Optional

from mmengine.config import Config
from mmengine.registry import init_default_scope

from ..al.data import build_dataset, scoring_dataset_cfg, test_pipeline_of
from ..fileio import atomic_write, read_json, write_json
from .labelstudio_api import export_json, scored_tasks, set_model_version
from .predictor import Predictor, model_version, pool_names
from .rounds import ServedLoop

logger = logging.getLogger('isal_mmdet.serve')
STATE_FILE = 'labelstudio_backend.json'
RECENT_ERRORS = 20  # how many errors /health lists, newest last
# Label Studio's annotation webhooks; the plural ones carry a list of annotations
COUNTED = ('ANNOTATION_CREATED', 'ANNOTATION_UPDATED', 'ANNOTATIONS_CREATED',
           'ANNOTATIONS_DELETED')


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec='seconds')


def last_log(folder: str) -> Dict[str, Any]:
    """The newest line mmengine logged under ``folder`` (``<timestamp>/<timestamp>.log``) and
    when: how far a long round is, or since when a stuck one has said nothing."""
    logs = glob.glob(osp.join(folder, '*', '*.log'))
    if not logs:
        return {}
    path = max(logs, key=osp.getmtime)
    with open(path, 'rb') as f:
        f.seek(max(0, osp.getsize(path) - 4096))
        lines = [line.strip() for line in f.read().decode(errors='replace').splitlines()]
    stamp = datetime.fromtimestamp(osp.getmtime(path), timezone.utc)
    return dict(last_log=next((line for line in reversed(lines) if line), None),
                last_log_at=stamp.isoformat(timespec='seconds'))


class RequestError(Exception):
    """A request answered with an error: ``status`` and a one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def project_id(value: Any) -> int:
    """Label Studio names a project ``"<id>.<created timestamp>"`` in backend requests and by
    an object with ``id`` in webhooks."""
    value = value.get('id') if isinstance(value, dict) else value
    try:
        return int(str(value).split('.')[0])
    except ValueError:
        raise RequestError(400, f'project {value!r} is not a Label Studio project id') from None


class Backend:
    """Serves one Label Studio project from work dir ``work_dir`` (see the module docstring).
    ``project``: the project to serve; None takes the one that connects first (``/setup``).
    A failed pull of the project's export is tried again, ``pull_tries`` times in all, after
    waits that double from ``pull_wait`` seconds (Label Studio restarting)."""

    def __init__(self, cfg: Config, work_dir: str, project: Optional[int] = None,
                 retrain_every: int = 10, pull_tries: int = 5, pull_wait: float = 2.0):
        if retrain_every < 1:
            raise ValueError(f'--retrain-every must be at least 1, got {retrain_every}')
        self.cfg, self.retrain_every = cfg, retrain_every
        self.pull_tries, self.pull_wait = pull_tries, pull_wait
        self.loop = ServedLoop(cfg, work_dir)
        self.state_path = osp.join(self.loop.work_dir, STATE_FILE)
        self.state: Dict[str, Any] = dict(project=None, new_annotations=0, requested=0,
                                          finished=0, published=None)
        if osp.exists(self.state_path):
            self.state.update(read_json(self.state_path))
        if project is not None and self.state['project'] not in (None, project):
            raise ValueError(f'{work_dir} serves Label Studio project {self.state["project"]}, '
                             f'not {project}; use another --work-dir')
        self.state['project'] = project if project is not None else self.state['project']
        self.lock = threading.Lock()  # guards state, the predictor and the training thread
        self.predict_lock = threading.Lock()  # one page through the model at a time
        self.training: Optional[threading.Thread] = None
        self.publishing: Optional[str] = None  # the version being made the project's
        self.switching: Optional[str] = None  # why it is not the project's yet
        self.last_page = 0.0  # when /predict last answered (time.monotonic)
        self.predictor: Optional[Predictor] = None
        self.round: Dict[str, Any] = {}  # the round running or last run, for /health
        self.errors: Deque[dict] = deque(maxlen=RECENT_ERRORS)
        init_default_scope(cfg.get('default_scope', 'mmdet'))
        self.pool = build_dataset(scoring_dataset_cfg(cfg.train_dataloader.dataset,
                                                      test_pipeline_of(cfg)),
                                  'train_dataloader.dataset')
        self.names = pool_names(self.pool)

    # -- state -------------------------------------------------------------------------------
    def save(self) -> None:
        write_json(self.state_path, self.state)

    def version(self) -> Optional[str]:
        return self.predictor.version if self.predictor else None

    def load_newest(self) -> None:
        """Serves the newest finished round, if it is newer than the one served."""
        k = self.loop.finished_round()
        if k is None or (self.predictor and self.predictor.version == model_version(k)):
            return
        predictor = Predictor(self.cfg, self.loop, k, self.pool, self.names,
                              self.loop.al['batch_size'])
        with self.lock:
            self.predictor = predictor
        logger.info('serving %s', predictor.version)

    def start(self) -> None:
        """Serves what is finished and starts the round loop in the background: round 0 on a
        new work dir, the requested round a kill interrupted, or nothing (it pauses)."""
        self.load_newest()
        with self.lock:
            self._train()

    # -- training ----------------------------------------------------------------------------
    def _train(self) -> None:
        """Starts the background round unless one runs; call with the lock held."""
        if self.training is None or not self.training.is_alive():
            pull = self.state['requested'] > self.state['finished']
            self.training = threading.Thread(target=self._round, args=(pull,), daemon=True)
            self.training.start()

    def request_round(self) -> None:
        """A round is wanted: it starts now, or after the one that runs."""
        with self.lock:
            self.state['requested'] += 1
            self.state['new_annotations'] = 0
            self.save()
            self._train()

    def note_error(self, where: str, message: str, status: Optional[int] = None) -> None:
        """Keeps an error for /health, where a user looks: Label Studio shows a refused
        request as "not a valid ML backend" at most, and a failed round not at all."""
        with self.lock:
            self.errors.append(dict(time=now(), where=where, status=status, error=message))

    def _stage(self, **fields: Any) -> None:
        with self.lock:
            self.round.update(fields)

    def _round(self, pull: bool) -> None:
        """Pulls the project's export (a requested round), then lets the loop import it, train
        the next round and score the pool; a failure is one line in the log and in /health."""
        with self.lock:
            target = self.state['requested']
        k = self.loop.finished_round()
        number = 0 if k is None else k + 1
        with self.lock:
            self.round = dict(number=number, stage='pulling' if pull else 'training',
                              started=now(), ended=None, error=None)
        done = False
        try:
            if pull:
                if k is None:
                    raise ValueError('round 0 is not finished: nothing to import yet')
                self.pull(k)
                self._stage(stage='training', error=None)
            self.loop.run()
            self.load_newest()
            done = True
            trained = self.loop.finished_round() == number  # else it waits for annotations
            self._stage(stage='finished' if trained else 'waiting', ended=now())
        except Exception as e:  # noqa: BLE001 - the server outlives a failed round
            error = f'{type(e).__name__}: {" ".join(str(e).split())}'
            logger.error('round %d failed: %s', number, error)
            self.note_error(f'round {number}', error)
            self._stage(stage='failed', ended=now(), error=error)
        finally:
            with self.lock:
                self.training = None  # a request from now on starts its own round
                if done and pull:
                    self.state['finished'] = max(self.state['finished'], target)
                    self.save()
                if done and self.state['requested'] > target:  # asked again meanwhile
                    self._train()

    def pull(self, k: int) -> None:
        """Saves the project's export, which round k+1 imports; a failed try is logged, shown
        by /health and tried again (see the class docstring)."""
        project = self.state['project']
        for attempt in range(1, self.pull_tries + 1):
            try:
                export = export_json(project)
                break
            except ValueError as e:
                self._stage(failed_pulls=attempt, error=str(e))
                if attempt == self.pull_tries:
                    raise ValueError(f'{e} ({attempt} tries)') from None
                wait = self.pull_wait * 2 ** (attempt - 1)
                logger.warning('round %d: try %d of %d failed, again in %gs: %s', k + 1,
                               attempt, self.pull_tries, wait, e)
                time.sleep(wait)
        atomic_write(self.loop.export_file(k), lambda f: f.write(export), mode='wb')
        logger.info('round %d: pulled the annotations of project %s', k + 1, project)

    # -- requests ----------------------------------------------------------------------------
    def check_project(self, body: Any, bind: bool = False) -> None:
        """Refuses a request for another project (or before any project connected)."""
        if not isinstance(body, dict) or 'project' not in body:
            raise RequestError(400, 'the body is not a JSON object with a "project"')
        pid = project_id(body['project'])
        with self.lock:
            if self.state['project'] is None and bind:
                self.state['project'] = pid
                self.save()
                logger.info('serving Label Studio project %d', pid)
            if self.state['project'] is None:
                raise RequestError(403, f'project {pid}: no project connected yet; connect '
                                        'this backend in the project\'s Model settings')
            if pid != self.state['project']:
                raise RequestError(403, f'project {pid} refused: this backend serves project '
                                        f'{self.state["project"]}')

    def health(self) -> dict:
        """Label Studio's check, and where a user looks when a round takes long: ``round``
        says which round runs or ran last, its stage (pulling, training, finished, failed,
        or waiting: nothing to train until annotations come), start and end, error, and
        while it trains mmengine's newest log line; ``switching`` why the newest version is
        not the project's yet; ``errors`` the newest refused requests and failed rounds."""
        with self.lock:
            training = self.training is not None and self.training.is_alive()
            answer = dict(status='UP', model_class='isal_mmdet', model_version=self.version(),
                          training=training, project=self.state['project'],
                          project_model_version=self.state['published'],
                          switching=self.switching, round=dict(self.round),
                          errors=list(self.errors))
        if training and 'number' in answer['round']:
            answer['round'].update(last_log(self.loop.path(answer['round']['number'], 'train')))
        return answer

    def setup(self, body: Any) -> dict:
        self.check_project(body, bind=True)
        return dict(model_version=self.version())

    def versions(self) -> dict:
        k = self.loop.finished_round()
        return dict(versions=[model_version(j) for j in range(0 if k is None else k + 1)])

    def predict(self, body: Any) -> dict:
        self.check_project(body)
        tasks = body.get('tasks')
        if not isinstance(tasks, list):
            raise RequestError(400, '"tasks" is not a list of tasks')
        for t, task in enumerate(tasks):  # the shape first: no model is needed to refuse it
            if not isinstance(task, dict) or not isinstance(task.get('data'), dict):
                raise RequestError(400, f'tasks[{t}].data is not an object')
        with self.lock:
            predictor = self.predictor
        if predictor is None:
            raise RequestError(503, 'no model yet: round 0 is training')
        try:
            with self.predict_lock:
                results = predictor.predict(tasks)
        except ValueError as e:
            raise RequestError(400, str(e)) from None
        self.publish(predictor.version)
        return dict(results=results, model_version=predictor.version)

    def publish(self, version: str) -> None:
        """Starts :meth:`_publish` for ``version`` unless it is the project's or on its way."""
        with self.lock:
            self.last_page = time.monotonic()
            if version in (self.state['published'], self.publishing):
                return
            self.publishing = version
        threading.Thread(target=self._publish, args=(version,), daemon=True).start()

    def _publish(self, version: str, every: float = 1.0, quiet: float = 30.0) -> None:
        """Makes ``version`` the project's model version once Label Studio holds one of its
        predictions for every task: earlier, the Data Manager would sort the tasks it has not
        scored yet below every scored one. Checked each ``every`` seconds until ``quiet``
        seconds pass with no page answered and no prediction saved (a large project's saving
        takes a while). The PATCH waits for a complete count to hold over one check, past
        Label Studio's own writes of the predictions (SQLite's "database is locked"
        otherwise), and a failed one is tried again at the next check."""
        project, seen, done, status = self.state['project'], None, False, ''
        moved = time.monotonic()  # when the count last changed
        while not done and time.monotonic() - max(self.last_page, moved) < quiet:
            time.sleep(every)
            try:
                count = scored_tasks(project, version)
                status = f'{version} predicts {count[1]} of the {count[0]} tasks'
                if count[1] >= count[0] > 0 and seen == count:
                    set_model_version(project, version)
                    done = True
                elif count != seen:
                    seen, moved = count, time.monotonic()
            except ValueError as e:
                status = ' '.join(str(e).split())
            with self.lock:
                self.switching = None if done else status
        with self.lock:
            self.publishing = None
            if done:
                self.state['published'] = version
                self.save()
        if done:
            logger.info('project %s now shows %s', project, version)
        else:
            logger.info('%s; project %s keeps %s until Retrieve Predictions on all tasks',
                        status, project, self.state['published'])

    def webhook(self, body: Any) -> dict:
        self.check_project(body)
        action = body.get('action')
        if action == 'START_TRAINING':
            self.request_round()
        elif action in COUNTED:
            many = body.get('annotations')
            with self.lock:
                self.state['new_annotations'] += len(many) if isinstance(many, list) else 1
                self.save()
                due = self.state['new_annotations'] >= self.retrain_every
            if due:
                self.request_round()
        return dict(status='ok', action=action)

    def train(self, body: Any) -> dict:
        self.check_project(body)
        self.request_round()
        return dict(status='ok', model_version=self.version())
