"""Target ``labels:``: validated as Prometheus labels, with the metrics' own names reserved."""

from __future__ import annotations

from typing import Any

import pytest

from netguard.config import settings_from_data
from netguard.errors import ConfigError
from netguard.metrics import SPECS
from netguard.metrics.specs import TARGET_LABELS
from netguard.probes.config import RESERVED_LABELS


def _load(labels: Any) -> list[str]:
    try:
        settings_from_data({"targets": [{"id": "a", "kind": "fiber", "address": "127.0.0.1",
                                         "labels": labels}]})
    except ConfigError as exc:
        return exc.problems
    return []


def test_every_label_a_metric_uses_is_reserved() -> None:
    # A target label named like one would be overwritten (or overwrite it) in a join.
    used = set(TARGET_LABELS)
    for spec in SPECS:
        if spec.per_target:
            used.update(spec.labels)
    assert used <= RESERVED_LABELS


def test_good_labels_are_kept_sorted_and_numbers_become_text() -> None:
    settings = settings_from_data({"targets": [
        {"id": "a", "kind": "fiber", "address": "127.0.0.1",
         "labels": {"region": "north", "_rack": 12, "Owner": "NOC east"}}]})
    assert settings.targets[0].label_pairs == (("Owner", "NOC east"), ("_rack", "12"),
                                               ("region", "north"))


@pytest.mark.parametrize(("labels", "problem"), [
    ({"site": "x"}, "'site': reserved"),
    ({"interface": "x"}, "'interface': reserved"),
    ({"instance": "x"}, "'instance': reserved"),
    ({"__name__": "x"}, "'__name__': names starting with __ are reserved"),
    ({"1st": "x"}, "'1st': a label name is a letter or _"),
    ({"rack-row": "x"}, "'rack-row': a label name is a letter or _"),
    ({"r" * 65: "x"}, "a label name is a letter or _, then letters, digits or _ (at most 64"),
    ({"region": ""}, "'region': the value is empty"),
    ({"region": "x" * 257}, "'region': the value must be printable text of at most 256"),
    ({"region": "a\nb"}, "'region': the value must be printable text"),
    ({f"l{i}": "x" for i in range(17)}, "at most 16 labels per target, not 17"),
])
def test_bad_labels_are_refused_with_their_path(labels: dict[str, str], problem: str) -> None:
    problems = _load(labels)
    assert len(problems) == 1, problems
    assert problems[0].startswith("targets[0].labels: ")
    assert problem in problems[0]
