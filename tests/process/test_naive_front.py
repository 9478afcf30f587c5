"""The naive front (``python -m demo.naive_front``): the demo endpoints with every command run in-process."""

from __future__ import annotations

from api.testing import free_port, get_json

import json
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]




def test_the_naive_front_serves_ps3_home_and_takes_injected_latency(make_cluster, monkeypatch, tmp_path):
    chaos_file = tmp_path / "chaos.json"
    chaos_file.write_text("{}")
    monkeypatch.setenv("SEAWALL_DEMO_FAST", "1")
    monkeypatch.setenv("SEAWALL_NAIVE_CHAOS_FILE", str(chaos_file))
    port = free_port()
    cluster = make_cluster({"front": {"listen": f"127.0.0.1:{port}", "endpoints": str(REPO / "endpoints")}})
    cluster.start("naive-front", "-m", "demo.naive_front")  # no broker, no workers
    base = f"http://127.0.0.1:{port}"
    cluster.wait_until(lambda: get_json(base + "/")[0] == 200, "the naive front to listen")

    status, body = get_json(base + "/ps3/home?user=7")
    assert status == 200, body
    assert body["device"] == "ps3" and body["user"]["id"] == 7 and body["rows"] and body["degraded"] == []

    chaos_file.write_text(json.dumps({"dependency": "recommendations", "latency_ms": 700}))
    started_s = time.monotonic()
    status, body = get_json(base + "/ps3/home?user=7")
    assert status == 200 and time.monotonic() - started_s >= 0.7  # no timeout: the request waits it out

    chaos_file.write_text("{}")
    started_s = time.monotonic()
    status, _ = get_json(base + "/android/home?user=7")
    assert status == 200 and time.monotonic() - started_s < 0.7
