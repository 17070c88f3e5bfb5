"""A benchmark run that talks: one line per run as it finishes (a test's `progress` property), instead of dots."""

from __future__ import annotations

import pytest


@pytest.hookimpl(trylast=True)
def pytest_runtest_logreport(report):
    line = dict(report.user_properties).get("progress")
    if report.when == "call" and line:
        reporter = _reporter(report)
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(line)


def pytest_report_teststatus(report, config):
    if report.when == "call" and report.passed and dict(report.user_properties).get("progress"):
        return "passed", "", ""  # the progress line says it


_CONFIG = []


def pytest_configure(config):
    _CONFIG.append(config)


def _reporter(report):
    return _CONFIG[-1].pluginmanager.get_plugin("terminalreporter") if _CONFIG else None
