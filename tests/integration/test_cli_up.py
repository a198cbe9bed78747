"""README command 1, for real: `docket up` as a process tree, then ask / token / replay / doctor / ingest over it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import DEMO, ROOT
from tests.support.oracle import LedgerOracle

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def stack_env(tmp: Path) -> tuple[dict[str, int], dict[str, str]]:
    """Free ports and an environment of our own (nothing inherited that would point docket up elsewhere)."""
    ports = {
        "temporal": free_port(),
        "ui": free_port(),
        "api": free_port(),
        "worker": free_port(),
        "sdk_metrics": free_port(),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKET_", "TEMPORAL_", "OPENAI_", "DATABASE_"))}
    env |= {
        "DOCKET_DATA_DIR": str(tmp / "data"),
        "DOCKET_DEMO_DATA": str(DEMO),
        "DOCKET_API_PORT": str(ports["api"]),
        "DOCKET_WORKER_HTTP_PORT": str(ports["worker"]),
        "DOCKET_TEMPORAL_METRICS_PORT": str(ports["sdk_metrics"]),
        "DOCKET_NAMESPACE_UI_URL": f"http://localhost:{ports['ui']}",
        "TEMPORAL_ADDRESS": f"127.0.0.1:{ports['temporal']}",
    }
    return ports, env


@dataclass
class Up:
    proc: subprocess.Popen[str]
    env: dict[str, str]
    ports: dict[str, int]
    log: Path

    def docket(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli.main", *args],
            env=self.env,
            cwd=ROOT,
            text=True,
            capture_output=True,
            timeout=timeout,
        )


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    tmp = tmp_path_factory.mktemp("up")
    ports, env = stack_env(tmp)
    log = tmp / "up.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "up"], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True
        )
    deadline = time.monotonic() + 120
    while "Docket is up." not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"docket up did not come up:\n{log.read_text()}")
        time.sleep(0.5)
    handle = Up(proc, env, ports, log)
    yield handle
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_up_prints_the_urls(up: Up) -> None:
    text = up.log.read_text()
    assert f"http://127.0.0.1:{up.ports['api']}/docs" in text
    assert f"http://localhost:{up.ports['ui']}" in text
    assert "loaded demo data" in text
    assert httpx.get(f"http://127.0.0.1:{up.ports['api']}/docs").status_code == 200


def test_ask_prints_the_figure_and_a_ui_link_that_opens_the_run(up: Up) -> None:
    out = up.docket("ask", "What was revenue for MER-US last month?", "--as", "alice", "--as-of", "2026-11-21")
    assert out.returncode == 0, out.stderr
    expected = LedgerOracle(DEMO).total("meridian", ["MER-US"], "4", ["2026-10"])
    assert f"{expected:,}" in out.stdout
    assert "outcome:    answered" in out.stdout
    link = re.search(r"temporal_ui:\s+(\S+)", out.stdout)
    assert link, out.stdout
    wid = link.group(1).rsplit("/", 1)[-1]
    assert link.group(1) == f"http://localhost:{up.ports['ui']}/namespaces/default/workflows/{wid}"
    assert httpx.get(link.group(1)).status_code == 200
    # The UI's own API, which the page calls, knows the run.
    api = httpx.get(f"http://localhost:{up.ports['ui']}/api/v1/namespaces/default/workflows/{wid}")
    assert api.status_code == 200 and "RequestWorkflow" in api.text

    replay = up.docket("replay", wid)
    assert replay.returncode == 0, replay.stderr
    assert "replay OK" in replay.stdout


def test_denial_over_the_cli(up: Up) -> None:
    out = up.docket("ask", "What was payroll for MER-US in January 2026?", "--as", "carol", "--as-of", "2026-11-21")
    assert out.returncode == 0, out.stderr
    assert "outcome:    denied" in out.stdout and "POL-001" in out.stdout
    link = re.search(r"temporal_ui:\s+(\S+)", out.stdout)
    assert link, out.stdout
    wid = link.group(1).rsplit("/", 1)[-1]
    # The demo stack's dev server knows Docket's search attributes: an operator finds denials with the real CLI.
    found: list[str] = []
    for _ in range(50):
        listed = subprocess.run(
            [
                str(Path(sys.executable).parent / "temporal"),
                "workflow",
                "list",
                "--address",
                f"127.0.0.1:{up.ports['temporal']}",
                "--query",
                "DocketOutcome='denied'",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert listed.returncode == 0, listed.stderr
        if wid in listed.stdout:
            found.append(wid)
            break
        time.sleep(0.2)
    assert found, listed.stdout


def test_worker_serves_health_and_metrics(up: Up) -> None:
    worker = f"http://127.0.0.1:{up.ports['worker']}"
    assert httpx.get(f"{worker}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{worker}/readyz").status_code == 200
    metrics = httpx.get(f"{worker}/metrics").text
    assert "docket_requests_total" in metrics and "temporal_" in metrics
    api_metrics = httpx.get(f"http://127.0.0.1:{up.ports['api']}/metrics").text
    assert "http_request_duration_seconds" in api_metrics


def test_token_doctor_and_errors(up: Up) -> None:
    token = up.docket("token", "alice")
    assert token.returncode == 0 and token.stdout.count(".") == 2
    unknown = up.docket("token", "zoe")
    assert unknown.returncode != 0 and "fix:" in unknown.stderr
    doctor = up.docket("doctor")
    assert doctor.returncode == 0, doctor.stdout
    assert "[ok  ] api " in doctor.stdout and "[ok  ] worker " in doctor.stdout, doctor.stdout
    empty = up.docket("ask", "   ", "--as", "alice")
    assert empty.returncode == 2 and "empty" in empty.stderr.lower()


def test_ingest_documents_indexes_through_the_worker(up: Up, tmp_path: Path) -> None:
    doc = tmp_path / "doc-test-ingest.md"
    doc.write_text(
        '---\nid: "doc-test-ingest"\ntitle: "Zanzibar memo"\ntenant: "meridian"\nentities: []\n'
        'classification: "public"\n---\n\nThe zanzibar project is on hold.\n'
    )
    anonymous = up.docket("ingest", "documents", str(doc))
    assert anonymous.returncode == 2 and "--as" in anonymous.stderr
    refused = up.docket("ingest", "documents", str(doc), "--as", "carol")
    assert refused.returncode == 3 and "DOC-" in refused.stderr, refused.stderr
    first = up.docket("ingest", "documents", str(doc), "--as", "alice")
    assert first.returncode == 0, first.stderr
    assert "stored 1 new or changed" in first.stdout
    again = up.docket("ingest", "documents", str(doc), "--as", "alice")
    assert again.returncode == 0, again.stderr
    assert "stored 0 new or changed, 1 unchanged" in again.stdout and "indexed 0 chunks" in again.stdout
    ask = up.docket("ask", "What does the zanzibar memo say?", "--as", "heidi", "--as-of", "2026-11-21")
    assert "doc-test-ingest" in ask.stdout
    status = up.docket("index", "status")
    assert status.returncode == 0, status.stderr
    assert "alias docket_chunks -> docket_chunks_v1" in status.stdout
    unknown = up.docket("index", "switch", "docket_chunks_v9")
    assert unknown.returncode == 1 and "docket_chunks_v9 does not exist" in unknown.stderr, unknown.stderr


def test_second_up_says_one_is_running(up: Up) -> None:
    second = up.docket("up", timeout=60)
    assert second.returncode == 1
    assert "already running" in second.stderr


def test_children_die_with_a_killed_up(tmp_path: Path) -> None:
    """Even SIGKILL of `docket up` (no chance to clean up) must not leave a dev server holding the ports."""
    ports, env = stack_env(tmp_path)
    log = tmp_path / "up.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "up"], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 120
    while "Docket is up." not in log.read_text() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
    assert "Docket is up." in log.read_text(), log.read_text()
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 30
    while any(port_open(p) for p in ports.values()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not any(port_open(p) for p in ports.values())


def test_ctrl_c_stops_every_child(up: Up) -> None:
    up.proc.send_signal(signal.SIGINT)
    assert up.proc.wait(60) == 0
    for name, port in up.ports.items():
        assert not port_open(port), f"{name} still listening on {port}"
    assert "stopped." in up.log.read_text()
