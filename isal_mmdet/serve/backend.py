"""The Label Studio ML backend's behaviour behind its routes (:mod:`.app`): which project it
serves, predictions from the newest finished round, and one background training round at a
time, started by counted annotation webhooks or by "Start training".

Its state is in ``W/labelstudio_backend.json`` (written atomically): the project, the
annotations counted since the last round, how many rounds were requested and finished, and
the version made the project's model version. Label Studio's Data Manager scores, sorts and
pre-annotates with the project's model version only, and accepts one only once predictions
of it exist; so after the first page a new version predicts, the backend makes it the
project's (:meth:`Backend.publish`).
A restart (after kill -9 too) serves the newest finished round and starts the requested
round that did not finish again; the round loop resumes its training where it stopped.
"""
from __future__ import annotations

import logging
import os.path as osp
import threading
import time
from typing import Any, Dict, Optional

from mmengine.config import Config
from mmengine.registry import init_default_scope

from ..al.data import build_dataset, scoring_dataset_cfg, test_pipeline_of
from ..fileio import atomic_write, read_json, write_json
from .labelstudio_api import export_json, set_model_version
from .predictor import Predictor, model_version, pool_names
from .rounds import ServedLoop

logger = logging.getLogger('isal_mmdet.serve')
STATE_FILE = 'labelstudio_backend.json'
# Label Studio's annotation webhooks; the plural ones carry a list of annotations
COUNTED = ('ANNOTATION_CREATED', 'ANNOTATION_UPDATED', 'ANNOTATIONS_CREATED',
           'ANNOTATIONS_DELETED')


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
    ``project``: the project to serve; None takes the one that connects first (``/setup``)."""

    def __init__(self, cfg: Config, work_dir: str, project: Optional[int] = None,
                 retrain_every: int = 10):
        if retrain_every < 1:
            raise ValueError(f'--retrain-every must be at least 1, got {retrain_every}')
        self.cfg, self.retrain_every = cfg, retrain_every
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
        self.predictor: Optional[Predictor] = None
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

    def _round(self, pull: bool) -> None:
        """Pulls the project's export (a requested round), then lets the loop import it, train
        the next round and score the pool; a failure is one line in the log."""
        with self.lock:
            target = self.state['requested']
        done = False
        try:
            if pull:
                k = self.loop.finished_round()
                if k is None:
                    raise ValueError('round 0 is not finished: nothing to import yet')
                export = export_json(self.state['project'])
                atomic_write(self.loop.export_file(k), lambda f: f.write(export), mode='wb')
                logger.info('round %d: pulled the annotations of project %s', k + 1,
                            self.state['project'])
            self.loop.run()
            self.load_newest()
            done = True
        except Exception as e:  # noqa: BLE001 - the server outlives a failed round
            logger.error('training round failed: %s: %s', type(e).__name__,
                         ' '.join(str(e).split()))
        finally:
            with self.lock:
                self.training = None  # a request from now on starts its own round
                if done and pull:
                    self.state['finished'] = max(self.state['finished'], target)
                    self.save()
                if done and self.state['requested'] > target:  # asked again meanwhile
                    self._train()

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
        with self.lock:
            training = self.training is not None and self.training.is_alive()
            return dict(status='UP', model_class='isal_mmdet', model_version=self.version(),
                        training=training, project=self.state['project'])

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

    def publish(self, version: str, tries: int = 60) -> None:
        """In the background, makes ``version`` the project's model version once Label
        Studio has saved the page of predictions just answered (it refuses it before)."""
        with self.lock:
            if version in (self.state['published'], self.publishing):
                return
            self.publishing = version
        project = self.state['project']

        def run() -> None:
            error = None
            for _ in range(tries):
                time.sleep(0.5)
                try:
                    set_model_version(project, version)
                except ValueError as e:
                    error = e
                    continue
                with self.lock:
                    self.state['published'] = version
                    self.save()
                logger.info('project %s now shows %s', project, version)
                break
            else:
                logger.warning('%s', ' '.join(str(error).split()))
            with self.lock:
                self.publishing = None

        threading.Thread(target=run, daemon=True).start()

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
