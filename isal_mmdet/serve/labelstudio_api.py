"""Label Studio's REST API, as the backend uses it: the project's JSON export, how many of
its tasks a model version predicts, and the project's model version. Its URL and token come
from the environment only and are never logged."""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Tuple

URL_ENV, TOKEN_ENV = 'LABEL_STUDIO_URL', 'LABEL_STUDIO_API_KEY'


def _call(method: str, url: str, headers: dict, body: dict = None,
          timeout: float = 300) -> bytes:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=dict(
        headers, **({'Content-Type': 'application/json'} if body is not None else {})))
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read()


def _authorization(base: str, token: str) -> str:
    """A legacy token is sent as is; a personal access token (a JWT refresh token) is
    exchanged for a short-lived access token first, as Label Studio requires."""
    if token.count('.') != 2:
        return f'Token {token}'
    answer = _call('POST', f'{base}/api/token/refresh/', {}, dict(refresh=token))
    return f'Bearer {json.loads(answer)["access"]}'


def _request(method: str, path: str, what: str, body: dict = None) -> bytes:
    """``path`` of the Label Studio in the environment; a failure is one ``ValueError`` line
    saying ``what`` failed."""
    base, token = os.environ.get(URL_ENV, '').rstrip('/'), os.environ.get(TOKEN_ENV, '')
    if not base or not token:
        raise ValueError(f'{what}: set {URL_ENV} and {TOKEN_ENV} in the backend\'s environment')
    try:
        return _call(method, base + path, {'Authorization': _authorization(base, token)}, body)
    except (urllib.error.URLError, OSError, KeyError, ValueError) as e:
        raise ValueError(f'{what} at {base} failed: {getattr(e, "reason", None) or e}') from None


def export_json(project: int) -> bytes:
    """Project ``project``'s JSON export: every task with its annotations."""
    return _request('GET', f'/api/projects/{project}/export?exportType=JSON',
                    f'the export of project {project}')


def set_model_version(project: int, version: str) -> None:
    """Makes ``version`` the project's model version: the predictions its Data Manager
    scores and sorts by and its annotators start from. Label Studio refuses a version
    that none of its predictions has yet."""
    _request('PATCH', f'/api/projects/{project}', f'setting the model version of project '
             f'{project} to {version}', dict(model_version=version))


def scored_tasks(project: int, version: str) -> Tuple[int, int]:
    """``(tasks in project, predictions of version saved)``: read-only, to tell when every
    task has one."""
    tasks = json.loads(_request('GET', f'/api/projects/{project}', f'project {project}'))
    counts = json.loads(_request('GET', f'/api/projects/{project}/model-versions/',
                                 f'the model versions of project {project}'))
    return int(tasks.get('task_number') or 0), int(counts.get(version) or 0)
