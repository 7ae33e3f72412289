"""The nice values a template tries, best first (its effect on a real template: tests/process/test_template.py)."""

import resource

import pytest

from host.job.priority import PRIORITY_BOOST, nice_values_to_try


@pytest.mark.parametrize(("before", "rlimit", "expected"), [
    (0, 0, [-10]),  # the default limit: only CAP_SYS_NICE allows it
    (0, 25, [-10, -5]),  # a limit that allows part of it
    (0, 30, [-10]),
    (0, resource.RLIM_INFINITY, [-10]),
    (5, 0, [-5]),
    (-15, 40, [-20]),  # not below -20 (the kernel clamps it; one try is enough)
])
def test_the_template_tries_its_boost_then_what_its_nice_limit_allows(before, rlimit, expected):
    assert nice_values_to_try(before, PRIORITY_BOOST, rlimit) == expected
