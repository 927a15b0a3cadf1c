"""The SeaweedFS test server itself: the chart's configuration, loopback only, every
port pinned, and nothing left behind."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests import seaweedfs_server as swfs
from tests.support import processes_mentioning

pytestmark = [pytest.mark.servers, pytest.mark.seaweedfs]


def test_it_runs_the_charts_weed_mini_with_the_charts_identities(
    seaweedfs: swfs.SeaweedFS,
) -> None:
    chart = seaweedfs.chart
    assert chart.registry_uri == "s3://triage/"
    assert set(chart.identities) == set(swfs.ROLES)
    # Every flag of the chart's pod is passed unchanged, except its places and ports.
    kept = [
        arg
        for arg in chart.weed_args
        if arg.split("=", 1)[0] not in ("-dir", "-ip", "-ip.bind", "-s3.port", "-s3.config")
    ]
    assert kept[0] == "mini" and "-master.telemetry=false" in kept
    assert seaweedfs.command[1 : 1 + len(kept)] == kept
    assert (seaweedfs.folder / "s3.json").read_bytes() == chart.s3_json
    seaweedfs.admin.head_bucket(Bucket=seaweedfs.bucket)


def test_it_listens_on_loopback_only_and_on_the_ports_it_was_given(
    seaweedfs: swfs.SeaweedFS,
) -> None:
    if shutil.which("ss") is None:
        pytest.skip("ss (iproute2) is not installed")
    listening = seaweedfs.listening()
    assert listening, "ss -ltnp shows no listener of the weed process"
    assert all(address.startswith("127.0.0.1:") for address in listening), listening
    ports = {int(address.rsplit(":", 1)[1]) for address in listening}
    # Nothing but the pinned ports: no default port (8333, 9333, 23646, ...) was opened.
    assert ports == set(seaweedfs.ports.values())


def test_it_starts_in_seconds(seaweedfs: swfs.SeaweedFS) -> None:
    print(f"SeaweedFS ready after {seaweedfs.startup_seconds:.1f} s")
    assert 0 < seaweedfs.startup_seconds < 60


def test_a_stopped_server_leaves_no_process_folder_or_socket() -> None:
    swfs.require_seaweedfs()
    with swfs.seaweedfs_server() as server:
        folder, pid, ports = server.folder, server.process.pid, dict(server.ports)
        assert (folder / "data").is_dir()
    assert not folder.exists()
    assert server.process.returncode is not None
    assert processes_mentioning(str(folder)) == []
    assert not Path(f"/proc/{pid}").exists()
    for flag, pattern in swfs._GRPC_SOCKETS.items():
        assert not Path(pattern.format(port=ports[flag])).exists()


def test_a_broken_identities_file_fails_the_start_with_weeds_own_words(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    swfs.require_seaweedfs()
    chart = swfs.render_chart_storage()
    broken = swfs.ChartStorage(
        values=chart.values,
        s3_json=chart.s3_json.replace(b'"accessKey"', b'"accessKeyId"'),
        credentials=chart.credentials,
        weed_args=chart.weed_args,
        registry_uri=chart.registry_uri,
        workload_secrets=chart.workload_secrets,
    )
    monkeypatch.setattr(swfs, "render_chart_storage", lambda values=None: broken)
    with (
        pytest.raises(swfs.ServerStartError, match="duplicate accessKey"),
        swfs.seaweedfs_server(),
    ):
        pass
