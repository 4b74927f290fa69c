"""Under a fault the error log gets one traceback per kind of failure per interval (issue 16)."""
from __future__ import annotations

import logging

from app.core.db import is_unavailable
from app.ops import calm


def fail(n: int) -> Exception:
    try:
        raise ConnectionRefusedError(f"node down #{n}")
    except ConnectionRefusedError as exc:
        return exc


def test_repeats_of_one_failure_are_counted_not_logged(caplog, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(calm.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(calm, "_last", {})
    log = logging.getLogger("pipeline.test.calm")
    with caplog.at_level(logging.ERROR, logger="pipeline.test.calm"):
        for n in range(300):  # a second of failing requests
            calm.log_failure(log, fail(n), "request failed")
        now[0] += calm.INTERVAL + 1
        calm.log_failure(log, fail(300), "request failed")
    assert len(caplog.records) == 2
    assert caplog.records[0].exc_info is not None
    assert "299 more like it" in caplog.records[1].getMessage()


def test_raw_driver_connection_errors_count_as_unavailable():
    import pymysql

    assert is_unavailable(pymysql.err.OperationalError(2003, "Can't connect to MySQL server"))
    assert is_unavailable(pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query"))
    assert is_unavailable(pymysql.err.InterfaceError(0, ""))
    # a Galera node that left the primary component while the cluster reconfigures
    assert is_unavailable(pymysql.err.OperationalError(1047, "WSREP has not yet prepared node for application use"))
    assert is_unavailable(pymysql.err.OperationalError(1180, 'Got error 6 "No such device or address" during COMMIT'))
    assert not is_unavailable(pymysql.err.IntegrityError(1062, "Duplicate entry"))
    assert not is_unavailable(ValueError("a bug"))
