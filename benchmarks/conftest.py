"""A benchmark run that talks: one line per run as it finishes (a test's `progress` property), instead of dots."""

from __future__ import annotations

import pytest

import benchmarks.pins  # noqa: F401 (first: pins the CPU kernels before torch computes anything)

_CONFIG = []  # pytest's config; its terminal reporter registers after conftest's pytest_configure, so look it up late


def pytest_configure(config):
    _CONFIG[:] = [config]


@pytest.hookimpl(trylast=True)
def pytest_runtest_logreport(report):
    line = dict(report.user_properties).get("progress")
    reporter = _CONFIG[0].pluginmanager.get_plugin("terminalreporter") if _CONFIG else None
    if report.when == "call" and line and reporter is not None:
        reporter.ensure_newline()
        reporter.write_line(line)


def pytest_report_teststatus(report, config):
    if report.when == "call" and report.passed and dict(report.user_properties).get("progress"):
        return "passed", "", ""  # the progress line says it
