"""The facade's methods show the kernel function's parameters (not ``*args, **kwargs``)."""

from __future__ import annotations

import inspect

import pytest

from pasidsim.errors import ModelUsageError
from pasidsim.examples import demo_config as default_config
from pasidsim.step import OPS
from pasidsim.system import System


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
def test_every_method_has_the_operations_signature(op):
    sig = inspect.signature(getattr(System, op.name))
    names = list(sig.parameters)
    assert names[0] == "self"
    assert tuple(names[1:]) == op.params
    for p, d in zip(op.params, op.defaults):
        assert sig.parameters[p].default == d


def test_bind_signature_names_devices_by_name_or_index():
    sig = inspect.signature(System.iommu_sva_bind_device)
    assert str(sig) == ("(self, dev: 'int | str', mm: 'int', drvdata: 'int' = 0, "
                        "flags: 'int' = 0) -> 'int'")


def test_positional_and_keyword_calls_agree_and_misuse_is_refused():
    a, b = System(default_config()), System(default_config())
    assert a.process_create() == b.process_create()
    with pytest.raises(ModelUsageError):
        a.fork(1, tid=1)  # given twice
    with pytest.raises(ModelUsageError):
        a.fork(1, 2)  # too many
