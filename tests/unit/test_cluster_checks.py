"""What the app asks of a MariaDB Galera node (docs/cluster.md): a configuration it cannot be
exact on is refused with what to set; a node that is not Synced is not ready. The live cluster
runs in tests/galera/; here the decisions themselves, and that a plain MariaDB passes both."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from app.core.db import CLUSTER_STATUS, CLUSTER_VARIABLES, cluster_refusal, cluster_unready, make_engine


def test_galera_needs_row_events_whatever_log_bin_says():
    assert cluster_refusal({"wsrep_on": "ON", "binlog_format": "ROW"}) is None
    refusal = cluster_refusal({"wsrep_on": "ON", "binlog_format": "STATEMENT"})
    assert refusal and "binlog_format=ROW" in refusal and "STATEMENT" in refusal
    assert cluster_refusal({"wsrep_on": "OFF", "binlog_format": "MIXED"}) is None  # not a cluster: its own business
    assert cluster_refusal({"binlog_format": "STATEMENT"}) is None  # MySQL: no wsrep at all


def test_only_a_synced_galera_node_is_ready():
    galera = {"wsrep_on": "ON"}
    assert cluster_unready({"wsrep_ready": "ON", "wsrep_local_state": "4"}, galera) is None
    donor = cluster_unready({"wsrep_ready": "ON", "wsrep_local_state": "2",
                             "wsrep_local_state_comment": "Donor/Desynced"}, galera)
    assert donor and "Donor/Desynced" in donor
    assert cluster_unready({"wsrep_ready": "OFF", "wsrep_local_state": "0"}, galera)
    assert cluster_unready({"wsrep_ready": "OFF"}, {"wsrep_on": "OFF"}) is None  # plain MariaDB reports OFF


@pytest.mark.parametrize("db_url", ["mariadb"], indirect=True)
async def test_a_plain_mariadb_is_accepted_and_ready(db_url):
    engine = make_engine(db_url)
    try:
        async with engine.connect() as conn:
            variables = dict((await conn.execute(text(CLUSTER_VARIABLES))).all())
            status = dict((await conn.execute(text(CLUSTER_STATUS))).all())
        assert cluster_refusal(variables) is None and cluster_unready(status, variables) is None
    finally:
        await engine.dispose()
