"""One source for strategy names: the registry. The CLI help, the package exports and the
README's strategy table must list exactly the registered strategies, so none can drift; the
README's argument lists and ``active_learning`` table, and docs/bad_input.md's cases, likewise."""
import os.path as osp
import re
import subprocess
import sys

import pytest

from conftest import ROOT

import isal_mmdet
import isal_mmdet.study  # the research strategies register here, and the README lists them
from isal_mmdet.registry import STRATEGIES


def registered():
    """``{name: class}`` for every strategy, by its lower-case registered name."""
    return {k: v for k, v in STRATEGIES.module_dict.items() if k.islower()}


def help_text(tool):
    """``tools/<tool> --help``, whitespace collapsed."""
    done = subprocess.run([sys.executable, f'tools/{tool}', '--help'], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return ' '.join(done.stdout.split())


def test_al_select_help_lists_the_registered_strategies():
    text = help_text('al_select.py')
    listed = re.search(r'--strategy STRATEGY (.*?); default', text).group(1)
    images = [k for k, cls in registered().items() if getattr(cls, 'query', 'images') != 'boxes']
    assert sorted(listed.split(', ')) == sorted(images)
    assert len(images) < len(registered())  # box strategies exist, and are not offered there


def test_package_exports_every_registered_strategy():
    """Product strategies from isal_mmdet, research ones from isal_mmdet.study."""
    exported = {getattr(pkg, name) for pkg in (isal_mmdet, isal_mmdet.study)
                for name in pkg.__all__}
    missing = {k for k, cls in registered().items() if cls not in exported}
    assert not missing, f'isal_mmdet.__all__ / isal_mmdet.study.__all__ lack {sorted(missing)}'


def test_readme_strategy_table_lists_exactly_the_registered_strategies():
    with open(osp.join(ROOT, 'README.md'), encoding='utf-8') as f:
        text = f.read()
    table = text[text.index('| strategy | cost unit |'):]
    table = table[:table.index('\n\n')]
    rows = re.findall(r'^\| `([a-z_]+)` \|', table, re.M)
    assert len(rows) == len(set(rows))
    assert sorted(rows) == sorted(registered())


def bad_input_items(text):
    """The items of ``docs/bad_input.md`` after its '## Every case' heading: one case per
    '- ' line, continuation lines indented, whitespace collapsed."""
    items = []
    for line in text[text.index('## Every case'):].splitlines():
        if line.startswith('- '):
            items.append(line[2:])
        elif line.startswith('  ') and items:
            items[-1] += ' ' + line
    return [' '.join(x.split()) for x in items]


def test_bad_input_list_is_the_cases_the_tests_check():
    """The bad-input inventory (docs/bad_input.md) is exactly the CASES of the test files that
    check them: a case added, renamed or dropped in one place fails here until the other
    follows."""
    import test_untrusted_annotations
    import test_untrusted_inputs
    with open(osp.join(ROOT, 'docs', 'bad_input.md'), encoding='utf-8') as f:
        items = bad_input_items(f.read())
    cases = [d for _, d in test_untrusted_inputs.CASES + test_untrusted_annotations.CASES]
    add = [f'- {d}' for d in cases if d not in items]
    remove = [f'- {x}' for x in items if x not in cases]
    assert sorted(items) == sorted(cases), (
        'docs/bad_input.md differs from the CASES; add:\n' + '\n'.join(add)
        + '\nremove:\n' + '\n'.join(remove))


@pytest.mark.parametrize('summary', ["Every strategy's arguments",
                                     "Every batch stage's arguments"])
def test_readme_lists_every_argument_from_their_annotations(summary):
    """Strategies and batch stages: the README's lists are written from the registries."""
    from isal_mmdet.al.arguments import describe_arguments
    from isal_mmdet.registry import BATCH_STAGES
    with open(osp.join(ROOT, 'README.md'), encoding='utf-8') as f:
        text = f.read()
    section = text[text.index(f'<details><summary>{summary}'):]
    body = section[section.index('</summary>') + 10:section.index('</details>')]
    listed = [line for line in body.splitlines() if line.startswith('- `')]
    classes = registered() if 'strategy' in summary else {
        k: v for k, v in BATCH_STAGES.module_dict.items() if k.islower()}
    expected = describe_arguments(classes)
    assert listed == expected, 'README arguments differ; expected:\n' + '\n'.join(expected)


def test_al_study_help_lists_every_strategy_and_lever():
    from isal_mmdet.study.variants import BOX_LEVERS, ESI_LEVERS, LEVERS
    text = help_text('al_study.py')
    listed = re.search(r'registered: (.*?); ISAL variants', text).group(1)
    assert sorted(listed.split(', ')) == sorted(registered())
    for table, name in ((LEVERS, 'ISAL variants'), (ESI_LEVERS, 'ESI variants'),
                        (BOX_LEVERS, 'box strategies')):
        levers = re.search(name + r' [^,]*?, levers: (.*?);', text).group(1)
        assert levers.split(', ') == list(table)
    from isal_mmdet.registry import BATCH_STAGES
    stages = re.search(r'NAME\+STAGE, stages: (.*?);', text).group(1)
    assert stages.split(', ') == sorted(k for k in BATCH_STAGES.module_dict if k.islower())


def test_readme_active_learning_table_is_the_settings_defaults():
    """Every field of the ``active_learning`` block, with its default, and no other."""
    from isal_mmdet.al.settings import AL_DEFAULTS
    with open(osp.join(ROOT, 'README.md'), encoding='utf-8') as f:
        text = f.read()
    table = text[text.index('| field | default | meaning |'):]
    table = table[:table.index('\n\n')]
    shown = {}
    for fields, defaults in re.findall(r'^\| (`[^|]+`) \| ([^|]+) \|', table, re.M):
        names = re.findall(r'`(\w+)`', fields)
        values = [v.strip().strip('`') for v in defaults.split(', ')]
        assert len(names) == len(values), fields
        shown.update(zip(names, values))
    assert sorted(shown) == sorted(AL_DEFAULTS)
    assert shown == {k: repr(v) for k, v in AL_DEFAULTS.items()}
