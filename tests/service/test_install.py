"""deploy/install.sh run for real in a temporary root: the virtualenv, the settings file, the
unit and its drop-in, an upgrade that restarts a running service or stops at a configuration
the check refuses, and --uninstall with and without --purge. systemctl is a stub that records
its calls.

pip builds the package from a copy of the checkout (a build writes build/ and *.egg-info next
to the sources), and the new virtualenv sees this interpreter's packages through PYTHONPATH, so
pip finds every dependency installed already and only builds the package itself."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "deploy" / "install.sh"
# What install.sh reads from the checkout.
SOURCES = ("pyproject.toml", "README.md", "config.example.toml", "batch-poller.service")
SOURCE_FOLDERS = ("batch_poller", "deploy")

STUB = """#!/bin/sh
printf '%s\\n' "$*" >> "{calls}"
if [ "$1" = is-active ]; then
  [ -e "{active}" ] && exit 0
  exit 3
fi
exit 0
"""


@dataclass
class Installation:
    """A checkout's copy, a root to install into, and the systemctl stub."""

    source: Path
    root: Path
    stub: Path
    calls_file: Path
    active_flag: Path

    @property
    def prefix(self) -> Path:
        return self.root / "opt" / "batch-poller"

    @property
    def config(self) -> Path:
        return self.root / "etc" / "batch-poller" / "config.toml"

    @property
    def unit(self) -> Path:
        return self.root / "etc" / "systemd" / "system" / "batch-poller.service"

    @property
    def dropin(self) -> Path:
        return self.root / "etc" / "systemd" / "system" / "batch-poller.service.d" / "local.conf"

    def run(
        self, *args: str, active: bool = False, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """install.sh with these arguments; systemctl says the service runs when `active`."""
        self.calls_file.write_text("")
        if active:
            self.active_flag.touch()
        else:
            self.active_flag.unlink(missing_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("BATCH_POLLER_")}
        env.update(
            ROOT=str(self.root),
            PREFIX=str(self.prefix),
            PYTHON=sys.executable,
            SYSTEMCTL=str(self.stub),
            ALLOW_NON_ROOT="1",
            PYTHONPATH=sysconfig.get_paths()["purelib"],
        )
        result = subprocess.run(
            ["bash", str(self.source / "deploy" / "install.sh"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    def calls(self) -> list[str]:
        return self.calls_file.read_text().splitlines()


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Installation:
    base = tmp_path_factory.mktemp("install")
    source = base / "src"
    source.mkdir()
    for name in SOURCES:
        shutil.copy2(REPO / name, source / name)
    for folder in SOURCE_FOLDERS:
        shutil.copytree(
            REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    calls = base / "systemctl-calls"
    active = base / "systemctl-active"
    stub = base / "systemctl"
    stub.write_text(STUB.format(calls=calls, active=active))
    stub.chmod(0o755)
    root = base / "root"
    root.mkdir()
    return Installation(source, root, stub, calls, active)


@pytest.fixture
def installed(installation: Installation) -> Iterator[Installation]:
    """The installation, installed (again, when a test before removed it)."""
    if not installation.unit.exists():
        installation.run()
    yield installation


def test_help_and_wrong_arguments() -> None:
    shown = subprocess.run(["bash", str(INSTALL), "--help"], capture_output=True, text=True)
    assert shown.returncode == 0
    for word in ("--uninstall", "--purge", "PREFIX", "ROOT", "SYSTEMCTL", "PIP_ARGS"):
        assert word in shown.stdout
    for wrong in (["--bogus"], ["--purge"]):
        result = subprocess.run(["bash", str(INSTALL), *wrong], capture_output=True, text=True)
        assert result.returncode == 2, wrong
        assert result.stderr.startswith("install.sh: "), result.stderr


def test_a_first_install(installation: Installation) -> None:
    if installation.unit.exists():
        installation.run("--uninstall", "--purge")

    result = installation.run()

    mode = installation.config.stat()
    assert stat.S_IMODE(mode.st_mode) == 0o640
    if os.geteuid() == 0:
        assert (mode.st_uid, mode.st_gid) == (0, 0)
    assert installation.config.read_text() == (REPO / "config.example.toml").read_text()

    unit = installation.unit.read_text()
    assert stat.S_IMODE(installation.unit.stat().st_mode) == 0o644
    assert f"\nExecStart={installation.prefix}/bin/batch-poller run\n" in unit
    assert "/usr/local/bin" not in unit
    documentation = [
        uri
        for line in unit.splitlines()
        if line.startswith("Documentation=")
        for uri in line.removeprefix("Documentation=").split()
    ]
    assert "man:systemd.service(5)" in documentation
    pages = [Path(uri.removeprefix("file:")) for uri in documentation if uri.startswith("file:")]
    assert len(pages) == 2
    for page in pages:
        assert page.is_file() and page.is_relative_to(installation.prefix), page
    assert (installation.prefix / "bin" / "batch-poller").exists()

    dropin = installation.dropin.read_text()
    assert "#EnvironmentFile=/etc/batch-poller/aws.env" in dropin
    assert "#LoadCredential=admin-token:/etc/batch-poller/admin-token" in dropin
    assert all(
        line.startswith("#") or line == "[Service]" for line in dropin.splitlines() if line
    ), "the drop-in is an example: it changes nothing until edited"

    assert installation.calls() == ["daemon-reload"]
    assert "the database is SQLite" in result.stdout
    assert "configuration is valid" in result.stdout


def test_an_upgrade_keeps_the_dropin_and_restarts_a_running_service(
    installed: Installation,
) -> None:
    local = "[Service]\nEnvironmentFile=-/etc/batch-poller/aws.env\n"
    installed.dropin.write_text(local)
    installed.unit.write_text(installed.unit.read_text() + "# an edit install.sh replaces\n")

    result = installed.run(active=True)

    assert installed.dropin.read_text() == local
    assert "kept the existing" in result.stdout
    assert "an edit install.sh replaces" not in installed.unit.read_text()
    assert installed.calls() == [
        "daemon-reload",
        "is-active --quiet batch-poller",
        "restart batch-poller",
    ]


def test_a_postgresql_url_in_an_environment_file_installs_the_driver(
    installed: Installation,
) -> None:
    secret = installed.root / "etc" / "batch-poller" / "database.env"
    secret.write_text('BATCH_POLLER_DATABASE__URL="postgresql://bp:s3cret@db.internal:5432/bp"\n')
    secret.chmod(0o600)
    conf = installed.dropin.with_name("database.conf")
    conf.write_text("[Service]\nEnvironmentFile=-/etc/batch-poller/database.env\n")
    try:
        result = installed.run(active=False)
    finally:
        conf.unlink()
        secret.unlink()

    assert "the database is PostgreSQL: installing the postgres extra" in result.stdout
    assert "s3cret" not in result.stdout + result.stderr
    # An upgrade of a stopped service leaves it stopped.
    assert installed.calls() == ["daemon-reload", "is-active --quiet batch-poller"]


def test_a_configuration_the_check_refuses_stops_the_upgrade_before_the_unit(
    installed: Installation,
) -> None:
    good = installed.config.read_text()
    installed.config.write_text("intervall = 5\n" + good)
    unit = installed.unit.read_text() + "# the unit installed before\n"
    installed.unit.write_text(unit)
    try:
        result = installed.run(active=True, check=False)
    finally:
        installed.config.write_text(good)

    assert result.returncode != 0
    assert "unknown setting 'intervall'" in result.stderr
    assert "the unit was left as it was" in result.stderr
    assert installed.unit.read_text() == unit
    assert installed.calls() == []


def test_uninstall_keeps_settings_and_state_and_purge_removes_them(
    installed: Installation,
) -> None:
    private = installed.root / "var" / "lib" / "private" / "batch-poller"
    private.mkdir(parents=True, exist_ok=True)
    (private / "batch-poller.db").write_text("the jobs")
    state = installed.root / "var" / "lib" / "batch-poller"
    if not state.is_symlink():
        state.symlink_to("private/batch-poller")

    installed.run("--uninstall")

    assert not installed.unit.exists()
    assert not installed.prefix.exists()
    assert installed.config.exists()
    assert installed.dropin.exists()
    assert (state / "batch-poller.db").read_text() == "the jobs"
    assert installed.calls() == ["stop batch-poller", "disable batch-poller", "daemon-reload"]

    installed.run("--uninstall", "--purge")

    assert not installed.config.parent.exists()
    assert not installed.dropin.parent.exists()
    assert not state.is_symlink() and not state.exists()
    assert not private.exists()
