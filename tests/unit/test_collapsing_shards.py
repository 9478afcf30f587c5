"""How a call's shard goes on the wire (api/collapsing.py): distinct shards never meet."""

from __future__ import annotations

from typing import Any

from api.collapsing import shard_of
from api.command import Command
from shared.protocol import MAX_NAME_CHARS


class ByRegion(Command):
    dependency = "sample"
    region: Any = None

    def shard(self) -> Any:
        return self.region


def test_no_shard_is_the_one_shard():
    assert shard_of(ByRegion()) == ""


def test_shards_of_different_types_stay_apart():
    texts = {shard_of(ByRegion(region=value)) for value in (1, "1", True, 1.0)}
    assert len(texts) == 4


def test_long_shards_that_differ_only_past_the_limit_stay_apart_and_fit_the_wire():
    first, second = "x" * MAX_NAME_CHARS + "A", "x" * MAX_NAME_CHARS + "B"
    assert shard_of(ByRegion(region=first)) != shard_of(ByRegion(region=second))
    assert shard_of(ByRegion(region=first)) == shard_of(ByRegion(region=first))
    assert len(shard_of(ByRegion(region=first))) <= MAX_NAME_CHARS
